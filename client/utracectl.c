// SPDX-License-Identifier: GPL-2.0-only
/*
 * utracectl: the command-line client of utraced.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config-build.h"
#include "flow.h"
#include "http.h"
#include "output.h"
#include "rpc.h"

struct ctl {
        const char *socket;
        bool json;
        struct rpc rpc;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
        (void)sig;
        interrupted = 1;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
        va_list ap;

        fputs("utracectl: error: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return 1;
}

static int usage_error(const char *cmd, const char *msg)
{
        fprintf(stderr, "utracectl: %s%s%s (see utracectl %s--help)\n", cmd ? cmd : "",
                cmd ? ": " : "", msg, cmd ? "" : "");
        return 2;
}

static int connect_daemon(struct ctl *c)
{
        int r = rpc_connect(&c->rpc, c->socket);

        if (r < 0)
                return fail("cannot connect to utraced at %s: %s%s", c->socket, strerror(-r),
                            r == -ENOENT || r == -ECONNREFUSED
                                    ? " (is it running? systemctl start utraced)" : "");
        return 0;
}

/* Call on the open connection and report errors; 0 with *result, or an exit code. */
static int call_connected(struct ctl *c, const char *method, json_object *params,
                          json_object **result)
{
        char *msg = NULL;
        int r;

        r = rpc_call(&c->rpc, method, params, result, &msg, NULL, NULL);
        if (r == -EPROTO) {
                fail("%s", msg);
                free(msg);
                return 1;
        }
        if (r < 0)
                return fail("%s: %s", method, strerror(-r));
        return 0;
}

/* Connect, call and report errors; 0 with *result, or an exit code. */
static int call(struct ctl *c, const char *method, json_object *params, json_object **result)
{
        if (connect_daemon(c)) {
                json_object_put(params);
                return 1;
        }
        return call_connected(c, method, params, result);
}

