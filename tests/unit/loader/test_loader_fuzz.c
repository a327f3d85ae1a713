/*
 * test_loader_fuzz.c: valid images mutated pseudo-randomly (fixed seed):
 * bytes flipped, header fields set to boundary values, files truncated.
 * loader_load must return 0 or -1 with a message naming the file, never
 * write outside guest RAM (guard zones around it, and ASan in the sanitizer
 * build), never read outside the image (each image is its own exact-size
 * allocation), and on success describe an image that lies inside RAM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imgbuild.h"

#define RAM	   (2 * MIB)
#define ITERATIONS 4000
#define NAME	   "fuzz.bin"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static const uint64_t boundary[] = {
    0,
    1,
    0xfff,
    0x1000,
    LOADER_LOW_RESERVED - 1,
    LOADER_LOW_RESERVED,
    0x9fc00,
    0x100000,
    RAM - 1,
    RAM,
    RAM + 1,
    0x7fffffff,
    0x80000000,
    0xfffff000,
    0xffffffff,
    0x100000000ull,
    0x7fffffffffffffffull,
    0xfffffffffffff000ull,
    0xffffffffffffffffull,
};
#define NBOUNDARY (sizeof(boundary) / sizeof(boundary[0]))

/* Offset of a multiboot header in the image (to repair its checksum after
 * mutating it, so that the fuzzing reaches past the checksum), or -1. */
static long mb_off_of(const uint8_t *img, size_t len)
{
	for (size_t i = 0; i + 12 <= len && i < 8192; i += 4)
		if (rd32(img + i) == 0x1BADB002u)
			return (long)i;
	return -1;
}

static void mutate(uint8_t *img, size_t *len)
{
	unsigned n = 1 + (unsigned)rnd_below(4);
	for (unsigned k = 0; k<n && * len> 0; k++) {
		/* mostly the headers (first 512 bytes), sometimes anywhere */
		size_t span = (rnd() & 3) ? (*len < 512 ? *len : 512) : *len;
		size_t off = (size_t)rnd_below(span);
		switch (rnd_below(4)) {
		case 0: /* flip some bits */
			img[off] ^= (uint8_t)(1u << rnd_below(8));
			break;
		case 1: /* random byte */
			img[off] = (uint8_t)rnd();
			break;
		case 2: { /* a boundary value in a 4- or 8-byte field */
			uint64_t v = boundary[rnd_below(NBOUNDARY)];
			size_t w = (rnd() & 1) ? 8 : 4;
			off &= ~(w - 1);
			if (off + w <= *len)
				memcpy(img + off, &v, w);
			break;
		}
		default: /* truncate */
			*len = (size_t)rnd_below(*len + 1);
			break;
		}
	}
}

static void check_result(int rc, const struct errbuf *e, const struct boot_image *out,
			 const struct tmem *t, unsigned iter)
{
	if (!tmem_guards_ok(t))
		fail_msg("iteration %u: write outside guest RAM", iter);
	if (rc == -1) {
		if (strncmp(e->msg, NAME ": ", strlen(NAME) + 2) != 0)
			fail_msg("iteration %u: message does not name the file: %s", iter, e->msg);
		return;
	}
	if (rc != 0)
		fail_msg("iteration %u: rc %d", iter, rc);
	const uint64_t ram = t->m.size;
	if (!(out->image_lo < out->image_hi && out->image_hi <= ram))
		fail_msg("iteration %u: image [0x%llx, 0x%llx) not inside RAM", iter,
			 (unsigned long long)out->image_lo, (unsigned long long)out->image_hi);
	if (out->entry < out->image_lo || out->entry >= out->image_hi)
		fail_msg("iteration %u: entry 0x%llx outside the image", iter,
			 (unsigned long long)out->entry);
	switch (out->kind) {
	case BOOT_ELF64:
		if (out->image_lo < LOADER_LOW_RESERVED ||
		    (out->mode != CPU_MODE_LONG && out->mode != CPU_MODE_USER))
			fail_msg("iteration %u: bad ELF64 result", iter);
		break;
	case BOOT_MULTIBOOT:
		/* the structure at QEMU's 0x9500 unless the image lies there; then
		 * on a page after the image */
		if (out->mode != CPU_MODE_PROT32 || out->image_lo < 0x1000 ||
		    (out->mb_info != 0x9500 &&
		     (out->mb_info % 0x1000 != 0 || out->mb_info < out->image_hi)) ||
		    out->mb_info + 116ull > ram)
			fail_msg("iteration %u: bad multiboot result (mbi 0x%x)", iter,
				 out->mb_info);
		break;
	case BOOT_RAW:
		break;
	default:
		fail_msg("iteration %u: kind %d", iter, (int)out->kind);
	}
}

