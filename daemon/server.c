// SPDX-License-Identifier: GPL-2.0-only
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"
#include "protocol.h"
#include "server.h"
#include "util.h"

/* Output beyond queue_max that only replies can take before a client that
 * does not read them is disconnected. */
#define REPLY_SLACK (4u << 20)
/* How long clients may take at exit to read what is queued for them. */
#define EXIT_FLUSH_NS (1000ULL * 1000000ULL)

struct server {
        sd_event *loop;
        struct manager *m;
        struct events *ev;
        int fd;
        bool own_socket;
        char *path;
        sd_event_source *src;
        struct client *clients;
        uint64_t next_id;
        uint64_t started;
        struct server_opts opts;
};

static void client_free(struct client *c)
{
        struct server *s = c->srv;

        for (struct client **pp = &s->clients; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        manager_client_gone(s->m, c);
        sd_event_source_disable_unref(c->src);
        if (c->fd >= 0)
                close(c->fd);
        buf_free(&c->in);
        buf_free(&c->out);
        free(c->subs);
        free(c->klost);
        log_debug("client %llu disconnected", (unsigned long long)c->id);
        free(c);
}

static void update_events(struct client *c)
{
        uint32_t want = c->eof ? 0 : EPOLLIN;

        if (client_queued(c))
                want |= EPOLLOUT;
        sd_event_source_set_io_events(c->src, want);
}

/* "lost" notifications, once the client has room for them. */
static void report_losses(struct client *c)
{
        char msg[200];
        int n;

        if (client_queued(c) > c->srv->opts.queue_max / 2)
                return;
        for (size_t i = 0; i < c->nklost; i++) {
                n = snprintf(msg, sizeof(msg),
                             "{\"jsonrpc\":\"2.0\",\"method\":\"lost\",\"params\":{\"reason\":"
                             "\"kernel\",\"probe\":%llu,\"count\":%llu,\"total\":%llu}}\n",
                             (unsigned long long)c->klost[i].probe,
                             (unsigned long long)c->klost[i].count,
                             (unsigned long long)c->klost[i].total);
                buf_put(&c->out, msg, n);
        }
        c->nklost = 0;
        if (!c->dropped_unsent)
                return;
        n = snprintf(msg, sizeof(msg),
                     "{\"jsonrpc\":\"2.0\",\"method\":\"lost\",\"params\":{\"reason\":\"queue\","
                     "\"count\":%llu,\"total\":%llu}}\n",
                     (unsigned long long)c->dropped_unsent, (unsigned long long)c->dropped);
        buf_put(&c->out, msg, n);
        c->dropped_unsent = 0;
}

/*
 * Write what can be written; false when the client is gone. What was written
 * is dropped from the buffer only once it is at least half of it, so a
 * client that takes a little at a time does not cost a move of everything
 * queued behind it on every write.
 */
static bool client_flush(struct client *c)
{
        while (client_queued(c)) {
                ssize_t n = send(c->fd, c->out.data + c->out_sent, client_queued(c),
                                 MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        client_free(c);
                        return false;
                }
                c->out_sent += n;
                if (!client_queued(c)) {
                        buf_reset(&c->out);
                        c->out_sent = 0;
                        report_losses(c);
                }
        }
        if (c->out_sent > c->out.len / 2) {
                buf_consume(&c->out, c->out_sent);
                c->out_sent = 0;
        }
        if (!client_queued(c) && (c->closing || (c->eof && !c->in.len))) {
                client_free(c);
                return false;
        }
        if (client_queued(c) > c->srv->opts.queue_max + REPLY_SLACK) {
                log_warning("client %llu (pid %d) does not read its replies: disconnected",
                            (unsigned long long)c->id, (int)c->who.pid);
                client_free(c);
                return false;
        }
        update_events(c);
        return true;
}

void client_send(struct client *c, const char *data, size_t len)
{
        buf_put(&c->out, data, len);
}

int client_subscribe(struct client *c, const uint64_t *ids, size_t n)
{
        uint64_t *copy = NULL;

        if (n) {
                copy = malloc(n * sizeof(*ids));
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, ids, n * sizeof(*ids));
        }
        free(c->subs);
        c->subs = copy;
        c->nsubs = n;
        c->subscribed = true;
        events_release(c->srv->ev); /* the first subscriber gets what waited since the start */
        return 0;
}

void client_unsubscribe(struct client *c)
{
        free(c->subs);
        c->subs = NULL;
        c->nsubs = 0;
        c->subscribed = false;
}

bool client_sees(const struct client *c, const struct probe *p)
{
        return c->who.privileged || p->owner == c->who.uid;
}

static bool wants(const struct client *c, const struct probe *p)
{
        if (!c->subscribed || c->closing || !client_sees(c, p))
                return false;
        if (!c->nsubs)
                return true;
        for (size_t i = 0; i < c->nsubs; i++)
                if (c->subs[i] == p->id)
                        return true;
        return false;
}

