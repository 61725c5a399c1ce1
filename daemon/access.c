// SPDX-License-Identifier: GPL-2.0-only
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "access.h"
#include "util.h"

gid_t access_group(const char *name)
{
        struct group *g = getgrnam(name);

        return g ? g->gr_gid : (gid_t)-1;
}

static bool in_group(const struct caller *c, gid_t group)
{
        if (group == (gid_t)-1)
                return false;
        if (c->gid == group)
                return true;
        for (int i = 0; i < c->ngroups; i++)
                if (c->groups[i] == group)
                        return true;
        return false;
}

int access_identify(int fd, gid_t group, gid_t metrics_group, struct caller *c)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);

        memset(c, 0, sizeof(*c));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->pid = cred.pid;
        len = sizeof(c->groups);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
                c->ngroups = (int)(len / sizeof(gid_t));
        else
                c->ngroups = 0; /* more groups than we keep: none count */
        c->privileged = c->uid == 0 || in_group(c, group);
        c->reads_metrics = c->privileged || in_group(c, metrics_group);
        return 0;
}

/* "Uid:\t1000\t1000\t1000\t1000" (real, effective, saved, filesystem) */
static bool all_ids_are(const char *status, const char *key, unsigned id)
{
        const char *l = strstr(status, key);
        unsigned v[4];

        if (!l || sscanf(l + strlen(key), "%u %u %u %u", &v[0], &v[1], &v[2], &v[3]) != 4)
                return false;
        return v[0] == id && v[1] == id && v[2] == id && v[3] == id;
}

int access_check_process(const struct caller *c, pid_t pid, struct error *err)
{
        _cleanup_free_ char *status = NULL;
        char path[64];
        struct stat st;

        if (c->privileged)
                return 0;
        snprintf(path, sizeof(path), "/proc/%d", (int)pid);
        if (stat(path, &st) < 0)
                return error_set(err, E_NO_PROCESS, -ESRCH, "no process with pid %d", (int)pid);
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        if (read_file(path, &status, 1 << 16) < 0)
                return error_set(err, E_NO_PROCESS, -ESRCH, "no process with pid %d", (int)pid);
        /* ptrace's rule: every id of the process is the caller's, and the
         * process is dumpable (/proc/PID belongs to root when it is not) */
        if (!all_ids_are(status, "\nUid:", c->uid) || !all_ids_are(status, "\nGid:", c->gid) ||
            st.st_uid != c->uid)
                return error_set(err, E_PERMISSION, -EPERM,
                                 "process %d is not yours to trace (its user and group ids "
                                 "must all be yours, and it must be dumpable)", (int)pid);
        return 0;
}

int access_open_as(const struct caller *c, const char *path, struct error *err)
{
        gid_t saved[256];
        int nsaved, fd = -1, e = 0;

        if (c->privileged) {
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return error_set(err, E_NO_FILE, -errno, "cannot open %s: %s", path,
                                         strerror(errno));
                return fd;
        }
        /* the file system identity only (fsuid, fsgid, groups): switching fsuid
         * away from 0 also drops the capabilities that bypass file permissions;
         * every switch is checked, so a failure refuses rather than opens as root */
        nsaved = getgroups(ARRAY_SIZE(saved), saved);
        if (nsaved < 0 || setgroups(c->ngroups, c->groups) < 0)
                return error_set(err, E_INTERNAL, -EPERM,
                                 "cannot check access to %s as uid %u: %s", path,
                                 (unsigned)c->uid, strerror(errno));
        setfsgid(c->gid);
        setfsuid(c->uid);
        if ((uid_t)setfsuid((uid_t)-1) == c->uid && (gid_t)setfsgid((gid_t)-1) == c->gid) {
                fd = open(path, O_RDONLY | O_CLOEXEC);
                e = errno;
        } else {
                e = EPERM;
        }
        setfsuid(0);
        setfsgid(0);
        setgroups(nsaved, saved);
        if (fd < 0)
                return error_set(err, e == EACCES || e == EPERM ? E_PERMISSION : E_NO_FILE, -e,
                                 "cannot open %s as uid %u: %s", path, (unsigned)c->uid,
                                 strerror(e));
        return fd;
}
