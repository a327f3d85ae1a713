/*
 * test_mb_modules.c: multiboot modules: QEMU's -initrd syntax
 * (mb_modules_split), module strings and files, their placement (mb_place:
 * never page 0, never across the legacy hole, inside RAM, overflow-checked)
 * and the loader's module entries, strings and information region with
 * real module files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "imgbuild.h"
#include "loader/modules.h"

#define PAGE	0x1000ull
#define LOW_END 0x9fc00ull

/* ---- mb_modules_split ------------------------------------------------ */

static void expect_split(const char *s, size_t n, const char *const *want)
{
	char **mods;
	size_t got;
	struct errbuf e = {{0}};
	if (mb_modules_split("--initrd", s, MB_MODULES_MAX, &mods, &got, &e) != 0)
		fail_msg("'%s': %s", s, e.msg);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(mods[i], want[i]);
	mb_modules_free(mods, got);
}

static void expect_split_error(const char *s, size_t max, const char *want)
{
	char **mods = (char **)1;
	size_t n = 7;
	struct errbuf e = {{0}};
	assert_int_equal(mb_modules_split("--initrd", s, max, &mods, &n, &e), -1);
	assert_null(mods);
	assert_int_equal(n, 0);
	if (strncmp(e.msg, "--initrd '", 10) != 0 || strstr(e.msg, want) == NULL)
		fail_msg("'%s': expected \"%s\" in: %s", s, want, e.msg);
}

static void test_split(void **state)
{
	(void)state;
	expect_split("a", 1, (const char *const[]){"a"});
	expect_split("/x/m1 arg1 a=b", 1, (const char *const[]){"/x/m1 arg1 a=b"});
	expect_split("m1 x,m2", 2, (const char *const[]){"m1 x", "m2"});
	expect_split("m1,m2,m3", 3, (const char *const[]){"m1", "m2", "m3"});
	/* ",," is a literal comma, in a name or an argument */
	expect_split("a,,b", 1, (const char *const[]){"a,b"});
	expect_split("m p,,q,n", 2, (const char *const[]){"m p,q", "n"});
	/* ",,," is a literal comma and then a separator */
	expect_split("a,,,b", 2, (const char *const[]){"a,", "b"});
	expect_split("a,,,,b", 1, (const char *const[]){"a,,b"});
	expect_split("a,,", 1, (const char *const[]){"a,"});
	/* spaces belong to the module string; only the first one ends the file */
	expect_split("m  two  spaces ", 1, (const char *const[]){"m  two  spaces "});
}

static void test_split_errors(void **state)
{
	(void)state;
	expect_split_error("", 8, "no module given");
	expect_split_error(",a", 8, "module 1 is empty");
	expect_split_error("a,", 8, "module 2 is empty");
	expect_split_error("a,,,", 8, "module 2 is empty");
	expect_split_error("a,b,,,,,c,", 8, "module 4 is empty"); /* a | b,, | c | */
	expect_split_error(" a", 8, "module 1 (' a') has no file name");
	expect_split_error("a, b", 8, "module 2 (' b') has no file name");
	expect_split_error("a,b,c", 2, "more than 2 modules");

	char **mods;
	size_t n;
	struct errbuf e;
	assert_int_equal(mb_modules_split("--initrd", NULL, 8, &mods, &n, &e), -1);
	/* exactly MB_MODULES_MAX is fine, one more is not */
	char big[MB_MODULES_MAX * 2 + 2];
	size_t k = 0;
	for (unsigned i = 0; i < MB_MODULES_MAX; i++) {
		big[k++] = 'm';
		big[k++] = ',';
	}
	big[k - 1] = '\0';
	assert_int_equal(mb_modules_split("--initrd", big, MB_MODULES_MAX, &mods, &n, &e), 0);
	assert_int_equal(n, MB_MODULES_MAX);
	mb_modules_free(mods, n);
	big[k - 1] = ',';
	big[k++] = 'x';
	big[k] = '\0';
	expect_split_error(big, MB_MODULES_MAX, "more than 64 modules");
	mb_modules_free(NULL, 3);
}

