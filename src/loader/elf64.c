/*
 * elf64.c: ELF64 x86-64 executables, entered directly in 64-bit long mode.
 *
 * The guest runs on identity page tables (virtual == physical), so every
 * PT_LOAD segment goes to its p_vaddr. Segments may not reach into
 * [0, LOADER_LOW_RESERVED), where cpu_setup puts the GDT and page tables.
 * The whole image is validated before the first byte is written.
 */
#include "loader/loader.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

struct seg {
	uint64_t addr, off, filesz, memsz;
	unsigned idx; /* program header index */
	bool exec;    /* PF_X */
};

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int check_ehdr(const char *name, const uint8_t *img, size_t len, Elf64_Ehdr *eh,
		      struct errbuf *e)
{
	if (len < SELFMAG || memcmp(img, ELFMAG, SELFMAG) != 0)
		return err_set(e, "%s: bad ELF magic (not an ELF file)", name);
	if (len > EI_CLASS && img[EI_CLASS] != ELFCLASS64)
		return err_set(e, "%s: ELF class %u is not ELFCLASS64 (a 64-bit image)", name,
			       img[EI_CLASS]);
	if (len < sizeof(*eh))
		return err_set(e, "%s: truncated ELF header (%zu bytes, need %zu)", name, len,
			       sizeof(*eh));
	memcpy(eh, img, sizeof(*eh));
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return err_set(e, "%s: ELF data encoding %u is not little-endian (ELFDATA2LSB)",
			       name, eh->e_ident[EI_DATA]);
	if (eh->e_ident[EI_VERSION] != EV_CURRENT || eh->e_version != EV_CURRENT)
		return err_set(e, "%s: ELF version %u is not EV_CURRENT", name,
			       eh->e_ident[EI_VERSION] != EV_CURRENT ? eh->e_ident[EI_VERSION]
								     : eh->e_version);
	if (eh->e_machine != EM_X86_64)
		return err_set(e, "%s: ELF machine %u is not EM_X86_64 (x86-64)", name,
			       eh->e_machine);
	if (eh->e_type != ET_EXEC)
		return err_set(e,
			       "%s: ELF type %u is not ET_EXEC (a static executable; "
			       "position-independent or relocatable files are not loaded)",
			       name, eh->e_type);
	if (eh->e_ehsize != sizeof(Elf64_Ehdr))
		return err_set(e, "%s: ELF header size e_ehsize %u is not %zu", name, eh->e_ehsize,
			       sizeof(Elf64_Ehdr));
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return err_set(e, "%s: program header size e_phentsize %u is not %zu", name,
			       eh->e_phentsize, sizeof(Elf64_Phdr));
	if (eh->e_phnum == 0)
		return err_set(e, "%s: ELF file has no program headers", name);
	if (eh->e_phnum == PN_XNUM)
		return err_set(
		    e, "%s: extended program header numbering (PN_XNUM) is not supported", name);
	/* phnum and phentsize are 16-bit: the product cannot overflow 64 bits,
	 * but e_phoff plus it can. */
	uint64_t ph_bytes = (uint64_t)eh->e_phnum * eh->e_phentsize;
	if (eh->e_phoff > len || ph_bytes > len - eh->e_phoff)
		return err_set(e,
			       "%s: program header table (offset 0x%llx, %u entries of %u bytes) "
			       "extends beyond the end of the file (%zu bytes)",
			       name, (unsigned long long)eh->e_phoff, eh->e_phnum, eh->e_phentsize,
			       len);
	return 0;
}

static int check_seg(const char *name, unsigned i, const Elf64_Phdr *ph, size_t len,
		     const struct guest_mem *m, struct errbuf *e)
{
	if (ph->p_filesz > ph->p_memsz)
		return err_set(
		    e, "%s: program header %u: p_filesz 0x%llx is larger than p_memsz 0x%llx", name,
		    i, (unsigned long long)ph->p_filesz, (unsigned long long)ph->p_memsz);
	if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset)
		return err_set(e,
			       "%s: program header %u: file range [0x%llx, +0x%llx) extends beyond "
			       "the end of the file (%zu bytes)",
			       name, i, (unsigned long long)ph->p_offset,
			       (unsigned long long)ph->p_filesz, len);
	if (ph->p_memsz > UINT64_MAX - ph->p_vaddr)
		return err_set(e,
			       "%s: program header %u: segment at 0x%llx of 0x%llx bytes wraps "
			       "around the address space",
			       name, i, (unsigned long long)ph->p_vaddr,
			       (unsigned long long)ph->p_memsz);
	if (ph->p_vaddr < LOADER_LOW_RESERVED)
		return err_set(e,
			       "%s: program header %u: segment at 0x%llx is in the low area [0, "
			       "0x%x) reserved for the GDT and page tables",
			       name, i, (unsigned long long)ph->p_vaddr, LOADER_LOW_RESERVED);
	if (!gm_range_ok(m, ph->p_vaddr, ph->p_memsz))
		return err_set(
		    e,
		    "%s: program header %u: segment [0x%llx, 0x%llx) extends beyond guest "
		    "RAM (0x%llx bytes)",
		    name, i, (unsigned long long)ph->p_vaddr,
		    (unsigned long long)(ph->p_vaddr + ph->p_memsz), (unsigned long long)m->size);
	return 0;
}

