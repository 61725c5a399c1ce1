// SPDX-License-Identifier: GPL-2.0-only
/*
 * utraced: the utrace daemon. Loads the BPF programs, adopts what an earlier
 * instance pinned, serves the control socket and streams events until
 * SIGTERM or SIGINT. Probes stay attached after it exits.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "access.h"
#include "config-build.h"
#include "loader.h"
#include "log.h"
#include "manager.h"
#include "server.h"
#include "util.h"

struct options {
        const char *socket_path;
        const char *bpffs_root;
        const char *state_dir;
        size_t ringbuf_size;
        size_t queue_max;
        const char *group;
        bool no_multi;
        bool purge;
};

static void help(void)
{
        printf("Usage: utraced [OPTIONS]\n"
               "\n"
               "The utrace daemon: attaches uprobes, uretprobes and USDT probes on request\n"
               "and streams their events to clients of its UNIX socket.\n"
               "\n"
               "Options:\n"
               "  -s, --socket PATH       control socket (default " DEFAULT_SOCKET ")\n"
               "  -b, --bpffs-root DIR    where programs, maps and links are pinned\n"
               "                          (default " DEFAULT_BPFFS_ROOT ")\n"
               "  -d, --state-dir DIR     where the state file lives (default " DEFAULT_STATE_DIR ")\n"
               "      --ringbuf-size SIZE event ring buffer in bytes, a power of two of at least\n"
               "                          one page; K and M suffixes (default 8M)\n"
               "      --queue-size SIZE   bytes of events queued per client (default 4M)\n"
               "      --group NAME        members of this group may do all that root may\n"
               "                          (default utraced)\n"
               "      --no-uprobe-multi   one perf-event link per location, even where the\n"
               "                          kernel has uprobe_multi links\n"
               "      --log-level LEVEL   debug, info, notice, warning or error (default info)\n"
               "      --purge             detach every probe of this instance, remove its pins\n"
               "                          and its state file, and exit\n"
               "  -h, --help              show this help and exit\n"
               "  -V, --version           show the version and exit\n"
               "\n"
               "See utraced(8).\n");
}

static int parse_size(const char *s, size_t *ret)
{
        unsigned long long v, mul = 1;
        char buf[32];
        size_t n = strlen(s);

        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, n + 1);
        if (buf[n - 1] == 'K' || buf[n - 1] == 'k')
                mul = 1024;
        else if (buf[n - 1] == 'M' || buf[n - 1] == 'm')
                mul = 1024 * 1024;
        else if (buf[n - 1] == 'G' || buf[n - 1] == 'g')
                mul = 1024 * 1024 * 1024;
        if (mul > 1)
                buf[n - 1] = 0;
        if (parse_u64(buf, &v) < 0 || v > SIZE_MAX / mul)
                return -EINVAL;
        *ret = (size_t)(v * mul);
        return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
        enum { OPT_RINGBUF = 256, OPT_QUEUE, OPT_GROUP, OPT_NO_MULTI, OPT_LOG, OPT_PURGE };
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' },
                { "bpffs-root", required_argument, NULL, 'b' },
                { "state-dir", required_argument, NULL, 'd' },
                { "ringbuf-size", required_argument, NULL, OPT_RINGBUF },
                { "queue-size", required_argument, NULL, OPT_QUEUE },
                { "group", required_argument, NULL, OPT_GROUP },
                { "no-uprobe-multi", no_argument, NULL, OPT_NO_MULTI },
                { "log-level", required_argument, NULL, OPT_LOG },
                { "purge", no_argument, NULL, OPT_PURGE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        int c, prio;

        while ((c = getopt_long(argc, argv, "s:b:d:hV", longopts, NULL)) >= 0) {
                switch (c) {
                case 's': o->socket_path = optarg; break;
                case 'b': o->bpffs_root = optarg; break;
                case 'd': o->state_dir = optarg; break;
                case OPT_RINGBUF:
                        if (parse_size(optarg, &o->ringbuf_size) < 0 || o->ringbuf_size < 4096 ||
                            o->ringbuf_size > (1u << 30) ||
                            (o->ringbuf_size & (o->ringbuf_size - 1))) {
                                log_error("--ringbuf-size %s: need a power of two between 4K and 1G",
                                          optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_QUEUE:
                        if (parse_size(optarg, &o->queue_max) < 0 || o->queue_max < 4096) {
                                log_error("--queue-size %s: need at least 4K", optarg);
                                return -EINVAL;
                        }
                        break;
                case OPT_GROUP: o->group = optarg; break;
                case OPT_NO_MULTI: o->no_multi = true; break;
                case OPT_LOG:
                        prio = log_parse_priority(optarg);
                        if (prio < 0) {
                                log_error("--log-level %s: unknown level", optarg);
                                return -EINVAL;
                        }
                        log_set_max_priority(prio);
                        break;
                case OPT_PURGE: o->purge = true; break;
                case 'h': help(); return 0;
                case 'V': printf("utraced %s\n", UTRACE_VERSION); return 0;
                default: return -EINVAL;
                }
        }
        if (optind < argc) {
                log_error("unexpected argument: %s (see --help)", argv[optind]);
                return -EINVAL;
        }
        for (const char **p = (const char *[]){ o->socket_path, o->bpffs_root, o->state_dir, NULL };
             *p; p++)
                if ((*p)[0] != '/') {
                        log_error("%s: paths must be absolute", *p);
                        return -EINVAL;
                }
        return 1;
}

static int purge(const struct options *o)
{
        char path[PATH_MAX];
        int r;

        r = loader_purge(o->bpffs_root);
        if (r < 0) {
                log_error("cannot remove %s: %s", o->bpffs_root, strerror(-r));
                return 1;
        }
        snprintf(path, sizeof(path), "%s/state.json", o->state_dir);
        if (unlink(path) < 0 && errno != ENOENT) {
                log_error("cannot remove %s: %s", path, strerror(errno));
                return 1;
        }
        log_info("removed every probe and pin under %s", o->bpffs_root);
        return 0;
}

/* Under systemd (NOTIFY_SOCKET set): STATUS= follows the number of probes and
 * clients, checked after every loop iteration that did something. */
