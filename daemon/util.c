// SPDX-License-Identifier: GPL-2.0-only
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

int grow_array(void *array, size_t *capacity, size_t n, size_t sz)
{
        void **a = array;
        size_t cap = *capacity;
        void *p;

        if (n <= cap)
                return 0;
        if (cap < 8)
                cap = 8;
        while (cap < n) {
                if (cap > SIZE_MAX / 2 / sz)
                        return -ENOMEM;
                cap *= 2;
        }
        p = realloc(*a, cap * sz);
        if (!p)
                return -ENOMEM;
        *a = p;
        *capacity = cap;
        return 0;
}

int parse_u64(const char *s, unsigned long long *ret)
{
        unsigned long long v;
        char *end;

        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno)
                return -errno;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_s64(const char *s, long long *ret)
{
        unsigned long long v;
        int r;

        if (s && *s == '-') {
                r = parse_u64(s + 1, &v);
                if (r < 0)
                        return r;
                if (v > (unsigned long long)LLONG_MAX + 1)
                        return -ERANGE;
                *ret = (long long)(0 - v);
                return 0;
        }
        r = parse_u64(s, &v);
        if (r < 0)
                return r;
        if (v > LLONG_MAX)
                return -ERANGE;
        *ret = (long long)v;
        return 0;
}

int read_file(const char *path, char **ret, size_t max)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n;

                if (grow_array(&buf, &cap, len + 4097, 1) < 0)
                        return -ENOMEM;
                n = read(fd, buf + len, cap - len - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += n;
                if (len > max)
                        return -EFBIG;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        return (int)MIN(len, (size_t)INT_MAX);
}

int mkdir_p(const char *path, unsigned mode)
{
        char buf[PATH_MAX];
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, path, len + 1);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int write_file_atomic(const char *path, const char *data, size_t len)
{
        char tmp[PATH_MAX];
        _cleanup_close_ int fd = -1;
        size_t done = 0;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        while (done < len) {
                ssize_t n = write(fd, data + done, len - done);

                if (n < 0) {
                        int r = -errno;

                        if (errno == EINTR)
                                continue;
                        unlink(tmp);
                        return r;
                }
                done += n;
        }
        if (fsync(fd) < 0 || rename(tmp, path) < 0) {
                int r = -errno;

                unlink(tmp);
                return r;
        }
        return 0;
}

unsigned long long now_ns(int clock)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
