/*
 * multiboot.c: multiboot v1 kernels, booted the way `qemu -kernel` boots them.
 *
 * The kernel is placed either by the header's address fields (flag bit 16,
 * the "a.out kludge") or, without them, by the program headers of an ELF32
 * executable. The modules (o->modules, read from their files at each load)
 * follow it, each on its own page boundary, as QEMU places them. The
 * multiboot information structure, the memory map, the module entries, the
 * boot loader name, the command line and the module strings then go into
 * one region on the first page boundary after the last module (or the
 * kernel), except the structure and the memory map, which go to QEMU's
 * 0x9500 and 0x9000 unless the kernel lies there (then they open the
 * region). Modules and region are placed by mb_place (modules.h): never in
 * page 0, never across [0x9fc00, 1 MiB), inside guest RAM and below 4 GiB.
 * The kernel is entered in 32-bit protected mode (cpu_setup puts 0x2BADB002
 * in EAX and the information structure's address in EBX).
 *
 * Everything is validated before the first byte is written to guest RAM.
 */
#include "loader/loader.h"
#include "loader/modules.h"
#include "../../vmms/fwcfg/pc_memmap.h"

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB_MAGIC      0x1BADB002u
#define MB_SEARCH_LEN 8192u
#define MB_HDR_MIN    12u /* magic, flags, checksum */
#define MB_HDR_ADDR   32u /* ... header_addr, load_addr, load_end, bss_end, entry */

#define MB_F_PAGE_ALIGN 0x00000001u /* page-align modules: always done */
#define MB_F_MEMINFO	0x00000002u /* mem_* and mmap: always provided */
#define MB_F_VIDEO	0x00000004u /* video mode: ignored, as QEMU does */
#define MB_F_REQUIRED	0x0000ffffu /* bits the loader must understand */
#define MB_F_ADDR	0x00010000u /* header carries the address fields */

/* Information structure flags. */
#define MBI_MEM		(1u << 0)
#define MBI_BOOT_DEVICE (1u << 1)
#define MBI_CMDLINE	(1u << 2)
#define MBI_MODS	(1u << 3)
#define MBI_MMAP	(1u << 6)
#define MBI_LOADER_NAME (1u << 9)

/* Information structure field offsets (multiboot v1 spec, section 3.3). */
#define MBI_OFF_FLAGS	    0
#define MBI_OFF_MEM_LOWER   4
#define MBI_OFF_MEM_UPPER   8
#define MBI_OFF_BOOT_DEVICE 12
#define MBI_OFF_CMDLINE	    16
#define MBI_OFF_MODS_COUNT  20
#define MBI_OFF_MODS_ADDR   24
#define MBI_OFF_MMAP_LENGTH 44
#define MBI_OFF_MMAP_ADDR   48
#define MBI_OFF_LOADER_NAME 64
#define MBI_SIZE	    116 /* through the framebuffer fields, all zero */

#define MB_BOOT_DEVICE 0x8000ffffu /* first BIOS disk, no partition */
#define MB_MMAP_ENTRY  24u	   /* u32 size (20), u64 base, u64 len, u32 type */
#define MB_MOD_ENTRY   16u	   /* u32 mod_start, mod_end, string, reserved */
#define MB_LOADER_NAME "vmmux"
#define MB_LOW_MMAP    0x9000u /* QEMU's places: the memory map (0x500 bytes at most) */
#define MB_LOW_MBI     0x9500u /* and the information structure */

#define PAGE	 0x1000ull
#define FOUR_GIB 0x100000000ull
#define LOW_END	 0x9fc00ull /* conventional memory ends, EBDA begins */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static size_t search_limit(size_t len)
{
	return len < MB_SEARCH_LEN ? len : MB_SEARCH_LEN;
}

static bool magic_at(const uint8_t *img, size_t i)
{
	return le32(img + i) == MB_MAGIC;
}

