// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench-read SOCKET ID: the fastest client the protocol allows, so that the
 * streaming benchmark measures the daemon and not its reader. Subscribes to
 * probe ID, prints "ready" once subscribed, counts event lines and the
 * counts of "lost" notifications, and on SIGTERM or SIGINT (or when the
 * daemon goes away) prints "events N lost N".
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EVENT_PREFIX "{\"jsonrpc\":\"2.0\",\"method\":\"event\","
#define LOST_PREFIX "{\"jsonrpc\":\"2.0\",\"method\":\"lost\",\"params\":{\"count\":"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

int main(int argc, char **argv)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        unsigned long long events = 0, lost = 0;
        size_t cap = 4 << 20, len = 0;
        char *buf = malloc(cap), req[128];
        int fd, n;

        if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path) || !buf) {
                fprintf(stderr, "usage: bench-read SOCKET PROBE-ID\n");
                return 2;
        }
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        strcpy(sa.sun_path, argv[1]);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                perror("bench-read: connect");
                return 1;
        }
        n = snprintf(req, sizeof(req),
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscribe\",\"params\":{\"ids\":[%s]}}\n",
                     argv[2]);
        if (write(fd, req, n) != n) {
                perror("bench-read: write");
                return 1;
        }
        while (!stop) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                ssize_t k;
                char *line, *nl;

                if (poll(&pfd, 1, 100) <= 0)
                        continue;
                k = recv(fd, buf + len, cap - len, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += k;
                line = buf;
                while ((nl = memchr(line, '\n', buf + len - line))) {
                        if (strncmp(line, EVENT_PREFIX, sizeof(EVENT_PREFIX) - 1) == 0) {
                                events++;
                        } else if (strncmp(line, LOST_PREFIX, sizeof(LOST_PREFIX) - 1) == 0) {
                                lost += strtoull(line + sizeof(LOST_PREFIX) - 1, NULL, 10);
                        } else if (memmem(line, nl - line, "\"id\":1,", 7) ||
                                   memmem(line, nl - line, "\"id\":1}", 7)) {
                                if (!memmem(line, nl - line, "\"result\"", 8)) {
                                        fprintf(stderr, "bench-read: %.*s\n", (int)(nl - line), line);
                                        return 1;
                                }
                                printf("ready\n");
                                fflush(stdout);
                        }
                        line = nl + 1;
                }
                len = buf + len - line;
                memmove(buf, line, len);
                if (len == cap) {
                        fprintf(stderr, "bench-read: a line longer than %zu bytes\n", cap);
                        return 1;
                }
        }
        printf("events %llu lost %llu\n", events, lost);
        return 0;
}
