// SPDX-License-Identifier: GPL-2.0-only
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "format.h"
#include "log.h"
#include "output.h"
#include "probe.h"
#include "util.h"

#define JOURNAL_SOCKET "/run/systemd/journal/socket"
/* MESSAGE_ID= of event entries: journalctl MESSAGE_ID=... finds them all */
#define EVENT_MESSAGE_ID "8c6a3e0f1b6e4b0fa1d2c9e7b5a4f310"
#define SUPPRESSED_MESSAGE_ID "0d5c8e2b7a9f4c61b3e4a5f6c7d8e9a1"
#define PIPE_SIZE_MAX (1 << 20)
#define WRITER_RETRY_MS 1000
#define WRITER_RESTART_USEC (1000ULL * 1000ULL)

struct journal_out {
        int fd;
        bool object_pid;       /* event pids are those journald sees: OBJECT_PID= */
        uint64_t window_start; /* CLOCK_MONOTONIC us */
        unsigned in_window;
        uint64_t suppressed;   /* in this window, to report when it ends */
        int last_error;        /* 0 when the last entry went */
};

struct file_out {
        int data_fd;            /* lines to the writer (non-blocking), or -1 */
        int status_fd;          /* its reports */
        sd_event_source *data_src, *status_src, *restart;
        struct buf queue;       /* lines not yet in the pipe */
        size_t queue_lines;     /* complete or partial lines in queue */
        struct buf status;      /* a report line being read */
        uint64_t sent;          /* lines handed to the current writer (pipe) */
        uint64_t writer_done;   /* lines the current writer reported written */
        bool mid_line;          /* the pipe got part of the queue's first line */
        int error;              /* what the writer reports failing, or 0 */
};

struct output {
        char *name;
        struct output_config cfg;
        size_t queue_max;  /* bytes of lines queued while the pipe is full */
        struct output_counters c;
        struct journal_out j;
        struct file_out f;
};

void output_config_init(struct output_config *oc)
{
        *oc = (struct output_config){
                .journal_burst = 1000,
                .journal_interval_us = 10ULL * 1000000ULL,
                .file_max_size = 64u << 20,
                .file_keep = 5,
        };
}

void output_config_done(struct output_config *oc)
{
        free(oc->file);
        oc->file = NULL;
}

bool output_config_any(const struct output_config *oc)
{
        return oc->journal || oc->file;
}

bool output_config_equal(const struct output_config *a, const struct output_config *b)
{
        return a->journal == b->journal && a->journal_burst == b->journal_burst &&
               a->journal_interval_us == b->journal_interval_us &&
               !a->file == !b->file && (!a->file || streq(a->file, b->file)) &&
               a->file_max_size == b->file_max_size && a->file_keep == b->file_keep;
}

const struct output_config *output_config(const struct output *o)
{
        return &o->cfg;
}

void output_counters(const struct output *o, struct output_counters *ret)
{
        *ret = o->c;
        ret->file_failing = o->f.error != 0 || (o->cfg.file && o->f.status_fd < 0);
        ret->journal_failing = o->j.last_error != 0;
}

/* --- journal --------------------------------------------------------------- */

/* Events carry pids of the initial PID namespace; journald (ours) names
 * processes in its own. The initial namespace has a fixed inode. */
static bool in_initial_pid_namespace(void)
{
        struct stat st;

        return stat("/proc/self/ns/pid", &st) == 0 && st.st_ino == 0xEFFFFFFCu;
}

/* One field of journald's native protocol: KEY=value, or, for a value with a
 * newline, KEY, its length (64 bits, little endian) and its bytes. */
static void field(struct buf *b, const char *key, const char *value, size_t n)
{
        buf_puts(b, key);
        if (memchr(value, '\n', n)) {
                uint64_t le = htole64(n);

                buf_putc(b, '\n');
                buf_put(b, (const char *)&le, sizeof(le));
        } else {
                buf_putc(b, '=');
        }
        buf_put(b, value, n);
        buf_putc(b, '\n');
}

static void field_u64(struct buf *b, const char *key, uint64_t v)
{
        char tmp[24];

        field(b, key, tmp, snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v));
}

/* " name=value" (a string in quotes) in the MESSAGE= of an event */
static void message_arg(struct buf *msg, const char *name, const char *value, size_t n, bool quote)
{
        buf_putc(msg, ' ');
        buf_puts(msg, name);
        buf_putc(msg, '=');
        if (quote)
                buf_putc(msg, '"');
        buf_put(msg, value ? value : "", n);
        if (quote)
                buf_putc(msg, '"');
}

