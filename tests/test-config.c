// SPDX-License-Identifier: GPL-2.0-only
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "tap.h"

static char dir[64];

static const char *write_file(const char *name, const char *text)
{
        static char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "w");
        fputs(text, f);
        fclose(f);
        return path;
}

/* Write conf as DIR/utraced.conf and read it (and the probes directory it names). */
static struct config *load(const char *conf, const struct config_settings *cli)
{
        struct config_settings none;
        struct config *c = NULL;
        char path[256];

        config_settings_init(&none);
        snprintf(path, sizeof(path), "%s/utraced.conf", dir);
        write_file("utraced.conf", conf);
        config_new(path, true, cli ? cli : &none, &c);
        return c;
}

static const char *error_at(struct config *c, size_t i)
{
        const char *const *lines;
        size_t n = config_errors(c, &lines, NULL);

        return i < n ? lines[i] : NULL;
}

static size_t nerrors(struct config *c)
{
        const char *const *lines;

        return config_errors(c, &lines, NULL);
}

/* "FILE:LINE: message" starts with want (FILE relative to dir). */
static bool error_is(struct config *c, size_t i, const char *want)
{
        const char *e = error_at(c, i);
        size_t n = strlen(dir);

        return e && strncmp(e, dir, n) == 0 && e[n] == '/' && startswith(e + n + 1, want);
}

static void test_settings(void)
{
        struct config_settings cli;
        struct config *c;
        const struct config_settings *s;

        c = load("# comment\n"
                 "; another\n"
                 "\n"
                 "[Daemon]\n"
                 "  RingBufferSize = 64K  \n"
                 "QueueSize=1M\n"
                 "UprobeMulti=no\n"
                 "LogLevel=debug\n"
                 "Socket=/run/x.sock\n", NULL);
        s = config_settings(c);
        CHECK(nerrors(c) == 0, "a valid file has no errors");
        CHECK(s->ringbuf_size == 65536, "RingBufferSize=64K (spaces around = and value)");
        CHECK(s->queue_size == 1 << 20, "QueueSize=1M");
        CHECK(!s->uprobe_multi, "UprobeMulti=no");
        CHECK(s->log_level == LOG_DEBUG, "LogLevel=debug");
        CHECK_STR(s->socket_path, "/run/x.sock", "Socket=");
        CHECK_STR(s->state_dir, "/var/lib/utraced", "unset keys keep their defaults");
        config_free(c);

        config_settings_init(&cli);
        CHECK(config_parse_setting(&cli, CONFIG_RINGBUF_SIZE, "128K", NULL) == 0,
              "command line: --ringbuf-size 128K");
        CHECK(config_parse_setting(&cli, CONFIG_SOCKET, "/run/y.sock", NULL) == 0,
              "command line: --socket");
        c = load("[Daemon]\nRingBufferSize=64K\nSocket=/run/x.sock\nQueueSize=8K\n", &cli);
        s = config_settings(c);
        CHECK(s->ringbuf_size == 131072, "the command line overrides RingBufferSize=");
        CHECK_STR(s->socket_path, "/run/y.sock", "the command line overrides Socket=");
        CHECK(s->queue_size == 8192, "what the command line does not give comes from the file");
        config_free(c);
}

