// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpc.h"

int rpc_connect(struct rpc *r, const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        memset(r, 0, sizeof(*r));
        r->fd = -1;
        r->next_id = 1;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (r->fd < 0)
                return -errno;
        if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int e = -errno;

                close(r->fd);
                r->fd = -1;
                return e;
        }
        return 0;
}

void rpc_close(struct rpc *r)
{
        if (r->fd >= 0)
                close(r->fd);
        free(r->buf);
        memset(r, 0, sizeof(*r));
        r->fd = -1;
}

static int send_all(int fd, const char *s, size_t n)
{
        while (n) {
                ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                s += k;
                n -= k;
        }
        return 0;
}

int rpc_read_line(struct rpc *r, int timeout_ms, char **line, size_t *len)
{
        for (;;) {
                char *start = r->buf ? r->buf + r->consumed : NULL;
                char *nl = r->len > r->consumed ? memchr(start, '\n', r->len - r->consumed) : NULL;
                struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
                ssize_t n;
                int k;

                if (nl) {
                        *nl = 0;
                        *line = start;
                        *len = nl - start;
                        r->consumed += *len + 1;
                        return 1;
                }
                /* lines handed out are dropped only before reading more: once
                 * per read, not once per line */
                if (r->consumed) {
                        memmove(r->buf, start, r->len - r->consumed);
                        r->len -= r->consumed;
                        r->consumed = 0;
                }
                k = poll(&pfd, 1, timeout_ms);
                if (k < 0) {
                        if (errno == EINTR)
                                return -EINTR;
                        return -errno;
                }
                if (k == 0)
                        return 0;
                if (r->cap - r->len < 65536) {
                        size_t cap = r->cap ? r->cap * 2 : 131072;
                        char *b = realloc(r->buf, cap);

                        if (!b)
                                return -ENOMEM;
                        r->buf = b;
                        r->cap = cap;
                }
                n = recv(r->fd, r->buf + r->len, r->cap - r->len - 1, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ECONNRESET;
                r->len += n;
        }
}

int rpc_call(struct rpc *r, const char *method, json_object *params, json_object **result,
             char **errmsg, void (*on_note)(const char *line, size_t len, void *ud), void *ud)
{
        json_object *req = json_object_new_object();
        int id = r->next_id++, k;
        const char *text;
        char *line;
        size_t len;

        *result = NULL;
        *errmsg = NULL;
        json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(req, "id", json_object_new_int(id));
        json_object_object_add(req, "method", json_object_new_string(method));
        if (params)
                json_object_object_add(req, "params", params);
        text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        k = send_all(r->fd, text, strlen(text));
        if (k >= 0)
                k = send_all(r->fd, "\n", 1);
        json_object_put(req);
        if (k < 0)
                return k;
        for (;;) {
                json_object *msg, *v, *e;

                k = rpc_read_line(r, -1, &line, &len);
                if (k < 0)
                        return k;
                msg = json_tokener_parse(line);
                if (!msg)
                        return -EBADMSG;
                if (!json_object_object_get_ex(msg, "id", &v)) {
                        if (on_note)
                                on_note(line, len, ud);
                        json_object_put(msg);
                        continue;
                }
                if (json_object_get_int(v) != id) {
                        json_object_put(msg);
                        continue;
                }
                if (json_object_object_get_ex(msg, "error", &e)) {
                        json_object *m;

                        *errmsg = strdup(json_object_object_get_ex(e, "message", &m)
                                                 ? json_object_get_string(m) : "unknown error");
                        json_object_put(msg);
                        return -EPROTO;
                }
                if (json_object_object_get_ex(msg, "result", &v))
                        *result = json_object_get(v);
                json_object_put(msg);
                return 0;
        }
}