static bool checksum_ok(const uint8_t *img, size_t i)
{
	return (uint32_t)(le32(img + i) + le32(img + i + 4) + le32(img + i + 8)) == 0;
}

long multiboot_find_header(const uint8_t *img, size_t len)
{
	size_t lim = search_limit(len);
	for (size_t i = 0; i + MB_HDR_MIN <= lim; i += 4)
		if (magic_at(img, i) && checksum_ok(img, i))
			return (long)i;
	return -1;
}

long multiboot_find_bad_magic(const uint8_t *img, size_t len)
{
	size_t lim = search_limit(len);
	for (size_t i = 0; i + MB_HDR_MIN <= lim; i += 4)
		if (magic_at(img, i) && !checksum_ok(img, i))
			return (long)i;
	return -1;
}

/* One piece of the kernel: FILESZ bytes from file offset OFF to ADDR, then
 * zeros up to MEMSZ. IDX is the program header index (-1 for the a.out
 * kludge). */
struct mb_seg {
	uint64_t addr, off, filesz, memsz;
	long idx;
};

struct mb_kernel {
	struct mb_seg *segs;
	size_t nsegs;
	uint64_t lo, hi; /* extent of all segments, bss included */
	uint64_t entry;
};

/* Does a segment of K overlap [LO, HI)? */
static bool kernel_overlaps(const struct mb_kernel *k, uint64_t lo, uint64_t hi)
{
	for (size_t s = 0; s < k->nsegs; s++)
		if (k->segs[s].addr < hi && lo < k->segs[s].addr + k->segs[s].memsz)
			return true;
	return false;
}

/* Limit for kernel addresses: RAM and the 32-bit physical address space. */
static uint64_t addr_limit(const struct guest_mem *m)
{
	return m->size < FOUR_GIB ? m->size : FOUR_GIB;
}

static int check_range(const char *name, const char *what, uint64_t addr, uint64_t size,
		       const struct guest_mem *m, struct errbuf *e)
{
	if (addr < PAGE)
		return err_set(e,
			       "%s: %s at 0x%llx touches page 0 (multiboot kernels must load at "
			       "or above 0x1000)",
			       name, what, (unsigned long long)addr);
	if (addr >= FOUR_GIB || size > FOUR_GIB - addr)
		return err_set(e, "%s: %s [0x%llx, +0x%llx) extends beyond 4 GiB", name, what,
			       (unsigned long long)addr, (unsigned long long)size);
	if (!gm_range_ok(m, addr, size))
		return err_set(e, "%s: %s [0x%llx, 0x%llx) extends beyond guest RAM (0x%llx bytes)",
			       name, what, (unsigned long long)addr,
			       (unsigned long long)(addr + size), (unsigned long long)m->size);
	return 0;
}

