/*
 * test_loader.c: CPU mode names, reading image files, format detection and
 * the raw loader.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "imgbuild.h"

#define RAM (4 * MIB)

/* ---- CPU modes ---- */

static void test_cpu_mode_names(void **state)
{
	(void)state;
	assert_int_equal(cpu_mode_parse("real"), CPU_MODE_REAL);
	assert_int_equal(cpu_mode_parse("protected"), CPU_MODE_PROT32);
	assert_int_equal(cpu_mode_parse("long"), CPU_MODE_LONG);
	assert_int_equal(cpu_mode_parse("user"), CPU_MODE_USER);
	assert_int_equal(cpu_mode_parse("Long"), -1);
	assert_int_equal(cpu_mode_parse("default"), -1);
	assert_int_equal(cpu_mode_parse(""), -1);
	assert_int_equal(cpu_mode_parse("long "), -1);
	assert_int_equal(cpu_mode_parse(NULL), -1);
	for (int m = CPU_MODE_REAL; m <= CPU_MODE_USER; m++)
		assert_int_equal(cpu_mode_parse(cpu_mode_name((enum cpu_mode)m)), m);
	assert_string_equal(cpu_mode_name(CPU_MODE_PROT32), "protected");
	assert_string_equal(cpu_mode_name(CPU_MODE_DEFAULT), "default");
	assert_string_equal(cpu_mode_name((enum cpu_mode)99), "invalid");
}

/* ---- loader_read_file ---- */

struct tdir {
	char path[64];
};

static int dir_setup(void **state)
{
	struct tdir *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	strcpy(d->path, "/tmp/vmmux-loader-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	*state = d;
	return 0;
}

static int dir_teardown(void **state)
{
	struct tdir *d = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
	free(d);
	return 0;
}

static void file_path(const struct tdir *d, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", d->path, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_read_file_good(void **state)
{
	struct tdir *d = *state;
	char p[128];
	file_path(d, "guest.bin", p, sizeof(p));
	uint8_t data[5000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = seg_byte(1, i);
	write_file(p, data, sizeof(data));
	uint8_t *buf = NULL;
	size_t len = 0;
	struct errbuf e = {{0}};
	expect_ok(loader_read_file(p, sizeof(data), &buf, &len, &e), &e);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(buf, data, sizeof(data));
	free(buf);
	/* one byte over the limit */
	expect_error(loader_read_file(p, sizeof(data) - 1, &buf, &len, &e), &e, p,
		     "file is 5000 bytes, larger than guest RAM (4999 bytes)");
	assert_null(buf);
}

static void test_read_file_too_big(void **state)
{
	struct tdir *d = *state;
	char p[128];
	file_path(d, "guest.bin", p, sizeof(p));
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 80 << 20), 0); /* sparse */
	close(fd);
	uint8_t *buf = NULL;
	size_t len = 0;
	struct errbuf e = {{0}};
	expect_error(loader_read_file(p, 64 << 20, &buf, &len, &e), &e, p,
		     "file is 80 MiB, larger than guest RAM (64 MiB)");
	assert_null(buf);
}

static void test_read_file_refused(void **state)
{
	struct tdir *d = *state;
	char p[128];
	uint8_t *buf = NULL;
	size_t len = 0;
	struct errbuf e = {{0}};

	expect_error(loader_read_file(d->path, RAM, &buf, &len, &e), &e, d->path, "is a directory");

	file_path(d, "empty.bin", p, sizeof(p));
	write_file(p, "", 0);
	expect_error(loader_read_file(p, RAM, &buf, &len, &e), &e, p, "file is empty");

	file_path(d, "missing.bin", p, sizeof(p));
	expect_error(loader_read_file(p, RAM, &buf, &len, &e), &e, p,
		     "cannot open: No such file or directory");

	/* a socket cannot be opened for reading, whoever we are */
	file_path(d, "sock", p, sizeof(p));
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_true(strlen(p) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, p, strlen(p) + 1);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	expect_error(loader_read_file(p, RAM, &buf, &len, &e), &e, p, "cannot open");
	close(s);

	/* permissions stop everyone but root */
	if (geteuid() != 0) {
		file_path(d, "secret.bin", p, sizeof(p));
		write_file(p, "x", 1);
		assert_int_equal(chmod(p, 0), 0);
		expect_error(loader_read_file(p, RAM, &buf, &len, &e), &e, p,
			     "cannot open: Permission denied");
	}
	assert_null(buf);
}

static void test_read_file_pipe(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	uint8_t data[3000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = seg_byte(2, i);
	assert_int_equal(write(fds[1], data, sizeof(data)), (ssize_t)sizeof(data));
	close(fds[1]);
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fds[0]);
	uint8_t *buf = NULL;
	size_t len = 0;
	struct errbuf e = {{0}};
	expect_error(loader_read_file(p, 2048, &buf, &len, &e), &e, p,
		     "file is larger than guest RAM (2 KiB)");
	close(fds[0]);

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], data, sizeof(data)), (ssize_t)sizeof(data));
	close(fds[1]);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fds[0]);
	expect_ok(loader_read_file(p, RAM, &buf, &len, &e), &e);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(buf, data, sizeof(data));
	free(buf);
	close(fds[0]);

	assert_int_equal(pipe(fds), 0);
	close(fds[1]);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fds[0]);
	buf = NULL;
	expect_error(loader_read_file(p, RAM, &buf, &len, &e), &e, p, "file is empty");
	assert_null(buf);
	close(fds[0]);
}