static void print_json(json_object *o)
{
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* How a command shows a method's result to a person (that is, without --json). */
typedef void (*show_fn)(json_object *result, void *userdata);

/* Connect, call (takes params) and print the result: as JSON with --json or
 * without show, else through show. 0, or an exit code. */
static int call_and_show(struct ctl *c, const char *method, json_object *params, show_fn show,
                         void *userdata)
{
        json_object *res;
        int r = call(c, method, params, &res);

        if (r)
                return r;
        if (c->json || !show)
                print_json(res);
        else
                show(res, userdata);
        json_object_put(res);
        return 0;
}

/* A relative path made absolute: the daemon has no cwd of ours. */
static char *absolute_target(const char *target)
{
        char real[PATH_MAX];

        if (target[0] != '/' && strchr(target, '/') && realpath(target, real))
                return strdup(real);
        return strdup(target);
}

/* Make a relative TARGET in TYPE:TARGET:... absolute. */
static char *absolute_spec(const char *spec)
{
        const char *c1 = strchr(spec, ':'), *c2;
        char target[PATH_MAX], *abs, *out;

        if (!c1 || !(c2 = strchr(c1 + 1, ':')))
                return strdup(spec);
        if ((size_t)(c2 - c1 - 1) >= sizeof(target))
                return strdup(spec);
        memcpy(target, c1 + 1, c2 - c1 - 1);
        target[c2 - c1 - 1] = 0;
        abs = absolute_target(target);
        if (!abs || asprintf(&out, "%.*s:%s%s", (int)(c1 - spec), spec, abs, c2) < 0)
                out = NULL;
        free(abs);
        return out;
}

static int parse_ids(int argc, char **argv, json_object **ids, const char *cmd)
{
        *ids = json_object_new_array();
        for (int i = 0; i < argc; i++) {
                char *end;
                long long id = strtoll(argv[i], &end, 10);

                if (*end || id <= 0) {
                        json_object_put(*ids);
                        return usage_error(cmd, "probe ids are positive integers");
                }
                json_object_array_add(*ids, json_object_new_int64(id));
        }
        return 0;
}

#define COMMON_OPTS { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }

static const char attach_usage[] =
        "Usage: utracectl attach SPEC [OPTIONS]\n"
        "\n"
        "Attach a probe and print its id on the first line.\n"
        "\n"
        "SPEC:\n"
        "  uprobe:TARGET:SYMBOL[+OFFSET]   function entry (or an instruction inside it)\n"
        "  uprobe:TARGET:0xADDR            an address (ELF virtual address; stripped files)\n"
        "  uretprobe:TARGET:SYMBOL         function return\n"
        "  usdt:TARGET:PROVIDER:NAME       a USDT probe, every location of it\n"
        "TARGET is an absolute path, a library or program name (libc.so.6, bash), a\n"
        "glob (/tmp/simplehttp-*.so), * (USDT: any object), or empty for USDT probes\n"
        "with --pid. SYMBOL may be a glob (str*).\n"
        "A name, a glob or * without --pid is watched: every process that maps a\n"
        "matching file, now or later (exec, dlopen, containers), gets the probe.\n"
        "\n"
        "Options:\n"
        "  -p, --pid PID           only this process (default: every process)\n"
        "  -a, --arg NAME=EXPR     capture argN, retval, str(argN[, LEN]) or str(retval)\n"
        "  -f, --filter EXPR       in-kernel filter: FIELD OP VALUE [&& ...]; fields pid,\n"
        "                          tid, uid, comm, cgroup, argN, str(argN), retval,\n"
        "                          latency_ns or an --arg name; strings ending in * match\n"
        "                          a prefix\n"
        "  -l, --latency           pair entry and return: one event with latency_ns\n"
        "  -A, --aggregate AGG     count or hist(FIELD): keep counts in the kernel, no events\n"
        "  -b, --by FIELD          key an aggregation by comm, pid, tid, uid, argN, retval\n"
        "                          or str(argN)\n"
        "      --max-keys N        distinct keys before the rest are folded together\n"
        "  -t, --transient         detach when this connection closes\n"
        "      --comm NAME         count only hits in processes named NAME\n"
        "      --exe PATH          count only hits in processes running the program PATH\n"
        "      --cgroup PATH       count only hits in processes of cgroup PATH or below\n"
        "      --hold              watched probes: stop a process that maps a file not\n"
        "                          seen before until its probes are attached, so that\n"
        "                          not even its first call is missed\n"
        "  -j, --json              print the probe as JSON\n"
        "  -h, --help              show this help\n"
        "\n"
        "argN and retval take casts, as in bpftrace: (int)retval, (u8)arg1, (s16)arg0;\n"
        "s8..s64, u8..u64 and the C names (char, short, int, unsigned, long).\n";

#define ATTACH_OPTS                                                  \
        { "pid", required_argument, NULL, 'p' },                     \
        { "arg", required_argument, NULL, 'a' },                     \
        { "filter", required_argument, NULL, 'f' },                  \
        { "latency", no_argument, NULL, 'l' },                       \
        { "aggregate", required_argument, NULL, 'A' },               \
        { "by", required_argument, NULL, 'b' },                      \
        { "max-keys", required_argument, NULL, 'K' },                \
        { "transient", no_argument, NULL, 't' },                     \
        { "comm", required_argument, NULL, OPT_COMM },               \
        { "exe", required_argument, NULL, OPT_EXE },                 \
        { "cgroup", required_argument, NULL, OPT_CGROUP },           \
        { "hold", no_argument, NULL, OPT_HOLD }
#define ATTACH_SHORT "p:a:f:lA:b:t"
enum { OPT_COMM = 300, OPT_EXE, OPT_CGROUP, OPT_HOLD };

/* One attach option into params; 1 if o is not an attach option, 2 on error. */
static int attach_option(int o, json_object *params, json_object **args, const char *cmd)
{
        char *end;
        long long v;

        switch (o) {
        case 'p':
        case 'K':
                v = strtoll(optarg, &end, 10);
                if (*end || v <= 0 || v > INT_MAX)
                        return usage_error(cmd, o == 'p' ? "bad --pid" : "bad --max-keys");
                json_object_object_add(params, o == 'p' ? "pid" : "max_keys", json_object_new_int64(v));
                return 0;
        case 'a':
                if (!*args)
                        *args = json_object_new_array();
                json_object_array_add(*args, json_object_new_string(optarg));
                return 0;
        case 'f': json_object_object_add(params, "filter", json_object_new_string(optarg)); return 0;
        case 'l': json_object_object_add(params, "latency", json_object_new_boolean(1)); return 0;
        case 'A': json_object_object_add(params, "aggregate", json_object_new_string(optarg)); return 0;
        case 'b': json_object_object_add(params, "by", json_object_new_string(optarg)); return 0;
        case 't': json_object_object_add(params, "transient", json_object_new_boolean(1)); return 0;
        case OPT_COMM: json_object_object_add(params, "comm", json_object_new_string(optarg)); return 0;
        case OPT_CGROUP:
                json_object_object_add(params, "cgroup", json_object_new_string(optarg));
                return 0;
        case OPT_HOLD: json_object_object_add(params, "hold", json_object_new_boolean(1)); return 0;
        case OPT_EXE: {
                char *exe = realpath(optarg, NULL);

                json_object_object_add(params, "exe", json_object_new_string(exe ? exe : optarg));
                free(exe);
                return 0;
        }
        }
        return 1;
}

static void attach_finish(json_object *params, json_object *args, const char *spec_arg)
{
        char *spec = absolute_spec(spec_arg);

        json_object_object_add(params, "spec", json_object_new_string(spec ? spec : spec_arg));
        free(spec);
        if (args)
                json_object_object_add(params, "args", args);
}

static void show_attached(json_object *res, void *userdata)
{
        json_object *id, *files, *locs, *watch = NULL;

        (void)userdata;
        json_object_object_get_ex(res, "id", &id);
        json_object_object_get_ex(res, "files", &files);
        json_object_object_get_ex(res, "locations", &locs);
        json_object_object_get_ex(res, "watch", &watch);
        printf("%s\n", json_object_get_string(id));
        fprintf(stderr, "attached probe %s: %lld location%s in %zu file%s%s\n",
                json_object_get_string(id), (long long)json_object_get_int64(locs),
                json_object_get_int64(locs) == 1 ? "" : "s", json_object_array_length(files),
                json_object_array_length(files) == 1 ? "" : "s",
                json_object_get_boolean(watch) ? "; watching for new processes and libraries"
                                               : "");
}

static int cmd_attach(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = { ATTACH_OPTS, COMMON_OPTS, {} };
        json_object *params = json_object_new_object(), *args = NULL;
        int o, r;

        while ((o = getopt_long(argc, argv, ATTACH_SHORT "jh", opts, NULL)) >= 0) {
                r = attach_option(o, params, &args, "attach");
                if (r == 0)
                        continue;
                if (o == 'j') {
                        c->json = true;
                        continue;
                }
                json_object_put(params);
                json_object_put(args);
                if (o == 'h') {
                        fputs(attach_usage, stdout);
                        return 0;
                }
                return 2;
        }
        if (optind + 1 != argc) {
                json_object_put(params);
                json_object_put(args);
                return usage_error("attach", "expected exactly one SPEC");
        }
        attach_finish(params, args, argv[optind]);
        return call_and_show(c, "attach", params, show_attached, NULL);
}

static const char detach_usage[] =
        "Usage: utracectl detach ID... | --all\n"
        "\n"
        "Detach probes. Nothing is detached unless every ID exists.\n"
        "\n"
        "  --all        detach every probe\n"
        "  -j, --json   print the result as JSON\n"
        "  -h, --help   show this help\n";

static void show_detached(json_object *res, void *userdata)
{
        json_object *done, *kept;

        (void)userdata;
        json_object_object_get_ex(res, "detached", &done);
        for (size_t i = 0; i < json_object_array_length(done); i++)
                printf("detached %s\n", json_object_get_string(json_object_array_get_idx(done, i)));
        if (json_object_object_get_ex(res, "configured", &kept) && json_object_array_length(kept))
                fprintf(stderr, "kept %zu configured probe%s (remove them from the "
                        "configuration and reload)\n", json_object_array_length(kept),
                        json_object_array_length(kept) == 1 ? "" : "s");
}

static int cmd_detach(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = { { "all", no_argument, NULL, 'a' }, COMMON_OPTS, {} };
        json_object *params = json_object_new_object(), *ids;
        bool all = false;
        int o, r;

        while ((o = getopt_long(argc, argv, "jh", opts, NULL)) >= 0) {
                switch (o) {
                case 'a': all = true; break;
                case 'j': c->json = true; break;
                case 'h': fputs(detach_usage, stdout); json_object_put(params); return 0;
                default: json_object_put(params); return 2;
                }
        }
        if (all == (optind < argc)) {
                json_object_put(params);
                return usage_error("detach", "give probe ids or --all");
        }
        if (all) {
                json_object_object_add(params, "all", json_object_new_boolean(1));
        } else {
                r = parse_ids(argc - optind, argv + optind, &ids, "detach");
                if (r) {
                        json_object_put(params);
                        return r;
                }
                json_object_object_add(params, "ids", ids);
        }
        return call_and_show(c, "detach", params, show_detached, NULL);
}

/* Commands that take no arguments but --json: list, status, reload. */
static int simple(struct ctl *c, int argc, char **argv, const char *method, const char *usage,
                  show_fn show)
{
        static const struct option opts[] = { COMMON_OPTS, {} };
        int o;

        while ((o = getopt_long(argc, argv, "jh", opts, NULL)) >= 0) {
                switch (o) {
                case 'j': c->json = true; break;
                case 'h': fputs(usage, stdout); return 0;
                default: return 2;
                }
        }
        if (optind < argc)
                return usage_error(method, "takes no arguments");
        return call_and_show(c, method, NULL, show, NULL);
}

static const char list_usage[] =
        "Usage: utracectl list [--json]\n\nList attached probes and the files they are in.\n";
static const char status_usage[] =
        "Usage: utracectl status [--json]\n\nShow the daemon's state and counters.\n";

static void show_list(json_object *res, void *userdata)
{
        json_object *probes;

        (void)userdata;
        output_probe_list(stdout, json_object_object_get_ex(res, "probes", &probes) ? probes : res);
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
        return simple(c, argc, argv, "list", list_usage, show_list);
}

static void show_status(json_object *res, void *userdata)
{
        (void)userdata;
        output_status(stdout, res);
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
        return simple(c, argc, argv, "status", status_usage, show_status);
}

static const char stats_usage[] =
        "Usage: utracectl stats [ID...] [--json]\n"
        "\n"
        "Per-probe counters (hits, events, aggregated, filtered, lost) and per-client\n"
        "delivery counters.\n";

static void show_stats(json_object *res, void *userdata)
{
        (void)userdata;
        output_stats(stdout, res);
}

static int cmd_stats(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = { COMMON_OPTS, {} };
        json_object *params = json_object_new_object(), *ids;
        int o, r;

        while ((o = getopt_long(argc, argv, "jh", opts, NULL)) >= 0) {
                switch (o) {
                case 'j': c->json = true; break;
                case 'h': fputs(stats_usage, stdout); json_object_put(params); return 0;
                default: json_object_put(params); return 2;
                }
        }
        r = parse_ids(argc - optind, argv + optind, &ids, "stats");
        if (r) {
                json_object_put(params);
                return r;
        }
        json_object_object_add(params, "ids", ids);
        return call_and_show(c, "stats", params, show_stats, NULL);
}

static const char hist_usage[] =
        "Usage: utracectl hist ID [--json]\n"
        "\n"
        "Show the in-kernel aggregation of a probe attached with --aggregate: counts per\n"
        "key, or log2 histograms.\n";

static void show_aggregations(json_object *res, void *userdata)
{
        (void)userdata;
        output_aggregations(stdout, res);
}

static int cmd_hist(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = { COMMON_OPTS, {} };
        json_object *params;
        char *end;
        long long id;
        int o;

        while ((o = getopt_long(argc, argv, "jh", opts, NULL)) >= 0) {
                switch (o) {
                case 'j': c->json = true; break;
                case 'h': fputs(hist_usage, stdout); return 0;
                default: return 2;
                }
        }
        if (optind + 1 != argc)
                return usage_error("hist", "expected one probe ID");
        id = strtoll(argv[optind], &end, 10);
        if (*end || id <= 0)
                return usage_error("hist", "probe ids are positive integers");
        params = json_object_new_object();
        json_object_object_add(params, "id", json_object_new_int64(id));
        return call_and_show(c, "aggregations", params, show_aggregations, NULL);
}

static const char stream_usage[] =
        "Usage: utracectl stream [ID...] [OPTIONS]\n"
        "\n"
        "Print events as they arrive: of the given probes, or of all.\n"
        "\n"
        "  -n, --count N       exit after N events\n"
        "  -T, --timeout SEC   exit after SEC seconds\n"
        "  -j, --json          one JSON event object per line\n"
        "  -h, --help          show this help\n";

#define EVENT_PREFIX "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":"
#define LOST_PREFIX "{\"jsonrpc\":\"2.0\",\"method\":\"lost\","

/* A "lost" notification: say how many events this client lost; false if line is not one. */
static bool report_lost(const char *line, size_t len)
{
        json_object *msg, *p, *n = NULL, *t = NULL, *probe = NULL;

        if (len < sizeof(LOST_PREFIX) - 1 || memcmp(line, LOST_PREFIX, sizeof(LOST_PREFIX) - 1) != 0)
                return false;
        msg = json_tokener_parse(line);
        if (msg && json_object_object_get_ex(msg, "params", &p) &&
            json_object_object_get_ex(p, "count", &n) && json_object_object_get_ex(p, "total", &t)) {
                fflush(stdout);
                if (json_object_object_get_ex(p, "probe", &probe))
                        fprintf(stderr, "utracectl: warning: %s events of probe %s were lost in "
                                "the kernel before utraced could read them (%s in all)\n",
                                json_object_get_string(n), json_object_get_string(probe),
                                json_object_get_string(t));
                else
                        fprintf(stderr, "utracectl: warning: %s events lost: this client read "
                                "too slowly (%s in all)\n", json_object_get_string(n),
                                json_object_get_string(t));
        }
        json_object_put(msg);
        return true;
}

/* What a stream does with each line from the daemon; true when it was an event shown. */
typedef bool (*line_fn)(struct ctl *c, const char *line, size_t len, void *userdata);

static bool handle_line(struct ctl *c, const char *line, size_t len, void *userdata)
{
        static const size_t plen = sizeof(EVENT_PREFIX) - 1;
        json_object *msg, *m, *p;
        bool is_event = false;

        if (report_lost(line, len))
                return false;
        if (c->json && len > plen + 1 && memcmp(line, EVENT_PREFIX, plen) == 0) {
                fwrite(line + plen, 1, len - plen - 1, stdout);
                fputc('\n', stdout);
                return true;
        }
        msg = json_tokener_parse(line);
        if (!msg)
                return false;
        if (json_object_object_get_ex(msg, "method", &m) && json_object_object_get_ex(msg, "params", &p) &&
            strcmp(json_object_get_string(m), "event") == 0) {
                output_event(stdout, p);
                is_event = true;
        }
        json_object_put(msg);
        return is_event;
}

struct stream_opts {
        long long count;
        double timeout;
};

/* --count, --timeout: 0 if o was one, 1 if not, 2 on error. */
static int stream_option(int o, struct stream_opts *so, const char *cmd)
{
        char *end;

        switch (o) {
        case 'n':
                so->count = strtoll(optarg, &end, 10);
                if (*end || so->count <= 0)
                        return usage_error(cmd, "bad --count");
                return 0;
        case 'T':
                so->timeout = strtod(optarg, &end);
                if (*end || so->timeout <= 0)
                        return usage_error(cmd, "bad --timeout");
                return 0;
        }
        return 1;
}

#define STREAM_OPTS { "count", required_argument, NULL, 'n' }, { "timeout", required_argument, NULL, 'T' }

/* Handle lines until --count, --timeout, Ctrl-C or the daemon goes away. */
static int stream_loop(struct ctl *c, const struct stream_opts *so, line_fn on_line,
                       void *userdata)
{
        struct timespec start, now;
        long long seen = 0;
        char *line;
        size_t len;
        int r;

        signal(SIGINT, on_sigint);
        signal(SIGTERM, on_sigint);
        if (!c->json)
                setvbuf(stdout, NULL, _IOLBF, 0);
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (!interrupted && (!so->count || seen < so->count)) {
                int wait = -1;

                if (so->timeout > 0) {
                        double left;

                        clock_gettime(CLOCK_MONOTONIC, &now);
                        left = so->timeout - ((now.tv_sec - start.tv_sec) +
                                              (now.tv_nsec - start.tv_nsec) / 1e9);
                        if (left <= 0)
                                break;
                        wait = (int)(left * 1000) + 1;
                }
                r = rpc_read_line(&c->rpc, wait, &line, &len);
                if (r == 0 || r == -EINTR)
                        continue;
                if (r < 0) {
                        fflush(stdout);
                        return fail("connection to utraced lost: %s", strerror(-r));
                }
                if (on_line && on_line(c, line, len, userdata))
                        seen++;
        }
        fflush(stdout);
        return 0;
}

static int subscribe(struct ctl *c, json_object *params)
{
        json_object *res;
        char *msg = NULL;
        int r = rpc_call(&c->rpc, "subscribe", params, &res, &msg, NULL, NULL);

        if (r == -EPROTO) {
                fail("%s", msg);
                free(msg);
                return 1;
        }
        if (r < 0)
                return fail("subscribe: %s", strerror(-r));
        json_object_put(res);
        return 0;
}

static int cmd_stream(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = { STREAM_OPTS, COMMON_OPTS, {} };
        struct stream_opts so = { 0 };
        json_object *params, *ids;
        int o, r;

        while ((o = getopt_long(argc, argv, "n:T:jh", opts, NULL)) >= 0) {
                r = stream_option(o, &so, "stream");
                if (r == 0)
                        continue;
                if (r == 2)
                        return r;
                switch (o) {
                case 'j': c->json = true; break;
                case 'h': fputs(stream_usage, stdout); return 0;
                default: return 2;
                }
        }
        r = parse_ids(argc - optind, argv + optind, &ids, "stream");
        if (r)
                return r;
        params = json_object_new_object();
        json_object_object_add(params, "ids", ids);
        if (connect_daemon(c)) {
                json_object_put(params);
                return 1;
        }
        r = subscribe(c, params);
        return r ? r : stream_loop(c, &so, handle_line, NULL);
}

static const char trace_usage[] =
        "Usage: utracectl trace SPEC [OPTIONS]\n"
        "\n"
        "Attach a probe for as long as this command runs and print its events; with\n"
        "--aggregate, print the counts or histograms when it ends. The probe is\n"
        "detached when the command exits, however it exits.\n"
        "\n"
        "Takes the options of attach (see utracectl attach --help), and:\n"
        "  -n, --count N       exit after N events\n"
        "  -T, --timeout SEC   exit after SEC seconds\n"
        "  -j, --json          one JSON event object per line\n"
        "  -h, --help          show this help\n";

static int cmd_trace(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = { ATTACH_OPTS, STREAM_OPTS, COMMON_OPTS, {} };
        json_object *params = json_object_new_object(), *args = NULL, *res, *id, *sub;
        struct stream_opts so = { 0 };
        bool aggregate;
        char *msg = NULL;
        int o, r;

        while ((o = getopt_long(argc, argv, ATTACH_SHORT "n:T:jh", opts, NULL)) >= 0) {
                r = attach_option(o, params, &args, "trace");
                if (r == 1)
                        r = stream_option(o, &so, "trace");
                if (r == 0)
                        continue;
                if (r == 1 && o == 'j') {
                        c->json = true;
                        continue;
                }
                json_object_put(params);
                json_object_put(args);
                if (r == 1 && o == 'h') {
                        fputs(trace_usage, stdout);
                        return 0;
                }
                return 2;
        }
        if (optind + 1 != argc) {
                json_object_put(params);
                json_object_put(args);
                return usage_error("trace", "expected exactly one SPEC");
        }
        attach_finish(params, args, argv[optind]);
        aggregate = json_object_object_get_ex(params, "aggregate", NULL);
        json_object_object_add(params, "transient", json_object_new_boolean(1));
        if (connect_daemon(c)) {
                json_object_put(params);
                return 1;
        }
        r = rpc_call(&c->rpc, "attach", params, &res, &msg, NULL, NULL);
        if (r == -EPROTO) {
                fail("%s", msg);
                free(msg);
                return 1;
        }
        if (r < 0)
                return fail("attach: %s", strerror(-r));
        json_object_object_get_ex(res, "id", &id);
        sub = json_object_new_object();
        json_object_object_add(sub, "id", json_object_get(id));
        if (!aggregate) {
                fprintf(stderr, "tracing %s (probe %s); Ctrl-C to stop\n", argv[optind],
                        json_object_get_string(id));
                r = subscribe(c, sub); /* takes sub */
                sub = NULL;
                if (!r)
                        r = stream_loop(c, &so, handle_line, NULL);
        } else {
                fprintf(stderr, "counting in the kernel (probe %s); Ctrl-C to print\n",
                        json_object_get_string(id));
                r = stream_loop(c, &so, NULL, NULL);
                interrupted = 0;
                if (!r) {
                        json_object *agg;

                        r = rpc_call(&c->rpc, "aggregations", sub, &agg, &msg, NULL, NULL);
                        sub = NULL;
                        if (r == 0) {
                                if (c->json)
                                        print_json(agg);
                                else
                                        output_aggregations(stdout, agg);
                                json_object_put(agg);
                        } else {
                                r = fail("%s", msg ? msg : strerror(-r));
                                free(msg);
                        }
                }
        }
        json_object_put(sub);
        json_object_put(res);
        return r;
}

static const char probes_usage[] =
        "Usage: utracectl probes TARGET [PATTERN] [OPTIONS]\n"
        "       utracectl probes --pid PID [PATTERN] [OPTIONS]\n"
        "\n"
        "List the USDT probes of a program or library (TARGET: a path or a name such as\n"
        "libc.so.6), or of every object a process maps, as provider:name with their\n"
        "locations, semaphore and arguments. PATTERN is a glob on provider:name or name\n"
        "(python:function__*).\n"
        "\n"
        "  -p, --pid PID       every object mapped by process PID\n"
        "  -S, --symbols       list function symbols a uprobe can name instead (PATTERN:\n"
        "                      a glob on the name); IFUNCs are marked\n"
        "  -v, --verbose       each location: address, semaphore, and every argument's\n"
        "                      size, signedness and location as the note gives it\n"
        "  -j, --json          print the reply as JSON\n"
        "  -h, --help          show this help\n";

/* What the human listing of "probes" says beside the reply. */
struct probes_query {
        bool symbols, verbose;
        const char *pattern, *where;
};

static void show_probes(json_object *res, void *userdata)
{
        const struct probes_query *q = userdata;
        json_object *more;

        if (!output_probes(stdout, res, q->verbose))
                fprintf(stderr, "utracectl: no %s%s%s%s in %s\n",
                        q->symbols ? "function symbols" : "USDT probes",
                        q->pattern ? " match '" : "", q->pattern ? q->pattern : "",
                        q->pattern ? "'" : "", q->where);
        if (json_object_object_get_ex(res, "more_symbols", &more) && json_object_get_int64(more))
                fprintf(stderr, "utracectl: %lld more symbols not listed: narrow them with a "
                        "PATTERN\n", (long long)json_object_get_int64(more));
}

static int cmd_probes(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "pid", required_argument, NULL, 'p' },
                { "symbols", no_argument, NULL, 'S' },
                { "verbose", no_argument, NULL, 'v' },
                COMMON_OPTS, {}
        };
        struct probes_query q = { 0 };
        json_object *params;
        long long pid = 0;
        char *end, *target, proc[32];
        int o, npos;

        while ((o = getopt_long(argc, argv, "p:Svjh", opts, NULL)) >= 0) {
                switch (o) {
                case 'p':
                        pid = strtoll(optarg, &end, 10);
                        if (*end || pid <= 0 || pid > INT_MAX)
                                return usage_error("probes", "bad --pid");
                        break;
                case 'S': q.symbols = true; break;
                case 'v': q.verbose = true; break;
                case 'j': c->json = true; break;
                case 'h': fputs(probes_usage, stdout); return 0;
                default: return 2;
                }
        }
        npos = argc - optind;
        if (pid ? npos > 1 : npos < 1 || npos > 2)
                return usage_error("probes", pid ? "with --pid, give at most a PATTERN"
                                                 : "expected TARGET [PATTERN]");
        params = json_object_new_object();
        if (pid) {
                json_object_object_add(params, "pid", json_object_new_int64(pid));
                snprintf(proc, sizeof(proc), "process %lld", pid);
                q.where = proc;
        } else {
                q.where = argv[optind];
                target = absolute_target(argv[optind++]);
                json_object_object_add(params, "target", json_object_new_string(target));
                free(target);
        }
        if (optind < argc)
                q.pattern = argv[optind];
        if (q.pattern)
                json_object_object_add(params, "pattern", json_object_new_string(q.pattern));
        if (q.symbols)
                json_object_object_add(params, "symbols", json_object_new_boolean(1));
        return call_and_show(c, "probes", params, show_probes, &q);
}