/* The a.out kludge: the header's address fields say where the file goes. */
static int parse_aout(const char *name, const uint8_t *img, size_t len, size_t hdr_off,
		      const struct guest_mem *m, struct mb_kernel *k, struct errbuf *e)
{
	if (hdr_off > len || len - hdr_off < MB_HDR_ADDR)
		return err_set(e,
			       "%s: multiboot header at offset 0x%zx is truncated: the address "
			       "fields (flag bit 16) need %u bytes, the file has %zu after it",
			       name, hdr_off, MB_HDR_ADDR, len - hdr_off);
	const uint8_t *h = img + hdr_off;
	uint64_t header_addr = le32(h + 12), load_addr = le32(h + 16);
	uint64_t load_end = le32(h + 20), bss_end = le32(h + 24), entry = le32(h + 28);

	if (load_addr > header_addr)
		return err_set(e,
			       "%s: multiboot header at offset 0x%zx: load_addr 0x%llx is above "
			       "header_addr 0x%llx",
			       name, hdr_off, (unsigned long long)load_addr,
			       (unsigned long long)header_addr);
	uint64_t delta = header_addr - load_addr;
	if (delta > hdr_off)
		return err_set(e,
			       "%s: multiboot header at offset 0x%zx: header_addr 0x%llx - "
			       "load_addr 0x%llx = 0x%llx puts the load start before the file's "
			       "beginning",
			       name, hdr_off, (unsigned long long)header_addr,
			       (unsigned long long)load_addr, (unsigned long long)delta);
	uint64_t file_off = hdr_off - delta;

	uint64_t load_size;
	if (load_end == 0) {
		load_size = len - file_off;
	} else {
		if (load_end < load_addr)
			return err_set(e,
				       "%s: multiboot header at offset 0x%zx: load_end_addr 0x%llx "
				       "is below load_addr 0x%llx",
				       name, hdr_off, (unsigned long long)load_end,
				       (unsigned long long)load_addr);
		load_size = load_end - load_addr;
		if (load_size > len - file_off)
			return err_set(e,
				       "%s: multiboot header at offset 0x%zx: load range [0x%llx, "
				       "0x%llx) needs file bytes [0x%llx, 0x%llx), beyond the end "
				       "of the file (%zu bytes)",
				       name, hdr_off, (unsigned long long)load_addr,
				       (unsigned long long)load_end, (unsigned long long)file_off,
				       (unsigned long long)(file_off + load_size), len);
	}
	if (load_size == 0)
		return err_set(e, "%s: multiboot header at offset 0x%zx: load range is empty", name,
			       hdr_off);
	if (check_range(name, "multiboot load range", load_addr, load_size, m, e) < 0)
		return -1;

	uint64_t kernel_size = load_size;
	if (bss_end != 0) {
		if (bss_end < load_addr + load_size)
			return err_set(e,
				       "%s: multiboot header at offset 0x%zx: bss_end_addr 0x%llx "
				       "is below the end of the load range 0x%llx",
				       name, hdr_off, (unsigned long long)bss_end,
				       (unsigned long long)(load_addr + load_size));
		kernel_size = bss_end - load_addr;
		if (check_range(name, "multiboot bss", load_addr + load_size,
				kernel_size - load_size, m, e) < 0)
			return -1;
	}
	if (entry < load_addr || entry - load_addr >= load_size)
		return err_set(e,
			       "%s: multiboot header at offset 0x%zx: entry_addr 0x%llx is outside "
			       "the loaded range [0x%llx, 0x%llx)",
			       name, hdr_off, (unsigned long long)entry,
			       (unsigned long long)load_addr,
			       (unsigned long long)(load_addr + load_size));

	k->segs = malloc(sizeof(*k->segs));
	if (k->segs == NULL)
		return err_set(e, "%s: out of memory", name);
	k->segs[0] = (struct mb_seg){.addr = load_addr,
				     .off = file_off,
				     .filesz = load_size,
				     .memsz = kernel_size,
				     .idx = -1};
	k->nsegs = 1;
	k->lo = load_addr;
	k->hi = load_addr + kernel_size;
	k->entry = entry;
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct mb_seg *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Without the address fields: an ELF32 executable placed at its p_paddr. */
static int parse_elf32(const char *name, const uint8_t *img, size_t len, const struct guest_mem *m,
		       struct mb_kernel *k, struct errbuf *e)
{
	if (len < SELFMAG || memcmp(img, ELFMAG, SELFMAG) != 0)
		return err_set(e,
			       "%s: multiboot header has no address fields (flag bit 16), so the "
			       "image must be ELF32, but it is not an ELF file",
			       name);
	if (len > EI_CLASS && img[EI_CLASS] == ELFCLASS64)
		return err_set(e,
			       "%s: multiboot image is ELF64; only ELF32 or the address fields "
			       "(flag bit 16) are supported",
			       name);
	Elf32_Ehdr eh;
	if (len < sizeof(eh))
		return err_set(e, "%s: truncated ELF header (%zu bytes, need %zu)", name, len,
			       sizeof(eh));
	memcpy(&eh, img, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS32)
		return err_set(e, "%s: bad ELF class %u (multiboot needs ELFCLASS32)", name,
			       eh.e_ident[EI_CLASS]);
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return err_set(e, "%s: ELF data encoding %u is not little-endian (ELFDATA2LSB)",
			       name, eh.e_ident[EI_DATA]);
	if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT)
		return err_set(e, "%s: ELF version %u is not EV_CURRENT", name,
			       eh.e_ident[EI_VERSION] != EV_CURRENT ? eh.e_ident[EI_VERSION]
								    : eh.e_version);
	if (eh.e_machine != EM_386)
		return err_set(e, "%s: ELF machine %u is not EM_386 (i386)", name, eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return err_set(e, "%s: ELF type %u is not ET_EXEC (an executable)", name,
			       eh.e_type);
	if (eh.e_ehsize != sizeof(Elf32_Ehdr))
		return err_set(e, "%s: ELF header size e_ehsize %u is not %zu", name, eh.e_ehsize,
			       sizeof(Elf32_Ehdr));
	if (eh.e_phentsize != sizeof(Elf32_Phdr))
		return err_set(e, "%s: program header size e_phentsize %u is not %zu", name,
			       eh.e_phentsize, sizeof(Elf32_Phdr));
	if (eh.e_phnum == 0)
		return err_set(e, "%s: ELF file has no program headers", name);
	if (eh.e_phnum == PN_XNUM)
		return err_set(
		    e, "%s: extended program header numbering (PN_XNUM) is not supported", name);
	uint64_t ph_bytes = (uint64_t)eh.e_phnum * sizeof(Elf32_Phdr);
	if (eh.e_phoff > len || ph_bytes > len - eh.e_phoff)
		return err_set(e,
			       "%s: program header table (offset 0x%x, %u entries) extends beyond "
			       "the end of the file (%zu bytes)",
			       name, eh.e_phoff, eh.e_phnum, len);

	k->segs = calloc(eh.e_phnum, sizeof(*k->segs));
	if (k->segs == NULL)
		return err_set(e, "%s: out of memory", name);
	k->nsegs = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf32_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_memsz == 0 && ph.p_filesz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return err_set(e,
				       "%s: program header %u: p_filesz 0x%x is larger than "
				       "p_memsz 0x%x",
				       name, i, ph.p_filesz, ph.p_memsz);
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			return err_set(e,
				       "%s: program header %u: file range [0x%x, +0x%x) extends "
				       "beyond the end of the file (%zu bytes)",
				       name, i, ph.p_offset, ph.p_filesz, len);
		char what[64];
		snprintf(what, sizeof(what), "program header %u: segment", i);
		if (check_range(name, what, ph.p_paddr, ph.p_memsz, m, e) < 0)
			return -1;
		k->segs[k->nsegs++] = (struct mb_seg){.addr = ph.p_paddr,
						      .off = ph.p_offset,
						      .filesz = ph.p_filesz,
						      .memsz = ph.p_memsz,
						      .idx = (long)i};
	}
	if (k->nsegs == 0)
		return err_set(e, "%s: ELF file has no non-empty PT_LOAD segment", name);

	/* Entry: a physical address inside a segment, or a virtual one that the
	 * segment containing it translates. Looked up before sorting, against
	 * the program headers (for p_vaddr). */
	uint64_t entry = eh.e_entry;
	bool found = false;
	for (size_t s = 0; s < k->nsegs && !found; s++)
		found = entry >= k->segs[s].addr && entry - k->segs[s].addr < k->segs[s].memsz;
	for (size_t s = 0; s < k->nsegs && !found; s++) {
		Elf32_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + (size_t)k->segs[s].idx * sizeof(ph), sizeof(ph));
		if (entry >= ph.p_vaddr && entry - ph.p_vaddr < ph.p_memsz) {
			entry = k->segs[s].addr + (entry - ph.p_vaddr);
			found = true;
		}
	}
	if (!found)
		return err_set(e,
			       "%s: ELF entry point 0x%x is outside every loaded segment (by "
			       "physical and by virtual address)",
			       name, eh.e_entry);

	qsort(k->segs, k->nsegs, sizeof(*k->segs), seg_cmp);
	for (size_t s = 1; s < k->nsegs; s++) {
		const struct mb_seg *a = &k->segs[s - 1], *b = &k->segs[s];
		if (b->addr < a->addr + a->memsz)
			return err_set(e,
				       "%s: program header %ld [0x%llx, 0x%llx) overlaps program "
				       "header %ld [0x%llx, 0x%llx)",
				       name, a->idx, (unsigned long long)a->addr,
				       (unsigned long long)(a->addr + a->memsz), b->idx,
				       (unsigned long long)b->addr,
				       (unsigned long long)(b->addr + b->memsz));
	}
	k->lo = k->segs[0].addr;
	k->hi = 0;
	for (size_t s = 0; s < k->nsegs; s++)
		if (k->segs[s].addr + k->segs[s].memsz > k->hi)
			k->hi = k->segs[s].addr + k->segs[s].memsz;
	k->entry = entry;
	return 0;
}