/* ---- detection ---- */

struct fx {
	struct tmem t;
	struct load_opts o;
	struct boot_image out;
	struct errbuf e;
};

static int mem_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	tmem_init(&f->t, RAM, 0xcc);
	*state = f;
	return 0;
}

static int mem_teardown(void **state)
{
	struct fx *f = *state;
	assert_true(tmem_guards_ok(&f->t));
	tmem_free(&f->t);
	free(f);
	return 0;
}

static int load(struct fx *f, const uint8_t *img, size_t len)
{
	memset(&f->e, 0, sizeof(f->e));
	return loader_load("guest.bin", img, len, &f->o, &f->t.m, &f->out, &f->e);
}

static void test_detect_garbage(void **state)
{
	struct fx *f = *state;
	uint8_t img[256];
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = seg_byte(3, i);
	expect_error(load(f, img, sizeof(img)), &f->e, "guest.bin",
		     "not a multiboot or ELF64 image (use --format raw with --load-addr for a "
		     "flat binary)");
	assert_null(strstr(f->e.msg, "checksum"));
	expect_error(load(f, img, 0), &f->e, "guest.bin", "image is empty");
	/* the same bytes load as a raw image when asked */
	f->o.format = IMAGE_RAW;
	f->o.load_addr = 0x7c00;
	expect_ok(load(f, img, sizeof(img)), &f->e);
	assert_int_equal(f->out.kind, BOOT_RAW);
}

static void test_detect_multiboot_before_elf64(void **state)
{
	struct fx *f = *state;
	/* a valid ELF64 that also carries a multiboot header with the address
	 * fields: QEMU's order picks multiboot */
	struct tseg s = {.type = PT_LOAD,
			 .flags = PF_R | PF_X,
			 .vaddr = 0x200000,
			 .filesz = 0x800,
			 .memsz = 0x800};
	size_t len;
	uint8_t *img = build_elf64(&s, 1, 0x200000, &len);
	size_t h = 0x800;
	mb_put_header(img, h, 0x10000);
	wr32(img + h + 12, 0x100000 + (uint32_t)h); /* header_addr */
	wr32(img + h + 16, 0x100000);		    /* load_addr: file offset 0 */
	wr32(img + h + 20, 0);			    /* whole file */
	wr32(img + h + 24, 0);
	wr32(img + h + 28, 0x100000 + (uint32_t)h + 32); /* entry */
	expect_ok(load(f, img, len), &f->e);
	assert_int_equal(f->out.kind, BOOT_MULTIBOOT);
	assert_int_equal(f->out.mode, CPU_MODE_PROT32);
	/* the same image with a bad checksum is ELF64 */
	wr32(img + h + 8, 0);
	expect_ok(load(f, img, len), &f->e);
	assert_int_equal(f->out.kind, BOOT_ELF64);
	assert_int_equal(f->out.entry, 0x200000);
	/* and when the ELF64 then fails, the message tells of the bad checksum */
	((Elf64_Ehdr *)img)->e_machine = EM_386;
	expect_error(load(f, img, len), &f->e, "guest.bin", "is not EM_X86_64");
	assert_non_null(
	    strstr(f->e.msg, "multiboot magic 0x1BADB002 at offset 0x800 has a bad checksum"));
	free(img);
}

static void test_detect_unknown_format(void **state)
{
	struct fx *f = *state;
	uint8_t img[64] = {0x7f, 'E', 'L', 'F', ELFCLASS64};
	f->o.format = (enum image_format)7;
	expect_error(load(f, img, sizeof(img)), &f->e, "guest.bin", "unknown image format 7");
}

/* ---- raw ---- */

static uint8_t raw_img[0x800];

static int raw_load(struct fx *f, size_t len, uint64_t load_addr, bool has_entry, uint64_t entry,
		    enum cpu_mode mode)
{
	for (size_t i = 0; i < sizeof(raw_img); i++)
		raw_img[i] = seg_byte(4, i);
	f->o.format = IMAGE_RAW;
	f->o.load_addr = load_addr;
	f->o.has_entry = has_entry;
	f->o.entry = entry;
	f->o.mode = mode;
	return load(f, raw_img, len);
}