struct notify_status {
        struct manager *m;
        struct server *srv;
        size_t probes, clients;
        bool sent;
};

static int notify_status(sd_event_source *s, void *userdata)
{
        struct notify_status *ns = userdata;
        size_t np, nc = 0;

        (void)s;
        manager_probes(ns->m, &np);
        for (struct client *c = server_clients(ns->srv); c; c = c->next)
                nc++;
        if (ns->sent && np == ns->probes && nc == ns->clients)
                return 0;
        ns->probes = np;
        ns->clients = nc;
        ns->sent = true;
        sd_notifyf(0, "STATUS=%zu probe%s, %zu client%s", np, np == 1 ? "" : "s", nc,
                   nc == 1 ? "" : "s");
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        (void)userdata;
        log_info("received %s, exiting (probes stay attached)", strsignal((int)si->ssi_signo));
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int main(int argc, char **argv)
{
        struct options o = {
                .socket_path = DEFAULT_SOCKET,
                .bpffs_root = DEFAULT_BPFFS_ROOT,
                .state_dir = DEFAULT_STATE_DIR,
                .ringbuf_size = 8u << 20,
                .queue_max = 4u << 20,
                .group = "utraced",
        };
        struct manager_opts mo;
        struct server_opts so;
        struct manager *m = NULL;
        struct server *srv = NULL;
        struct error err = { 0 };
        struct notify_status ns = { 0 };
        sd_event *loop = NULL;
        sigset_t mask;
        int r;

        log_setup("utraced", LOG_INFO);
        r = parse_args(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (o.purge)
                return purge(&o);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&loop);
        if (r < 0) {
                log_error("sd-event: %s", strerror(-r));
                return 1;
        }
        sd_event_add_signal(loop, NULL, SIGTERM, on_signal, NULL);
        sd_event_add_signal(loop, NULL, SIGINT, on_signal, NULL);

        mo = (struct manager_opts){
                .bpffs_root = o.bpffs_root,
                .state_dir = o.state_dir,
                .loader = {
                        .ringbuf_size = o.ringbuf_size,
                        .no_multi = o.no_multi,
                        .wake_bytes = o.ringbuf_size / 16,
                        .wake_ns = 2000000,
                },
        };
        r = manager_new(&mo, &m, &err);
        if (r < 0) {
                log_error("%s", err.msg[0] ? err.msg : strerror(-r));
                goto out;
        }
        so = (struct server_opts){
                .socket_path = o.socket_path,
                .queue_max = o.queue_max,
                .request_max = 1u << 20,
                .flush_ns = 2000000,
                .group = access_group(o.group),
                .max_user_clients = 64,
        };
        r = server_new(loop, m, &so, &srv, &err);
        if (r < 0) {
                log_error("%s", err.msg[0] ? err.msg : strerror(-r));
                goto out;
        }
        {
                size_t n;

                manager_probes(m, &n);
                log_info("utraced %s ready on %s: %zu probe%s, %s links", UTRACE_VERSION,
                         o.socket_path, n, n == 1 ? "" : "s",
                         loader_multi(manager_loader(m)) ? "uprobe_multi" : "perf-event");
        }
        if (getenv("NOTIFY_SOCKET")) {
                ns = (struct notify_status){ .m = m, .srv = srv };
                notify_status(NULL, &ns);
                r = sd_event_add_post(loop, NULL, notify_status, &ns);
                if (r >= 0)
                        r = sd_event_set_watchdog(loop, true); /* pings every WatchdogSec/2 */
                if (r < 0) {
                        log_error("sd-event: %s", strerror(-r));
                        goto out;
                }
        }
        sd_notify(0, "READY=1");
        r = sd_event_loop(loop);
        sd_notify(0, "STOPPING=1");
out:
        server_free(srv);
        manager_free(m);
        sd_event_unref(loop);
        return r < 0 ? 1 : 0;
}