static bool deliver(struct probe *p, const char *line, size_t len, void *userdata)
{
        struct server *s = userdata;
        bool any = false;

        for (struct client *c = s->clients; c; c = c->next) {
                if (!wants(c, p))
                        continue;
                any = true;
                if (client_queued(c) + len > s->opts.queue_max) {
                        c->dropped++;
                        c->dropped_unsent++;
                        p->queue_dropped++;
                        continue;
                }
                buf_put(&c->out, line, len);
                c->delivered++;
                p->delivered++;
        }
        return any;
}

/* Kernel drops of probe p for client c, to report when it has room. */
static void note_kernel_loss(struct client *c, const struct probe *p, uint64_t count,
                             uint64_t total)
{
        struct client_loss *l = NULL;

        for (size_t i = 0; i < c->nklost && !l; i++)
                if (c->klost[i].probe == p->id)
                        l = &c->klost[i];
        if (!l) {
                if (grow_array(&c->klost, &c->klost_cap, c->nklost + 1, sizeof(*c->klost)) < 0)
                        return; /* still counted in the probe's stats */
                l = &c->klost[c->nklost++];
                *l = (struct client_loss){ .probe = p->id };
        }
        l->count += count;
        l->total = total;
}

/* The BPF side dropped hits: find the probes and tell their subscribers. */
static void dropped(void *userdata)
{
        struct server *s = userdata;
        size_t n;
        struct probe *const *probes = manager_probes(s->m, &n);

        for (size_t i = 0; i < n; i++) {
                struct probe *p = probes[i];
                struct ut_stats st;
                uint64_t drops;

                if (p->cfg.mode != UT_MODE_EVENTS || manager_stats(s->m, p, &st) < 0)
                        continue;
                drops = st.lost + st.busy;
                if (drops > p->drops_reported)
                        for (struct client *c = s->clients; c; c = c->next)
                                if (wants(c, p))
                                        note_kernel_loss(c, p, drops - p->drops_reported, drops);
                p->drops_reported = drops;
        }
        for (struct client *c = s->clients; c; c = c->next)
                if (c->nklost)
                        report_losses(c);
}

static void flush_all(void *userdata)
{
        struct server *s = userdata;
        struct client *c = s->clients, *next;

        for (; c; c = next) {
                next = c->next;
                if (client_queued(c))
                        client_flush(c);
        }
}

/* Handle complete lines in c->in; false when the client is gone. */
static bool process_input(struct client *c)
{
        size_t start = 0;

        /* at most one read's worth (64 KiB) of lines per wakeup */
        while (start < c->in.len && !c->closing) {
                char *nl = memchr(c->in.data + start, '\n', c->in.len - start);
                size_t len;

                if (!nl)
                        break;
                len = nl - (c->in.data + start);
                if (len && c->in.data[start + len - 1] == '\r')
                        len--;
                if (len)
                        protocol_handle(c, c->in.data + start, len);
                start = nl - c->in.data + 1;
        }
        buf_consume(&c->in, start);
        if (c->in.len > c->srv->opts.request_max) {
                protocol_error_line(c, E_INVALID_REQUEST, "request line exceeds the limit");
                c->closing = true;
                c->in.len = 0;
        }
        return client_flush(c);
}

static int on_client(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct client *c = userdata;

        (void)src;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                char tmp[65536];
                ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);

                if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        client_free(c);
                        return 0;
                }
                if (n == 0) {
                        c->eof = true;
                        /* a request without a final newline is still a request */
                        if (c->in.len && c->in.len <= c->srv->opts.request_max)
                                buf_putc(&c->in, '\n');
                }
                if (n > 0)
                        buf_put(&c->in, tmp, n);
                if (c->in.oom) {
                        client_free(c);
                        return 0;
                }
        }
        if (!process_input(c))
                return 0;
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct server *s = userdata;
        struct client *c;
        int cfd, r;

        (void)src;
        (void)revents;
        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warning("accept: %s", strerror(errno));
                return 0;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(cfd);
                return 0;
        }
        c->srv = s;
        c->fd = cfd;
        c->id = s->next_id++;
        if (access_identify(cfd, s->opts.group, s->opts.metrics_group, &c->who) < 0) {
                close(cfd);
                free(c);
                return 0;
        }
        r = sd_event_add_io(s->loop, &c->src, cfd, EPOLLIN, on_client, c);
        if (r < 0) {
                close(cfd);
                free(c);
                return 0;
        }
        if (!c->who.privileged) {
                unsigned n = 0;

                for (struct client *k = s->clients; k; k = k->next)
                        n += k->who.uid == c->who.uid;
                if (n >= s->opts.max_user_clients) {
                        /* told why, then closed once that is written */
                        protocol_error_line(c, E_LIMIT, "too many connections of this user");
                        c->closing = true;
                        sd_event_source_set_io_events(c->src, EPOLLOUT);
                        log_notice("uid %u: connection refused, %u open (the limit)",
                                   (unsigned)c->who.uid, n);
                }
        }
        c->next = s->clients;
        s->clients = c;
        log_debug("client %llu connected (pid %d, uid %u%s)", (unsigned long long)c->id,
                  (int)c->who.pid, (unsigned)c->who.uid, c->who.privileged ? ", privileged" : "");
        return 0;
}

