/* SPDX-License-Identifier: GPL-2.0-only */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "errors.h"

struct elf_file;

struct elf_symbol {
        char *name;      /* as matched: plain, or name@VERSION / name@@VERSION */
        uint64_t addr;   /* virtual address in the file */
        uint64_t size;
        uint64_t offset; /* file offset: what a uprobe is attached at */
        bool ifunc;      /* GNU indirect function: addr is the resolver */
};

struct usdt_note {
        char *provider;
        char *name;
        uint64_t addr;        /* location, adjusted for prelink */
        uint64_t offset;      /* file offset of the location */
        uint64_t sema_addr;   /* 0: no semaphore */
        uint64_t sema_offset; /* file offset of the semaphore (ref_ctr_offset) */
        char *args;           /* the raw argument string */
};

int elf_file_open(const char *path, struct elf_file **ret, struct error *err);
void elf_file_free(struct elf_file *f);
const char *elf_file_path(const struct elf_file *f);
int elf_file_fd(const struct elf_file *f);
void elf_file_identity(const struct elf_file *f, dev_t *dev, ino_t *ino);
bool elf_file_has_symtab(const struct elf_file *f);

/* Virtual address to file offset through the PT_LOAD segments. */
int elf_addr_to_offset(const struct elf_file *f, uint64_t addr, uint64_t *ret);

/*
 * Function symbols whose name matches pattern: exactly, or as a glob when
 * glob is set. A name without '@' matches unversioned and default-version
 * symbols; "name@VERSION" and "name@@VERSION" match that version. Aliases at
 * one address are returned once. Returns the number found (maybe 0).
 */
int elf_find_symbols(const struct elf_file *f, const char *pattern, bool glob,
                     struct elf_symbol **ret);
void elf_symbols_free(struct elf_symbol *syms, int n);
/* The virtual address of the data object (STT_OBJECT) name; -ENOENT. */
int elf_find_object(const struct elf_file *f, const char *name, uint64_t *addr);

/*
 * Every function symbol of .symtab and .dynsym whose name (plain or
 * versioned) matches the glob pattern (NULL: all), for a listing: versioned names in
 * full (name@@VERSION, name@VERSION for compat versions), aliases each under
 * its own name, IFUNCs included; sorted by name. Returns the number found.
 */
int elf_list_symbols(const struct elf_file *f, const char *pattern, struct elf_symbol **ret);

/*
 * Every USDT note of the file; returns the number found. A file without a
 * .note.stapsdt section is an E_NO_USDT error that says whether the notes
 * were stripped.
 */
int elf_usdt_notes(const struct elf_file *f, struct usdt_note **ret, struct error *err);
void usdt_notes_free(struct usdt_note *notes, int n);

/* Hex build-id into buf (at least 41 bytes); -ENOENT without one. */
int elf_build_id(const struct elf_file *f, char *buf, size_t size);
