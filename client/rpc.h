/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* A connection to utraced: newline-delimited JSON-RPC 2.0. */
struct rpc {
        int fd;
        int next_id;
        char *buf;
        size_t len, cap;
        size_t consumed; /* bytes at the start of buf already handed out */
};

int rpc_connect(struct rpc *r, const char *path);
void rpc_close(struct rpc *r);

/*
 * Call method with params (taken); on success *result holds the result
 * (caller puts it). On a daemon error returns -EPROTO with *errmsg set
 * (caller frees) and *errname the error's name. Notifications that arrive
 * before the reply are handed to on_note (may be NULL: dropped).
 */
int rpc_call(struct rpc *r, const char *method, json_object *params, json_object **result,
             char **errmsg, void (*on_note)(const char *line, size_t len, void *ud), void *ud);

/* Next line from the daemon (without the newline), waiting at most
 * timeout_ms (-1: forever). 1: got one, 0: timeout, <0: error or EOF. */
int rpc_read_line(struct rpc *r, int timeout_ms, char **line, size_t *len);
