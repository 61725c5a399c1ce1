/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <syslog.h>

/*
 * One logger. On the journal (JOURNAL_STREAM names stderr) every line carries
 * a "<N>" priority prefix that journald turns into the entry's priority; on a
 * terminal the priority is spelled out.
 */
void log_setup(const char *ident, int max_priority);
void log_set_max_priority(int priority);
int log_parse_priority(const char *name);
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