static const char flow_usage[] =
        "Usage: utracectl flow TARGET [PATTERN] [OPTIONS]\n"
        "       utracectl flow --pid PID [PATTERN] [OPTIONS]\n"
        "\n"
        "Follow the function calls of Python programs: print each call and return,\n"
        "indented by call depth per thread, with timestamp, pid and thread id. The\n"
        "probes (python:function__entry and python:function__return) are attached for\n"
        "as long as the command runs.\n"
        "\n"
        "TARGET is the interpreter every process of which is followed: python (the\n"
        "system's python3), a path or a program name. PATTERN is a glob on\n"
        "module.function (myapp.*, *.handle_*); calls it does not match still count\n"
        "for the depth.\n"
        "\n"
        "  -p, --pid PID       follow one process, whatever interpreter it runs\n"
        "  -n, --count N       exit after N calls and returns\n"
        "  -T, --timeout SEC   exit after SEC seconds\n"
        "  -j, --json          the raw events, one JSON object per line\n"
        "  -h, --help          show this help\n";

static bool flow_line(struct ctl *c, const char *line, size_t len, void *userdata)
{
        return !report_lost(line, len) && flow_message(userdata, stdout, line, len);
}

/* Attach one transient flow probe; its id, or 0 after reporting the error. With
 * where, the first file it is in. */