/* A module read from its file, and where it goes. */
struct mb_mod {
	const char *string; /* "FILE[ ARGS]", the guest's module string */
	uint8_t *data;
	size_t len;
	uint64_t addr;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int loader_multiboot(const char *name, const uint8_t *img, size_t len, size_t hdr_off,
		     const struct load_opts *o, struct guest_mem *m, struct boot_image *out,
		     struct errbuf *e)
{
	memset(out, 0, sizeof(*out));
	if (o->mode != CPU_MODE_DEFAULT && o->mode != CPU_MODE_PROT32)
		return err_set(e,
			       "%s: multiboot kernels start in 32-bit protected mode; --cpu-mode "
			       "%s does not apply",
			       name, cpu_mode_name(o->mode));
	if ((hdr_off & 3) != 0 || hdr_off > len || len - hdr_off < MB_HDR_MIN ||
	    !magic_at(img, hdr_off))
		return err_set(e, "%s: no multiboot header at offset 0x%zx", name, hdr_off);
	if (!checksum_ok(img, hdr_off))
		return err_set(e, "%s: multiboot header at offset 0x%zx has a bad checksum", name,
			       hdr_off);
	uint32_t flags = le32(img + hdr_off + 4);
	uint32_t unsupported =
	    flags & MB_F_REQUIRED & ~(MB_F_PAGE_ALIGN | MB_F_MEMINFO | MB_F_VIDEO);
	if (unsupported != 0)
		return err_set(e,
			       "%s: multiboot header at offset 0x%zx requires unsupported feature "
			       "bits 0x%x (flags 0x%x)",
			       name, hdr_off, unsupported, flags);

