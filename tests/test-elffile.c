// SPDX-License-Identifier: GPL-2.0-only
/* Usage: test-elffile TARGET TARGET-STRIPPED (the fixtures). */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "elffile.h"
#include "tap.h"
#include "target.h"

static void test_fixture(const char *path, const char *stripped)
{
        struct elf_file *f = NULL, *s = NULL;
        struct elf_symbol *syms = NULL;
        struct error err = { 0 };
        uint64_t off;
        char id[64];
        int n;

        CHECK(elf_file_open(path, &f, &err) == 0, "open fixture: %s", err.msg);
        if (!f)
                return;
        n = elf_find_symbols(f, "ut_add", false, &syms);
        CHECK(n == 1, "ut_add found once (%d)", n);
        if (n == 1) {
                CHECK(elf_addr_to_offset(f, syms[0].addr, &off) == 0 && off == syms[0].offset,
                      "offset of ut_add is consistent");
                CHECK(syms[0].size > 0 && !syms[0].ifunc, "ut_add has a size, not an IFUNC");
        }
        elf_symbols_free(syms, n);
        n = elf_find_symbols(f, "ut_*", true, &syms);
        CHECK(n >= 7, "glob ut_* finds the fixture functions (%d)", n);
        elf_symbols_free(syms, n);
        n = elf_find_symbols(f, "no_such_function", false, &syms);
        CHECK(n == 0, "a missing symbol is not found");
        elf_symbols_free(syms, n);
        n = elf_list_symbols(f, "ut_a*", &syms);
        CHECK(n == 2 && streq(syms[0].name, "ut_add") && streq(syms[1].name, "ut_args8"),
              "listing ut_a*: ut_add, ut_args8 (%d)", n);
        elf_symbols_free(syms, n);
        CHECK(elf_file_has_symtab(f), "fixture has .symtab");
        CHECK(elf_build_id(f, id, sizeof(id)) == 0 && strlen(id) == 40, "build-id %s", id);
        CHECK(elf_addr_to_offset(f, 0x10, &off) < 0, "an address outside code is refused");

        CHECK(elf_file_open(stripped, &s, &err) == 0, "open stripped fixture");
        if (s) {
                CHECK(!elf_file_has_symtab(s), "stripped fixture has no .symtab");
                n = elf_find_symbols(s, "ut_add", false, &syms);
                CHECK(n == 0, "stripped fixture has no ut_add");
                elf_symbols_free(syms, n);
                elf_file_free(s);
        }
        elf_file_free(f);
}

static void test_libc(void)
{
        struct elf_file *f = NULL;
        struct elf_symbol *syms = NULL, *vsyms = NULL;
        struct error err = { 0 };
        char *libc = NULL;
        int n, m;

        CHECK(target_resolve("libc.so.6", 0, &libc, &err) == 0, "resolve libc.so.6: %s",
              libc ? libc : err.msg);
        if (!libc || elf_file_open(libc, &f, &err) < 0) {
                free(libc);
                return;
        }
        n = elf_find_symbols(f, "malloc", false, &syms);
        m = elf_find_symbols(f, "malloc@@GLIBC_2.2.5", false, &vsyms);
        CHECK(n == 1 && m == 1 && syms[0].addr == vsyms[0].addr,
              "malloc and malloc@@GLIBC_2.2.5 are one function (%d, %d)", n, m);
        elf_symbols_free(syms, n);
        elf_symbols_free(vsyms, m);
        n = elf_find_symbols(f, "getaddrinfo", false, &syms);
        CHECK(n == 1, "getaddrinfo found");
        elf_symbols_free(syms, n);
        n = elf_find_symbols(f, "strlen", false, &syms);
        CHECK(n == 1 && syms[0].ifunc, "strlen is an IFUNC");
        elf_symbols_free(syms, n);

        /* the listing: every version under its full name, sorted, no duplicates */
        n = elf_list_symbols(f, "memcpy", &syms);
        CHECK(n == 2, "memcpy: two versions listed (%d)", n);
        if (n == 2) {
                CHECK_STR(syms[0].name, "memcpy@@GLIBC_2.14", "default version, an IFUNC");
                CHECK(syms[0].ifunc, "memcpy@@GLIBC_2.14 is marked IFUNC");
                CHECK_STR(syms[1].name, "memcpy@GLIBC_2.2.5", "compat version");
                CHECK(!syms[1].ifunc && syms[1].size > 0, "compat memcpy is a function");
        }
        elf_symbols_free(syms, n);
        n = elf_list_symbols(f, "malloc@@*", &syms);
        CHECK(n == 1 && streq(syms[0].name, "malloc@@GLIBC_2.2.5"),
              "a glob on the versioned name (%d)", n);
        elf_symbols_free(syms, n);
        n = elf_list_symbols(f, "*", &syms);
        m = 0;
        for (int i = 1; i < n; i++)
                m += strcmp(syms[i - 1].name, syms[i].name) >= 0 &&
                     strcspn(syms[i - 1].name, "@") == strcspn(syms[i].name, "@") &&
                     syms[i - 1].addr >= syms[i].addr;
        CHECK(n > 2000 && m == 0, "all of libc, sorted, without duplicates (%d)", n);
        elf_symbols_free(syms, n);
        {
                struct usdt_note *notes = NULL;

                CHECK(elf_usdt_notes(f, &notes, &err) == -ENOENT && err.code == E_NO_USDT &&
                              strstr(err.msg, "no .note.stapsdt"),
                      "libc has no USDT notes: %s", err.msg);
        }
        elf_file_free(f);
        free(libc);
}

