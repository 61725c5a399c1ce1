/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * One HTTP/1.x exchange on a connection handed over by an inetd-style
 * listener (systemd's Accept=yes: the connection is stdin and stdout):
 * GET or HEAD /metrics gets the daemon's metrics, in OpenMetrics when the
 * Accept header asks for it, else in the Prometheus text format. The
 * request is read for at most timeout_ms and 8 KiB; then the connection
 * closes.
 */
struct http_body {
        char *data;          /* freed by http_serve */
        size_t len;
        char *content_type;  /* freed by http_serve */
};

/* Fills body, or returns an error message (freed by http_serve) for a 503. */
typedef char *(*http_fetch_fn)(bool openmetrics, struct http_body *body, void *userdata);

/* 0 when a 200 was sent, 1 for any other status. */
int http_serve(int in, int out, int timeout_ms, http_fetch_fn fetch, void *userdata);