/* True when the entry went. */
static bool journal_send(struct output *o, const struct buf *b, bool event)
{
        static const struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET };
        ssize_t n;
        int err;

        if (b->oom) {
                if (event)
                        o->c.journal_errors++;
                return false;
        }
        n = sendto(o->j.fd, b->data, b->len, MSG_DONTWAIT | MSG_NOSIGNAL,
                   (const struct sockaddr *)&sa, sizeof(sa));
        err = n < 0 ? errno : 0;
        if (!event)
                return !err;
        if (!err)
                o->c.journal_sent++;
        else if (err == EAGAIN)
                o->c.journal_busy++;
        else
                o->c.journal_errors++;
        if (err == EAGAIN)
                return false; /* journald is busy, not failing */
        if (err && err != o->j.last_error)
                log_warning("probe %s: cannot send events to the journal (%s): %s; they are "
                            "dropped and counted", o->name, JOURNAL_SOCKET, strerror(err));
        else if (!err && o->j.last_error)
                log_notice("probe %s: events reach the journal again", o->name);
        o->j.last_error = err;
        return !err;
}

/* The fields of one event (journalctl -o json shows them). */
static void journal_entry(struct buf *b, const struct output *o, const struct probe *p,
                          const struct event_view *v, uint64_t realtime_offset)
{
        const struct ut_event *e = v->e;
        const char *loc = format_location(p, v);
        struct buf msg = { 0 }, val = { 0 };
        char key[64];

        buf_reset(b);
        field(b, "MESSAGE_ID", EVENT_MESSAGE_ID, strlen(EVENT_MESSAGE_ID));
        field(b, "PRIORITY", "6", 1);
        field(b, "SYSLOG_IDENTIFIER", "utraced", 7);
        field(b, "UTRACE_PROBE", o->name, strlen(o->name));
        field_u64(b, "UTRACE_PROBE_ID", p->id);
        field_u64(b, "UTRACE_TS_NS", e->ts + realtime_offset);
        field_u64(b, "UTRACE_PID", e->pid);
        field_u64(b, "UTRACE_TID", e->tid);
        field_u64(b, "UTRACE_UID", e->uid);
        field(b, "UTRACE_COMM", e->comm, strnlen(e->comm, sizeof(e->comm)));
        /* journald adds what it knows of the process (OBJECT_COMM=, OBJECT_SYSTEMD_UNIT=, ...) */
        if (o->j.object_pid)
                field_u64(b, "OBJECT_PID", e->pid);
        buf_puts(&msg, o->name);
        buf_puts(&msg, ": ");
        buf_put(&msg, e->comm, strnlen(e->comm, sizeof(e->comm)));
        buf_putc(&msg, ' ');
        buf_u64(&msg, e->pid);
        buf_putc(&msg, '/');
        buf_u64(&msg, e->tid);
        if (loc) {
                field(b, "UTRACE_LOCATION", loc, strlen(loc));
                buf_puts(&msg, " at ");
                buf_puts(&msg, loc);
        }
        for (int i = 0; i < p->nfields; i++) {
                const struct probe_field *f = &p->fields[i];
                const struct ut_str *str;
                size_t n;

                if (f->hidden)
                        continue;
                n = (size_t)snprintf(key, sizeof(key), "UTRACE_ARG_%s", f->name);
                for (size_t k = 0; k < n; k++)
                        key[k] = (char)toupper((unsigned char)key[k]);
                buf_reset(&val);
                if (f->is_str) {
                        str = format_string(v, f);
                        if (!str) {
                                field(b, "UTRACE_UNREADABLE", f->name, strlen(f->name));
                                continue;
                        }
                        buf_put(&val, (const char *)(str + 1), str->len);
                        if (str->flags & UT_STR_TRUNCATED)
                                field(b, "UTRACE_TRUNCATED", f->name, strlen(f->name));
                } else if (!format_integer(&val, p, v, f)) {
                        continue;
                }
                field(b, key, val.data ? val.data : "", val.len);
                message_arg(&msg, f->name, val.data, val.len, f->is_str);
        }
        if (e->flags & UT_EV_RETURN) {
                buf_reset(&val);
                format_retval(&val, p, e);
                field(b, "UTRACE_RETVAL", val.data, val.len);
                message_arg(&msg, "retval", val.data, val.len, false);
        }
        if (e->flags & UT_EV_LATENCY) {
                field_u64(b, "UTRACE_LATENCY_NS", e->latency_ns);
                buf_reset(&val);
                buf_u64(&val, e->latency_ns);
                message_arg(&msg, "latency_ns", val.data, val.len, false);
        }
        field(b, "MESSAGE", msg.data ? msg.data : "", msg.len);
        b->oom |= msg.oom | val.oom;
        buf_free(&msg);
        buf_free(&val);
}