int loader_elf64(const char *name, const uint8_t *img, size_t len, const struct load_opts *o,
		 struct guest_mem *m, struct boot_image *out, struct errbuf *e)
{
	memset(out, 0, sizeof(*out));
	enum cpu_mode mode = o->mode == CPU_MODE_DEFAULT ? CPU_MODE_LONG : o->mode;
	if (mode != CPU_MODE_LONG && mode != CPU_MODE_USER)
		return err_set(e,
			       "%s: ELF64 images start in 64-bit long mode (cpu mode \"long\" or "
			       "\"user\"); --cpu-mode %s does not apply (use --format raw for a "
			       "%s-mode flat binary)",
			       name, cpu_mode_name(mode), cpu_mode_name(mode));

	Elf64_Ehdr eh;
	if (check_ehdr(name, img, len, &eh, e) < 0)
		return -1;

	struct seg *segs = calloc(eh.e_phnum, sizeof(*segs));
	if (segs == NULL)
		return err_set(e, "%s: out of memory", name);
	size_t n = 0;
	int rc = -1;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		/* Linkers emit empty PT_LOAD segments (often at 0): nothing to load. */
		if (ph.p_memsz == 0 && ph.p_filesz == 0)
			continue;
		if (check_seg(name, i, &ph, len, m, e) < 0)
			goto out;
		segs[n++] = (struct seg){.addr = ph.p_vaddr,
					 .off = ph.p_offset,
					 .filesz = ph.p_filesz,
					 .memsz = ph.p_memsz,
					 .idx = i,
					 .exec = (ph.p_flags & PF_X) != 0};
	}
	if (n == 0) {
		err_set(e, "%s: ELF file has no non-empty PT_LOAD segment", name);
		goto out;
	}

	/* Sorted by address, two segments overlap only if two neighbours do. */
	qsort(segs, n, sizeof(*segs), seg_cmp);
	for (size_t s = 1; s < n; s++) {
		const struct seg *a = &segs[s - 1], *b = &segs[s];
		if (b->addr < a->addr + a->memsz) {
			err_set(e,
				"%s: program header %u [0x%llx, 0x%llx) overlaps program header %u "
				"[0x%llx, 0x%llx)",
				name, a->idx, (unsigned long long)a->addr,
				(unsigned long long)(a->addr + a->memsz), b->idx,
				(unsigned long long)b->addr,
				(unsigned long long)(b->addr + b->memsz));
			goto out;
		}
	}

	const struct seg *es = NULL;
	for (size_t s = 0; s < n && es == NULL; s++)
		if (eh.e_entry >= segs[s].addr && eh.e_entry - segs[s].addr < segs[s].memsz)
			es = &segs[s];
	if (es == NULL) {
		err_set(e, "%s: ELF entry point 0x%llx is outside every loaded segment", name,
			(unsigned long long)eh.e_entry);
		goto out;
	}
	if (!es->exec) {
		err_set(
		    e,
		    "%s: ELF entry point 0x%llx is in program header %u [0x%llx, 0x%llx), which "
		    "is not executable (no PF_X)",
		    name, (unsigned long long)eh.e_entry, es->idx, (unsigned long long)es->addr,
		    (unsigned long long)(es->addr + es->memsz));
		goto out;
	}

	/* Validated: write. */
	for (size_t s = 0; s < n; s++) {
		uint8_t *dst = gm_ptr(m, segs[s].addr, segs[s].memsz);
		if (dst == NULL) {
			err_set(e, "%s: program header %u leaves guest RAM", name, segs[s].idx);
			goto out;
		}
		memcpy(dst, img + segs[s].off, segs[s].filesz);
		memset(dst + segs[s].filesz, 0, segs[s].memsz - segs[s].filesz);
	}
	out->kind = BOOT_ELF64;
	out->mode = mode;
	out->entry = eh.e_entry;
	out->image_lo = segs[0].addr;
	out->image_hi = 0;
	for (size_t s = 0; s < n; s++)
		if (segs[s].addr + segs[s].memsz > out->image_hi)
			out->image_hi = segs[s].addr + segs[s].memsz;
	rc = 0;
out:
	free(segs);
	return rc;
}
