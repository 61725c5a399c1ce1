// SPDX-License-Identifier: GPL-2.0-only
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "config-build.h"
#include "config.h"
#include "log.h"
#include "manager.h"
#include "output.h"
#include "probe.h"
#include "request.h"
#include "spec.h"
#include "util.h"
#include "utrace.h"

#define PROBE_NAME_MAX 64

/* One [Probe] section. */
struct config_probe {
        char *name;
        char *file;
        unsigned line;       /* of [Probe] */
        unsigned spec_line;  /* of Spec= */
        json_object *params; /* the attach request it stands for */
        struct output_config out; /* where its events go besides subscribers */
};

/* One reading of utraced.conf and the probes directory. */
struct reading {
        struct config_settings settings;
        struct config_probe *probes;
        size_t nprobes, probes_cap;
        char **errors;
        size_t nerrors, errors_cap;
        size_t settings_errors; /* errors[0..settings_errors) are in utraced.conf */
        bool oom;
};

struct failure {
        char *name;
        char *error;
};

struct config {
        char *path;
        bool required;
        struct config_settings cli;     /* given on the command line */
        struct config_settings started; /* in force since the start */
        struct reading cur;             /* the configuration applied last */
        struct manager *m;
        struct failure *failed;         /* configured probes that did not attach at start */
        size_t nfailed, failed_cap;
        uint64_t reloads, reloads_refused;
        bool applied;                   /* the last reading was applied */
        uint64_t applied_ns;            /* CLOCK_REALTIME */
};

/* --- settings -------------------------------------------------------------- */

static const struct {
        const char *name;
        enum config_key key;
} setting_names[] = {
        { "Socket", CONFIG_SOCKET },
        { "BpffsRoot", CONFIG_BPFFS_ROOT },
        { "StateDir", CONFIG_STATE_DIR },
        { "ProbesDirectory", CONFIG_PROBES_DIR },
        { "RingBufferSize", CONFIG_RINGBUF_SIZE },
        { "QueueSize", CONFIG_QUEUE_SIZE },
        { "UprobeMulti", CONFIG_UPROBE_MULTI },
        { "LogLevel", CONFIG_LOG_LEVEL },
        { "WatchIntervalSec", CONFIG_WATCH_INTERVAL },
};

void config_settings_init(struct config_settings *s)
{
        memset(s, 0, sizeof(*s));
        snprintf(s->socket_path, sizeof(s->socket_path), "%s", DEFAULT_SOCKET);
        snprintf(s->bpffs_root, sizeof(s->bpffs_root), "%s", DEFAULT_BPFFS_ROOT);
        snprintf(s->state_dir, sizeof(s->state_dir), "%s", DEFAULT_STATE_DIR);
        snprintf(s->probes_dir, sizeof(s->probes_dir), "%s", DEFAULT_PROBES_DIR);
        s->ringbuf_size = 8u << 20;
        s->queue_size = 4u << 20;
        s->uprobe_multi = true;
        s->log_level = LOG_INFO;
        s->watch_interval_us = 30 * 1000000ULL;
}

/* A size in bytes with an optional K, M or G suffix. */
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

