/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "errors.h"
#include "spec.h"
#include "utrace.h"

struct loader;
struct output;

/* How to decode one named value of an event. */
struct probe_field {
        char name[SPEC_NAME_MAX];
        bool is_str;
        bool hidden;   /* read for a filter or a key only, not shown */
        uint8_t index; /* value index (integers) or string slot */
};

/* One instruction a probe is attached at. */
struct probe_location {
        char *name;     /* symbol[+off], 0xADDR, or provider:name */
        uint64_t offset;
        uint64_t ref_ctr;
        uint32_t site;
        char *args_text;/* USDT: the note's argument string */
        int nargs;      /* USDT: argument specs of this location */
        bool hole;      /* released with its file: free for the next file's locations */
        struct ut_arg_spec args[UT_MAX_ARGS];
};

/* The probe in one file: its locations and its pinned links. */
struct attachment {
        char *path;     /* what the kernel opened */
        int fd;         /* the file as examined, until its links exist; else -1 */
        dev_t dev;      /* the file as opened (stat) */
        ino_t ino;
        uint64_t kdev, kino; /* the file the kernel binds the uprobe to (on
                              * overlayfs the upper or lower one); kdev in the
                              * kernel's encoding */
        size_t loc_first, loc_count; /* in probe->locs */
        unsigned pin_first, pin_count; /* ROOT/links/<id>/<n> */
        bool watched;   /* found by the watcher in a process: released when no
                         * process maps it any more */
};

/* What the state file says a probe was going through when it was written:
 * a start that finds an intent finishes it (the probe is removed). */
enum probe_intent {
        PROBE_STEADY,
        PROBE_ATTACHING,
        PROBE_DETACHING,
};

struct probe {
        uint64_t id;
        uint32_t slot;
        uint32_t gen;
        char *request;  /* the attach parameters (JSON), for the state file */
        struct probe_spec spec;
        uid_t owner;
        /* The owner is not privileged: the probe names only files its process
         * maps, and fires only in processes the owner controls (BPF checks the
         * effective uid and dumpability at every hit). */
        bool restricted;
        void *client;   /* transient probes: the connection that owns them */
        uint64_t created; /* CLOCK_REALTIME ns */

        struct probe_location *locs;
        size_t nlocs, locs_cap;
        struct attachment *atts;
        size_t natts, atts_cap;
        unsigned next_pin;
        uint32_t shared_site; /* uprobes: one site for every location */
        bool have_shared_site;

        struct probe_field fields[SPEC_MAX_CAPTURES + SPEC_MAX_PREDS + 2];
        int nfields;
        struct ut_probe cfg;
        bool sleepable;
        uint8_t retval_cast;     /* the first cast of retval in --arg, --filter, hist(),
                                  * --by: the type an event's retval is shown with */
        uint64_t drops_reported; /* dropped hits (lost + busy) told to subscribers */
        /* what became of its events in this daemon (metrics.h) */
        uint64_t delivered;      /* copies queued for subscribers */
        uint64_t queue_dropped;  /* copies dropped: a subscriber's queue was full */
        uint64_t unclaimed;      /* events no subscriber or output took */
        struct output *output;   /* configured probes: journal and file (output.h) */

        char *config;   /* configured probes: the [Probe] Name= */
        enum probe_intent intent;
};

struct probe *probe_new(void);
void probe_free(struct probe *p);

/*
 * Resolve p->spec to files and locations (appends attachments without links).
 * Errors name the file, symbol or USDT probe at fault.
 */
int probe_resolve(struct probe *p, struct error *err);

/*
 * Whether p follows new files: a system-wide probe whose target is a name
 * ("libc.so.6"), a glob ("/tmp/simplehttp-*.so") or "*" (USDT: any object).
 */
bool probe_watched(const struct probe *p);
/* Whether a file mapped under name (the path a process sees) is p's target. */
bool probe_watch_matches(const struct probe *p, const char *name);
/* Resolve the file at path (named shown) as one more attachment of p, marked
 * watched: 1 if it has locations of p (the new attachment is p->atts[p->natts
 * - 1]), 0 if not or if p has that file already. */
int probe_add_file(struct probe *p, const char *path, const char *shown, uint64_t kdev,
                   uint64_t kino, struct error *err);
/* Forget attachment i (its pins are removed; its locations become holes). */
void probe_remove_attachment(struct probe *p, size_t i, const char *root);
/* Locations that are not holes. */
size_t probe_nlocations(const struct probe *p);

/* Build p->cfg and p->fields from the spec and the resolved locations. */
int probe_compile(struct probe *p, struct error *err);

/* Number of sites the probe needs and the site arguments of site k. */
size_t probe_nsites(const struct probe *p);
void probe_site(const struct probe *p, size_t k, struct ut_site *site);

/* Create, pin and close the links of attachment a. */
int probe_attach(struct probe *p, struct attachment *a, const struct loader *l, const char *root,
                 struct error *err);

/* Close the files kept open from resolution to attachment. */
void probe_release_files(struct probe *p);

/* Unpin every link of the probe (the kernel detaches them asynchronously). */
void probe_unpin(const struct probe *p, const char *root);
/* The pin of the probe's link n; n == UINT_MAX: the probe's directory. */
void probe_pin_path(char *buf, size_t size, const char *root, uint64_t id, unsigned n);

const char *probe_type_name(enum probe_type t);
/* Whether integer value idx of p's events at location loc (NULL: all of
 * them, as aggregated) reads as signed: by its cast, as retval, or as the
 * USDT note of the location declares it. */
bool probe_value_signed(const struct probe *p, unsigned idx, const struct probe_location *loc);
const struct probe_location *probe_location(const struct probe *p, uint32_t loc);