static void test_errors(void)
{
        struct elf_file *f = NULL;
        struct error err = { 0 };

        CHECK(elf_file_open("/nonexistent/file", &f, &err) < 0 && err.code == E_NO_FILE,
              "missing file: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(elf_file_open("/etc/hostname", &f, &err) < 0 && err.code == E_NOT_ELF,
              "not ELF: %s", err.msg);
        memset(&err, 0, sizeof(err));
        CHECK(elf_file_open("/etc", &f, &err) < 0 && err.code == E_NOT_ELF, "directory: %s",
              err.msg);
}

static void test_usdt(void)
{
        struct elf_file *f = NULL;
        struct usdt_note *notes = NULL;
        struct error err = { 0 };
        bool entry = false;
        int n;

        if (elf_file_open("/usr/bin/python3.11", &f, &err) < 0) {
                CHECK(0, "python3.11 present: %s", err.msg);
                return;
        }
        n = elf_usdt_notes(f, &notes, &err);
        CHECK(n >= 8, "python3.11 has USDT notes (%d)", n);
        for (int i = 0; i < n; i++)
                if (streq(notes[i].provider, "python") && streq(notes[i].name, "function__entry"))
                        entry = notes[i].offset && notes[i].args[0];
        CHECK(entry, "python:function__entry with a location and arguments");
        usdt_notes_free(notes, n);
        elf_file_free(f);
}

/* A copy of src with len bytes at off replaced (or cut at off when data is NULL). */
static char *patched(const char *src, size_t off, const void *data, size_t len)
{
        static char path[] = "/tmp/utrace-elf-XXXXXX";
        char *buf = NULL;
        int fd, n;

        strcpy(path, "/tmp/utrace-elf-XXXXXX");
        n = read_file(src, &buf, 64u << 20);
        fd = mkstemp(path);
        if (n < 0 || fd < 0 || off + len > (size_t)n) {
                free(buf);
                return NULL;
        }
        if (data)
                memcpy(buf + off, data, len);
        else
                n = (int)off;
        if (write(fd, buf, n) != n)
                n = -1;
        close(fd);
        free(buf);
        return n < 0 ? NULL : path;
}

/* Open, look up, list notes: whatever the file holds, an error or nothing, never a crash. */
static void hostile(const char *path, enum error_code want, const char *what)
{
        struct elf_file *f = NULL;
        struct elf_symbol *syms = NULL;
        struct usdt_note *notes = NULL;
        struct error err = { 0 };
        int r, n;

        if (!path) {
                CHECK(0, "%s: could not make the file", what);
                return;
        }
        r = elf_file_open(path, &f, &err);
        if (want != E_NONE) {
                CHECK(r < 0 && err.code == want, "%s: %s", what, err.msg);
        } else if (r == 0) {
                n = elf_find_symbols(f, "ut_*", true, &syms);
                if (n > 0)
                        elf_symbols_free(syms, n);
                memset(&err, 0, sizeof(err));
                n = elf_usdt_notes(f, &notes, &err);
                if (n > 0)
                        usdt_notes_free(notes, n);
                CHECK(1, "%s: handled (%s)", what, err.msg[0] ? err.msg : "no error");
        } else {
                CHECK(err.code != E_NONE && err.msg[0], "%s: %s", what, err.msg);
        }
        elf_file_free(f);
        unlink(path);
}

static void test_hostile(const char *target)
{
        const uint8_t class32 = 1;
        const uint16_t aarch64 = 183;
        const uint64_t huge = 0x7fffffffffffULL;
        const uint16_t many = 0xffff;

        hostile(patched(target, 100, NULL, 0), E_NOT_ELF, "truncated after the header");
        hostile(patched(target, 10, NULL, 0), E_NOT_ELF, "truncated inside the header");
        hostile(patched(target, 4, &class32, 1), E_NOT_ELF, "32-bit class");
        hostile(patched(target, 18, &aarch64, 2), E_NOT_ELF, "another architecture");
        /* e_shoff, e_phoff far past the end; e_shnum absurd */
        hostile(patched(target, 40, &huge, 8), E_NOT_ELF, "section headers past the end");
        hostile(patched(target, 32, &huge, 8), E_NOT_ELF, "program headers past the end");
        hostile(patched(target, 60, &many, 2), E_NOT_ELF, "65535 sections");
        hostile(patched(target, 0, "\x7f" "ELX", 4), E_NOT_ELF, "bad magic");
}

int main(int argc, char **argv)
{
        if (argc != 3) {
                fprintf(stderr, "usage: test-elffile TARGET TARGET-STRIPPED\n");
                return 2;
        }
        test_fixture(argv[1], argv[2]);
        test_libc();
        test_errors();
        test_usdt();
        test_hostile(argv[1]);
        return tap_done();
}