static void test_check_and_path(void **state)
{
	(void)state;
	struct errbuf e;
	assert_int_equal(mb_module_check("--module", "m a,b", &e), 0);
	assert_int_equal(mb_module_check("--module", "", &e), -1);
	assert_non_null(strstr(e.msg, "--module '': a module needs a file name"));
	assert_int_equal(mb_module_check("--module", " a", &e), -1);
	assert_non_null(strstr(e.msg, "file name"));
	assert_int_equal(mb_module_check("--module", NULL, &e), -1);

	char *p = mb_module_path("/a/b c d");
	assert_string_equal(p, "/a/b");
	free(p);
	p = mb_module_path("plain");
	assert_string_equal(p, "plain");
	free(p);
}

/* ---- mb_place -------------------------------------------------------- */

static void test_place(void **state)
{
	(void)state;
	uint64_t c, a;
	const uint64_t lim = 64 * MIB;

	/* never page 0 */
	c = 0;
	assert_int_equal(mb_place(&c, 10, lim, &a), 0);
	assert_int_equal(a, PAGE);
	assert_int_equal(c, PAGE + 10);
	c = 0;
	assert_int_equal(mb_place(&c, 0, lim, &a), 0);
	assert_int_equal(a, PAGE);
	/* page-aligned, after the cursor */
	c = 0x100001;
	assert_int_equal(mb_place(&c, 0x1000, lim, &a), 0);
	assert_int_equal(a, 0x101000);
	assert_int_equal(c, 0x102000);
	c = 0x200000;
	assert_int_equal(mb_place(&c, 5, lim, &a), 0);
	assert_int_equal(a, 0x200000);
	/* not across [0x9fc00, 1 MiB): moved to 1 MiB */
	c = 0x9e000;
	assert_int_equal(mb_place(&c, 0x2000, lim, &a), 0);
	assert_int_equal(a, MIB);
	assert_int_equal(c, MIB + 0x2000);
	c = 0x9e000;
	assert_int_equal(mb_place(&c, 0xc00, lim, &a), 0); /* ends at 0x9ec00: fits below */
	assert_int_equal(a, 0x9e000);
	c = 0x9fc01;
	assert_int_equal(mb_place(&c, 0, lim, &a), 0);
	assert_int_equal(a, MIB);
	c = 0x5000;
	assert_int_equal(mb_place(&c, UINT64_MAX - 0x10, UINT64_MAX, &a), -1);
	/* the limit is inclusive of the end, exclusive beyond */
	c = lim - 0x2000;
	assert_int_equal(mb_place(&c, 0x2000, lim, &a), 0);
	assert_int_equal(c, lim);
	c = lim - 0x2000;
	assert_int_equal(mb_place(&c, 0x2001, lim, &a), -1);
	assert_int_equal(c, lim - 0x2000); /* unchanged on failure */
	/* overflow of the cursor, of the address plus size */
	c = UINT64_MAX - 5;
	assert_int_equal(mb_place(&c, 1, UINT64_MAX, &a), -1);
	c = 0x200000;
	assert_int_equal(mb_place(&c, UINT64_MAX, UINT64_MAX, &a), -1);
	assert_int_equal(mb_place(&c, UINT64_MAX - 0x1ff000, UINT64_MAX, &a), -1);
	c = lim + 1;
	assert_int_equal(mb_place(&c, 0, lim, &a), -1);
}

/* ---- module files ---------------------------------------------------- */

struct dir {
	char path[64];
};

static void dir_make(struct dir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/vmmux-mbmod-XXXXXX");
	assert_non_null(mkdtemp(d->path));
}

