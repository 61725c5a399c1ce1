// SPDX-License-Identifier: GPL-2.0-only
/*
 * Watched probes in the probe module: which files a target matches, and the
 * attachments a watched probe gains and loses (locations freed by a released
 * file are reused by the next one). argv[1]: a library with the USDT probe
 * simplehttp:file_transfer.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "probe.h"
#include "tap.h"

static struct probe *watched(const char *text)
{
        struct probe *p = probe_new();
        struct error err = { 0 };

        if (spec_parse_probe(text, 0, &p->spec, &err) < 0) {
                printf("# %s: %s\n", text, err.msg);
                probe_free(p);
                return NULL;
        }
        return p;
}

static bool matches(const char *spec, const char *name)
{
        struct probe *p = watched(spec);
        bool r = p && probe_watch_matches(p, name);

        probe_free(p);
        return r;
}

static void test_matching(void)
{
        struct probe *p = watched("uprobe:libc.so.6:malloc");

        CHECK(p && probe_watched(p), "a library name is watched");
        p->spec.pid = 1;
        CHECK(!probe_watched(p), "not with a pid");
        p->spec.pid = 0;
        p->restricted = true;
        CHECK(!probe_watched(p), "not for an unprivileged owner");
        probe_free(p);
        p = watched("uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc");
        CHECK(p && !probe_watched(p), "a path is not watched");
        probe_free(p);
        CHECK(matches("uprobe:libc.so.6:malloc", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
              "a name matches the base name");
        CHECK(matches("uprobe:libc.so:malloc", "/lib/libc.so.6"), "libc.so matches libc.so.6");
        CHECK(!matches("uprobe:libc.so.6:malloc", "/lib/libc.so.6.bak"), "but not a longer name");
        CHECK(!matches("uprobe:libc:malloc", "/lib/libc.so.6"), "nor a prefix that is no .so");
        CHECK(matches("uprobe:libfoo.so.1:f", "/lib/libfoo.so.1.2.3"), "a longer version");
        CHECK(matches("uprobe:libc.so.6:malloc", "/lib/libc.so.6 (deleted)"),
              "a deleted file keeps its name");
        CHECK(matches("usdt:/tmp/simplehttp-*.so:simplehttp:file_transfer",
                      "/tmp/simplehttp-Ab12Cd.so"), "a glob with a / matches the path");
        CHECK(!matches("usdt:/tmp/simplehttp-*.so:simplehttp:file_transfer",
                       "/var/tmp/simplehttp-Ab12Cd.so"), "and only the path");
        CHECK(matches("uprobe:libssl.so*:SSL_read", "/opt/x/libssl.so.3"),
              "a glob without a / matches the base name");
        CHECK(matches("usdt:*:simplehttp:file_transfer", "/anything"), "* matches every file");
}

static int copy(const char *from, const char *to)
{
        int in = open(from, O_RDONLY | O_CLOEXEC), out;
        struct stat st;
        ssize_t n;

        if (in < 0 || fstat(in, &st) < 0)
                return -1;
        out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        n = out < 0 ? -1 : sendfile(out, in, NULL, st.st_size);
        close(in);
        if (out >= 0)
                close(out);
        return n == st.st_size ? 0 : -1;
}

static int add(struct probe *p, const char *path)
{
        struct error err = { 0 };
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        return probe_add_file(p, path, path, kernel_dev(st.st_dev), st.st_ino, &err);
}

static void test_attachments(const char *provider)
{
        char dir[] = "/tmp/utrace-test-probe-XXXXXX", files[4][64];
        struct probe *p = watched("usdt:*:simplehttp:file_transfer");
        struct error err = { 0 };

        if (p)
                p->spec.default_caps = true; /* no --arg: every argument */
        if (!p || !mkdtemp(dir)) {
                CHECK(false, "setup");
                return;
        }
        for (int i = 0; i < 4; i++) {
                snprintf(files[i], sizeof(files[i]), "%s/simplehttp-%d.so", dir, i);
                if (copy(provider, files[i]) < 0)
                        CHECK(false, "copy %s", files[i]);
        }
        for (int i = 0; i < 3; i++)
                CHECK(add(p, files[i]) == 1, "file %d attached", i);
        CHECK(p->natts == 3 && p->nlocs == 3, "three files, one location each");
        CHECK(add(p, files[1]) == 0, "a file is attached once");
        CHECK(p->atts[1].watched && streq(p->atts[1].path, files[1]), "shown by its path");
        CHECK(add(p, "/bin/sh") < 0 && p->natts == 3, "a file without the probe adds nothing");
        CHECK(probe_compile(p, &err) == 0 && p->cfg.nvals == 3,
              "compiled: the note's three arguments (%s)", err.msg);

        probe_remove_attachment(p, 1, dir);
        CHECK(p->natts == 2 && p->nlocs == 3 && p->locs[1].hole, "a released file leaves a hole");
        CHECK(!probe_location(p, 1), "which no event names");
        CHECK(probe_nlocations(p) == 2, "two locations left");
        CHECK(add(p, files[3]) == 1 && p->atts[2].loc_first == 1 && p->nlocs == 3 &&
                      !p->locs[1].hole && probe_location(p, 1),
              "the next file fills the hole");
        CHECK(probe_compile(p, &err) == 0, "compiles with holes filled: %s", err.msg);
        probe_remove_attachment(p, 1, dir); /* files[2], the last locations */
        CHECK(p->natts == 2 && p->nlocs == 2, "a released tail is trimmed");
        probe_remove_attachment(p, 0, dir);
        CHECK(p->natts == 1 && p->nlocs == 2 && p->locs[0].hole, "a hole at the start");
        probe_remove_attachment(p, 0, dir);
        CHECK(p->natts == 0 && p->nlocs == 0, "nothing left: no location kept");
        probe_free(p);
        for (int i = 0; i < 4; i++)
                unlink(files[i]);
        rmdir(dir);
}

int main(int argc, char **argv)
{
        test_matching();
        CHECK(kernel_dev(makedev(254, 0)) == 254ULL << 20, "device numbers as the kernel has them");
        CHECK(kernel_dev(makedev(0, 41)) == 41, "an anonymous device");
        CHECK(kernel_dev(makedev(259, 70000)) == (259ULL << 20 | 70000), "large minors");
        if (argc > 1)
                test_attachments(argv[1]);
        else
                CHECK(false, "usage: test-probe PROVIDER.so");
        return tap_done();
}
