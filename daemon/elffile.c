// SPDX-License-Identifier: GPL-2.0-only
#include <fcntl.h>
#include <fnmatch.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>

#include "elffile.h"
#include "util.h"

#define NT_STAPSDT 3

struct elf_file {
        int fd;
        Elf *elf;
        char *path;
        GElf_Ehdr ehdr;
        size_t nphdrs;
        GElf_Phdr *phdrs;
        size_t shstrndx;
        dev_t dev;
        ino_t ino;
};

void elf_file_free(struct elf_file *f)
{
        if (!f)
                return;
        if (f->elf)
                elf_end(f->elf);
        if (f->fd >= 0)
                close(f->fd);
        free(f->phdrs);
        free(f->path);
        free(f);
}

static void elf_file_freep(struct elf_file **f)
{
        elf_file_free(*f);
}

int elf_file_open(const char *path, struct elf_file **ret, struct error *err)
{
        _cleanup_(elf_file_freep) struct elf_file *f = NULL;
        struct stat st;

        if (elf_version(EV_CURRENT) == EV_NONE)
                return error_set(err, E_INTERNAL, -EINVAL, "libelf: %s", elf_errmsg(-1));
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->fd = -1;
        f->path = strdup(path);
        if (!f->path)
                return -ENOMEM;
        f->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0)
                return error_set(err, E_NO_FILE, -errno, "cannot open %s: %s", path, strerror(errno));
        if (fstat(f->fd, &st) < 0)
                return error_set(err, E_NO_FILE, -errno, "cannot stat %s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return error_set(err, E_NOT_ELF, -EINVAL, "%s is not a regular file", path);
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->elf = elf_begin(f->fd, ELF_C_READ_MMAP, NULL);
        if (!f->elf || elf_kind(f->elf) != ELF_K_ELF)
                return error_set(err, E_NOT_ELF, -EINVAL, "%s is not an ELF file", path);
        if (!gelf_getehdr(f->elf, &f->ehdr))
                return error_set(err, E_NOT_ELF, -EINVAL, "%s: bad ELF header: %s", path,
                                 elf_errmsg(-1));
        if (f->ehdr.e_ident[EI_CLASS] != ELFCLASS64 || f->ehdr.e_machine != EM_X86_64)
                return error_set(err, E_NOT_ELF, -EINVAL,
                                 "%s is not an x86-64 ELF file (class %d, machine %d)", path,
                                 f->ehdr.e_ident[EI_CLASS], f->ehdr.e_machine);
        if (f->ehdr.e_type != ET_EXEC && f->ehdr.e_type != ET_DYN)
                return error_set(err, E_NOT_ELF, -EINVAL,
                                 "%s is neither an executable nor a shared object", path);
        if (f->ehdr.e_phoff + (uint64_t)f->ehdr.e_phnum * f->ehdr.e_phentsize > (uint64_t)st.st_size ||
            f->ehdr.e_shoff + (uint64_t)f->ehdr.e_shnum * f->ehdr.e_shentsize > (uint64_t)st.st_size ||
            f->ehdr.e_phoff > (uint64_t)st.st_size || f->ehdr.e_shoff > (uint64_t)st.st_size)
                return error_set(err, E_NOT_ELF, -EINVAL,
                                 "%s is truncated or corrupt: its headers lie past its end", path);
        if (elf_getphdrnum(f->elf, &f->nphdrs) < 0 || elf_getshdrstrndx(f->elf, &f->shstrndx) < 0)
                return error_set(err, E_NOT_ELF, -EINVAL, "%s: bad ELF headers: %s", path,
                                 elf_errmsg(-1));
        if (f->nphdrs > 4096)
                return error_set(err, E_NOT_ELF, -EINVAL, "%s: too many program headers", path);
        f->phdrs = calloc(f->nphdrs ? f->nphdrs : 1, sizeof(GElf_Phdr));
        if (!f->phdrs)
                return -ENOMEM;
        for (size_t i = 0; i < f->nphdrs; i++)
                if (!gelf_getphdr(f->elf, (int)i, &f->phdrs[i]))
                        return error_set(err, E_NOT_ELF, -EINVAL, "%s: bad program header %zu",
                                         path, i);
        *ret = TAKE_PTR(f);
        return 0;
}