static void test_errors(void)
{
        struct config *c;
        size_t in_settings;
        const char *const *lines;

        c = load("RingBufferSize=8M\n"
                 "[Daemon]\n"
                 "RingBufferSize=3M\n"
                 "Bogus=1\n"
                 "QueueSize=1K\n"
                 "UprobeMulti=maybe\n"
                 "LogLevel=loud\n"
                 "StateDir=relative/dir\n"
                 "QueueSize=8K\n"
                 "no equals sign\n"
                 "[Probe]\n"
                 "Name=x\n", NULL);
        CHECK(error_is(c, 0, "utraced.conf:1: RingBufferSize= outside a section"),
              "key before any section: %s", error_at(c, 0));
        CHECK(error_is(c, 1, "utraced.conf:3: RingBufferSize=3M: need a power of two"),
              "not a power of two: %s", error_at(c, 1));
        CHECK(error_is(c, 2, "utraced.conf:4: unknown key Bogus= in [Daemon]"),
              "unknown key: %s", error_at(c, 2));
        CHECK(error_is(c, 3, "utraced.conf:5: QueueSize=1K: need a size of at least 4K"),
              "queue too small: %s", error_at(c, 3));
        CHECK(error_is(c, 4, "utraced.conf:6: UprobeMulti=maybe: need yes or no"),
              "bad boolean: %s", error_at(c, 4));
        CHECK(error_is(c, 5, "utraced.conf:7: LogLevel=loud: need debug"),
              "bad level: %s", error_at(c, 5));
        CHECK(error_is(c, 6, "utraced.conf:8: StateDir=relative/dir: need an absolute path"),
              "relative path: %s", error_at(c, 6));
        CHECK(error_is(c, 7, "utraced.conf:9: QueueSize= is given twice (first at line 5)"),
              "duplicate key: %s", error_at(c, 7));
        CHECK(error_is(c, 8, "utraced.conf:10: expected Key=Value or [Section]"),
              "not an assignment: %s", error_at(c, 8));
        CHECK(error_is(c, 9, "utraced.conf:11: unknown section [Probe]"),
              "probes do not go in utraced.conf: %s", error_at(c, 9));
        CHECK(nerrors(c) == 10, "keys of an unknown section are not reported one by one (%zu)",
              nerrors(c));
        config_errors(c, &lines, &in_settings);
        CHECK(in_settings == 10, "all of them are in utraced.conf");
        config_free(c);
}