static int listen_on(struct server *s, const char *path, struct error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char dir[PATH_MAX];
        char *slash;
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return error_set(err, E_INTERNAL, -ENAMETOOLONG, "socket path too long: %s", path);
        strcpy(sa.sun_path, path);
        snprintf(dir, sizeof(dir), "%s", path);
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                r = mkdir_p(dir, 0755);
                if (r < 0)
                        return error_set(err, E_INTERNAL, r, "cannot create %s: %s", dir,
                                         strerror(-r));
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return error_set(err, E_INTERNAL, -errno, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                close(fd);
                return error_set(err, E_INTERNAL, -EADDRINUSE,
                                 "another instance is listening on %s", path);
        }
        unlink(path); /* a stale socket of an instance that is gone */
        close(fd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return error_set(err, E_INTERNAL, -errno, "socket: %s", strerror(errno));
        {
                /* anyone may connect: what a peer may do is decided from its
                 * credentials (access.h) */
                mode_t old = umask(0111);

                r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
                umask(old);
        }
        if (r < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                close(fd);
                return error_set(err, E_INTERNAL, r, "cannot listen on %s: %s", path,
                                 strerror(-r));
        }
        s->fd = fd;
        s->own_socket = true;
        return 0;
}

int server_new(sd_event *loop, struct manager *m, const struct server_opts *opts,
               struct server **ret, struct error *err)
{
        static const struct events_ops ops = {
                .deliver = deliver, .dropped = dropped, .flush = flush_all,
        };
        struct server *s = calloc(1, sizeof(*s));
        int n, r;

        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->m = m;
        s->fd = -1;
        s->opts = *opts;
        s->next_id = 1;
        s->started = now_ns(CLOCK_MONOTONIC);
        n = sd_listen_fds(1);
        if (n > 1) {
                server_free(s);
                return error_set(err, E_INTERNAL, -EINVAL, "expected one socket from systemd, got %d", n);
        }
        if (n == 1) {
                if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        server_free(s);
                        return error_set(err, E_INTERNAL, -EINVAL,
                                         "the socket passed by systemd is not a listening "
                                         "UNIX stream socket");
                }
                s->fd = SD_LISTEN_FDS_START;
                fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
                fcntl(s->fd, F_SETFD, FD_CLOEXEC);
                s->path = strdup(opts->socket_path);
        } else {
                r = listen_on(s, opts->socket_path, err);
                if (r < 0) {
                        server_free(s);
                        return r;
                }
                s->path = strdup(opts->socket_path);
        }
        r = sd_event_add_io(loop, &s->src, s->fd, EPOLLIN, on_accept, s);
        if (r < 0 || !s->path) {
                server_free(s);
                return error_set(err, E_INTERNAL, r < 0 ? r : -ENOMEM, "cannot watch the socket");
        }
        r = events_new(loop, m, opts->flush_ns, &ops, s, &s->ev);
        if (r < 0) {
                server_free(s);
                return error_set(err, E_INTERNAL, r, "cannot read the ring buffer: %s",
                                 strerror(-r));
        }
        *ret = s;
        return 0;
}

/* At exit, clients get a moment to take what is queued for them: those events
 * left the ring buffer already. What they do not take is logged. */
static void flush_at_exit(struct server *s)
{
        uint64_t deadline = now_ns(CLOCK_MONOTONIC) + EXIT_FLUSH_NS;

        for (struct client *c = s->clients; c; c = c->next) {
                while (client_queued(c)) {
                        uint64_t now = now_ns(CLOCK_MONOTONIC);
                        struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
                        ssize_t n;

                        if (now >= deadline || poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
                                break;
                        n = send(c->fd, c->out.data + c->out_sent, client_queued(c),
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (n < 0 && errno != EAGAIN && errno != EINTR)
                                break;
                        if (n > 0)
                                c->out_sent += n;
                }
                if (client_queued(c))
                        log_warning("client %llu (pid %d): %zu bytes of events and replies not "
                                    "delivered at exit", (unsigned long long)c->id,
                                    (int)c->who.pid, client_queued(c));
        }
}

void server_free(struct server *s)
{
        if (!s)
                return;
        flush_at_exit(s);
        while (s->clients)
                client_free(s->clients);
        events_free(s->ev);
        sd_event_source_disable_unref(s->src);
        if (s->fd >= 0)
                close(s->fd);
        if (s->own_socket && s->path)
                unlink(s->path);
        free(s->path);
        free(s);
}

struct manager *server_manager(struct server *s)
{
        return s->m;
}

struct events *server_events(struct server *s)
{
        return s->ev;
}

struct client *server_clients(struct server *s)
{
        return s->clients;
}

const char *server_socket_path(struct server *s)
{
        return s->path;
}

uint64_t server_started(struct server *s)
{
        return s->started;
}
