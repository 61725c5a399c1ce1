// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

#define REQUEST_MAX 8192

static void write_all(int fd, const char *s, size_t n)
{
        while (n) {
                ssize_t k = write(fd, s, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return; /* the peer is gone: nothing more to say */
                s += k;
                n -= (size_t)k;
        }
}

static int respond(int out, int status, const char *reason, const char *content_type,
                   const char *extra, const char *body, size_t len, bool head)
{
        char hdr[512];
        int n = snprintf(hdr, sizeof(hdr),
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                         "Connection: close\r\n\r\n",
                         status, reason, content_type, len, extra ? extra : "");

        write_all(out, hdr, (size_t)n);
        if (!head)
                write_all(out, body, len);
        return status == 200 ? 0 : 1;
}

static int error_page(int out, int status, const char *reason, const char *extra, const char *msg,
                      bool head)
{
        char body[512];
        int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, reason, msg);

        return respond(out, status, reason, "text/plain; charset=utf-8", extra, body,
                       (size_t)n, head);
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The request head (up to the empty line), NUL-terminated; its length, 0 on
 * timeout or end of input, -1 if too long. */
static int read_head(int in, char *buf, size_t size, int timeout_ms)
{
        long long deadline = now_ms() + timeout_ms;
        size_t len = 0;

        while (len < size - 1) {
                struct pollfd pfd = { .fd = in, .events = POLLIN };
                long long left = deadline - now_ms();
                ssize_t n;

                if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
                        return 0;
                n = read(in, buf + len, size - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return 0;
                len += (size_t)n;
                buf[len] = 0;
                if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
                        return (int)len;
        }
        return -1;
}

/* The value of header name in the head, or NULL; value ends at the line end. */
static const char *header(const char *head, const char *name, size_t *len)
{
        size_t n = strlen(name);

        for (const char *l = strchr(head, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
                const char *v = l + 1;

                if (strncasecmp(v, name, n) != 0 || v[n] != ':')
                        continue;
                v += n + 1;
                v += strspn(v, " \t");
                *len = strcspn(v, "\r\n");
                return v;
        }
        return NULL;
}

int http_serve(int in, int out, int timeout_ms, http_fetch_fn fetch, void *userdata)
{
        char head[REQUEST_MAX], method[16], target[1024], version[16];
        struct http_body body = { 0 };
        const char *accept;
        size_t alen = 0;
        bool is_head, om = false;
        char *err;
        int n, r;

        n = read_head(in, head, sizeof(head), timeout_ms);
        if (n < 0)
                return error_page(out, 431, "Request Header Fields Too Large",
                                  NULL, "the request head exceeds 8 KiB", false);
        if (n == 0)
                return error_page(out, 408, "Request Timeout", NULL,
                                  "no complete request arrived", false);
        if (sscanf(head, "%15s %1023s %15s", method, target, version) != 3 ||
            strncmp(version, "HTTP/1.", 7) != 0)
                return error_page(out, 400, "Bad Request", NULL, "expected METHOD PATH HTTP/1.x",
                                  false);
        is_head = strcmp(method, "HEAD") == 0;
        if (strcmp(method, "GET") != 0 && !is_head)
                return error_page(out, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                                  "only GET and HEAD", false);
        target[strcspn(target, "?")] = 0;
        if (strcmp(target, "/metrics") != 0)
                return error_page(out, 404, "Not Found", NULL, "the metrics are at /metrics",
                                  is_head);
        accept = header(head, "Accept", &alen);
        if (accept) {
                static const char om_type[] = "application/openmetrics-text";

                for (size_t i = 0; i + sizeof(om_type) - 1 <= alen && !om; i++)
                        om = strncasecmp(accept + i, om_type, sizeof(om_type) - 1) == 0;
        }
        err = fetch(om, &body, userdata);
        if (err) {
                r = error_page(out, 503, "Service Unavailable", NULL, err, is_head);
                free(err);
                return r;
        }
        r = respond(out, 200, "OK", body.content_type, NULL, body.data, body.len, is_head);
        free(body.data);
        free(body.content_type);
        return r;
}