static uint64_t flow_attach(struct ctl *c, const char *spec, long long pid, char *where,
                            size_t size)
{
        json_object *params = json_object_new_object(), *args = json_object_new_array();
        json_object *res, *id, *files, *path;
        uint64_t v;

        json_object_object_add(params, "spec", json_object_new_string(spec));
        if (pid)
                json_object_object_add(params, "pid", json_object_new_int64(pid));
        json_object_array_add(args, json_object_new_string("file=str(arg0, 255)"));
        json_object_array_add(args, json_object_new_string("func=str(arg1, 127)"));
        json_object_array_add(args, json_object_new_string("line=arg2"));
        json_object_object_add(params, "args", args);
        json_object_object_add(params, "transient", json_object_new_boolean(1));
        if (call_connected(c, "attach", params, &res))
                return 0;
        json_object_object_get_ex(res, "id", &id);
        v = json_object_get_uint64(id);
        if (where && json_object_object_get_ex(res, "files", &files) &&
            json_object_array_length(files) &&
            json_object_object_get_ex(json_object_array_get_idx(files, 0), "path", &path))
                snprintf(where, size, "%s", json_object_get_string(path));
        json_object_put(res);
        return v;
}

static int cmd_flow(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "pid", required_argument, NULL, 'p' }, STREAM_OPTS, COMMON_OPTS, {}
        };
        struct stream_opts so = { 0 };
        struct flow *flow;
        json_object *sub, *ids;
        const char *pattern = NULL;
        char entry[PATH_MAX + 64], ret[PATH_MAX + 64], where[PATH_MAX] = "", *target = NULL;
        uint64_t e, x;
        long long pid = 0;
        char *end;
        int o, r, npos;

        while ((o = getopt_long(argc, argv, "p:n:T:jh", opts, NULL)) >= 0) {
                r = stream_option(o, &so, "flow");
                if (r == 0)
                        continue;
                if (r == 2)
                        return r;
                switch (o) {
                case 'p':
                        pid = strtoll(optarg, &end, 10);
                        if (*end || pid <= 0 || pid > INT_MAX)
                                return usage_error("flow", "bad --pid");
                        break;
                case 'j': c->json = true; break;
                case 'h': fputs(flow_usage, stdout); return 0;
                default: return 2;
                }
        }
        npos = argc - optind;
        if (pid ? npos > 1 : npos < 1 || npos > 2)
                return usage_error("flow", pid ? "with --pid, give at most a PATTERN"
                                               : "expected TARGET [PATTERN]");
        if (pid) {
                snprintf(entry, sizeof(entry), "usdt:python:function__entry");
                snprintf(ret, sizeof(ret), "usdt:python:function__return");
        } else {
                const char *t = argv[optind++];

                /* the language's name stands for the system's interpreter */
                target = absolute_target(strcmp(t, "python") == 0 ? "python3" : t);
                if (!target)
                        return fail("out of memory");
                snprintf(entry, sizeof(entry), "usdt:%s:python:function__entry", target);
                snprintf(ret, sizeof(ret), "usdt:%s:python:function__return", target);
                free(target);
        }
        if (optind < argc)
                pattern = argv[optind];
        if (connect_daemon(c))
                return 1;
        e = flow_attach(c, entry, pid, where, sizeof(where));
        x = e ? flow_attach(c, ret, pid, NULL, 0) : 0;
        if (!x)
                return 1; /* transient: what was attached goes with the connection */
        flow = flow_new(e, x, pattern, c->json);
        if (!flow)
                return fail("out of memory");
        sub = json_object_new_object();
        ids = json_object_new_array();
        json_object_array_add(ids, json_object_new_int64((int64_t)e));
        json_object_array_add(ids, json_object_new_int64((int64_t)x));
        json_object_object_add(sub, "ids", ids);
        r = subscribe(c, sub);
        if (!r) {
                if (pid)
                        snprintf(where, sizeof(where), "process %lld", pid);
                fprintf(stderr, "following Python calls in %s (probes %llu, %llu); Ctrl-C to "
                        "stop\n", where, (unsigned long long)e, (unsigned long long)x);
                if (!c->json)
                        flow_header(stdout);
                r = stream_loop(c, &so, flow_line, flow);
        }
        flow_free(flow);
        return r;
}

