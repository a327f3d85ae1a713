/*
 * imgbuild.h: guest images assembled in memory for the loader tests, and a
 * guest RAM with guard zones that detect writes outside it.
 */
#ifndef VMMUX_TESTS_LOADER_IMGBUILD_H
#define VMMUX_TESTS_LOADER_IMGBUILD_H

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loader/loader.h"
#include "vm/guest_mem.h"

#define MIB 0x100000ull

/* One program header to build. paddr is used by ELF32 (0 means = vaddr). */
struct tseg {
	uint32_t type;	/* PT_LOAD, PT_NOTE ... */
	uint32_t flags; /* PF_R | PF_X ... */
	uint64_t vaddr, paddr;
	uint64_t filesz, memsz;
};

/* Byte J of segment I's file data (a pattern the checks recompute). */
uint8_t seg_byte(unsigned i, uint64_t j);

/*
 * ELF64 x86-64 ET_EXEC with the program headers right after the ELF header
 * and segment I's data at file offset seg_off(I) (page aligned, in order).
 * Returns a malloc'd buffer of *len bytes.
 */
uint8_t *build_elf64(const struct tseg *s, unsigned n, uint64_t entry, size_t *len);

/*
 * ELF32 i386 ET_EXEC with a multiboot header (flags MBFLAGS, valid checksum)
 * at file offset MB_ELF_HDR_OFF and segment data from page 1 on.
 */
#define MB_ELF_HDR_OFF 0x200u
uint8_t *build_elf32_mb(const struct tseg *s, unsigned n, uint32_t entry, uint32_t mbflags,
			size_t *len);

/* File offset of segment I's data in the two ELF builders' output. */
uint64_t seg_off(const struct tseg *s, unsigned i);

/* A flat a.out-kludge multiboot kernel: FILE_LEN bytes of seg_byte(0, j)
 * with a multiboot header (flag bit 16 plus EXTRA_FLAGS) at HDR_OFF. */
struct aout {
	size_t file_len;
	uint32_t hdr_off;
	uint32_t extra_flags;
	uint32_t header_addr, load_addr, load_end, bss_end, entry;
};
uint8_t *build_aout(const struct aout *a, size_t *len);

/* Write a multiboot header (magic, FLAGS, checksum) at OFF. */
void mb_put_header(uint8_t *img, size_t off, uint32_t flags);

uint32_t rd32(const uint8_t *p);
uint64_t rd64(const uint8_t *p);
void wr32(uint8_t *p, uint32_t v);

/* Guest RAM of SIZE bytes between two guard zones, all RAM bytes set to
 * FILL (so that the tests see what the loader zeroed and wrote). */
struct tmem {
	uint8_t *alloc;
	struct guest_mem m;
};
#define TMEM_GUARD 4096u
void tmem_init(struct tmem *t, uint64_t size, uint8_t fill);
bool tmem_guards_ok(const struct tmem *t);
void tmem_free(struct tmem *t);

/* Fails the test unless RC is -1 and the message begins with "NAME: " and
 * contains WANT. */
#define expect_error(rc, e, name, want) expect_error_at(rc, e, name, want, __FILE__, __LINE__)
void expect_error_at(int rc, const struct errbuf *e, const char *name, const char *want,
		     const char *file, int line);
/* Fails the test unless RC is 0 (printing the message). */
#define expect_ok(rc, e) expect_ok_at(rc, e, __FILE__, __LINE__)
void expect_ok_at(int rc, const struct errbuf *e, const char *file, int line);

#endif