static void test_probes(void)
{
        char conf[256], probes_dir[128];
        struct config *c;
        size_t in_settings;
        const char *const *lines;

        snprintf(conf, sizeof(conf), "[Daemon]\nProbesDirectory=%s/probes.d\n", dir);
        snprintf(probes_dir, sizeof(probes_dir), "%s/probes.d", dir);
        mkdir(probes_dir, 0700);
        write_file("probes.d/10-good.conf",
                   "# two probes in one file\n"
                   "[Probe]\n"
                   "Name=dns-latency\n"
                   "Spec=uprobe:libc.so.6:getaddrinfo\n"
                   "Arg=host=str(arg0)\n"
                   "Latency=yes\n"
                   "Aggregate=hist(latency_ns)\n"
                   "By=str(arg0)\n"
                   "MaxKeys=100\n"
                   "\n"
                   "[Probe]\n"
                   "Name=malloc.sizes_1\n"
                   "Spec=uprobe:libc.so.6:malloc\n"
                   "Filter=arg0 >= 1024\n");
        write_file("probes.d/20-bad.conf",
                   "[Probe]\n"
                   "Name=dns-latency\n"
                   "Spec=uprobe:libc.so.6\n"
                   "Arg=host=str(arg9, x)\n"
                   "Filter=arg0 >\n"
                   "Latency=sometimes\n"
                   "Aggregate=sum(arg0)\n"
                   "MaxKeys=0\n"
                   "Spec=uprobe:libc.so.6:free\n"
                   "Color=red\n"
                   "[Probe]\n"
                   "Name=no spaces\n"
                   "[Probe]\n"
                   "Spec=uprobe:libc.so.6:free\n"
                   "[Daemon]\n");
        write_file("probes.d/ignored.txt", "this is not read\n");
        c = load(conf, NULL);
        config_errors(c, &lines, &in_settings);
        CHECK(in_settings == 0, "utraced.conf itself is fine");
        CHECK(error_is(c, 0, "probes.d/20-bad.conf:2: Name=dns-latency: the name is already used at "),
              "names are unique across files: %s", error_at(c, 0));
        CHECK(error_is(c, 1, "probes.d/20-bad.conf:3: probe uprobe:libc.so.6:"),
              "Spec= is checked: %s", error_at(c, 1));
        CHECK(error_is(c, 2, "probes.d/20-bad.conf:4: "), "Arg= is checked: %s", error_at(c, 2));
        CHECK(error_is(c, 3, "probes.d/20-bad.conf:5: filter: "), "Filter= is checked: %s",
              error_at(c, 3));
        CHECK(error_is(c, 4, "probes.d/20-bad.conf:6: Latency=sometimes: need yes or no"),
              "Latency= is a boolean: %s", error_at(c, 4));
        CHECK(error_is(c, 5, "probes.d/20-bad.conf:7: --aggregate sum(arg0): expected count"),
              "Aggregate= is checked: %s", error_at(c, 5));
        CHECK(error_is(c, 6, "probes.d/20-bad.conf:8: MaxKeys=0: need 1 to"),
              "MaxKeys= is checked: %s", error_at(c, 6));
        CHECK(error_is(c, 7, "probes.d/20-bad.conf:9: Spec= is given twice in this [Probe] (first at line 3)"),
              "one Spec= per probe: %s", error_at(c, 7));
        CHECK(error_is(c, 8, "probes.d/20-bad.conf:10: unknown key Color= in [Probe]"),
              "unknown probe key: %s", error_at(c, 8));
        CHECK(error_is(c, 9, "probes.d/20-bad.conf:12: Name=no spaces: up to 64 letters"),
              "names are [A-Za-z0-9_.-]+: %s", error_at(c, 9));
        CHECK(error_is(c, 10, "probes.d/20-bad.conf:11: [Probe] needs Spec="),
              "Spec= is required: %s", error_at(c, 10));
        CHECK(error_is(c, 11, "probes.d/20-bad.conf:13: [Probe] needs Name="),
              "Name= is required: %s", error_at(c, 11));
        CHECK(error_is(c, 12, "probes.d/20-bad.conf:15: unknown section [Daemon]"),
              "settings do not go in probe files: %s", error_at(c, 12));
        CHECK(nerrors(c) == 13, "13 errors, no more (%zu)", nerrors(c));
        config_free(c);
}