const char *elf_file_path(const struct elf_file *f)
{
        return f->path;
}

int elf_file_fd(const struct elf_file *f)
{
        return f->fd;
}

void elf_file_identity(const struct elf_file *f, dev_t *dev, ino_t *ino)
{
        *dev = f->dev;
        *ino = f->ino;
}

int elf_addr_to_offset(const struct elf_file *f, uint64_t addr, uint64_t *ret)
{
        for (size_t i = 0; i < f->nphdrs; i++) {
                const GElf_Phdr *ph = &f->phdrs[i];

                if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
                        continue;
                if (addr >= ph->p_vaddr && addr - ph->p_vaddr < ph->p_filesz) {
                        *ret = addr - ph->p_vaddr + ph->p_offset;
                        return 0;
                }
        }
        return -ENOENT;
}

/* Same, for data (semaphores live in a writable segment). */
static int data_addr_to_offset(const struct elf_file *f, uint64_t addr, uint64_t *ret)
{
        for (size_t i = 0; i < f->nphdrs; i++) {
                const GElf_Phdr *ph = &f->phdrs[i];

                if (ph->p_type != PT_LOAD)
                        continue;
                if (addr >= ph->p_vaddr && addr - ph->p_vaddr < ph->p_filesz) {
                        *ret = addr - ph->p_vaddr + ph->p_offset;
                        return 0;
                }
        }
        return -ENOENT;
}

static Elf_Scn *find_section(const struct elf_file *f, const char *name, GElf_Shdr *shdr)
{
        Elf_Scn *scn = NULL;

        while ((scn = elf_nextscn(f->elf, scn))) {
                const char *n;

                if (!gelf_getshdr(scn, shdr))
                        continue;
                n = elf_strptr(f->elf, f->shstrndx, shdr->sh_name);
                if (n && streq(n, name))
                        return scn;
        }
        return NULL;
}

bool elf_file_has_symtab(const struct elf_file *f)
{
        GElf_Shdr shdr;

        return find_section(f, ".symtab", &shdr) != NULL;
}

/* Version names of .dynsym entries, from .gnu.version and .gnu.version_d. */
struct versions {
        Elf_Data *versym;
        const char **names; /* by version index */
        size_t n;
};

static void versions_load(const struct elf_file *f, struct versions *v)
{
        Elf_Scn *scn = NULL;

        memset(v, 0, sizeof(*v));
        while ((scn = elf_nextscn(f->elf, scn))) {
                GElf_Shdr shdr;

                if (!gelf_getshdr(scn, &shdr))
                        continue;
                if (shdr.sh_type == SHT_GNU_versym) {
                        v->versym = elf_getdata(scn, NULL);
                } else if (shdr.sh_type == SHT_GNU_verdef) {
                        Elf_Data *d = elf_getdata(scn, NULL);
                        size_t off = 0;

                        if (!d)
                                continue;
                        for (size_t i = 0; i < shdr.sh_info && i < 4096; i++) {
                                GElf_Verdef vd;
                                GElf_Verdaux vda;
                                const char *name;

                                if (!gelf_getverdef(d, (int)off, &vd) ||
                                    !gelf_getverdaux(d, (int)(off + vd.vd_aux), &vda))
                                        break;
                                name = elf_strptr(f->elf, shdr.sh_link, vda.vda_name);
                                if (name && vd.vd_ndx < 0x8000) {
                                        if (vd.vd_ndx >= v->n) {
                                                const char **nn = realloc(v->names,
                                                        (vd.vd_ndx + 1) * sizeof(*nn));
                                                if (!nn)
                                                        break;
                                                memset(nn + v->n, 0,
                                                       (vd.vd_ndx + 1 - v->n) * sizeof(*nn));
                                                v->names = nn;
                                                v->n = vd.vd_ndx + 1;
                                        }
                                        v->names[vd.vd_ndx] = name;
                                }
                                if (!vd.vd_next)
                                        break;
                                off += vd.vd_next;
                        }
                }
        }
}

static bool name_matches(const char *pattern, const char *name, bool glob)
{
        return glob ? fnmatch(pattern, name, 0) == 0 : streq(pattern, name);
}

void elf_symbols_free(struct elf_symbol *syms, int n)
{
        for (int i = 0; i < n; i++)
                free(syms[i].name);
        free(syms);
}

