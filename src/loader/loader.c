/*
 * loader.c: CPU mode names, reading the image file, and format detection.
 *
 * Detection follows QEMU's -kernel: a valid multiboot v1 header in the first
 * 8 KiB wins; otherwise an ELF file goes to the ELF64 loader; a flat binary
 * is only ever loaded when the options ask for it (IMAGE_RAW), because a
 * flat binary has no header to recognise and a wrong guess would boot
 * garbage.
 */
#include "loader/loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const mode_names[] = {
    [CPU_MODE_DEFAULT] = "default", [CPU_MODE_REAL] = "real", [CPU_MODE_PROT32] = "protected",
    [CPU_MODE_LONG] = "long",	    [CPU_MODE_USER] = "user",
};

int cpu_mode_parse(const char *s)
{
	if (s == NULL)
		return -1;
	for (int m = CPU_MODE_REAL; m <= CPU_MODE_USER; m++)
		if (strcmp(s, mode_names[m]) == 0)
			return m;
	return -1;
}

const char *cpu_mode_name(enum cpu_mode m)
{
	if ((unsigned)m < sizeof(mode_names) / sizeof(mode_names[0]))
		return mode_names[m];
	return "invalid";
}

static void fmt_size(char *buf, size_t n, uint64_t bytes)
{
	const uint64_t kib = 1024, mib = kib * 1024, gib = mib * 1024;
	if (bytes >= gib && bytes % gib == 0)
		snprintf(buf, n, "%llu GiB", (unsigned long long)(bytes / gib));
	else if (bytes >= mib && bytes % mib == 0)
		snprintf(buf, n, "%llu MiB", (unsigned long long)(bytes / mib));
	else if (bytes >= gib)
		snprintf(buf, n, "%.1f GiB", (double)bytes / (double)gib);
	else if (bytes >= mib)
		snprintf(buf, n, "%.1f MiB", (double)bytes / (double)mib);
	else if (bytes >= kib && bytes % kib == 0)
		snprintf(buf, n, "%llu KiB", (unsigned long long)(bytes / kib));
	else
		snprintf(buf, n, "%llu bytes", (unsigned long long)bytes);
}

static int too_big(const char *path, uint64_t size, bool exact, size_t max_len, struct errbuf *e)
{
	char have[48], max[48];
	fmt_size(max, sizeof(max), max_len);
	if (!exact)
		return err_set(e, "%s: file is larger than guest RAM (%s)", path, max);
	fmt_size(have, sizeof(have), size);
	return err_set(e, "%s: file is %s, larger than guest RAM (%s)", path, have, max);
}

int loader_read_file(const char *path, size_t max_len, uint8_t **buf, size_t *len, struct errbuf *e)
{
	return loader_read_file_as(path, max_len, false, "a guest image", buf, len, e);
}

int loader_read_file_as(const char *path, size_t max_len, bool allow_empty, const char *what,
			uint8_t **buf, size_t *len, struct errbuf *e)
{
	*buf = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, "%s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int err = errno;
		close(fd);
		return err_set(e, "%s: cannot stat: %s", path, strerror(err));
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return err_set(e, "%s: is a directory, not %s", path, what);
	}
	bool regular = S_ISREG(st.st_mode);
	if (regular && st.st_size == 0 && !allow_empty) {
		close(fd);
		return err_set(e, "%s: file is empty", path);
	}
	if (regular && (uint64_t)st.st_size > max_len) {
		close(fd);
		return too_big(path, (uint64_t)st.st_size, true, max_len, e);
	}

	/*
	 * Read up to max_len + 1 bytes whatever st_size said: a pipe has no
	 * size, and a regular file may change while it is read.
	 */
	size_t cap = regular ? (size_t)st.st_size + 1 : 65536;
	if (cap > max_len && max_len < SIZE_MAX)
		cap = max_len + 1;
	if (cap == 0)
		cap = 1;
	uint8_t *b = malloc(cap);
	if (b == NULL) {
		close(fd);
		return err_set(e, "%s: out of memory reading the file", path);
	}
	size_t n = 0;
	for (;;) {
		if (n == cap) {
			if (n > max_len)
				break;
			size_t ncap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
			if (max_len < SIZE_MAX && ncap > max_len + 1)
				ncap = max_len + 1;
			uint8_t *nb = realloc(b, ncap);
			if (nb == NULL) {
				free(b);
				close(fd);
				return err_set(e, "%s: out of memory reading the file", path);
			}
			b = nb;
			cap = ncap;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			free(b);
			close(fd);
			return err_set(e, "%s: read error: %s", path, strerror(err));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max_len) {
		free(b);
		return too_big(path, 0, false, max_len, e);
	}
	if (n == 0) {
		free(b);
		if (!allow_empty)
			return err_set(e, "%s: file is empty", path);
		b = NULL;
	}
	*buf = b;
	*len = n;
	return 0;
}

/* Append " (NOTE)" to the message in e, when it fits. */
static void err_append(struct errbuf *e, const char *note)
{
	if (e == NULL)
		return;
	size_t used = strnlen(e->msg, sizeof(e->msg));
	snprintf(e->msg + used, sizeof(e->msg) - used, "%s", note);
}

int loader_load(const char *name, const uint8_t *img, size_t len, const struct load_opts *o,
		struct guest_mem *m, struct boot_image *out, struct errbuf *e)
{
	memset(out, 0, sizeof(*out));
	if (o->format == IMAGE_RAW)
		return loader_raw(name, img, len, o, m, out, e);
	if (o->format != IMAGE_AUTO)
		return err_set(e, "%s: unknown image format %d", name, (int)o->format);
	if (len == 0)
		return err_set(e, "%s: image is empty", name);

	long off = multiboot_find_header(img, len);
	if (off >= 0)
		return loader_multiboot(name, img, len, (size_t)off, o, m, out, e);

	long bad = multiboot_find_bad_magic(img, len);
	char note[160] = "";
	if (bad >= 0)
		snprintf(note, sizeof(note),
			 " (a multiboot magic 0x1BADB002 at offset 0x%lx has a bad checksum, so "
			 "it is not a multiboot header)",
			 (unsigned long)bad);

	if (len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0) {
		if (len > EI_CLASS && img[EI_CLASS] == ELFCLASS32) {
			return err_set(
			    e,
			    "%s: not a multiboot or ELF64 image: an ELF32 file without a "
			    "multiboot v1 header in its first 8192 bytes%s",
			    name, note);
		}
		int rc = loader_elf64(name, img, len, o, m, out, e);
		if (rc < 0 && bad >= 0)
			err_append(e, note);
		return rc;
	}
	return err_set(e,
		       "%s: not a multiboot or ELF64 image (use --format raw with --load-addr for "
		       "a flat binary)%s",
		       name, note);
}
