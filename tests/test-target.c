// SPDX-License-Identifier: GPL-2.0-only
#include <stdlib.h>
#include <unistd.h>

#include "tap.h"
#include "target.h"

int main(void)
{
        struct error err = { 0 };
        char *path = NULL;
        char **paths = NULL, **names = NULL;
        int n;

        CHECK(target_ldcache_lookup("/etc/ld.so.cache", "libc.so.6", &path) == 0 && path &&
                      access(path, R_OK) == 0, "ld.so.cache knows libc.so.6: %s", path ? path : "-");
        free(path);
        path = NULL;
        CHECK(target_ldcache_lookup("/etc/ld.so.cache", "libnothere.so.9", &path) == -ENOENT,
              "unknown library");
        CHECK(target_ldcache_lookup("/etc/hostname", "libc.so.6", &path) == -EINVAL,
              "not a cache file");
        CHECK(target_resolve("sh", 0, &path, &err) == 0 && path && path[0] == '/',
              "a program name through PATH: %s", path ? path : err.msg);
        free(path);
        path = NULL;
        CHECK(target_resolve("libc.so.6", getpid(), &path, &err) == 0 &&
                      strstr(path, "/map_files/"), "a library mapped by a process: %s",
              path ? path : err.msg);
        free(path);
        path = NULL;
        memset(&err, 0, sizeof(err));
        CHECK(target_resolve("libdoesnotexist.so.1", 0, &path, &err) < 0 && err.code == E_NO_FILE,
              "unknown name: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(target_resolve("relative/path", 0, &path, &err) < 0 && err.code == E_INVALID_SPEC,
              "relative path: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(target_resolve("/bin/sh", 999999999, &path, &err) < 0 && err.code == E_NO_PROCESS,
              "missing process: %s", err.msg);
        n = target_process_objects(getpid(), &paths, &names, &err);
        CHECK(n >= 2, "this process maps at least itself and libc (%d)", n);
        strv_free(paths);
        strv_free(names);
        return tap_done();
}
