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
#include <time.h>

#include "access.h"
#include "config-build.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "manager.h"
#include "server.h"
#include "util.h"
#include "watch.h"

struct options {
        const char *config_path;
        bool config_given;
        bool check_config;
        const char *group;
        const char *metrics_group;
        bool purge;
        struct config_settings cli; /* overrides the configuration file */
};

static void help(void)
{
        printf("Usage: utraced [OPTIONS]\n"
               "\n"
               "The utrace daemon: attaches uprobes, uretprobes and USDT probes on request\n"
               "and streams their events to clients of its UNIX socket.\n"
               "\n"
               "Options:\n"
               "      --config FILE       configuration file (default " DEFAULT_CONFIG ")\n"
               "      --check-config      check the configuration file and every probe of the\n"
               "                          probes directory, print errors as FILE:LINE: message,\n"
               "                          and exit (1 if there are errors)\n"
               "  -s, --socket PATH       control socket (default " DEFAULT_SOCKET ")\n"
               "  -b, --bpffs-root DIR    where programs, maps and links are pinned\n"
               "                          (default " DEFAULT_BPFFS_ROOT ")\n"
               "  -d, --state-dir DIR     where the state file lives (default " DEFAULT_STATE_DIR ")\n"
               "      --ringbuf-size SIZE event ring buffer in bytes, a power of two of at least\n"
               "                          one page; K and M suffixes (default 8M)\n"
               "      --queue-size SIZE   bytes of events queued per client (default 4M)\n"
               "      --group NAME        members of this group may do all that root may\n"
               "                          (default utraced)\n"
               "      --metrics-group NAME\n"
               "                          members of this group may read the metrics of\n"
               "                          every probe, and nothing more (default\n"
               "                          utraced-metrics)\n"
               "      --no-uprobe-multi   one perf-event link per location, even where the\n"
               "                          kernel has uprobe_multi links\n"
               "      --log-level LEVEL   debug, info, notice, warning or error (default info)\n"
               "      --watch-interval TIME\n"
               "                          how often watched probes look at every process's\n"
               "                          mappings: release files nobody maps, find what\n"
               "                          was missed (default 30s)\n"
               "      --purge             detach every probe of this instance, remove its pins\n"
               "                          and its state file, and exit\n"
               "  -h, --help              show this help and exit\n"
               "  -V, --version           show the version and exit\n"
               "\n"
               "Command-line options override utraced.conf; SIGHUP reloads it.\n"
               "See utraced(8) and utraced.conf(5).\n");
}