static void test_outputs(void)
{
        char conf[256], probes_dir[128];
        struct config *c;
        json_object *st, *n;

        snprintf(conf, sizeof(conf), "[Daemon]\nProbesDirectory=%s/outputs.d\n", dir);
        snprintf(probes_dir, sizeof(probes_dir), "%s/outputs.d", dir);
        mkdir(probes_dir, 0700);
        write_file("outputs.d/out.conf",
                   "[Probe]\n"                                          /* 1 */
                   "Name=out-ok\n"
                   "Spec=uprobe:libc.so.6:malloc\n"
                   "Journal=yes\n"
                   "JournalRateLimitIntervalSec=500ms\n"                /* 5 */
                   "JournalRateLimitBurst=0\n"
                   "File=/var/log/utraced/a.ndjson\n"
                   "FileMaxSize=1M\n"
                   "FileKeep=3\n"
                   "[Probe]\n"                                          /* 10 */
                   "Name=out-bad\n"
                   "Spec=uprobe:libc.so.6:free\n"
                   "Journal=maybe\n"
                   "JournalRateLimitIntervalSec=soon\n"
                   "File=relative.ndjson\n"                             /* 15 */
                   "FileMaxSize=1K\n"
                   "FileKeep=0\n"
                   "[Probe]\n"
                   "Name=out-dup\n"
                   "Spec=uprobe:libc.so.6:free\n"                       /* 20 */
                   "File=/var/log/utraced/a.ndjson\n"
                   "[Probe]\n"
                   "Name=out-agg\n"
                   "Spec=uprobe:libc.so.6:free\n"
                   "Aggregate=count\n"                                  /* 25 */
                   "Journal=yes\n"
                   "[Probe]\n"
                   "Name=out-orphan\n"
                   "Spec=uprobe:libc.so.6:free\n"
                   "FileKeep=2\n"                                       /* 30 */
                   "Journal=no\n"
                   "JournalRateLimitBurst=3\n");
        c = load(conf, NULL);
        CHECK(error_is(c, 0, "outputs.d/out.conf:13: Journal=maybe: need yes or no"),
              "Journal= is a boolean: %s", error_at(c, 0));
        CHECK(error_is(c, 1, "outputs.d/out.conf:14: JournalRateLimitIntervalSec=soon: need a "
                             "time span"), "a time span: %s", error_at(c, 1));
        CHECK(error_is(c, 2, "outputs.d/out.conf:15: File=relative.ndjson: need the absolute path"),
              "File= is absolute: %s", error_at(c, 2));
        CHECK(error_is(c, 3, "outputs.d/out.conf:16: FileMaxSize=1K: need a size of at least 4K"),
              "FileMaxSize= is at least 4K: %s", error_at(c, 3));
        CHECK(error_is(c, 4, "outputs.d/out.conf:17: FileKeep=0: need 1 to 1000"),
              "FileKeep= keeps one file at least: %s", error_at(c, 4));
        CHECK(error_is(c, 5, "outputs.d/out.conf:21: File=/var/log/utraced/a.ndjson: probe out-ok "
                             "at "), "one probe per file: %s", error_at(c, 5));
        CHECK(error_is(c, 6, "outputs.d/out.conf:26: Journal=: a probe with Aggregate= has no "
                             "events"), "aggregations have no events to send: %s", error_at(c, 6));
        CHECK(error_is(c, 7, "outputs.d/out.conf:32: JournalRateLimitBurst= without Journal=yes"),
              "journal keys need Journal=yes: %s", error_at(c, 7));
        CHECK(error_is(c, 8, "outputs.d/out.conf:30: FileKeep= without File="),
              "file keys need File=: %s", error_at(c, 8));
        CHECK(nerrors(c) == 9, "9 errors, no more (%zu)", nerrors(c));
        st = config_status(c);
        json_object_object_get_ex(st, "probes", &n);
        CHECK(json_object_get_int(n) == 1, "the probe with every output key is valid");
        json_object_put(st);
        config_free(c);
}

/* Scoping and holding keys of a probe file become attach parameters. */
static void test_scope(void)
{
        char conf[256], probes_dir[128];
        struct config *c;
        json_object *st, *n;

        snprintf(conf, sizeof(conf), "[Daemon]\nProbesDirectory=%s/scope.d\nWatchIntervalSec=2s\n",
                 dir);
        snprintf(probes_dir, sizeof(probes_dir), "%s/scope.d", dir);
        mkdir(probes_dir, 0700);
        write_file("scope.d/s.conf",
                   "[Probe]\n"                                          /* 1 */
                   "Name=scoped\n"
                   "Spec=usdt:*:simplehttp:file_transfer\n"
                   "Comm=simplehttp\n"
                   "Exe=/usr/bin/simplehttp\n"                          /* 5 */
                   "Cgroup=/system.slice/web.service\n"
                   "Hold=yes\n"
                   "[Probe]\n"
                   "Name=bad-scope\n"
                   "Spec=uprobe:libc.so.6:free\n"                       /* 10 */
                   "Comm=a-name-much-longer-than-fifteen\n"
                   "Exe=relative/prog\n"
                   "Cgroup=system.slice\n"
                   "Hold=perhaps\n");
        c = load(conf, NULL);
        CHECK(config_settings(c)->watch_interval_us == 2000000, "WatchIntervalSec=2s");
        CHECK(error_is(c, 0, "scope.d/s.conf:11: Comm=a-name-much-longer-than-fifteen: 1 to 15"),
              "Comm= fits a comm: %s", error_at(c, 0));
        CHECK(error_is(c, 1, "scope.d/s.conf:12: Exe=relative/prog: need an absolute path"),
              "Exe= is absolute: %s", error_at(c, 1));
        CHECK(error_is(c, 2, "scope.d/s.conf:13: Cgroup=system.slice: need an absolute path"),
              "Cgroup= is absolute: %s", error_at(c, 2));
        CHECK(error_is(c, 3, "scope.d/s.conf:14: Hold=perhaps: need yes or no"),
              "Hold= is a boolean: %s", error_at(c, 3));
        CHECK(nerrors(c) == 4, "4 errors, no more (%zu)", nerrors(c));
        st = config_status(c);
        json_object_object_get_ex(st, "probes", &n);
        CHECK(json_object_get_int(n) == 1, "the scoped probe is valid");
        json_object_put(st);
        config_free(c);
        c = load("[Daemon]\nWatchIntervalSec=10ms\n", NULL);
        CHECK(nerrors(c) == 1, "WatchIntervalSec= below 100ms is refused: %s", error_at(c, 0));
        config_free(c);
}