static const char reload_usage[] =
        "Usage: utracectl reload [--json]\n"
        "\n"
        "Have utraced read its configuration again and apply the difference: unchanged\n"
        "configured probes keep their links and counters, removed ones are detached, new\n"
        "and changed ones attached. A configuration with errors changes nothing.\n";

static void show_reload(json_object *res, void *userdata)
{
        static const char *const kinds[] = { "added", "changed", "removed", "unchanged" };
        FILE *f = stdout;
        json_object *v;

        (void)userdata;
        fputs("reloaded:", f);
        for (size_t k = 0; k < 4; k++)
                if (json_object_object_get_ex(res, kinds[k], &v))
                        fprintf(f, "%s %zu %s", k ? "," : "", json_object_array_length(v), kinds[k]);
        fputc('\n', f);
        for (size_t k = 0; k < 3; k++) {
                if (!json_object_object_get_ex(res, kinds[k], &v))
                        continue;
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        json_object *p = json_object_array_get_idx(v, i), *name, *id;

                        json_object_object_get_ex(p, "name", &name);
                        json_object_object_get_ex(p, "id", &id);
                        fprintf(f, "  %-9s %s (probe %s)\n", kinds[k], json_object_get_string(name),
                                json_object_get_string(id));
                }
        }
}

static int cmd_reload(struct ctl *c, int argc, char **argv)
{
        return simple(c, argc, argv, "reload", reload_usage, show_reload);
}