/* A new window of the rate limit: say what the last one suppressed. */
static void journal_window(struct output *o, uint64_t now)
{
        struct buf b = { 0 };
        char text[256];

        if (o->j.suppressed) {
                snprintf(text, sizeof(text), "%s: %llu events suppressed by the rate limit "
                         "(JournalRateLimitBurst=%u per %llu ms)", o->name,
                         (unsigned long long)o->j.suppressed, o->cfg.journal_burst,
                         (unsigned long long)(o->cfg.journal_interval_us / 1000));
                field(&b, "MESSAGE_ID", SUPPRESSED_MESSAGE_ID, strlen(SUPPRESSED_MESSAGE_ID));
                field(&b, "PRIORITY", "5", 1);
                field(&b, "SYSLOG_IDENTIFIER", "utraced", 7);
                field(&b, "UTRACE_PROBE", o->name, strlen(o->name));
                field_u64(&b, "UTRACE_SUPPRESSED", o->j.suppressed);
                field(&b, "MESSAGE", text, strlen(text));
                journal_send(o, &b, false);
                buf_free(&b);
        }
        o->j.window_start = now;
        o->j.in_window = 0;
        o->j.suppressed = 0;
}

static bool journal_event(struct output *o, const struct probe *p, const struct event_view *v,
                          uint64_t realtime_offset, struct buf *scratch)
{
        uint64_t now = now_ns(CLOCK_MONOTONIC) / 1000;

        if (o->cfg.journal_burst) {
                if (now - o->j.window_start >= o->cfg.journal_interval_us)
                        journal_window(o, now);
                if (o->j.in_window >= o->cfg.journal_burst) {
                        o->c.journal_ratelimited++;
                        o->j.suppressed++;
                        return false;
                }
                o->j.in_window++;
        }
        journal_entry(scratch, o, p, v, realtime_offset);
        return journal_send(o, scratch, true);
}

/* --- the file writer (a process of its own) ------------------------------- */

/* Tell the daemon; it reads promptly, and a report is a few bytes. */
static void report(const char *fmt, unsigned long long v)
{
        char line[64];
        int n = snprintf(line, sizeof(line), fmt, v);

        while (write(STDOUT_FILENO, line, n) < 0 && errno == EINTR)
                ;
}

struct writer {
        const struct output_config *cfg;
        int fd;
        uint64_t size;
        int error; /* reported, not yet recovered from */
};

/* A failed step: report it once, wait, and have the caller try again. */
static void writer_failed(struct writer *w, int err)
{
        if (err != w->error)
                report("e %llu\n", (unsigned long long)err);
        w->error = err;
        poll(NULL, 0, WRITER_RETRY_MS);
}

static void writer_ok(struct writer *w)
{
        if (w->error)
                report("o\n", 0);
        w->error = 0;
}

static int writer_open(struct writer *w)
{
        char dir[PATH_MAX], *slash;
        struct stat st;
        int fd, r;

        snprintf(dir, sizeof(dir), "%s", w->cfg->file);
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                r = mkdir_p(dir, 0755);
                if (r < 0)
                        return r;
        }
        fd = open(w->cfg->file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        w->fd = fd;
        w->size = (uint64_t)st.st_size;
        if (w->size) {
                char last;

                /* a line cut by a writer that died: end it, so that the next
                 * event starts a line of its own */
                if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') {
                        if (write(fd, "\n", 1) != 1) {
                                r = -errno;
                                close(fd);
                                w->fd = -1;
                                return r ? r : -EIO;
                        }
                        w->size++;
                }
        }
        return 0;
}

/* FILE -> FILE.1 -> ... -> FILE.keep (the oldest goes). Renames only: every
 * line stays in exactly one file. */