/* One defined function symbol, as .symtab or .dynsym holds it. */
struct func_sym {
        const char *name; /* as in the string table */
        const char *full; /* name@@VERSION or name@VERSION; name when unversioned */
        bool hidden;      /* a compat version: only reachable by its full name */
        const GElf_Sym *sym;
        uint64_t offset;
};

/* Call fn for every function symbol with code behind it; stops at fn's error. */
static int each_function(const struct elf_file *f, int (*fn)(const struct func_sym *, void *),
                         void *userdata)
{
        Elf_Scn *scn = NULL;
        struct versions v;
        int r = 0;

        versions_load(f, &v);
        while (r >= 0 && (scn = elf_nextscn(f->elf, scn))) {
                GElf_Shdr shdr;
                Elf_Data *data;
                bool dyn;

                if (!gelf_getshdr(scn, &shdr) ||
                    (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM))
                        continue;
                dyn = shdr.sh_type == SHT_DYNSYM;
                data = elf_getdata(scn, NULL);
                if (!data || !shdr.sh_entsize)
                        continue;
                for (size_t i = 0; r >= 0 && i < shdr.sh_size / shdr.sh_entsize; i++) {
                        char full[1024];
                        struct func_sym fs = { .full = NULL };
                        GElf_Sym sym;
                        int type;

                        if (!gelf_getsym(data, (int)i, &sym))
                                break;
                        type = GELF_ST_TYPE(sym.st_info);
                        if ((type != STT_FUNC && type != STT_GNU_IFUNC) ||
                            sym.st_shndx == SHN_UNDEF || !sym.st_value)
                                continue;
                        fs.name = elf_strptr(f->elf, shdr.sh_link, sym.st_name);
                        if (!fs.name || !*fs.name)
                                continue;
                        fs.full = fs.name;
                        if (dyn && v.versym) {
                                GElf_Versym vs;
                                unsigned idx;

                                if (gelf_getversym(v.versym, (int)i, &vs)) {
                                        idx = vs & 0x7fff;
                                        fs.hidden = vs & 0x8000;
                                        if (idx >= 2 && idx < v.n && v.names[idx]) {
                                                snprintf(full, sizeof(full), "%s%s%s", fs.name,
                                                         fs.hidden ? "@" : "@@", v.names[idx]);
                                                fs.full = full;
                                        }
                                }
                        }
                        if (elf_addr_to_offset(f, sym.st_value, &fs.offset) < 0)
                                continue;
                        fs.sym = &sym;
                        r = fn(&fs, userdata);
                }
        }
        free(v.names);
        return r;
}

int elf_find_object(const struct elf_file *f, const char *name, uint64_t *addr)
{
        Elf_Scn *scn = NULL;

        while ((scn = elf_nextscn(f->elf, scn))) {
                GElf_Shdr shdr;
                Elf_Data *data;

                if (!gelf_getshdr(scn, &shdr) ||
                    (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM))
                        continue;
                data = elf_getdata(scn, NULL);
                if (!data || !shdr.sh_entsize)
                        continue;
                for (size_t i = 0; i < shdr.sh_size / shdr.sh_entsize; i++) {
                        const char *n;
                        GElf_Sym sym;

                        if (!gelf_getsym(data, (int)i, &sym))
                                break;
                        if (GELF_ST_TYPE(sym.st_info) != STT_OBJECT || sym.st_shndx == SHN_UNDEF)
                                continue;
                        n = elf_strptr(f->elf, shdr.sh_link, sym.st_name);
                        if (n && streq(n, name)) {
                                *addr = sym.st_value;
                                return 0;
                        }
                }
        }
        return -ENOENT;
}

struct symbols {
        struct elf_symbol *syms;
        size_t n, cap;
};

static int symbols_add(struct symbols *s, const struct func_sym *fs, const char *name)
{
        if (grow_array(&s->syms, &s->cap, s->n + 1, sizeof(*s->syms)) < 0)
                return -ENOMEM;
        s->syms[s->n] = (struct elf_symbol){
                .name = strdup(name),
                .addr = fs->sym->st_value,
                .size = fs->sym->st_size,
                .offset = fs->offset,
                .ifunc = GELF_ST_TYPE(fs->sym->st_info) == STT_GNU_IFUNC,
        };
        if (!s->syms[s->n].name)
                return -ENOMEM;
        s->n++;
        return 0;
}