	struct mb_kernel k = {0};
	struct mb_mod *mods = NULL;
	int rc = (flags & MB_F_ADDR) ? parse_aout(name, img, len, hdr_off, m, &k, e)
				     : parse_elf32(name, img, len, m, &k, e);
	if (rc < 0)
		goto out;

	/* The modules: read, then placed after the kernel in order. */
	if (o->nmodules > 0) {
		mods = calloc(o->nmodules, sizeof(*mods));
		if (mods == NULL) {
			rc = err_set(e, "%s: out of memory", name);
			goto out;
		}
	}
	uint64_t limit = addr_limit(m);
	uint64_t cursor = k.hi;
	size_t strings_len = 0;
	for (size_t i = 0; i < o->nmodules; i++) {
		struct mb_mod *md = &mods[i];
		md->string = o->modules[i];
		char *path = mb_module_path(md->string);
		if (path == NULL) {
			rc = err_set(e, "%s: out of memory", name);
			goto out;
		}
		rc = mb_module_read(path, m->size, &md->data, &md->len, e);
		if (rc < 0) {
			free(path);
			err_prefix(e, "multiboot module %zu", i + 1);
			goto out;
		}
		if (mb_place(&cursor, md->len, limit, &md->addr) < 0) {
			rc = err_set(e,
				     "multiboot module %zu: %s: %zu bytes do not fit in guest RAM "
				     "(0x%llx bytes; modules go below 4 GiB, after the kernel "
				     "ending at 0x%llx and the modules before this one, the "
				     "last ending at 0x%llx)",
				     i + 1, path, md->len, (unsigned long long)m->size,
				     (unsigned long long)k.hi, (unsigned long long)cursor);
			free(path);
			goto out;
		}
		free(path);
		strings_len += strlen(md->string) + 1;
	}