static const char metrics_usage[] =
        "Usage: utracectl metrics [--openmetrics] [--json]\n"
        "       utracectl metrics --http\n"
        "\n"
        "Print the daemon's metrics in the Prometheus text format: its health, every\n"
        "probe's counters, and aggregations as counters and histograms. Without\n"
        "privileges, the probes are your own.\n"
        "\n"
        "  -o, --openmetrics   in the OpenMetrics text format instead\n"
        "      --http          answer one HTTP request (GET /metrics) on standard input\n"
        "                      and output, as a socket-activated service does\n"
        "                      (utraced-metrics.socket)\n"
        "  -j, --json          print the reply as JSON\n"
        "  -h, --help          show this help\n";

/* The metrics from the daemon; NULL, or the error (to be freed). */
static char *fetch_metrics(bool openmetrics, struct http_body *body, void *userdata)
{
        struct ctl *c = userdata;
        json_object *params = json_object_new_object(), *res, *text, *type;
        char *msg = NULL, *e;
        int r;

        if (openmetrics)
                json_object_object_add(params, "format", json_object_new_string("openmetrics"));
        r = rpc_connect(&c->rpc, c->socket);
        if (r < 0) {
                json_object_put(params);
                return asprintf(&e, "cannot connect to utraced at %s: %s", c->socket,
                                strerror(-r)) < 0 ? NULL : e;
        }
        r = rpc_call(&c->rpc, "metrics", params, &res, &msg, NULL, NULL);
        rpc_close(&c->rpc);
        if (r == -EPROTO)
                return msg;
        if (r < 0)
                return asprintf(&e, "metrics: %s", strerror(-r)) < 0 ? NULL : e;
        json_object_object_get_ex(res, "text", &text);
        json_object_object_get_ex(res, "content_type", &type);
        body->len = (size_t)json_object_get_string_len(text);
        body->data = malloc(body->len + 1);
        body->content_type = strdup(json_object_get_string(type));
        if (body->data)
                memcpy(body->data, json_object_get_string(text), body->len + 1);
        json_object_put(res);
        if (!body->data || !body->content_type) {
                free(body->data);
                free(body->content_type);
                return strdup("out of memory");
        }
        return NULL;
}