/* systemd's booleans: 1 if true, 0 if false, -EINVAL otherwise. */
static int parse_boolean(const char *v)
{
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

/* A time span as systemd writes it, one number and unit: us, ms, s, min, h
 * (none: seconds). */
static int parse_timespan(const char *s, uint64_t *ret_us)
{
        static const struct {
                const char *unit;
                uint64_t us;
        } units[] = {
                { "", 1000000 }, { "us", 1 }, { "ms", 1000 }, { "s", 1000000 },
                { "sec", 1000000 }, { "min", 60000000 }, { "h", 3600000000ULL },
        };
        char num[32];
        unsigned long long v;
        size_t n = strspn(s, "0123456789");

        if (n == 0 || n >= sizeof(num))
                return -EINVAL;
        memcpy(num, s, n);
        num[n] = 0;
        if (parse_u64(num, &v) < 0)
                return -EINVAL;
        for (size_t i = 0; i < ARRAY_SIZE(units); i++)
                if (streq(s + n, units[i].unit)) {
                        if (v > UINT64_MAX / units[i].us)
                                return -ERANGE;
                        *ret_us = v * units[i].us;
                        return 0;
                }
        return -EINVAL;
}

int config_parse_setting(struct config_settings *s, enum config_key key, const char *value,
                         struct error *err)
{
        char *path = NULL;
        size_t size;
        int v;

        switch (key) {
        case CONFIG_SOCKET: path = s->socket_path; break;
        case CONFIG_BPFFS_ROOT: path = s->bpffs_root; break;
        case CONFIG_STATE_DIR: path = s->state_dir; break;
        case CONFIG_PROBES_DIR: path = s->probes_dir; break;
        case CONFIG_RINGBUF_SIZE:
                if (parse_size(value, &size) < 0 || size < 4096 || size > (1u << 30) ||
                    (size & (size - 1)))
                        return error_set(err, E_CONFIG, -EINVAL,
                                         "need a power of two between 4K and 1G");
                s->ringbuf_size = size;
                break;
        case CONFIG_QUEUE_SIZE:
                if (parse_size(value, &size) < 0 || size < 4096)
                        return error_set(err, E_CONFIG, -EINVAL, "need a size of at least 4K");
                s->queue_size = size;
                break;
        case CONFIG_UPROBE_MULTI:
                v = parse_boolean(value);
                if (v < 0)
                        return error_set(err, E_CONFIG, -EINVAL, "need yes or no");
                s->uprobe_multi = v;
                break;
        case CONFIG_WATCH_INTERVAL:
                if (parse_timespan(value, &s->watch_interval_us) < 0 ||
                    s->watch_interval_us < 100000 || s->watch_interval_us > 86400000000ULL)
                        return error_set(err, E_CONFIG, -EINVAL,
                                         "need a time span from 100ms to 1d (e.g. 30s)");
                break;
        case CONFIG_LOG_LEVEL:
                v = log_parse_priority(value);
                if (v < 0)
                        return error_set(err, E_CONFIG, -EINVAL,
                                         "need debug, info, notice, warning or error");
                s->log_level = v;
                break;
        }
        if (path) {
                if (value[0] != '/')
                        return error_set(err, E_CONFIG, -EINVAL, "need an absolute path");
                if (strlen(value) >= PATH_MAX)
                        return error_set(err, E_CONFIG, -ENAMETOOLONG, "path too long");
                strcpy(path, value);
        }
        s->set |= key;
        return 0;
}

static void override(struct config_settings *s, const struct config_settings *cli)
{
        if (cli->set & CONFIG_SOCKET)
                strcpy(s->socket_path, cli->socket_path);
        if (cli->set & CONFIG_BPFFS_ROOT)
                strcpy(s->bpffs_root, cli->bpffs_root);
        if (cli->set & CONFIG_STATE_DIR)
                strcpy(s->state_dir, cli->state_dir);
        if (cli->set & CONFIG_PROBES_DIR)
                strcpy(s->probes_dir, cli->probes_dir);
        if (cli->set & CONFIG_RINGBUF_SIZE)
                s->ringbuf_size = cli->ringbuf_size;
        if (cli->set & CONFIG_QUEUE_SIZE)
                s->queue_size = cli->queue_size;
        if (cli->set & CONFIG_UPROBE_MULTI)
                s->uprobe_multi = cli->uprobe_multi;
        if (cli->set & CONFIG_WATCH_INTERVAL)
                s->watch_interval_us = cli->watch_interval_us;
        if (cli->set & CONFIG_LOG_LEVEL)
                s->log_level = cli->log_level;
}

/* --- parsing --------------------------------------------------------------- */

enum probe_key { PK_NAME, PK_SPEC, PK_ARG, PK_FILTER, PK_LATENCY, PK_AGGREGATE, PK_BY,
                 PK_MAX_KEYS, PK_JOURNAL, PK_JOURNAL_INTERVAL, PK_JOURNAL_BURST, PK_FILE,
                 PK_FILE_MAX_SIZE, PK_FILE_KEEP, PK_COMM, PK_EXE, PK_CGROUP, PK_HOLD, _PK_MAX };

static const char *const probe_keys[_PK_MAX] = {
        [PK_NAME] = "Name", [PK_SPEC] = "Spec", [PK_ARG] = "Arg", [PK_FILTER] = "Filter",
        [PK_LATENCY] = "Latency", [PK_AGGREGATE] = "Aggregate", [PK_BY] = "By",
        [PK_MAX_KEYS] = "MaxKeys", [PK_JOURNAL] = "Journal",
        [PK_JOURNAL_INTERVAL] = "JournalRateLimitIntervalSec",
        [PK_JOURNAL_BURST] = "JournalRateLimitBurst", [PK_FILE] = "File",
        [PK_FILE_MAX_SIZE] = "FileMaxSize", [PK_FILE_KEEP] = "FileKeep",
        [PK_COMM] = "Comm", [PK_EXE] = "Exe", [PK_CGROUP] = "Cgroup", [PK_HOLD] = "Hold",
};

enum section_kind { SEC_NONE, SEC_DAEMON, SEC_PROBE, SEC_UNKNOWN };

struct parser {
        struct reading *r;
        const char *file;
        unsigned line;
        bool daemon_file;          /* utraced.conf, not a probes.d file */
        unsigned setting_line[ARRAY_SIZE(setting_names)];
        enum section_kind kind;
        /* the [Probe] being read */
        unsigned sec_line;
        unsigned key_line[_PK_MAX];
        char *name;
        json_object *params;
        struct output_config out;
        bool bad;
};

static void add_error(struct reading *r, const char *file, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void add_error(struct reading *r, const char *file, unsigned line, const char *fmt, ...)
{
        char msg[1024], *text;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (grow_array(&r->errors, &r->errors_cap, r->nerrors + 1, sizeof(char *)) < 0 ||
            (line ? asprintf(&text, "%s:%u: %s", file, line, msg)
                  : asprintf(&text, "%s: %s", file, msg)) < 0) {
                r->oom = true;
                return;
        }
        r->errors[r->nerrors++] = text;
}

#define parse_error(ps, ...) add_error((ps)->r, (ps)->file, (ps)->line, __VA_ARGS__)

static void probe_reset(struct parser *ps)
{
        free(ps->name);
        ps->name = NULL;
        json_object_put(ps->params);
        ps->params = NULL;
        output_config_done(&ps->out);
        output_config_init(&ps->out);
        memset(ps->key_line, 0, sizeof(ps->key_line));
        ps->bad = false;
}

static const struct config_probe *find_probe(const struct reading *r, const char *name)
{
        for (size_t i = 0; i < r->nprobes; i++)
                if (streq(r->probes[i].name, name))
                        return &r->probes[i];
        return NULL;
}

static const struct config_probe *find_file(const struct reading *r, const char *file)
{
        for (size_t i = 0; i < r->nprobes; i++)
                if (r->probes[i].out.file && streq(r->probes[i].out.file, file))
                        return &r->probes[i];
        return NULL;
}

/* Output keys go with an output, and outputs with a probe that has events. */
static void check_outputs(struct parser *ps)
{
        static const struct {
                enum probe_key key, needs;
                const char *what;
        } deps[] = {
                { PK_JOURNAL_INTERVAL, PK_JOURNAL, "Journal=yes" },
                { PK_JOURNAL_BURST, PK_JOURNAL, "Journal=yes" },
                { PK_FILE_MAX_SIZE, PK_FILE, "File=" },
                { PK_FILE_KEEP, PK_FILE, "File=" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(deps); i++)
                if (ps->key_line[deps[i].key] &&
                    (!ps->key_line[deps[i].needs] || (deps[i].needs == PK_JOURNAL && !ps->out.journal))) {
                        add_error(ps->r, ps->file, ps->key_line[deps[i].key], "%s= without %s",
                                  probe_keys[deps[i].key], deps[i].what);
                        ps->bad = true;
                }
        if (output_config_any(&ps->out) && ps->key_line[PK_AGGREGATE]) {
                add_error(ps->r, ps->file, ps->key_line[ps->out.file ? PK_FILE : PK_JOURNAL],
                          "%s: a probe with Aggregate= has no events to send",
                          ps->out.file ? "File=" : "Journal=");
                ps->bad = true;
        }
}

/* The end of a [Probe] section: check it as a whole and keep it. */
static void probe_finish(struct parser *ps)
{
        struct reading *r = ps->r;
        struct probe_spec spec;
        struct error err = { 0 };
        struct config_probe *cp;

        if (ps->kind != SEC_PROBE)
                return;
        if (!ps->key_line[PK_NAME] || !ps->key_line[PK_SPEC]) {
                add_error(r, ps->file, ps->sec_line, "[Probe] needs %s",
                          !ps->key_line[PK_NAME] ? "Name=" : "Spec=");
                ps->bad = true;
        }
        if (!ps->bad)
                check_outputs(ps);
        if (!ps->bad && request_parse_attach(ps->params, &spec, &err) < 0) {
                add_error(r, ps->file, ps->sec_line, "%s", err.msg);
                ps->bad = true;
        }
        if (!ps->bad)
                probe_spec_done(&spec);
        if (!ps->bad &&
            grow_array(&r->probes, &r->probes_cap, r->nprobes + 1, sizeof(*r->probes)) == 0) {
                cp = &r->probes[r->nprobes];
                *cp = (struct config_probe){
                        .name = TAKE_PTR(ps->name),
                        .file = strdup(ps->file),
                        .line = ps->sec_line,
                        .spec_line = ps->key_line[PK_SPEC],
                        .params = TAKE_PTR(ps->params),
                        .out = ps->out,
                };
                output_config_init(&ps->out); /* taken */
                r->nprobes++;
                if (!cp->file)
                        r->oom = true;
        } else if (!ps->bad) {
                r->oom = true;
        }
        probe_reset(ps);
}

static bool valid_probe_name(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > PROBE_NAME_MAX)
                return false;
        for (; *s; s++)
                if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-'))
                        return false;
        return true;
}

/* Check one value of a [Probe] with the parser `utracectl attach` uses. */
static int probe_value(struct parser *ps, enum probe_key k, const char *value, struct error *err)
{
        struct probe_spec spec = { 0 };
        struct capture cap;
        struct predicate preds[SPEC_MAX_PREDS];
        struct fieldref ref;
        enum agg_mode mode;
        unsigned long long n;
        size_t size;
        const struct config_probe *other;
        json_object *v = NULL;
        int r = 0;

        switch (k) {
        case PK_NAME:
                if (!valid_probe_name(value))
                        return error_set(err, E_CONFIG, -EINVAL,
                                         "Name=%s: up to %d letters, digits, '_', '.' and '-'",
                                         value, PROBE_NAME_MAX);
                other = find_probe(ps->r, value);
                if (other)
                        return error_set(err, E_CONFIG, -EEXIST,
                                         "Name=%s: the name is already used at %s:%u", value,
                                         other->file, other->line);
                ps->name = strdup(value);
                return ps->name ? 0 : -ENOMEM;
        case PK_SPEC:
                r = spec_parse_probe(value, 0, &spec, err);
                probe_spec_done(&spec);
                if (r >= 0)
                        json_object_object_add(ps->params, "spec", json_object_new_string(value));
                return r;
        case PK_ARG:
                r = spec_parse_capture(value, &cap, err);
                if (r < 0)
                        return r;
                if (!json_object_object_get_ex(ps->params, "args", &v)) {
                        v = json_object_new_array();
                        json_object_object_add(ps->params, "args", v);
                }
                json_object_array_add(v, json_object_new_string(value));
                return 0;
        case PK_FILTER:
                r = spec_parse_filter(value, preds, SPEC_MAX_PREDS, err);
                if (r >= 0)
                        json_object_object_add(ps->params, "filter", json_object_new_string(value));
                return r;
        case PK_LATENCY:
        case PK_HOLD:
                r = parse_boolean(value);
                if (r < 0)
                        return error_set(err, E_CONFIG, -EINVAL, "%s=%s: need yes or no",
                                         probe_keys[k], value);
                if (r)
                        json_object_object_add(ps->params, k == PK_HOLD ? "hold" : "latency",
                                               json_object_new_boolean(1));
                return 0;
        case PK_COMM:
                if (!*value || strlen(value) >= UT_COMM_LEN)
                        return error_set(err, E_CONFIG, -EINVAL, "Comm=%s: 1 to %d bytes", value,
                                         UT_COMM_LEN - 1);
                json_object_object_add(ps->params, "comm", json_object_new_string(value));
                return 0;
        case PK_EXE:
        case PK_CGROUP:
                if (value[0] != '/')
                        return error_set(err, E_CONFIG, -EINVAL, "%s=%s: need an absolute path",
                                         probe_keys[k], value);
                json_object_object_add(ps->params, k == PK_EXE ? "exe" : "cgroup",
                                       json_object_new_string(value));
                return 0;
        case PK_AGGREGATE:
                r = spec_parse_aggregate(value, &mode, &ref, err);
                if (r >= 0)
                        json_object_object_add(ps->params, "aggregate",
                                               json_object_new_string(value));
                return r;
        case PK_BY:
                r = spec_parse_field(value, &ref, err);
                if (r >= 0)
                        json_object_object_add(ps->params, "by", json_object_new_string(value));
                return r;
        case PK_MAX_KEYS:
                if (parse_u64(value, &n) < 0 || n < 1 || n > UT_AGG_KEYS)
                        return error_set(err, E_CONFIG, -EINVAL, "MaxKeys=%s: need 1 to %d",
                                         value, UT_AGG_KEYS);
                json_object_object_add(ps->params, "max_keys", json_object_new_int64((int64_t)n));
                return 0;
        case PK_JOURNAL:
                r = parse_boolean(value);
                if (r < 0)
                        return error_set(err, E_CONFIG, -EINVAL, "Journal=%s: need yes or no",
                                         value);
                ps->out.journal = r;
                return 0;
        case PK_JOURNAL_INTERVAL:
                if (parse_timespan(value, &ps->out.journal_interval_us) < 0 ||
                    !ps->out.journal_interval_us)
                        return error_set(err, E_CONFIG, -EINVAL,
                                         "JournalRateLimitIntervalSec=%s: need a time span "
                                         "(500ms, 10s, 1min)", value);
                return 0;
        case PK_JOURNAL_BURST:
                if (parse_u64(value, &n) < 0 || n > UINT_MAX)
                        return error_set(err, E_CONFIG, -EINVAL,
                                         "JournalRateLimitBurst=%s: need a number (0: no limit)",
                                         value);
                ps->out.journal_burst = (unsigned)n;
                return 0;
        case PK_FILE:
                if (value[0] != '/' || value[strlen(value) - 1] == '/')
                        return error_set(err, E_CONFIG, -EINVAL,
                                         "File=%s: need the absolute path of a file", value);
                if (strlen(value) >= PATH_MAX - 16)
                        return error_set(err, E_CONFIG, -ENAMETOOLONG, "File=: path too long");
                other = find_file(ps->r, value);
                if (other)
                        return error_set(err, E_CONFIG, -EEXIST,
                                         "File=%s: probe %s at %s:%u writes it already", value,
                                         other->name, other->file, other->line);
                ps->out.file = strdup(value);
                return ps->out.file ? 0 : -ENOMEM;
        case PK_FILE_MAX_SIZE:
                if (parse_size(value, &size) < 0 || size < 4096)
                        return error_set(err, E_CONFIG, -EINVAL,
                                         "FileMaxSize=%s: need a size of at least 4K", value);
                ps->out.file_max_size = size;
                return 0;
        case PK_FILE_KEEP:
                if (parse_u64(value, &n) < 0 || n < 1 || n > 1000)
                        return error_set(err, E_CONFIG, -EINVAL, "FileKeep=%s: need 1 to 1000",
                                         value);
                ps->out.file_keep = (unsigned)n;
                return 0;
        default:
                return -EINVAL;
        }
}

static void probe_assignment(struct parser *ps, const char *key, const char *value)
{
        struct error err = { 0 };
        int k;

        for (k = 0; k < _PK_MAX; k++)
                if (streq(key, probe_keys[k]))
                        break;
        if (k == _PK_MAX) {
                parse_error(ps, "unknown key %s= in [Probe] (known: Name, Spec, Arg, Filter, "
                            "Latency, Aggregate, By, MaxKeys, Journal, JournalRateLimitIntervalSec, "
                            "JournalRateLimitBurst, File, FileMaxSize, FileKeep)", key);
                ps->bad = true;
                return;
        }
        if (k != PK_ARG && ps->key_line[k]) {
                parse_error(ps, "%s= is given twice in this [Probe] (first at line %u)", key,
                            ps->key_line[k]);
                ps->bad = true;
                return;
        }
        ps->key_line[k] = ps->line;
        if (!*value) {
                parse_error(ps, "%s= needs a value", key);
                ps->bad = true;
                return;
        }
        if (probe_value(ps, k, value, &err) < 0) {
                parse_error(ps, "%s", err.msg[0] ? err.msg : "out of memory");
                ps->bad = true;
        }
}

static void daemon_assignment(struct parser *ps, const char *key, const char *value)
{
        struct error err = { 0 };
        size_t i;

        for (i = 0; i < ARRAY_SIZE(setting_names); i++)
                if (streq(key, setting_names[i].name))
                        break;
        if (i == ARRAY_SIZE(setting_names)) {
                parse_error(ps, "unknown key %s= in [Daemon] (known: Socket, BpffsRoot, StateDir, "
                            "ProbesDirectory, RingBufferSize, QueueSize, UprobeMulti, LogLevel, "
                            "WatchIntervalSec)",
                            key);
                return;
        }
        if (ps->setting_line[i]) {
                parse_error(ps, "%s= is given twice (first at line %u)", key, ps->setting_line[i]);
                return;
        }
        ps->setting_line[i] = ps->line;
        if (config_parse_setting(&ps->r->settings, setting_names[i].key, value, &err) < 0)
                parse_error(ps, "%s=%s: %s", key, value, err.msg);
}

static char *strip(char *s)
{
        char *end;

        while (*s == ' ' || *s == '\t')
                s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
                *--end = 0;
        return s;
}

static void section_header(struct parser *ps, char *text)
{
        size_t n = strlen(text);
        const char *name;

        probe_finish(ps);
        if (n < 2 || text[n - 1] != ']') {
                parse_error(ps, "expected [Section]");
                ps->kind = SEC_UNKNOWN;
                return;
        }
        text[n - 1] = 0;
        name = text + 1;
        if (ps->daemon_file && streq(name, "Daemon")) {
                ps->kind = SEC_DAEMON;
        } else if (!ps->daemon_file && streq(name, "Probe")) {
                ps->kind = SEC_PROBE;
                ps->sec_line = ps->line;
                ps->params = json_object_new_object();
        } else {
                parse_error(ps, "unknown section [%s] (%s)", name,
                            ps->daemon_file ? "this file has [Daemon]; probes go in the probes "
                                              "directory" : "probe files have [Probe] sections");
                ps->kind = SEC_UNKNOWN;
        }
}

static void parse_line(struct parser *ps, char *line, size_t len)
{
        char *s, *eq;

        if (memchr(line, 0, len)) {
                parse_error(ps, "NUL byte in line");
                return;
        }
        s = strip(line);
        if (!*s || *s == '#' || *s == ';')
                return;
        if (*s == '[') {
                section_header(ps, s);
                return;
        }
        eq = strchr(s, '=');
        if (!eq) {
                parse_error(ps, "expected Key=Value or [Section], got \"%.64s\"", s);
                ps->bad = true;
                return;
        }
        *eq = 0;
        s = strip(s);
        switch (ps->kind) {
        case SEC_NONE:
                parse_error(ps, "%s= outside a section (start with [%s])", s,
                            ps->daemon_file ? "Daemon" : "Probe");
                break;
        case SEC_DAEMON:
                daemon_assignment(ps, s, strip(eq + 1));
                break;
        case SEC_PROBE:
                probe_assignment(ps, s, strip(eq + 1));
                break;
        case SEC_UNKNOWN:
                break; /* reported at the section header */
        }
}

static void parse_file(struct reading *r, const char *path, bool daemon_file, bool required)
{
        struct parser ps = { .r = r, .file = path, .daemon_file = daemon_file };
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        output_config_init(&ps.out);

        if (!f) {
                if (errno != ENOENT || required)
                        add_error(r, path, 0, "cannot read: %s", strerror(errno));
                return;
        }
        while ((n = getline(&line, &cap, f)) >= 0) {
                ps.line++;
                parse_line(&ps, line, (size_t)n);
        }
        if (ferror(f))
                add_error(r, path, 0, "cannot read: %s", strerror(errno));
        probe_finish(&ps);
        output_config_done(&ps.out);
}

static int conf_file(const struct dirent *de)
{
        size_t n = strlen(de->d_name);

        return de->d_name[0] != '.' && n > 5 && streq(de->d_name + n - 5, ".conf");
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

static void parse_probes_dir(struct reading *r)
{
        const char *dir = r->settings.probes_dir;
        struct dirent **names;
        int n = scandir(dir, &names, conf_file, by_name);

        if (n < 0) {
                if (errno != ENOENT)
                        add_error(r, dir, 0, "cannot read: %s", strerror(errno));
                return;
        }
        for (int i = 0; i < n; i++) {
                char path[PATH_MAX + 256];
                struct stat st;

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                        parse_file(r, path, false, true);
                free(names[i]);
        }
        free(names);
}

static void reading_done(struct reading *r)
{
        for (size_t i = 0; i < r->nprobes; i++) {
                free(r->probes[i].name);
                free(r->probes[i].file);
                json_object_put(r->probes[i].params);
                output_config_done(&r->probes[i].out);
        }
        free(r->probes);
        for (size_t i = 0; i < r->nerrors; i++)
                free(r->errors[i]);
        free(r->errors);
        memset(r, 0, sizeof(*r));
}

static int read_config(const struct config *c, struct reading *r)
{
        memset(r, 0, sizeof(*r));
        config_settings_init(&r->settings);
        parse_file(r, c->path, true, c->required);
        r->settings_errors = r->nerrors;
        override(&r->settings, &c->cli);
        parse_probes_dir(r);
        if (r->oom) {
                reading_done(r);
                return -ENOMEM;
        }
        return 0;
}

/* --- the running configuration --------------------------------------------- */

static void failures_clear(struct config *c)
{
        for (size_t i = 0; i < c->nfailed; i++) {
                free(c->failed[i].name);
                free(c->failed[i].error);
        }
        c->nfailed = 0;
}

void config_free(struct config *c)
{
        if (!c)
                return;
        failures_clear(c);
        free(c->failed);
        reading_done(&c->cur);
        free(c->path);
        free(c);
}

int config_new(const char *path, bool required, const struct config_settings *cli,
               struct config **ret)
{
        struct config *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        c->path = strdup(path);
        c->required = required;
        c->cli = *cli;
        if (!c->path) {
                config_free(c);
                return -ENOMEM;
        }
        r = read_config(c, &c->cur);
        if (r < 0) {
                config_free(c);
                return r;
        }
        c->started = c->cur.settings;
        *ret = c;
        return 0;
}

const struct config_settings *config_settings(const struct config *c)
{
        return &c->cur.settings;
}

size_t config_errors(const struct config *c, const char *const **lines, size_t *in_settings)
{
        *lines = (const char *const *)c->cur.errors;
        if (in_settings)
                *in_settings = c->cur.settings_errors;
        return c->cur.nerrors;
}

int config_check(struct config *c)
{
        struct reading *r = &c->cur;

        for (size_t i = 0; i < r->nprobes; i++) {
                const struct config_probe *cp = &r->probes[i];
                struct probe *p = probe_new();
                struct error err = { 0 };
                int k;

                if (!p)
                        return 1;
                k = request_parse_attach(cp->params, &p->spec, &err);
                if (k >= 0) {
                        k = probe_resolve(p, &err);
                        if (k < 0)
                                add_error(r, cp->file, cp->spec_line, "%s", err.msg);
                }
                if (k >= 0 && probe_compile(p, &err) < 0)
                        add_error(r, cp->file, cp->line, "%s", err.msg);
                probe_free(p);
        }
        for (size_t i = 0; i < r->nerrors; i++)
                fprintf(stderr, "%s\n", r->errors[i]);
        if (r->nerrors)
                return 1;
        printf("%s: %s; %zu probe%s in %s\n", c->path,
               access(c->path, F_OK) == 0 ? "ok" : "absent, defaults apply", r->nprobes,
               r->nprobes == 1 ? "" : "s", r->settings.probes_dir);
        return 0;
}

static bool same_request(const struct probe *p, json_object *params)
{
        json_object *req = json_tokener_parse(p->request);
        bool same = req && json_object_equal(req, params);

        json_object_put(req);
        return same;
}

static void failure_add(struct config *c, const char *name, const char *error)
{
        struct failure *f;

        if (grow_array(&c->failed, &c->failed_cap, c->nfailed + 1, sizeof(*c->failed)) < 0)
                return;
        f = &c->failed[c->nfailed];
        f->name = strdup(name);
        f->error = strdup(error);
        if (!f->name || !f->error) {
                free(f->name);
                free(f->error);
                return;
        }
        c->nfailed++;
}

static json_object *named(const char *name, uint64_t id)
{
        json_object *o = json_object_new_object();

        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "id", json_object_new_int64((int64_t)id));
        return o;
}

static int attach_one(struct manager *m, const struct config_probe *cp, struct probe **ret,
                      struct error *err)
{
        struct probe_spec spec;
        int r = request_parse_attach(cp->params, &spec, err);

        if (r < 0) {
                probe_spec_done(&spec);
                return r;
        }
        return manager_attach_config(m, &spec,
                                     json_object_to_json_string_ext(cp->params,
                                                                    JSON_C_TO_STRING_PLAIN),
                                     cp->name, ret, err);
}

/* Give p the outputs of cp (a probe that did not attach: none). */
static void set_output(struct probe *p, const struct config_probe *cp, size_t queue_max)
{
        struct error err = { 0 };

        if (!p || (p->output ? output_config_equal(output_config(p->output), &cp->out)
                             : !output_config_any(&cp->out)))
                return;
        output_free(p->output);
        p->output = NULL;
        if (output_config_any(&cp->out) &&
            output_new(cp->name, &cp->out, queue_max, &p->output, &err) < 0)
                log_error("%s", err.msg[0] ? err.msg : "out of memory");
}

/*
 * Make the configured probes those of next. Strict (reload): a probe that
 * does not attach undoes every attach of this call and nothing is detached.
 * Otherwise (start) such a probe is logged and left out.
 */
static int apply(struct config *c, const struct reading *next, bool strict, json_object **result,
                 struct error *err)
{
        size_t nall, nrun = 0, nnew = 0, nold = 0;
        struct probe *const *all = manager_probes(c->m, &nall);
        _cleanup_free_ struct probe **running = calloc(nall + 1, sizeof(*running));
        _cleanup_free_ struct probe **added = calloc(next->nprobes + 1, sizeof(*added));
        _cleanup_free_ struct probe **old = calloc(nall + 1, sizeof(*old));
        _cleanup_free_ bool *keep = calloc(nall + 1, sizeof(*keep));
        _cleanup_free_ struct probe **kept_by = calloc(next->nprobes + 1, sizeof(*kept_by));
        json_object *a_added, *a_changed, *a_removed, *a_unchanged;
        int r;

        if (!running || !added || !old || !keep || !kept_by)
                return -ENOMEM;
        for (size_t i = 0; i < nall; i++)
                if (all[i]->config)
                        running[nrun++] = all[i];
        /* an unchanged probe: same name, same request */
        for (size_t k = 0; k < next->nprobes; k++)
                for (size_t i = 0; i < nrun; i++)
                        if (!keep[i] && streq(running[i]->config, next->probes[k].name) &&
                            same_request(running[i], next->probes[k].params)) {
                                keep[i] = true;
                                kept_by[k] = running[i];
                                break;
                        }
        if (!strict)
                failures_clear(c);
        for (size_t k = 0; k < next->nprobes; k++) {
                const struct config_probe *cp = &next->probes[k];
                struct error aerr = { 0 };
                struct probe *p;

                if (kept_by[k])
                        continue;
                r = attach_one(c->m, cp, &p, &aerr);
                if (r >= 0) {
                        added[k] = p;
                        nnew++;
                        continue;
                }
                if (!aerr.msg[0])
                        snprintf(aerr.msg, sizeof(aerr.msg), "%s", strerror(-r));
                if (strict) {
                        size_t n = 0;

                        for (size_t i = 0; i < next->nprobes; i++)
                                if (added[i])
                                        added[n++] = added[i];
                        manager_detach_many(c->m, added, n);
                        return error_set(err, E_CONFIG, r, "probe %s (%s:%u): %s; nothing was "
                                         "changed", cp->name, cp->file, cp->line, aerr.msg);
                }
                log_error("configured probe %s (%s:%u) not attached: %s", cp->name, cp->file,
                          cp->line, aerr.msg);
                failure_add(c, cp->name, aerr.msg);
        }
        a_added = json_object_new_array();
        a_changed = json_object_new_array();
        a_removed = json_object_new_array();
        a_unchanged = json_object_new_array();
        for (size_t k = 0; k < next->nprobes; k++) {
                const struct config_probe *cp = &next->probes[k];
                bool changed = false;

                if (kept_by[k]) {
                        json_object_array_add(a_unchanged, named(cp->name, kept_by[k]->id));
                        continue;
                }
                for (size_t i = 0; i < nrun; i++)
                        changed |= !keep[i] && streq(running[i]->config, cp->name);
                if (added[k]) {
                        json_object_array_add(changed ? a_changed : a_added,
                                              named(cp->name, added[k]->id));
                        log_info("configured probe %s %s: probe %llu", cp->name,
                                 changed ? "changed" : "added",
                                 (unsigned long long)added[k]->id);
                }
        }
        for (size_t i = 0; i < nrun; i++) {
                if (keep[i])
                        continue;
                if (!find_probe(next, running[i]->config)) {
                        json_object_array_add(a_removed, named(running[i]->config, running[i]->id));
                        log_info("configured probe %s removed: probe %llu", running[i]->config,
                                 (unsigned long long)running[i]->id);
                }
                old[nold++] = running[i];
        }
        manager_detach_many(c->m, old, nold);
        for (size_t k = 0; k < next->nprobes; k++)
                set_output(kept_by[k] ? kept_by[k] : added[k], &next->probes[k],
                           next->settings.queue_size);
        if (strict)
                failures_clear(c);
        log_msg(nnew || nold || c->nfailed ? LOG_INFO : LOG_DEBUG,
                "configuration applied: %zu added, %zu changed, %zu removed, %zu unchanged%s",
                json_object_array_length(a_added), json_object_array_length(a_changed),
                json_object_array_length(a_removed), json_object_array_length(a_unchanged),
                c->nfailed ? "; some probes failed" : "");
        if (result) {
                *result = json_object_new_object();
                json_object_object_add(*result, "added", a_added);
                json_object_object_add(*result, "changed", a_changed);
                json_object_object_add(*result, "removed", a_removed);
                json_object_object_add(*result, "unchanged", a_unchanged);
        } else {
                json_object_put(a_added);
                json_object_put(a_changed);
                json_object_put(a_removed);
                json_object_put(a_unchanged);
        }
        return 0;
}

void config_start(struct config *c, struct manager *m)
{
        c->m = m;
        if (c->cur.nerrors > c->cur.settings_errors) {
                for (size_t i = c->cur.settings_errors; i < c->cur.nerrors; i++)
                        log_error("%s", c->cur.errors[i]);
                log_error("the probes directory %s has errors: configured probes stay as they "
                          "were; fix the files and reload", c->cur.settings.probes_dir);
                return;
        }
        apply(c, &c->cur, false, NULL, NULL);
        c->applied = true;
        c->applied_ns = now_ns(CLOCK_REALTIME);
}

/* Settings that cannot change while running are reported, not applied. */
static void settings_changed(struct config *c, const struct config_settings *s)
{
        const struct config_settings *was = &c->started;

        if (s->log_level != c->cur.settings.log_level) {
                log_set_max_priority(s->log_level);
                log_notice("LogLevel= changed: applied");
        }
        if (!streq(s->probes_dir, c->cur.settings.probes_dir))
                log_notice("ProbesDirectory= changed to %s: applied", s->probes_dir);
        if (!streq(s->socket_path, was->socket_path))
                log_notice("Socket= changed: takes effect at the next start");
        if (!streq(s->bpffs_root, was->bpffs_root))
                log_notice("BpffsRoot= changed: takes effect at the next start");
        if (!streq(s->state_dir, was->state_dir))
                log_notice("StateDir= changed: takes effect at the next start");
        if (s->ringbuf_size != was->ringbuf_size)
                log_notice("RingBufferSize= changed: takes effect at the next start");
        if (s->queue_size != was->queue_size)
                log_notice("QueueSize= changed: takes effect at the next start");
        if (s->uprobe_multi != was->uprobe_multi)
                log_notice("UprobeMulti= changed: takes effect at the next start");
        if (s->watch_interval_us != was->watch_interval_us)
                log_notice("WatchIntervalSec= changed: takes effect at the next start");
}

int config_reload(struct config *c, json_object **result, struct error *err)
{
        struct reading next;
        int r;

        log_info("reloading the configuration from %s", c->path);
        c->reloads++;
        c->applied = false;
        r = read_config(c, &next);
        if (r < 0) {
                c->reloads_refused++;
                return error_set(err, E_INTERNAL, r, "out of memory");
        }
        if (next.nerrors) {
                for (size_t i = 0; i < next.nerrors; i++)
                        log_error("%s", next.errors[i]);
                r = error_set(err, E_CONFIG, -EINVAL,
                              "the configuration has %zu error%s, nothing was changed: %s",
                              next.nerrors, next.nerrors == 1 ? "" : "s", next.errors[0]);
                log_error("reload refused: the configuration has errors");
                reading_done(&next);
                c->reloads_refused++;
                return r;
        }
        r = apply(c, &next, true, result, err);
        if (r < 0) {
                if (err->code == E_NONE)
                        error_set(err, E_INTERNAL, r, "reload: %s", strerror(-r));
                log_error("reload refused: %s", err->msg);
                reading_done(&next);
                c->reloads_refused++;
                return r;
        }
        settings_changed(c, &next.settings);
        reading_done(&c->cur);
        c->cur = next;
        c->applied = true;
        c->applied_ns = now_ns(CLOCK_REALTIME);
        return 0;
}

json_object *config_status(const struct config *c)
{
        json_object *o = json_object_new_object();
        json_object *failed = json_object_new_array();

        for (size_t i = 0; i < c->nfailed; i++) {
                json_object *f = json_object_new_object();

                json_object_object_add(f, "name", json_object_new_string(c->failed[i].name));
                json_object_object_add(f, "error", json_object_new_string(c->failed[i].error));
                json_object_array_add(failed, f);
        }
        json_object_object_add(o, "file", json_object_new_string(c->path));
        json_object_object_add(o, "probes_directory",
                               json_object_new_string(c->cur.settings.probes_dir));
        json_object_object_add(o, "probes", json_object_new_int64((int64_t)c->cur.nprobes));
        json_object_object_add(o, "failed", failed);
        return o;
}

void config_health(const struct config *c, struct config_health *ret)
{
        *ret = (struct config_health){
                .probes = c->cur.nprobes,
                .failed = c->nfailed,
                .reloads = c->reloads,
                .reloads_refused = c->reloads_refused,
                .applied = c->applied,
                .applied_ns = c->applied_ns,
        };
}