	/* The information region: structure, memory map, module entries, loader
	 * name, command line, module strings, in that order. */
	const char *cmdline = o->cmdline != NULL ? o->cmdline : "";
	size_t cmdlen = strlen(cmdline) + 1;
	/* QEMU's pc machine's memory map as SeaBIOS reports it (pc_memmap.h). */
	struct pc_memmap_ent ents[PC_MEMMAP_MAX];
	uint32_t upper_kib;
	size_t nents = pc_bios_e820(m->size, pc_amd_ht_hole(), ents, &upper_kib);
	/* QEMU puts the structure at 0x9500 and the memory map at 0x9000, out
	 * of the way of a kernel that allocates from its own end (kvm-unit-tests
	 * hands out the pages after its image and reads the memory map later);
	 * so does vmmux, unless the kernel lies there. Then they open the region
	 * after the kernel and modules, as the rest does. */
	bool low = !kernel_overlaps(&k, MB_LOW_MMAP, MB_LOW_MBI + MBI_SIZE);
	uint64_t off_mmap = low ? 0 : align_up(MBI_SIZE, 8);
	uint64_t off_mods = low ? 0 : off_mmap + nents * MB_MMAP_ENTRY;
	uint64_t off_name = off_mods + (uint64_t)o->nmodules * MB_MOD_ENTRY;
	uint64_t off_cmd = off_name + sizeof(MB_LOADER_NAME);
	uint64_t off_strings = off_cmd + cmdlen;
	if (cmdlen > limit || strings_len > limit || off_strings > limit - strings_len) {
		rc = err_set(e,
			     "%s: multiboot command line and module strings (%zu bytes) do not "
			     "fit in guest RAM",
			     name, cmdlen - 1 + strings_len);
		goto out;
	}
	uint64_t region = off_strings + strings_len;
	uint64_t base;
	if (mb_place(&cursor, region, limit, &base) < 0) {
		rc = err_set(e,
			     "%s: guest RAM (0x%llx bytes) is too small for the multiboot "
			     "information (%llu bytes after the kernel ending at 0x%llx%s; it "
			     "must end below 4 GiB)",
			     name, (unsigned long long)m->size, (unsigned long long)region,
			     (unsigned long long)k.hi, o->nmodules > 0 ? " and the modules" : "");
		goto out;
	}