static void fuzz_image(const uint8_t *base, size_t base_len, bool repair_checksum)
{
	struct tmem t;
	tmem_init(&t, RAM, 0);
	uint8_t *work = malloc(base_len);
	assert_non_null(work);
	unsigned ok = 0;
	for (unsigned iter = 0; iter < ITERATIONS; iter++) {
		memcpy(work, base, base_len);
		size_t len = base_len;
		mutate(work, &len);
		if (repair_checksum && (rnd() & 1)) {
			long h = mb_off_of(work, len);
			if (h >= 0)
				mb_put_header(work, (size_t)h, rd32(work + h + 4));
		}
		/* an exact-size copy, so that reading past the end is caught */
		uint8_t *img = malloc(len ? len : 1);
		assert_non_null(img);
		memcpy(img, work, len);
		struct load_opts o = {0};
		/* mostly the format's own mode; sometimes a requested one */
		static const enum cpu_mode modes[] = {CPU_MODE_REAL, CPU_MODE_PROT32, CPU_MODE_LONG,
						      CPU_MODE_USER};
		o.mode = (rnd() & 7) ? CPU_MODE_DEFAULT : modes[rnd_below(4)];
		o.cmdline = (rnd() & 1) ? "fuzz.bin a=b" : NULL;
		struct boot_image out;
		struct errbuf e = {{0}};
		int rc = loader_load(NAME, img, len, &o, &t.m, &out, &e);
		check_result(rc, &e, &out, &t, iter);
		ok += rc == 0;
		free(img);
	}
	/* the mutations must leave some images loadable, or the fuzzing only
	 * ever exercised the first check */
	assert_true(ok > ITERATIONS / 20);
	free(work);
	tmem_free(&t);
}

static void test_fuzz_elf64(void **state)
{
	(void)state;
	const struct tseg s[] = {
	    {.type = PT_LOAD,
	     .flags = PF_R | PF_X,
	     .vaddr = 0x100000,
	     .filesz = 0x300,
	     .memsz = 0x300},
	    {.type = PT_LOAD, .vaddr = 0, .filesz = 0, .memsz = 0},
	    {.type = PT_LOAD,
	     .flags = PF_R | PF_W,
	     .vaddr = 0x180000,
	     .filesz = 0x40,
	     .memsz = 0x2000},
	};
	size_t len;
	uint8_t *img = build_elf64(s, 3, 0x100010, &len);
	fuzz_image(img, len, false);
	free(img);
}

static void test_fuzz_elf32_multiboot(void **state)
{
	(void)state;
	const struct tseg s[] = {
	    {.type = PT_LOAD,
	     .flags = PF_R | PF_X,
	     .vaddr = 0x100000,
	     .filesz = 0x300,
	     .memsz = 0x300},
	    {.type = PT_LOAD,
	     .flags = PF_R | PF_W,
	     .vaddr = 0x180000,
	     .filesz = 0x40,
	     .memsz = 0x2000},
	};
	size_t len;
	uint8_t *img = build_elf32_mb(s, 2, 0x100010, 0x3, &len);
	fuzz_image(img, len, true);
	free(img);
}

static void test_fuzz_aout_multiboot(void **state)
{
	(void)state;
	const struct aout a = {.file_len = 0x600,
			       .hdr_off = 0x20,
			       .header_addr = 0x100020,
			       .load_addr = 0x100000,
			       .load_end = 0x100500,
			       .bss_end = 0x104000,
			       .entry = 0x100040};
	size_t len;
	uint8_t *img = build_aout(&a, &len);
	/* the a.out fields sit right after the header: aim at them too */
	fuzz_image(img, len, true);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fuzz_elf64),
	    cmocka_unit_test(test_fuzz_elf32_multiboot),
	    cmocka_unit_test(test_fuzz_aout_multiboot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
