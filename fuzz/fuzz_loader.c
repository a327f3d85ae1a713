/*
 * fuzz_loader.c: the guest image loaders (src/loader: multiboot v1 ELF32 and
 * a.out kludge, ELF64, raw, and the multiboot modules placed after a kernel)
 * through loader_load, as `vmmux run --kernel IMAGE` calls it.
 *
 * Input: a few bytes of options (format, CPU mode, raw load address and
 * entry, RAM size, how many modules and which, a command line), then the
 * image. The modules are real files made at start-up in a private temporary
 * directory (empty, one byte, a page and a bit, 64 KiB), since the loader
 * reads them by name. Guest RAM is mapped once per RAM size, between two
 * inaccessible guard pages, so that a write outside it faults (a fresh
 * allocation per input would cost more than the load: ASan fills large
 * blocks). On success the image the loader describes must lie inside RAM.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "loader/loader.h"

#define NMODFILES 4
static char modpath[NMODFILES][64];
static const size_t modsize[NMODFILES] = {0, 1, 4097, 65536};
static char tmpdir[] = "/tmp/vmmux-fuzz-loader.XXXXXX";

static void cleanup(void)
{
	for (unsigned i = 0; i < NMODFILES; i++)
		unlink(modpath[i]);
	rmdir(tmpdir);
}

static const uint64_t mem_sizes[] = {2ull << 20, 4ull << 20, 1ull << 20, 8ull << 20, 0x11000};
#define NSIZES (sizeof(mem_sizes) / sizeof(mem_sizes[0]))
#define GUARD  0x1000u
static uint8_t *ram[NSIZES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	if (mkdtemp(tmpdir) == NULL)
		abort();
	for (unsigned i = 0; i < NMODFILES; i++) {
		snprintf(modpath[i], sizeof(modpath[i]), "%s/m%u", tmpdir, i);
		FILE *f = fopen(modpath[i], "w");
		if (f == NULL)
			abort();
		for (size_t j = 0; j < modsize[i]; j++)
			fputc((int)(j * 7 + i), f);
		fclose(f);
	}
	atexit(cleanup);
	for (unsigned i = 0; i < NSIZES; i++) {
		uint8_t *p = mmap(NULL, mem_sizes[i] + 2 * GUARD, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED ||
		    mprotect(p + GUARD, mem_sizes[i], PROT_READ | PROT_WRITE) < 0)
			abort();
		ram[i] = p + GUARD;
	}
	return 0;
}

static const uint64_t addrs[] = {0x100000, 0x10000,    0,	   0x7c00,  0xfff,
				 0x1ff000, 0xffffffff, UINT64_MAX, 0x9fc00, 0x200000};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	uint8_t b = fz_u8(&f);
	struct load_opts o = {0};
	o.format = (b & 1) ? IMAGE_RAW : IMAGE_AUTO;
	o.mode = (enum cpu_mode)((b >> 1) % 5);
	o.has_entry = (b >> 4) & 1;
	bool cmdline = (b >> 5) & 1;
	unsigned mi = fz_u8(&f) % NSIZES;
	o.load_addr = fz_pick(&f, addrs, sizeof(addrs) / sizeof(addrs[0]));
	if (o.has_entry)
		o.entry = fz_pick(&f, addrs, sizeof(addrs) / sizeof(addrs[0]));
	/* modules: a count (0 to 3) and each one's file */
	uint8_t m = fz_u8(&f);
	const char *mods[3];
	char modstr[3][96];
	size_t nmods = m % 4;
	for (size_t i = 0; i < nmods; i++) {
		snprintf(modstr[i], sizeof(modstr[i]), "%s%s",
			 modpath[(m >> (2 + 2 * i)) % NMODFILES], i == 1 ? " arg=1 two" : "");
		mods[i] = modstr[i];
	}
	o.modules = nmods ? mods : NULL;
	o.nmodules = nmods;
	o.cmdline = cmdline ? "/boot/kernel console=ttyS0" : NULL;

	/* the image: its own exact-size allocation */
	uint8_t *img = malloc(f.n ? f.n : 1);
	if (img == NULL)
		abort();
	memcpy(img, f.p, f.n);
	struct guest_mem mem = {.host = ram[mi], .size = mem_sizes[mi], .memfd = -1};
	struct boot_image bi;
	struct errbuf e;
	if (loader_load("fuzz.img", img, f.n, &o, &mem, &bi, &e) == 0) {
		if (bi.image_lo > bi.image_hi || bi.image_hi > mem.size)
			abort(); /* described outside RAM */
	} else if (strncmp(e.msg, "fuzz.img", 8) != 0 && strstr(e.msg, tmpdir) == NULL) {
		abort(); /* every error names the file it is about */
	}
	free(img);
	return 0;
}
