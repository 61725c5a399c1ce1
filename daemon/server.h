/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "access.h"
#include "events.h"
#include "format.h"
#include "manager.h"

/*
 * The listening socket and every connection. Each client has an input
 * buffer (bounded: one request line at most request_max bytes) and an output
 * buffer in which events take at most queue_max bytes; an event that does not
 * fit is dropped for that client alone, counted, and reported to it in a
 * "lost" notification once it reads again. Hits the kernel dropped (ring
 * buffer full) are reported the same way to the subscribers of their probe.
 */
struct server;

struct client_loss {
        uint64_t probe;
        uint64_t count; /* dropped in the kernel, not yet reported */
        uint64_t total; /* dropped in the kernel since the probe was attached */
};

struct client {
        struct server *srv;
        struct client *next;
        uint64_t id;
        int fd;
        sd_event_source *src;
        struct caller who; /* the peer, as it connected */
        struct buf in;
        struct buf out;
        size_t out_sent;   /* bytes at the start of out already written */
        bool eof;          /* the peer will send nothing more */
        bool closing;      /* close once the output is written */
        bool subscribed;
        uint64_t *subs;    /* probe ids; none: every probe */
        size_t nsubs;
        uint64_t delivered;
        uint64_t dropped;         /* events dropped for this client in all */
        uint64_t dropped_unsent;  /* ... not yet reported to it */
        struct client_loss *klost; /* per probe of its subscription */
        size_t nklost, klost_cap;
};

struct server_opts {
        const char *socket_path; /* used when no socket is passed by systemd */
        size_t queue_max;
        size_t request_max;
        uint64_t flush_ns;
        gid_t group;             /* members are privileged (access.h); -1: none */
        gid_t metrics_group;     /* members read every probe's metrics; -1: none */
        unsigned max_user_clients; /* connections of one unprivileged user */
};

int server_new(sd_event *loop, struct manager *m, const struct server_opts *opts,
               struct server **ret, struct error *err);
void server_free(struct server *s);

struct manager *server_manager(struct server *s);
struct events *server_events(struct server *s);
struct client *server_clients(struct server *s);
const char *server_socket_path(struct server *s);
uint64_t server_started(struct server *s);

/* Whether c may see probe p: its own, or every probe when privileged. */
bool client_sees(const struct client *c, const struct probe *p);
/* Bytes queued for the client and not yet written. */
static inline size_t client_queued(const struct client *c)
{
        return c->out.len - c->out_sent;
}

/* Append a response or notification (never dropped) and write it out. */
void client_send(struct client *c, const char *data, size_t len);
int client_subscribe(struct client *c, const uint64_t *ids, size_t n);
void client_unsubscribe(struct client *c);