static int writer_rotate(struct writer *w)
{
        char from[PATH_MAX + 16], to[PATH_MAX + 16];

        for (unsigned k = w->cfg->file_keep; k > 1; k--) {
                snprintf(from, sizeof(from), "%s.%u", w->cfg->file, k - 1);
                snprintf(to, sizeof(to), "%s.%u", w->cfg->file, k);
                if (rename(from, to) < 0 && errno != ENOENT)
                        return -errno;
        }
        snprintf(to, sizeof(to), "%s.1", w->cfg->file);
        if (rename(w->cfg->file, to) < 0 && errno != ENOENT)
                return -errno;
        close(w->fd);
        w->fd = -1;
        report("r\n", 0);
        return 0;
}

/* Write the complete lines of data[0..n): returns once they are in a file. */
static void writer_lines(struct writer *w, const char *data, size_t n)
{
        size_t off = 0;

        while (off < n) {
                /* after a short write, the rest of its line goes first, in this file */
                bool mid_line = off && data[off - 1] != '\n';
                size_t chunk = 0, lines = 0;
                ssize_t k;
                int r;

                if (w->fd < 0) {
                        r = writer_open(w);
                        if (r < 0) {
                                writer_failed(w, -r);
                                continue;
                        }
                }
                /* the lines that fit below the size; one line at least */
                while (off + chunk < n) {
                        const char *nl = memchr(data + off + chunk, '\n', n - off - chunk);
                        size_t len = (size_t)(nl - (data + off + chunk)) + 1;

                        if ((chunk || w->size) && !(mid_line && !chunk) &&
                            w->size + chunk + len > w->cfg->file_max_size)
                                break;
                        chunk += len;
                        lines++;
                }
                if (!chunk) {
                        r = writer_rotate(w);
                        if (r < 0)
                                writer_failed(w, -r);
                        continue;
                }
                /* a short write leaves the rest for the next round: nothing twice */
                k = write(w->fd, data + off, chunk);
                if (k < 0) {
                        if (errno != EINTR)
                                writer_failed(w, errno);
                        continue;
                }
                if ((size_t)k < chunk) {
                        /* count the lines that ended within what went */
                        lines = 0;
                        for (ssize_t i = 0; i < k; i++)
                                lines += data[off + i] == '\n';
                }
                w->size += (uint64_t)k;
                off += (size_t)k;
                writer_ok(w);
                if (lines)
                        report("w %llu\n", lines);
        }
}

static _Noreturn void writer_main(const struct output_config *cfg)
{
        struct writer w = { .cfg = cfg, .fd = -1 };
        size_t cap = 1 << 20, len = 0;
        char *buf = malloc(cap);
        sigset_t all;

        sigfillset(&all);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        /* the daemon ends it by closing the pipe, once everything is written */
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        prctl(PR_SET_NAME, "utrace-writer");
        umask(0027); /* files 0640, directories 0750 */
        if (!buf)
                _exit(1);
        for (;;) {
                ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
                char *end;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
                end = memrchr(buf, '\n', len);
                if (!end) {
                        if (len == cap) /* a line longer than the buffer: cannot be */
                                _exit(1);
                        continue;
                }
                writer_lines(&w, buf, (size_t)(end - buf) + 1);
                len -= (size_t)(end - buf) + 1;
                memmove(buf, end + 1, len);
        }
        if (w.fd >= 0)
                close(w.fd);
        _exit(0);
}

/* --- the file, daemon side ------------------------------------------------- */

static int start_writer(struct output *o);

static void file_flush(struct output *o)
{
        struct file_out *f = &o->f;

        while (f->queue.len && f->data_fd >= 0) {
                ssize_t n = write(f->data_fd, f->queue.data, f->queue.len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break; /* EAGAIN: the pipe is full; EPIPE: the writer is gone */
                }
                for (ssize_t i = 0; i < n; i++)
                        if (f->queue.data[i] == '\n') {
                                f->queue_lines--;
                                f->sent++;
                        }
                f->mid_line = f->queue.data[n - 1] != '\n';
                buf_consume(&f->queue, (size_t)n);
        }
        if (f->data_src)
                sd_event_source_set_io_events(f->data_src, f->queue.len ? EPOLLOUT : 0);
}

static int on_data_writable(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        (void)s;
        (void)fd;
        (void)revents;
        file_flush(userdata);
        return 0;
}