/* DIR/NAME holding LEN bytes of pattern (i * 7 + 1); its path in OUT. */
static void file_make(const struct dir *d, const char *name, size_t len, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", d->path, name);
	FILE *f = fopen(out, "w");
	assert_non_null(f);
	for (size_t i = 0; i < len; i++)
		fputc((int)((i * 7 + 1) & 0xff), f);
	assert_int_equal(fclose(f), 0);
}

static void dir_remove(const struct dir *d, const char *const *names, size_t n)
{
	char p[128];
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/%s", d->path, names[i]);
		unlink(p);
	}
	rmdir(d->path);
}

static void test_read(void **state)
{
	(void)state;
	struct dir d;
	dir_make(&d);
	char empty[128], small[128], missing[128];
	file_make(&d, "empty", 0, empty, sizeof(empty));
	file_make(&d, "small", 100, small, sizeof(small));
	snprintf(missing, sizeof(missing), "%s/missing", d.path);
	uint8_t *buf;
	size_t len;
	struct errbuf e;

	expect_ok(mb_module_read(empty, 1000, &buf, &len, &e), &e);
	assert_null(buf);
	assert_int_equal(len, 0);
	expect_ok(mb_module_read(small, 100, &buf, &len, &e), &e);
	assert_int_equal(len, 100);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(buf[i], (i * 7 + 1) & 0xff);
	free(buf);
	expect_error(mb_module_read(small, 99, &buf, &len, &e), &e, small,
		     "file is 100 bytes, larger than guest RAM (99 bytes)");
	assert_null(buf);
	expect_error(mb_module_read(missing, 1000, &buf, &len, &e), &e, missing,
		     "cannot open: No such file or directory");
	expect_error(mb_module_read(d.path, 1000, &buf, &len, &e), &e, d.path, "is a directory");
	dir_remove(&d, (const char *const[]){"empty", "small"}, 2);
}

/* ---- the loader with modules ----------------------------------------- */

#define NAME "kernel.mb"

/* ELF32 kernel: text at 1 MiB, 0x2000 bytes, bss to 0x103800. */
static const struct tseg kseg[] = {
    {.type = PT_LOAD, .flags = PF_R | PF_X, .vaddr = 0x100000, .filesz = 0x2000, .memsz = 0x3800},
};

struct lfx {
	struct tmem t;
	uint8_t *img;
	size_t len;
	struct load_opts o;
	struct boot_image out;
	struct errbuf e;
	struct dir d;
	char p1[128], p2[128], p3[128];
	char s1[256], s2[256], s3[256];
	const char *mods[3];
};

static int lsetup_ram(void **state, uint64_t ram)
{
	struct lfx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	tmem_init(&f->t, ram, 0xcc);
	f->img = build_elf32_mb(kseg, 1, 0x100000, 0x3, &f->len);
	dir_make(&f->d);
	file_make(&f->d, "m1", 0x1801, f->p1, sizeof(f->p1));
	file_make(&f->d, "m2", 0, f->p2, sizeof(f->p2));
	file_make(&f->d, "m3", 5, f->p3, sizeof(f->p3));
	snprintf(f->s1, sizeof(f->s1), "%s arg1 a=b", f->p1);
	snprintf(f->s2, sizeof(f->s2), "%s", f->p2);
	snprintf(f->s3, sizeof(f->s3), "%s x,y", f->p3);
	f->mods[0] = f->s1;
	f->mods[1] = f->s2;
	f->mods[2] = f->s3;
	f->o.cmdline = NAME " console=ttyS0";
	f->o.modules = f->mods;
	f->o.nmodules = 3;
	*state = f;
	return 0;
}

static int lsetup(void **state)
{
	return lsetup_ram(state, 4 * MIB);
}

static int lteardown(void **state)
{
	struct lfx *f = *state;
	assert_true(tmem_guards_ok(&f->t));
	tmem_free(&f->t);
	free(f->img);
	dir_remove(&f->d, (const char *const[]){"m1", "m2", "m3"}, 3);
	free(f);
	return 0;
}

