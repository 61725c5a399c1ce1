// SPDX-License-Identifier: GPL-2.0-only
/* Usage: test-elffile TARGET TARGET-STRIPPED (the fixtures). */
#include <stdlib.h>

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
        return tap_done();
}