static void handle_report(struct output *o, const char *line)
{
        struct file_out *f = &o->f;
        unsigned long long v;

        if (sscanf(line, "w %llu", &v) == 1) {
                f->writer_done += v;
                o->c.file_written += v;
        } else if (streq(line, "r")) {
                o->c.file_rotations++;
                log_info("probe %s: %s rotated", o->name, o->cfg.file);
        } else if (sscanf(line, "e %llu", &v) == 1) {
                f->error = (int)v;
                log_error("probe %s: cannot write %s: %s; retrying every second, events that do "
                          "not fit the queue meanwhile are dropped and counted", o->name,
                          o->cfg.file, strerror(f->error));
        } else if (streq(line, "o")) {
                f->error = 0;
                log_notice("probe %s: %s is written again", o->name, o->cfg.file);
        }
}

static void stop_writer(struct output *o);

static int on_restart(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct output *o = userdata;

        (void)usec;
        sd_event_source_disable_unref(s);
        o->f.restart = NULL;
        if (start_writer(o) < 0)
                log_error("probe %s: cannot start the writer of %s", o->name, o->cfg.file);
        return 0;
}

static int on_status(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct output *o = userdata;
        struct file_out *f = &o->f;
        char tmp[4096];
        ssize_t n = read(fd, tmp, sizeof(tmp));

        (void)s;
        (void)revents;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n > 0) {
                char *nl;

                buf_put(&f->status, tmp, (size_t)n);
                while (f->status.len && (nl = memchr(f->status.data, '\n', f->status.len))) {
                        *nl = 0;
                        handle_report(o, f->status.data);
                        buf_consume(&f->status, (size_t)(nl - f->status.data) + 1);
                }
                return 0;
        }
        /* the writer is gone: what it got and did not write is lost */
        o->c.file_writer_lost += f->sent - f->writer_done;
        log_error("probe %s: the writer of %s exited; %llu events it had were lost; "
                  "starting another in a second", o->name, o->cfg.file,
                  (unsigned long long)(f->sent - f->writer_done));
        stop_writer(o);
        sd_event_add_time_relative(sd_event_source_get_event(s), &f->restart, CLOCK_MONOTONIC,
                                   WRITER_RESTART_USEC, 0, on_restart, o);
        return 0;
}

static void stop_writer(struct output *o)
{
        struct file_out *f = &o->f;

        f->data_src = sd_event_source_disable_unref(f->data_src);
        f->status_src = sd_event_source_disable_unref(f->status_src);
        /* the writer writes what the pipe holds, then exits: not waited for */
        if (f->data_fd >= 0)
                close(f->data_fd);
        if (f->status_fd >= 0)
                close(f->status_fd);
        f->data_fd = f->status_fd = -1;
        if (f->mid_line) {
                /* the rest of a line the writer had the start of: never a line */
                char *nl = memchr(f->queue.data, '\n', f->queue.len);

                buf_consume(&f->queue, nl ? (size_t)(nl - f->queue.data) + 1 : f->queue.len);
                f->queue_lines--;
                o->c.file_writer_lost++;
                f->mid_line = false;
        }
        f->sent = f->writer_done = 0;
        f->error = 0;
        buf_reset(&f->status);
}