static int lload(struct lfx *f)
{
	memset(&f->e, 0, sizeof(f->e));
	return loader_load(NAME, f->img, f->len, &f->o, &f->t.m, &f->out, &f->e);
}

static const uint8_t *lat(struct lfx *f, uint64_t gpa, uint64_t len)
{
	assert_true(gpa >= PAGE && gpa <= f->t.m.size && len <= f->t.m.size - gpa);
	return f->t.m.host + gpa;
}

static void test_load_modules(void **state)
{
	struct lfx *f = *state;
	expect_ok(lload(f), &f->e);
	const uint8_t *mbi = lat(f, f->out.mb_info, 116);
	assert_true(rd32(mbi) & (1u << 3)); /* MODS */
	assert_int_equal(rd32(mbi + 20), 3);
	uint32_t mods = rd32(mbi + 24);
	static const size_t lens[] = {0x1801, 0, 5};
	const char *strs[] = {f->s1, f->s2, f->s3};
	/* in order, page-aligned, after the kernel's bss and each other */
	uint64_t prev_end = 0x103800;
	for (unsigned i = 0; i < 3; i++) {
		const uint8_t *m = lat(f, mods + i * 16, 16);
		uint32_t start = rd32(m), end = rd32(m + 4), str = rd32(m + 8);
		assert_int_equal(rd32(m + 12), 0);
		assert_int_equal(start % PAGE, 0);
		assert_true(start >= prev_end);
		assert_int_equal(end - start, lens[i]);
		const uint8_t *data = lat(f, start, end - start);
		for (size_t j = 0; j < lens[i]; j++)
			assert_int_equal(data[j], (j * 7 + 1) & 0xff);
		assert_string_equal((const char *)lat(f, str, strlen(strs[i]) + 1), strs[i]);
		assert_true(str >= mods); /* the region after the modules */
		prev_end = end;
	}
	/* m1 after the bss, m2 (empty) and m3 at the same next page, as QEMU */
	assert_int_equal(rd32(lat(f, mods, 16)), 0x104000);
	assert_int_equal(rd32(lat(f, mods + 16, 16)), 0x106000);
	assert_int_equal(rd32(lat(f, mods + 32, 16)), 0x106000);
	/* the structure and memory map at QEMU's 0x9500 and 0x9000; the rest of
	 * the information follows the last module, on a page boundary */
	assert_int_equal(f->out.mb_info, 0x9500);
	assert_int_equal(rd32(mbi + 48), 0x9000);
	assert_int_equal(mods, 0x107000);
	assert_true(mods >= prev_end);
	assert_string_equal((const char *)lat(f, rd32(mbi + 16), 1), NAME " console=ttyS0");
	assert_true(rd32(mbi + 16) > mods);
	assert_int_equal(f->t.m.host[0], 0xcc); /* page 0 untouched */
	/* a second load (a reset) gives the same layout */
	expect_ok(lload(f), &f->e);
	assert_int_equal(f->out.mb_info, 0x9500);
	assert_int_equal(rd32(mbi + 24), 0x107000);
}

static void test_no_modules(void **state)
{
	struct lfx *f = *state;
	f->o.nmodules = 0;
	f->o.modules = NULL;
	expect_ok(lload(f), &f->e);
	const uint8_t *mbi = lat(f, f->out.mb_info, 116);
	assert_true(rd32(mbi) & (1u << 3)); /* MODS, with none, as QEMU */
	assert_int_equal(rd32(mbi + 20), 0);
	assert_int_equal(f->out.mb_info, 0x9500);
	assert_int_equal(rd32(mbi + 24), 0x104000); /* the region after the kernel */
}

