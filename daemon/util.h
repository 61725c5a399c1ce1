/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline void closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

static inline bool streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

static inline bool startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A device number as the kernel writes it in its own structures
 * (major << 20 | minor), from a user-space dev_t. */
static inline unsigned long long kernel_dev(unsigned long long dev)
{
        unsigned long long major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xfffff000);
        unsigned long long minor = (dev & 0xff) | ((dev >> 12) & 0xffffff00);

        return major << 20 | minor;
}

/* Grow *array to hold at least n elements of size sz; 0 or -ENOMEM. */
int grow_array(void *array, size_t *capacity, size_t n, size_t sz);

/* Parse a whole unsigned integer (decimal or 0x hex); 0 or -EINVAL/-ERANGE. */
int parse_u64(const char *s, unsigned long long *ret);
/* Same, signed, accepting a leading '-'. */
int parse_s64(const char *s, long long *ret);

/* Read a whole small file (procfs) into a NUL-terminated buffer. */
int read_file(const char *path, char **ret, size_t max);

/* mkdir -p with mode; 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

/* Write data to path atomically (temporary file, fsync, rename). */
int write_file_atomic(const char *path, const char *data, size_t len);

/* Monotonic and realtime clocks in ns. */
unsigned long long now_ns(int clock);