static int cmd_metrics(struct ctl *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "openmetrics", no_argument, NULL, 'o' },
                { "http", no_argument, NULL, 'H' },
                COMMON_OPTS, {}
        };
        struct http_body body = { 0 };
        bool om = false, http = false;
        char *err;
        int o;

        while ((o = getopt_long(argc, argv, "ojh", opts, NULL)) >= 0) {
                switch (o) {
                case 'o': om = true; break;
                case 'H': http = true; break;
                case 'j': c->json = true; break;
                case 'h': fputs(metrics_usage, stdout); return 0;
                default: return 2;
                }
        }
        if (optind < argc)
                return usage_error("metrics", "takes no arguments");
        if (http) {
                if (om || c->json)
                        return usage_error("metrics", "--http chooses the format by the request");
                signal(SIGPIPE, SIG_IGN);
                return http_serve(STDIN_FILENO, STDOUT_FILENO, 10000, fetch_metrics, c);
        }
        if (c->json) {
                json_object *params = json_object_new_object();

                if (om)
                        json_object_object_add(params, "format",
                                               json_object_new_string("openmetrics"));
                return call_and_show(c, "metrics", params, NULL, NULL);
        }
        err = fetch_metrics(om, &body, c);
        if (err) {
                fail("%s", err);
                free(err);
                return 1;
        }
        fwrite(body.data, 1, body.len, stdout);
        free(body.data);
        free(body.content_type);
        return 0;
}