static int start_writer(struct output *o)
{
        struct file_out *f = &o->f;
        int data[2], status[2];
        sd_event *loop = NULL;
        pid_t pid;
        int r;

        if (pipe2(data, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(status, O_CLOEXEC) < 0) {
                r = -errno;
                close(data[0]);
                close(data[1]);
                return r;
        }
        /* the pipe holds as much as the queue, up to what it may */
        fcntl(data[1], F_SETPIPE_SZ, (int)MIN(o->queue_max, (size_t)PIPE_SIZE_MAX));
        /* twice, so that the writer is not the daemon's child: its end is seen
         * on the status pipe, and nobody needs to wait for it */
        pid = fork();
        if (pid == 0) {
                pid_t writer = fork();

                if (writer != 0)
                        _exit(writer < 0);
                if (dup2(data[0], STDIN_FILENO) < 0 || dup2(status[1], STDOUT_FILENO) < 0)
                        _exit(1);
                close_range(3, ~0U, 0);
                writer_main(&o->cfg);
        }
        close(data[0]);
        close(status[1]);
        if (pid < 0 || waitpid(pid, &r, 0) < 0 || r != 0) {
                r = pid < 0 ? -errno : -ECHILD;
                close(data[1]);
                close(status[0]);
                return r;
        }
        f->data_fd = data[1];
        f->status_fd = status[0];
        fcntl(f->data_fd, F_SETFL, O_NONBLOCK);
        fcntl(f->status_fd, F_SETFL, O_NONBLOCK);
        r = sd_event_default(&loop);
        if (r >= 0)
                r = sd_event_add_io(loop, &f->data_src, f->data_fd, 0, on_data_writable, o);
        if (r >= 0)
                r = sd_event_add_io(loop, &f->status_src, f->status_fd, EPOLLIN, on_status, o);
        sd_event_unref(loop);
        if (r < 0) {
                stop_writer(o);
                return r;
        }
        log_debug("probe %s: a writer writes %s", o->name, o->cfg.file);
        file_flush(o);
        return 0;
}

/* {"config":"NAME", then the event's params: the line without its envelope */
static bool file_event(struct output *o, const char *line, size_t len)
{
        static const char envelope[] = "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{";
        struct file_out *f = &o->f;
        size_t pre = sizeof(envelope) - 1, before = f->queue.len;

        if (len < pre + 3 || memcmp(line, envelope, pre) != 0)
                return false;
        if (f->queue.len + len + 64 + strlen(o->name) > o->queue_max) {
                o->c.file_queue_dropped++;
                return false;
        }
        buf_puts(&f->queue, "{\"config\":");
        buf_json_str(&f->queue, o->name, strlen(o->name));
        buf_putc(&f->queue, ',');
        buf_put(&f->queue, line + pre, len - pre - 2); /* without "}\n" of the envelope */
        buf_putc(&f->queue, '\n');
        if (f->queue.oom) {
                f->queue.len = before;
                f->queue.oom = false;
                o->c.file_queue_dropped++;
                return false;
        }
        f->queue_lines++;
        if (f->data_src)
                sd_event_source_set_io_events(f->data_src, EPOLLOUT);
        return true;
}

/* --- outputs --------------------------------------------------------------- */

void output_free(struct output *o)
{
        if (!o)
                return;
        if (o->cfg.file) {
                file_flush(o);
                if (o->f.queue_lines)
                        log_warning("probe %s: %zu events queued for %s are dropped", o->name,
                                    o->f.queue_lines, o->cfg.file);
                stop_writer(o);
                sd_event_source_disable_unref(o->f.restart);
        }
        if (o->j.fd >= 0)
                close(o->j.fd);
        buf_free(&o->f.queue);
        buf_free(&o->f.status);
        output_config_done(&o->cfg);
        free(o->name);
        free(o);
}

int output_new(const char *name, const struct output_config *oc, size_t queue_max,
               struct output **ret, struct error *err)
{
        struct output *o = calloc(1, sizeof(*o));
        int r;

        if (!o)
                return -ENOMEM;
        o->j.fd = o->f.data_fd = o->f.status_fd = -1;
        o->queue_max = queue_max;
        o->cfg = *oc;
        o->cfg.file = oc->file ? strdup(oc->file) : NULL;
        o->name = strdup(name);
        o->c.journal = oc->journal;
        o->c.file = oc->file != NULL;
        if (!o->name || (oc->file && !o->cfg.file)) {
                output_free(o);
                return -ENOMEM;
        }
        if (oc->journal) {
                o->j.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (o->j.fd < 0) {
                        r = -errno;
                        output_free(o);
                        return error_set(err, E_INTERNAL, r, "probe %s: journal socket: %s", name,
                                         strerror(-r));
                }
                o->j.window_start = now_ns(CLOCK_MONOTONIC) / 1000;
                o->j.object_pid = in_initial_pid_namespace();
        }
        if (oc->file) {
                r = start_writer(o);
                if (r < 0) {
                        output_free(o);
                        return error_set(err, E_INTERNAL, r, "probe %s: cannot start the writer "
                                         "of %s: %s", name, oc->file, strerror(-r));
                }
        }
        *ret = o;
        return 0;
}

bool output_event(struct output *o, const struct probe *p, const void *rec, size_t size,
                  const char *line, size_t len, uint64_t realtime_offset)
{
        bool taken = false;

        if (o->cfg.file)
                taken |= file_event(o, line, len);
        if (o->cfg.journal) {
                struct event_view v;
                struct buf scratch = { 0 };

                if (format_decode(p, rec, size, &v))
                        taken |= journal_event(o, p, &v, realtime_offset, &scratch);
                buf_free(&scratch);
        }
        return taken;
}