static void test_raw_real_mode(void **state)
{
	struct fx *f = *state;
	expect_ok(raw_load(f, 512, 0x7c00, false, 0, CPU_MODE_DEFAULT), &f->e);
	assert_int_equal(f->out.kind, BOOT_RAW);
	assert_int_equal(f->out.mode, CPU_MODE_REAL);
	assert_int_equal(f->out.entry, 0x7c00);
	assert_int_equal(f->out.image_lo, 0x7c00);
	assert_int_equal(f->out.image_hi, 0x7e00);
	assert_memory_equal(f->t.m.host + 0x7c00, raw_img, 512);
	assert_int_equal(f->t.m.host[0x7bff], 0xcc);
	assert_int_equal(f->t.m.host[0x7e00], 0xcc);
	/* explicit entry, the last byte of a segment ending exactly at 1 MiB */
	expect_ok(raw_load(f, 0x800, 0xff800, true, 0xfffff, CPU_MODE_REAL), &f->e);
	assert_int_equal(f->out.entry, 0xfffff);
}

static void test_raw_real_mode_limits(void **state)
{
	struct fx *f = *state;
	expect_error(raw_load(f, 0x800, 0xff900, false, 0, CPU_MODE_DEFAULT), &f->e, "guest.bin",
		     "image [0xff900, 0x100100) extends beyond 1 MiB");
	expect_error(raw_load(f, 0x200, 0x7c00, true, 0x100000, CPU_MODE_REAL), &f->e, "guest.bin",
		     "entry 0x100000 is not below 1 MiB");
	expect_error(raw_load(f, 0x200, 0x7c00, true, 0x7e00, CPU_MODE_REAL), &f->e, "guest.bin",
		     "entry 0x7e00 is outside the image [0x7c00, 0x7e00)");
	expect_error(raw_load(f, 0x200, 0x7c00, true, 0x7bff, CPU_MODE_REAL), &f->e, "guest.bin",
		     "entry 0x7bff is outside the image");
	expect_error(raw_load(f, 0, 0x7c00, false, 0, CPU_MODE_REAL), &f->e, "guest.bin",
		     "image is empty");
}

static void test_raw_protected(void **state)
{
	struct fx *f = *state;
	expect_ok(raw_load(f, 0x800, 0x100000, true, 0x100010, CPU_MODE_PROT32), &f->e);
	assert_int_equal(f->out.mode, CPU_MODE_PROT32);
	assert_int_equal(f->out.entry, 0x100010);
	expect_error(raw_load(f, 0x800, 0xfffffc00ull, false, 0, CPU_MODE_PROT32), &f->e,
		     "guest.bin", "image [0xfffffc00, 0x100000400) extends beyond 4 GiB");
	/* protected mode may use page 0 */
	expect_ok(raw_load(f, 0x800, 0, false, 0, CPU_MODE_PROT32), &f->e);
}

static void test_raw_long(void **state)
{
	struct fx *f = *state;
	expect_ok(raw_load(f, 0x800, LOADER_LOW_RESERVED, false, 0, CPU_MODE_LONG), &f->e);
	assert_int_equal(f->out.mode, CPU_MODE_LONG);
	expect_ok(raw_load(f, 0x800, 0x200000, true, 0x2007ff, CPU_MODE_USER), &f->e);
	assert_int_equal(f->out.mode, CPU_MODE_USER);
	assert_memory_equal(f->t.m.host + 0x200000, raw_img, 0x800);
	expect_error(raw_load(f, 0x800, 0x8000, false, 0, CPU_MODE_LONG), &f->e, "guest.bin",
		     "image [0x8000, 0x8800) overlaps the low area [0, 0x10000) that long mode "
		     "reserves");
	expect_error(raw_load(f, 0x800, 0xf900, false, 0, CPU_MODE_USER), &f->e, "guest.bin",
		     "that user mode reserves");
	expect_error(raw_load(f, 0x800, RAM - 0x400, false, 0, CPU_MODE_LONG), &f->e, "guest.bin",
		     "image [0x3ffc00, 0x400400) (2048 bytes) extends beyond guest RAM");
	expect_error(raw_load(f, 0x800, UINT64_MAX - 0x100, false, 0, CPU_MODE_LONG), &f->e,
		     "guest.bin", "wraps around");
	expect_error(raw_load(f, 0x800, 0x200000, true, 0x10, CPU_MODE_LONG), &f->e, "guest.bin",
		     "entry 0x10 is outside the image");
}

static void test_raw_bad_mode(void **state)
{
	struct fx *f = *state;
	expect_error(raw_load(f, 0x800, 0x200000, false, 0, (enum cpu_mode)42), &f->e, "guest.bin",
		     "unknown cpu mode 42");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cpu_mode_names),
	    cmocka_unit_test_setup_teardown(test_read_file_good, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(test_read_file_too_big, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(test_read_file_refused, dir_setup, dir_teardown),
	    cmocka_unit_test(test_read_file_pipe),
#define T(fn) cmocka_unit_test_setup_teardown(fn, mem_setup, mem_teardown)
	    T(test_detect_garbage),
	    T(test_detect_multiboot_before_elf64),
	    T(test_detect_unknown_format),
	    T(test_raw_real_mode),
	    T(test_raw_real_mode_limits),
	    T(test_raw_protected),
	    T(test_raw_long),
	    T(test_raw_bad_mode),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