static const struct command {
        const char *name;
        int (*fn)(struct ctl *c, int argc, char **argv);
        const char *summary;
} commands[] = {
        { "status", cmd_status, "show the daemon's state" },
        { "attach", cmd_attach, "attach a probe; prints its id" },
        { "detach", cmd_detach, "detach probes" },
        { "list", cmd_list, "list probes" },
        { "stream", cmd_stream, "print events as they arrive" },
        { "trace", cmd_trace, "attach for as long as it runs and print events" },
        { "stats", cmd_stats, "per-probe and per-client counters" },
        { "hist", cmd_hist, "show a probe's in-kernel counts or histograms" },
        { "probes", cmd_probes, "list the USDT probes or symbols of a file or process" },
        { "flow", cmd_flow, "follow Python calls and returns, indented by depth" },
        { "reload", cmd_reload, "reload the configuration (configured probes)" },
        { "metrics", cmd_metrics, "print metrics for Prometheus; serve them over HTTP" },
};

static void help(void)
{
        printf("Usage: utracectl [--socket PATH] [--json] COMMAND [ARGS]\n"
               "\n"
               "Control utraced, the user-space tracing daemon.\n"
               "\n"
               "Commands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                printf("  %-8s %s\n", commands[i].name, commands[i].summary);
        printf("\n"
               "Options:\n"
               "  -s, --socket PATH   daemon socket (default $UTRACED_SOCKET or " DEFAULT_SOCKET ")\n"
               "  -j, --json          machine-readable output\n"
               "  -h, --help          show this help (COMMAND --help: the command's)\n"
               "  -V, --version       show the version\n"
               "\n"
               "See utracectl(8).\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        struct ctl c = { .socket = getenv("UTRACED_SOCKET") };
        int o, r;

        if (!c.socket || !*c.socket)
                c.socket = DEFAULT_SOCKET;
        c.rpc.fd = -1;
        while ((o = getopt_long(argc, argv, "+s:jhV", opts, NULL)) >= 0) {
                switch (o) {
                case 's': c.socket = optarg; break;
                case 'j': c.json = true; break;
                case 'h': help(); return 0;
                case 'V': printf("utracectl %s\n", UTRACE_VERSION); return 0;
                default: return 2;
                }
        }
        if (optind >= argc) {
                help();
                return 2;
        }
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(commands[i].name, argv[optind]) != 0)
                        continue;
                argv += optind;
                argc -= optind;
                optind = 0; /* full reset: the command parses with its own rules */
                r = commands[i].fn(&c, argc, argv);
                rpc_close(&c.rpc);
                return r;
        }
        fprintf(stderr, "utracectl: unknown command \"%s\" (see utracectl --help)\n", argv[optind]);
        return 2;
}