	/* Validated: write the kernel, the modules, then the information. */
	for (size_t s = 0; s < k.nsegs; s++) {
		const struct mb_seg *g = &k.segs[s];
		uint8_t *dst = gm_ptr(m, g->addr, g->memsz);
		if (dst == NULL) {
			rc = err_set(e, "%s: segment at 0x%llx leaves guest RAM", name,
				     (unsigned long long)g->addr);
			goto out;
		}
		memcpy(dst, img + g->off, g->filesz);
		memset(dst + g->filesz, 0, g->memsz - g->filesz);
	}
	for (size_t i = 0; i < o->nmodules; i++) {
		if (mods[i].len == 0)
			continue;
		uint8_t *dst = gm_ptr(m, mods[i].addr, mods[i].len);
		if (dst == NULL) {
			rc = err_set(e, "%s: multiboot module %zu leaves guest RAM", name, i + 1);
			goto out;
		}
		memcpy(dst, mods[i].data, mods[i].len);
	}
	uint8_t *r = gm_ptr(m, base, region);
	if (r == NULL) {
		rc = err_set(e, "%s: multiboot information leaves guest RAM", name);
		goto out;
	}
	memset(r, 0, region);
	uint64_t mbi_gpa = low ? MB_LOW_MBI : base;
	uint64_t mmap_gpa = low ? MB_LOW_MMAP : base + off_mmap;
	uint8_t *mbi = low ? gm_ptr(m, MB_LOW_MMAP, MB_LOW_MBI + MBI_SIZE - MB_LOW_MMAP) : r;
	if (mbi == NULL) {
		rc = err_set(e, "%s: multiboot information leaves guest RAM", name);
		goto out;
	}
	uint8_t *mmap = low ? mbi : r + off_mmap;
	if (low) {
		memset(mbi, 0, MB_LOW_MBI + MBI_SIZE - MB_LOW_MMAP);
		mbi += MB_LOW_MBI - MB_LOW_MMAP;
	}
	put32(mbi + MBI_OFF_FLAGS,
	      MBI_MEM | MBI_BOOT_DEVICE | MBI_CMDLINE | MBI_MODS | MBI_MMAP | MBI_LOADER_NAME);
	/* KiB of RAM below the EBDA (0x9fc00), as a PC's firmware reports. */
	put32(mbi + MBI_OFF_MEM_LOWER, (uint32_t)((m->size < LOW_END ? m->size : LOW_END) / 1024));
	/* KiB of RAM from 1 MiB up to SeaBIOS's reserved top 128 KiB. */
	put32(mbi + MBI_OFF_MEM_UPPER, upper_kib);
	put32(mbi + MBI_OFF_BOOT_DEVICE, MB_BOOT_DEVICE);
	put32(mbi + MBI_OFF_CMDLINE, (uint32_t)(base + off_cmd));
	put32(mbi + MBI_OFF_MODS_COUNT, (uint32_t)o->nmodules);
	put32(mbi + MBI_OFF_MODS_ADDR, (uint32_t)(base + off_mods));
	put32(mbi + MBI_OFF_MMAP_LENGTH, (uint32_t)(nents * MB_MMAP_ENTRY));
	put32(mbi + MBI_OFF_MMAP_ADDR, (uint32_t)mmap_gpa);
	put32(mbi + MBI_OFF_LOADER_NAME, (uint32_t)(base + off_name));
	for (size_t i = 0; i < nents; i++) {
		uint8_t *p = mmap + i * MB_MMAP_ENTRY;
		put32(p, MB_MMAP_ENTRY - 4);
		put64(p + 4, ents[i].base);
		put64(p + 12, ents[i].len);
		put32(p + 20, ents[i].type);
	}
	memcpy(r + off_name, MB_LOADER_NAME, sizeof(MB_LOADER_NAME));
	memcpy(r + off_cmd, cmdline, cmdlen);
	uint64_t str = off_strings;
	for (size_t i = 0; i < o->nmodules; i++) {
		uint8_t *p = r + off_mods + i * MB_MOD_ENTRY;
		size_t slen = strlen(mods[i].string) + 1;
		put32(p, (uint32_t)mods[i].addr);
		put32(p + 4, (uint32_t)(mods[i].addr + mods[i].len));
		put32(p + 8, (uint32_t)(base + str));
		memcpy(r + str, mods[i].string, slen);
		str += slen;
	}

	out->kind = BOOT_MULTIBOOT;
	out->mode = CPU_MODE_PROT32;
	out->entry = k.entry;
	out->image_lo = k.lo;
	out->image_hi = k.hi;
	out->mb_info = (uint32_t)mbi_gpa;
	rc = 0;
out:
	free(k.segs);
	for (size_t i = 0; mods != NULL && i < o->nmodules; i++)
		free(mods[i].data);
	free(mods);
	return rc;
}