struct find {
        struct symbols out;
        const char *pattern;
        bool glob, versioned;
};

static int find_one(const struct func_sym *fs, void *userdata)
{
        struct find *c = userdata;
        const char *match = c->versioned ? fs->full : fs->name;

        if (!c->versioned && fs->hidden)
                return 0; /* a compat version: only by its full name */
        if (c->versioned && fs->full == fs->name && !strchr(fs->name, '@'))
                return 0;
        if (!name_matches(c->pattern, match, c->glob))
                return 0;
        for (size_t k = 0; k < c->out.n; k++)
                if (c->out.syms[k].addr == fs->sym->st_value)
                        return 0;
        return symbols_add(&c->out, fs, match);
}

int elf_find_symbols(const struct elf_file *f, const char *pattern, bool glob,
                     struct elf_symbol **ret)
{
        struct find c = {
                .pattern = pattern,
                .glob = glob,
                .versioned = strchr(pattern, '@') != NULL,
        };
        int r = each_function(f, find_one, &c);

        if (r < 0) {
                elf_symbols_free(c.out.syms, (int)c.out.n);
                return r;
        }
        *ret = c.out.syms;
        return (int)c.out.n;
}

struct list {
        struct symbols out;
        const char *pattern;
};

static int list_one(const struct func_sym *fs, void *userdata)
{
        struct list *c = userdata;

        if (c->pattern && fnmatch(c->pattern, fs->name, 0) != 0 &&
            fnmatch(c->pattern, fs->full, 0) != 0)
                return 0;
        return symbols_add(&c->out, fs, fs->full);
}

/* Length of the name without its version. */
static size_t base_len(const char *name)
{
        return strcspn(name, "@");
}

/* By plain name, then address, then full name: one function's names side by side. */
static int symbol_cmp(const void *a, const void *b)
{
        const struct elf_symbol *x = a, *y = b;
        size_t lx = base_len(x->name), ly = base_len(y->name);
        int c = strncmp(x->name, y->name, MIN(lx, ly));

        if (c || lx != ly)
                return c ? c : (lx < ly ? -1 : 1);
        if (x->addr != y->addr)
                return x->addr < y->addr ? -1 : 1;
        return strcmp(x->name, y->name);
}

int elf_list_symbols(const struct elf_file *f, const char *pattern, struct elf_symbol **ret)
{
        struct list c = { .pattern = pattern };
        struct elf_symbol *s;
        size_t n = 0;
        int r = each_function(f, list_one, &c);

        if (r < 0) {
                elf_symbols_free(c.out.syms, (int)c.out.n);
                return r;
        }
        s = c.out.syms;
        if (c.out.n)
                qsort(s, c.out.n, sizeof(*s), symbol_cmp);
        /* .symtab repeats what .dynsym says with a version: keep one of each */
        for (size_t i = 0; i < c.out.n; i++) {
                size_t k = i, len = base_len(s[i].name);
                bool versioned_later = false;

                while (++k < c.out.n && s[k].addr == s[i].addr && base_len(s[k].name) == len &&
                       strncmp(s[k].name, s[i].name, len) == 0)
                        versioned_later |= s[k].name[len] == '@';
                if ((n && streq(s[n - 1].name, s[i].name) && s[n - 1].addr == s[i].addr) ||
                    (!s[i].name[len] && versioned_later)) {
                        free(s[i].name);
                        continue;
                }
                s[n++] = s[i];
        }
        *ret = s;
        return (int)n;
}

void usdt_notes_free(struct usdt_note *notes, int n)
{
        for (int i = 0; i < n; i++) {
                free(notes[i].provider);
                free(notes[i].name);
                free(notes[i].args);
        }
        free(notes);
}

/* Three NUL-terminated strings after the three addresses of a stapsdt note. */
static int note_strings(const char *desc, size_t len, const char **s)
{
        size_t off = 24;

        for (int i = 0; i < 3; i++) {
                const char *end;

                if (off >= len)
                        return -EINVAL;
                end = memchr(desc + off, 0, len - off);
                if (!end)
                        return -EINVAL;
                s[i] = desc + off;
                off = end - desc + 1;
        }
        return 0;
}

