/*
 * loader.h: guest images into guest RAM.
 *
 * The format is detected in QEMU's order: a multiboot v1 header in the first
 * 8 KiB (entered in 32-bit protected mode with the multiboot information,
 * as `qemu -kernel` does), then ELF64 (entered directly in 64-bit long mode,
 * with the identity page tables and GDT that cpu_setup builds), and a raw
 * binary only when the options say so. The image is untrusted: every offset,
 * size and address is checked, with overflow, before use; a malformed image
 * gets an error that names the file and the problem, never a crash.
 */
#ifndef VMMUX_LOADER_LOADER_H
#define VMMUX_LOADER_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "vm/guest_mem.h"

enum cpu_mode {
	CPU_MODE_DEFAULT = 0, /* the image format's own mode */
	CPU_MODE_REAL,	      /* 16-bit real mode */
	CPU_MODE_PROT32,      /* 32-bit protected mode, flat, no paging */
	CPU_MODE_LONG,	      /* 64-bit long mode at CPL0 */
	CPU_MODE_USER,	      /* 64-bit long mode at CPL3 with IOPL=3 */
};

/* Parse "real", "protected", "long", "user"; -1 if unknown. */
int cpu_mode_parse(const char *s);
const char *cpu_mode_name(enum cpu_mode m);

enum image_format {
	IMAGE_AUTO = 0, /* multiboot, then ELF64 */
	IMAGE_RAW,	/* flat binary at load_addr */
};

enum image_kind {
	BOOT_MULTIBOOT = 1,
	BOOT_ELF64,
	BOOT_RAW,
};

/*
 * The low memory that cpu_setup owns for long-mode guests: GDT at 0x1000,
 * PML4 at 0x2000, PDPT at 0x3000, page directories from 0x4000, a page table
 * for the first 2 MiB at 0x8000. An ELF64 or long-mode raw image may not
 * overlap [0, LOADER_LOW_RESERVED).
 */
#define LOADER_LOW_RESERVED 0x10000u

struct load_opts {
	enum image_format format;
	uint64_t load_addr; /* raw: where the image goes */
	bool has_entry;
	uint64_t entry;	     /* raw: entry point (default load_addr) */
	enum cpu_mode mode;  /* CPU_MODE_DEFAULT or a requested mode */
	const char *cmdline; /* multiboot command line (QEMU's: "PATH APPEND"), or NULL */
	/* Multiboot modules, in order: each string is "FILE[ ARGS]" as QEMU
	 * builds it (the file is the part before the first space; the guest
	 * gets the whole string). Read at each load (src/loader/modules.h). */
	const char *const *modules;
	size_t nmodules;
};

/* What the loader placed and how the guest is entered. */
struct boot_image {
	enum image_kind kind;
	enum cpu_mode mode;
	uint64_t entry;
	uint64_t image_lo, image_hi; /* guest-physical extent [lo, hi) of the image */
	uint32_t mb_info;	     /* multiboot: GPA of the information structure */
};

/*
 * Load IMG (LEN bytes, read from the file NAME) into M as O says, and fill
 * *out. On error returns -1 with "NAME: problem" in e. Never writes outside
 * M; may have written part of the image when it fails.
 */
int loader_load(const char *name, const uint8_t *img, size_t len, const struct load_opts *o,
		struct guest_mem *m, struct boot_image *out, struct errbuf *e);

/*
 * Read the file PATH (refusing one larger than max_len) into a malloc'd
 * buffer. Returns 0 and sets *buf, *len, or -1 with "PATH: reason" in e.
 */
int loader_read_file(const char *path, size_t max_len, uint8_t **buf, size_t *len,
		     struct errbuf *e);

/* The same for any file: ALLOW_EMPTY gives *buf NULL and *len 0 for an empty
 * one; WHAT names what a directory is not ("a guest image"). */
int loader_read_file_as(const char *path, size_t max_len, bool allow_empty, const char *what,
			uint8_t **buf, size_t *len, struct errbuf *e);

/* Format-specific loaders, called by loader_load (exposed for tests). */
int loader_multiboot(const char *name, const uint8_t *img, size_t len, size_t hdr_off,
		     const struct load_opts *o, struct guest_mem *m, struct boot_image *out,
		     struct errbuf *e);
int loader_elf64(const char *name, const uint8_t *img, size_t len, const struct load_opts *o,
		 struct guest_mem *m, struct boot_image *out, struct errbuf *e);
int loader_raw(const char *name, const uint8_t *img, size_t len, const struct load_opts *o,
	       struct guest_mem *m, struct boot_image *out, struct errbuf *e);

/* Offset of a valid multiboot v1 header in the first 8 KiB, or -1. */
long multiboot_find_header(const uint8_t *img, size_t len);

/* Offset of the first multiboot v1 magic in the first 8 KiB whose checksum
 * is wrong (so it is not a header), or -1; for the error message. */
long multiboot_find_bad_magic(const uint8_t *img, size_t len);

#endif
