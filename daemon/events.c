// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <time.h>

#include "events.h"
#include "format.h"
#include "log.h"
#include "output.h"
#include "util.h"

/* How long events wait at start for a first subscriber. */
#define HOLD_USEC (5ULL * 1000000ULL)

struct events {
        sd_event *loop;
        struct manager *m;
        struct ring_buffer *rb;
        const volatile uint64_t *cons_pos; /* read-only views for the fill level */
        const volatile uint64_t *prod_pos;
        sd_event_source *io;
        sd_event_source *timer;
        uint64_t flush_ns;
        uint64_t rt_offset;
        uint64_t batch;
        struct buf line;
        struct events_ops ops;
        void *userdata;
        struct events_counters c;
        uint64_t drops_seen; /* the BPF side's count of dropped hits, at the last drain */
        bool held;
        sd_event_source *hold;    /* ends the hold when nobody subscribes */
        sd_event_source *release; /* the first drain, after the current request */
        uint64_t started;         /* CLOCK_MONOTONIC ns */
        int retired;              /* replaced ring buffer still to drain, or -1 */
};

/* Whether the BPF side dropped hits since the last look. */
static bool new_drops(struct events *ev)
{
        struct ut_global g;
        __u32 zero = 0;

        if (bpf_map_lookup_elem(loader_map_fd(manager_loader(ev->m), MAP_GLOBALS), &zero, &g) < 0 ||
            g.drops == ev->drops_seen)
                return false;
        ev->drops_seen = g.drops;
        return true;
}

static int on_record(void *ctx, void *data, size_t size)
{
        struct events *ev = ctx;
        const struct ut_event *e = data;
        struct probe *p;
        bool claimed;

        ev->c.read++;
        ev->batch++;
        if (size < sizeof(*e)) {
                ev->c.malformed++;
                return 0;
        }
        if (e->ts < ev->started)
                ev->c.backlog++;
        p = manager_by_slot(ev->m, e->probe);
        if (!p || p->gen != e->gen) {
                ev->c.stale++;
                return 0;
        }
        buf_reset(&ev->line);
        if (!format_event(&ev->line, p, data, size, ev->rt_offset)) {
                ev->c.malformed++;
                return 0;
        }
        claimed = ev->ops.deliver(p, ev->line.data, ev->line.len, ev->userdata);
        if (p->output && output_event(p->output, p, data, size, ev->line.data, ev->line.len,
                                      ev->rt_offset))
                claimed = true;
        if (!claimed) {
                ev->c.unclaimed++;
                p->unclaimed++;
        }
        return 0;
}

static int arm_timer(struct events *ev);

/* The ring buffer of the previous instance, replaced at load: drained once. */
static void drain_retired(struct events *ev)
{
        struct ring_buffer *rb = ring_buffer__new(ev->retired, on_record, ev, NULL);

        if (!rb || ring_buffer__consume(rb) < 0)
                log_warning("cannot drain the replaced ring buffer: %s", strerror(errno));
        ring_buffer__free(rb);
        close(ev->retired);
        ev->retired = -1;
}

static void drain(struct events *ev)
{
        bool drops;
        int r;

        ev->rt_offset = now_ns(CLOCK_REALTIME) - now_ns(CLOCK_MONOTONIC);
        ev->batch = 0;
        ev->c.wakeups++;
        if (ev->retired >= 0)
                drain_retired(ev);
        r = ring_buffer__consume(ev->rb);
        if (r < 0)
                log_warning("ring buffer: %s", strerror(-r));
        drops = new_drops(ev);
        if (drops)
                ev->ops.dropped(ev->userdata);
        if (ev->batch || drops)
                ev->ops.flush(ev->userdata);
        if (ev->batch)
                arm_timer(ev);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        (void)s;
        (void)usec;
        drain(userdata);
        return 0;
}

static int arm_timer(struct events *ev)
{
        uint64_t now;
        int r;

        sd_event_now(ev->loop, CLOCK_MONOTONIC, &now);
        if (!ev->timer) {
                /* accuracy 0 would mean sd-event's default of 250 ms */
                r = sd_event_add_time(ev->loop, &ev->timer, CLOCK_MONOTONIC,
                                      now + ev->flush_ns / 1000, MAX(ev->flush_ns / 4000, 1),
                                      on_timer, ev);
                return r;
        }
        r = sd_event_source_set_time(ev->timer, now + ev->flush_ns / 1000);
        if (r >= 0)
                r = sd_event_source_set_enabled(ev->timer, SD_EVENT_ONESHOT);
        return r;
}

