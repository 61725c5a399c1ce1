// SPDX-License-Identifier: GPL-2.0-only
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

static const char *log_ident = "utraced";
static int log_max = LOG_INFO;
static bool log_journal;

static const char *const prio_names[] = {
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

void log_setup(const char *ident, int max_priority)
{
        const char *js = getenv("JOURNAL_STREAM");
        struct stat st;

        log_ident = ident;
        log_max = max_priority;
        if (js && fstat(STDERR_FILENO, &st) == 0) {
                unsigned long long dev, ino;

                if (sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
                    dev == (unsigned long long)st.st_dev && ino == (unsigned long long)st.st_ino)
                        log_journal = true;
        }
}

void log_set_max_priority(int priority)
{
        log_max = priority;
}

int log_parse_priority(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(prio_names); i++)
                if (streq(name, prio_names[i]))
                        return (int)i;
        if (streq(name, "err"))
                return LOG_ERR;
        if (streq(name, "warn"))
                return LOG_WARNING;
        return -EINVAL;
}

void log_msg(int priority, const char *fmt, ...)
{
        char buf[2048];
        va_list ap;

        if (priority > log_max)
                return;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (log_journal)
                fprintf(stderr, "<%d>%s\n", priority, buf);
        else if (priority <= LOG_WARNING)
                fprintf(stderr, "%s: %s: %s\n", log_ident, prio_names[priority & 7], buf);
        else
                fprintf(stderr, "%s: %s\n", log_ident, buf);
}