static void test_module_missing(void **state)
{
	struct lfx *f = *state;
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/nope with args", f->d.path);
	f->mods[1] = missing;
	int rc = lload(f);
	char want[160];
	snprintf(want, sizeof(want), "%s/nope: cannot open: No such file or directory", f->d.path);
	expect_error(rc, &f->e, "multiboot module 2", want);
}

static void test_module_directory(void **state)
{
	struct lfx *f = *state;
	f->mods[0] = f->d.path;
	expect_error(lload(f), &f->e, "multiboot module 1", "is a directory");
}

static void test_module_larger_than_ram(void **state)
{
	struct lfx *f = *state;
	char big[128];
	file_make(&f->d, "big", 4 * MIB + 1, big, sizeof(big));
	f->mods[2] = big;
	int rc = lload(f);
	unlink(big);
	expect_error(rc, &f->e, "multiboot module 3", "larger than guest RAM");
	assert_non_null(strstr(f->e.msg, big));
}

static void test_module_does_not_fit(void **state)
{
	struct lfx *f = *state;
	char big[128];
	/* smaller than RAM, but not after the kernel and the first module */
	file_make(&f->d, "big", 3 * MIB - 0x4000, big, sizeof(big));
	f->mods[1] = big;
	int rc = lload(f);
	unlink(big);
	expect_error(rc, &f->e, "multiboot module 2", "do not fit in guest RAM");
	assert_non_null(strstr(f->e.msg, big));
	assert_non_null(strstr(f->e.msg, "ending at 0x103800"));
}

static void test_info_does_not_fit(void **state)
{
	struct lfx *f = *state;
	char big[128];
	/* the module fills RAM up to its last page: no room for the information */
	file_make(&f->d, "big", 4 * MIB - 0x104000, big, sizeof(big));
	f->mods[0] = big;
	f->o.nmodules = 1;
	int rc = lload(f);
	unlink(big);
	expect_error(rc, &f->e, NAME, "too small for the multiboot information");
}

/* A kernel low in memory: a module that would cross the hole below 1 MiB
 * goes to 1 MiB, and the information after it. */
static void test_low_kernel(void **state)
{
	struct lfx *f = *state;
	const struct aout a = {.file_len = 0x1000,
			       .hdr_off = 0x40,
			       .header_addr = 0x9e040,
			       .load_addr = 0x9e000,
			       .load_end = 0x9f000,
			       .bss_end = 0x9f000,
			       .entry = 0x9e100};
	free(f->img);
	f->img = build_aout(&a, &f->len);
	f->o.nmodules = 1;
	expect_ok(lload(f), &f->e);
	const uint8_t *mbi = lat(f, f->out.mb_info, 116);
	const uint8_t *m = lat(f, rd32(mbi + 24), 16);
	assert_int_equal(rd32(m), MIB);
	assert_int_equal(f->out.mb_info, 0x9500);
	assert_int_equal(rd32(mbi + 24), MIB + 0x2000);
	for (uint64_t p = LOW_END; p < MIB; p++)
		assert_int_equal(f->t.m.host[p], 0xcc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_split_errors),
	    cmocka_unit_test(test_check_and_path),
	    cmocka_unit_test(test_place),
	    cmocka_unit_test(test_read),
	    cmocka_unit_test_setup_teardown(test_load_modules, lsetup, lteardown),
	    cmocka_unit_test_setup_teardown(test_no_modules, lsetup, lteardown),
	    cmocka_unit_test_setup_teardown(test_module_missing, lsetup, lteardown),
	    cmocka_unit_test_setup_teardown(test_module_directory, lsetup, lteardown),
	    cmocka_unit_test_setup_teardown(test_module_larger_than_ram, lsetup, lteardown),
	    cmocka_unit_test_setup_teardown(test_module_does_not_fit, lsetup, lteardown),
	    cmocka_unit_test_setup_teardown(test_info_does_not_fit, lsetup, lteardown),
	    cmocka_unit_test_setup_teardown(test_low_kernel, lsetup, lteardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