static int on_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        (void)s;
        (void)fd;
        (void)revents;
        drain(userdata);
        return 0;
}

static int on_release(sd_event_source *s, void *userdata)
{
        (void)s;
        drain(userdata);
        return 0;
}

void events_release(struct events *ev)
{
        if (!ev->held)
                return;
        ev->held = false;
        sd_event_source_set_enabled(ev->hold, SD_EVENT_OFF);
        sd_event_source_set_enabled(ev->io, SD_EVENT_ON);
        if (sd_event_add_defer(ev->loop, &ev->release, on_release, ev) >= 0)
                sd_event_source_set_enabled(ev->release, SD_EVENT_ONESHOT);
        else
                drain(ev);
}

static int on_hold_end(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct events *ev = userdata;
        uint64_t pending = events_pending(ev);

        (void)s;
        (void)usec;
        if (pending)
                log_notice("no client subscribed within %llu s of the start: the %llu bytes of "
                           "events waiting are drained, and counted as unclaimed if nobody "
                           "receives them", HOLD_USEC / 1000000, (unsigned long long)pending);
        events_release(ev);
        return 0;
}

bool events_held(const struct events *ev)
{
        return ev->held;
}

void events_free(struct events *ev)
{
        if (!ev)
                return;
        sd_event_source_disable_unref(ev->io);
        sd_event_source_disable_unref(ev->timer);
        sd_event_source_disable_unref(ev->hold);
        sd_event_source_disable_unref(ev->release);
        if (ev->retired >= 0)
                close(ev->retired);
        ring_buffer__free(ev->rb);
        if (ev->cons_pos)
                munmap((void *)ev->cons_pos, sysconf(_SC_PAGESIZE));
        if (ev->prod_pos)
                munmap((void *)ev->prod_pos, sysconf(_SC_PAGESIZE));
        buf_free(&ev->line);
        free(ev);
}

int events_new(sd_event *loop, struct manager *m, uint64_t flush_ns, const struct events_ops *ops,
               void *userdata, struct events **ret)
{
        struct events *ev = calloc(1, sizeof(*ev));
        int r;

        if (!ev)
                return -ENOMEM;
        ev->loop = loop;
        ev->m = m;
        ev->flush_ns = flush_ns;
        ev->ops = *ops;
        ev->userdata = userdata;
        ev->started = now_ns(CLOCK_MONOTONIC);
        ev->retired = loader_take_retired_events(manager_loader(m));
        ev->rb = ring_buffer__new(loader_map_fd(manager_loader(m), MAP_EVENTS), on_record, ev, NULL);
        if (!ev->rb) {
                r = -errno;
                events_free(ev);
                return r;
        }
        {
                long page = sysconf(_SC_PAGESIZE);
                int fd = loader_map_fd(manager_loader(m), MAP_EVENTS);
                void *c = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
                void *pp = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, page);

                ev->cons_pos = c == MAP_FAILED ? NULL : c;
                ev->prod_pos = pp == MAP_FAILED ? NULL : pp;
        }
        /* edge-triggered: only the wakeups the programs ask for (above the
         * watermark, or the first record in 2 ms) dispatch a drain; level-
         * triggered, any turn of the loop with a record pending would */
        r = sd_event_add_io(loop, &ev->io, ring_buffer__epoll_fd(ev->rb), EPOLLIN | EPOLLET,
                            on_readable, ev);
        if (r >= 0)
                r = sd_event_source_set_enabled(ev->io, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(loop, &ev->hold, CLOCK_MONOTONIC, HOLD_USEC,
                                               HOLD_USEC / 10, on_hold_end, ev);
        if (r < 0) {
                events_free(ev);
                return r;
        }
        /* drops from before this start are in the counters, not news */
        new_drops(ev);
        ev->held = true;
        *ret = ev;
        return 0;
}

const struct events_counters *events_counters(const struct events *ev)
{
        return &ev->c;
}

uint64_t events_pending(const struct events *ev)
{
        if (!ev->cons_pos || !ev->prod_pos)
                return 0;
        return *ev->prod_pos - *ev->cons_pos;
}
