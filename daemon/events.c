// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <time.h>

#include "events.h"
#include "format.h"
#include "log.h"
#include "util.h"

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
};

static int on_record(void *ctx, void *data, size_t size)
{
        struct events *ev = ctx;
        const struct ut_event *e = data;
        struct probe *p;

        ev->c.read++;
        ev->batch++;
        if (size < sizeof(*e)) {
                ev->c.malformed++;
                return 0;
        }
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
        if (!ev->ops.deliver(p, ev->line.data, ev->line.len, ev->userdata))
                ev->c.unclaimed++;
        return 0;
}

static int arm_timer(struct events *ev);

static void drain(struct events *ev)
{
        int r;

        ev->rt_offset = now_ns(CLOCK_REALTIME) - now_ns(CLOCK_MONOTONIC);
        ev->batch = 0;
        ev->c.wakeups++;
        r = ring_buffer__consume(ev->rb);
        if (r < 0)
                log_warning("ring buffer: %s", strerror(-r));
        if (ev->batch) {
                ev->ops.flush(ev->userdata);
                arm_timer(ev);
        }
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

void events_free(struct events *ev)
{
        if (!ev)
                return;
        sd_event_source_disable_unref(ev->io);
        sd_event_source_disable_unref(ev->timer);
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
        if (r < 0) {
                events_free(ev);
                return r;
        }
        /* whatever is queued from before this start is delivered first */
        drain(ev);
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