static int cli_setting(struct options *o, enum config_key key, const char *option,
                       const char *value)
{
        struct error err = { 0 };

        if (config_parse_setting(&o->cli, key, value, &err) < 0) {
                log_error("%s %s: %s", option, value, err.msg);
                return -EINVAL;
        }
        return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
        enum { OPT_RINGBUF = 256, OPT_QUEUE, OPT_GROUP, OPT_NO_MULTI, OPT_LOG, OPT_PURGE,
               OPT_CONFIG, OPT_CHECK, OPT_METRICS_GROUP, OPT_WATCH_INTERVAL };
        static const struct option longopts[] = {
                { "config", required_argument, NULL, OPT_CONFIG },
                { "check-config", no_argument, NULL, OPT_CHECK },
                { "socket", required_argument, NULL, 's' },
                { "bpffs-root", required_argument, NULL, 'b' },
                { "state-dir", required_argument, NULL, 'd' },
                { "ringbuf-size", required_argument, NULL, OPT_RINGBUF },
                { "queue-size", required_argument, NULL, OPT_QUEUE },
                { "group", required_argument, NULL, OPT_GROUP },
                { "metrics-group", required_argument, NULL, OPT_METRICS_GROUP },
                { "no-uprobe-multi", no_argument, NULL, OPT_NO_MULTI },
                { "log-level", required_argument, NULL, OPT_LOG },
                { "watch-interval", required_argument, NULL, OPT_WATCH_INTERVAL },
                { "purge", no_argument, NULL, OPT_PURGE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        int c, r = 0;

        while ((c = getopt_long(argc, argv, "s:b:d:hV", longopts, NULL)) >= 0) {
                switch (c) {
                case OPT_CONFIG:
                        o->config_path = optarg;
                        o->config_given = true;
                        break;
                case OPT_CHECK: o->check_config = true; break;
                case 's': r = cli_setting(o, CONFIG_SOCKET, "--socket", optarg); break;
                case 'b': r = cli_setting(o, CONFIG_BPFFS_ROOT, "--bpffs-root", optarg); break;
                case 'd': r = cli_setting(o, CONFIG_STATE_DIR, "--state-dir", optarg); break;
                case OPT_RINGBUF:
                        r = cli_setting(o, CONFIG_RINGBUF_SIZE, "--ringbuf-size", optarg);
                        break;
                case OPT_QUEUE: r = cli_setting(o, CONFIG_QUEUE_SIZE, "--queue-size", optarg); break;
                case OPT_GROUP: o->group = optarg; break;
                case OPT_METRICS_GROUP: o->metrics_group = optarg; break;
                case OPT_NO_MULTI: r = cli_setting(o, CONFIG_UPROBE_MULTI, "--no-uprobe-multi", "no"); break;
                case OPT_LOG: r = cli_setting(o, CONFIG_LOG_LEVEL, "--log-level", optarg); break;
                case OPT_WATCH_INTERVAL:
                        r = cli_setting(o, CONFIG_WATCH_INTERVAL, "--watch-interval", optarg);
                        break;
                case OPT_PURGE: o->purge = true; break;
                case 'h': help(); return 0;
                case 'V': printf("utraced %s\n", UTRACE_VERSION); return 0;
                default: return -EINVAL;
                }
                if (r < 0)
                        return r;
        }
        if (optind < argc) {
                log_error("unexpected argument: %s (see --help)", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int purge(const struct config_settings *o)
{
        char path[PATH_MAX + 16];
        int r;

        watch_resume_pinned(o->bpffs_root);
        r = loader_purge(o->bpffs_root);
        if (r < 0) {
                log_error("cannot remove %s: %s", o->bpffs_root, strerror(-r));
                return 1;
        }
        for (const char *f = "state.json\0layout\0"; *f; f += strlen(f) + 1) {
                snprintf(path, sizeof(path), "%s/%s", o->state_dir, f);
                if (unlink(path) < 0 && errno != ENOENT) {
                        log_error("cannot remove %s: %s", path, strerror(errno));
                        return 1;
                }
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

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct error err = { 0 };

        (void)s;
        (void)si;
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", now_ns(CLOCK_MONOTONIC) / 1000);
        config_reload(userdata, NULL, &err); /* logs what changed, or why nothing did */
        sd_notify(0, "READY=1");
        return 0;
}

int main(int argc, char **argv)
{
        struct options o = { .config_path = DEFAULT_CONFIG, .group = "utraced",
                             .metrics_group = "utraced-metrics" };
        const struct config_settings *cs;
        const char *const *cerrors;
        size_t ncerrors;
        struct manager_opts mo;
        struct server_opts so;
        struct config *cfg = NULL;
        struct manager *m = NULL;
        struct server *srv = NULL;
        struct watch *watch = NULL;
        struct error err = { 0 };
        struct notify_status ns = { 0 };
        sd_event *loop = NULL;
        sigset_t mask;
        int r;

        log_setup("utraced", LOG_INFO);
        r = parse_args(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        r = config_new(o.config_path, o.config_given, &o.cli, &cfg);
        if (r < 0) {
                log_error("cannot read the configuration: %s", strerror(-r));
                return 1;
        }
        if (o.check_config) {
                r = config_check(cfg);
                config_free(cfg);
                return r;
        }
        config_errors(cfg, &cerrors, &ncerrors);
        if (ncerrors) {
                for (size_t i = 0; i < ncerrors; i++)
                        log_error("%s", cerrors[i]);
                log_error("%s has errors: not starting", o.config_path);
                config_free(cfg);
                return 1;
        }
        cs = config_settings(cfg);
        log_set_max_priority(cs->log_level);
        if (o.purge) {
                r = purge(cs);
                config_free(cfg);
                return r;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&loop);
        if (r < 0) {
                log_error("sd-event: %s", strerror(-r));
                config_free(cfg);
                return 1;
        }
        sd_event_add_signal(loop, NULL, SIGTERM, on_signal, NULL);
        sd_event_add_signal(loop, NULL, SIGINT, on_signal, NULL);
        sd_event_add_signal(loop, NULL, SIGHUP, on_sighup, cfg);

        mo = (struct manager_opts){
                .bpffs_root = cs->bpffs_root,
                .state_dir = cs->state_dir,
                .loader = {
                        .ringbuf_size = cs->ringbuf_size,
                        .no_multi = !cs->uprobe_multi,
                        .wake_bytes = cs->ringbuf_size / 16,
                        .wake_ns = 2000000,
                },
        };
        r = manager_new(&mo, &m, &err);
        if (r < 0) {
                log_error("%s", err.msg[0] ? err.msg : strerror(-r));
                goto out;
        }
        manager_set_config(m, cfg);
        {
                struct watch_opts wo = {
                        .bpffs_root = cs->bpffs_root,
                        .interval_ns = cs->watch_interval_us * 1000,
                        .hold_max_ns = 5ULL * 1000000000ULL,
                };

                r = watch_new(loop, m, &wo, &watch);
                if (r < 0) {
                        log_error("watch: %s", strerror(-r));
                        goto out;
                }
        }
        config_start(cfg, m);
        so = (struct server_opts){
                .socket_path = cs->socket_path,
                .queue_max = cs->queue_size,
                .request_max = 1u << 20,
                .flush_ns = 2000000,
                .group = access_group(o.group),
                .metrics_group = access_group(o.metrics_group),
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
                         cs->socket_path, n, n == 1 ? "" : "s",
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
        watch_free(watch);
        manager_free(m);
        config_free(cfg);
        sd_event_unref(loop);
        return r < 0 ? 1 : 0;
}
