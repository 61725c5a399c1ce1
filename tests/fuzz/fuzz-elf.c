// SPDX-License-Identifier: GPL-2.0-only
/* Fuzz target: an ELF file (symbols, versions, address translation, USDT
 * notes and their argument specs, build-id), read through a memfd so the
 * daemon's own file path is exercised. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elffile.h"
#include "usdt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct elf_file *f = NULL;
        struct elf_symbol *syms = NULL;
        struct usdt_note *notes = NULL;
        struct error err = { 0 };
        char path[64], id[256];
        int fd, n;

        fd = memfd_create("fuzz-elf", 0);
        if (fd < 0)
                return 0;
        if (write(fd, data, size) != (ssize_t)size) {
                close(fd);
                return 0;
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (elf_file_open(path, &f, &err) == 0) {
                n = elf_find_symbols(f, "*", true, &syms);
                for (int i = 0; i < n; i++) {
                        uint64_t off;

                        elf_addr_to_offset(f, syms[i].addr, &off);
                }
                if (n > 0)
                        elf_symbols_free(syms, n);
                n = elf_find_symbols(f, "main@@V1", false, &syms);
                if (n > 0)
                        elf_symbols_free(syms, n);
                n = elf_usdt_notes(f, &notes, &err);
                for (int i = 0; i < n; i++) {
                        struct ut_arg_spec a[UT_MAX_ARGS];
                        struct error aerr = { 0 };

                        usdt_parse_args(notes[i].args, a, UT_MAX_ARGS, &aerr);
                }
                if (n > 0)
                        usdt_notes_free(notes, n);
                elf_build_id(f, id, sizeof(id));
                elf_file_free(f);
        }
        close(fd);
        return 0;
}