/* conf/utraced.conf shows every key at its default: uncommented, it changes
 * nothing; the example probes are valid. */
static void test_examples(void)
{
        struct config_settings defaults;
        const struct config_settings *s;
        _cleanup_free_ char *text = NULL;
        struct config *c;
        json_object *st, *n;
        char conf[8192];
        size_t len = 0;

        CHECK(read_file(EXAMPLES "/utraced.conf", &text, 1 << 20) > 0, "conf/utraced.conf is read");
        if (!text)
                return;
        for (char *line = strtok(text, "\n"); line && len < sizeof(conf) - 256;
             line = strtok(NULL, "\n")) {
                bool key = line[0] == '#' && line[1] >= 'A' && line[1] <= 'Z' && strchr(line, '=');

                len += snprintf(conf + len, sizeof(conf) - len, "%s\n", key ? line + 1 : line);
        }
        c = load(conf, NULL);
        s = config_settings(c);
        config_settings_init(&defaults);
        CHECK(nerrors(c) == 0, "the example, uncommented, is valid: %s", error_at(c, 0));
        CHECK(s->set == (CONFIG_SOCKET | CONFIG_BPFFS_ROOT | CONFIG_STATE_DIR | CONFIG_PROBES_DIR |
                         CONFIG_RINGBUF_SIZE | CONFIG_QUEUE_SIZE | CONFIG_UPROBE_MULTI |
                         CONFIG_LOG_LEVEL | CONFIG_WATCH_INTERVAL), "the example shows every key");
        CHECK(streq(s->socket_path, defaults.socket_path) && streq(s->bpffs_root, defaults.bpffs_root) &&
              streq(s->state_dir, defaults.state_dir) && streq(s->probes_dir, defaults.probes_dir) &&
              s->ringbuf_size == defaults.ringbuf_size && s->queue_size == defaults.queue_size &&
              s->uprobe_multi == defaults.uprobe_multi && s->log_level == defaults.log_level &&
              s->watch_interval_us == defaults.watch_interval_us,
              "every key of the example is at its default");
        config_free(c);

        c = load("[Daemon]\nProbesDirectory=" EXAMPLES "/probes.d\n", NULL);
        st = config_status(c);
        json_object_object_get_ex(st, "probes", &n);
        CHECK(nerrors(c) == 0 && json_object_get_int(n) == 4,
              "conf/probes.d: 4 valid probes (%s)", error_at(c, 0));
        json_object_put(st);
        config_free(c);
}

int main(void)
{
        snprintf(dir, sizeof(dir), "/tmp/utrace-test-config-XXXXXX");
        if (!mkdtemp(dir))
                return 1;
        test_settings();
        test_errors();
        test_probes();
        test_outputs();
        test_scope();
        test_examples();
        {
                char cmd[128];

                snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
                if (system(cmd) != 0)
                        return 1;
        }
        return tap_done();
}