int elf_usdt_notes(const struct elf_file *f, struct usdt_note **ret, struct error *err)
{
        struct usdt_note *notes = NULL;
        size_t n = 0, cap = 0;
        uint64_t base_addr = 0;
        bool have_base;
        GElf_Shdr shdr;
        Elf_Scn *scn;
        Elf_Data *data;
        size_t off = 0, name_off, desc_off;
        GElf_Nhdr nh;

        have_base = find_section(f, ".stapsdt.base", &shdr) != NULL;
        if (have_base)
                base_addr = shdr.sh_addr;
        scn = find_section(f, ".note.stapsdt", &shdr);
        if (!scn && have_base)
                return error_set(err, E_NO_USDT, -ENOENT,
                                 "%s was built with USDT probes (it has .stapsdt.base), but its "
                                 ".note.stapsdt section was stripped: their locations are gone",
                                 f->path);
        if (!scn)
                return error_set(err, E_NO_USDT, -ENOENT,
                                 "%s has no USDT probes (no .note.stapsdt section)", f->path);
        data = elf_getdata(scn, NULL);
        if (!data || shdr.sh_type != SHT_NOTE)
                return error_set(err, E_NOT_ELF, -EINVAL, "%s: unreadable .note.stapsdt",
                                 f->path);
        while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
                const char *desc = (const char *)data->d_buf + desc_off;
                const char *s[3];
                uint64_t a[3];

                if (nh.n_type != NT_STAPSDT || nh.n_namesz != 8 ||
                    memcmp((const char *)data->d_buf + name_off, "stapsdt", 8) != 0)
                        continue;
                if (nh.n_descsz < 24 || note_strings(desc, nh.n_descsz, s) < 0) {
                        usdt_notes_free(notes, (int)n);
                        return error_set(err, E_NOT_ELF, -EINVAL,
                                         "%s: malformed USDT note", f->path);
                }
                memcpy(a, desc, sizeof(a));
                if (have_base && a[1])
                        a[0] += base_addr - a[1]; /* prelink moved the file */
                if (grow_array(&notes, &cap, n + 1, sizeof(*notes)) < 0)
                        goto nomem;
                notes[n] = (struct usdt_note){
                        .provider = strdup(s[0]),
                        .name = strdup(s[1]),
                        .args = strdup(s[2]),
                        .addr = a[0],
                        .sema_addr = a[2],
                };
                n++;
                if (!notes[n - 1].provider || !notes[n - 1].name || !notes[n - 1].args)
                        goto nomem;
                if (elf_addr_to_offset(f, a[0], &notes[n - 1].offset) < 0) {
                        usdt_notes_free(notes, (int)n);
                        return error_set(err, E_NOT_ELF, -EINVAL,
                                         "%s: USDT probe %s:%s at 0x%llx is outside the code",
                                         f->path, s[0], s[1], (unsigned long long)a[0]);
                }
                if (a[2] && data_addr_to_offset(f, a[2], &notes[n - 1].sema_offset) < 0) {
                        usdt_notes_free(notes, (int)n);
                        return error_set(err, E_NOT_ELF, -EINVAL,
                                         "%s: semaphore of USDT probe %s:%s is outside the file",
                                         f->path, s[0], s[1]);
                }
                if (n > 1000000)
                        break;
        }
        *ret = notes;
        return (int)n;
nomem:
        usdt_notes_free(notes, (int)n);
        return -ENOMEM;
}

int elf_build_id(const struct elf_file *f, char *buf, size_t size)
{
        Elf_Scn *scn = NULL;

        while ((scn = elf_nextscn(f->elf, scn))) {
                GElf_Shdr shdr;
                Elf_Data *data;
                size_t off = 0, name_off, desc_off;
                GElf_Nhdr nh;

                if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE)
                        continue;
                data = elf_getdata(scn, NULL);
                if (!data)
                        continue;
                while ((off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
                        const unsigned char *d = (const unsigned char *)data->d_buf + desc_off;

                        if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
                            memcmp((const char *)data->d_buf + name_off, "GNU", 4) != 0)
                                continue;
                        if (size < nh.n_descsz * 2 + 1)
                                return -ENOBUFS;
                        for (size_t i = 0; i < nh.n_descsz; i++)
                                sprintf(buf + 2 * i, "%02x", d[i]);
                        return 0;
                }
        }
        return -ENOENT;
}
