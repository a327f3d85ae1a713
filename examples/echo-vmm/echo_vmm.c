/*
 * echo-vmm: a parallel VMM as a third party writes one, against the installed
 * <vmmux/vmm.h> and the static library libvmmux-vmm (see README.md).
 *
 * For the port I/O routed to it, it answers every read with the value of its
 * "read" argument (an INS gets the value's low byte in every element) and
 * counts the writes. A 4-byte write to the port of its "dump" argument is
 * taken as a guest-physical address: it reads the 8 bytes there through
 * vmmux_gm_read, which succeeds only inside the memory windows granted to
 * this VMM ("memory" in its config), and reports them. It raises nothing.
 *
 * It reports on its output descriptor ("output" in its config), one line per
 * write and dump and a summary when vmmux stops it, each line starting with
 * the text of the program argument --prefix (default: none).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vmmux/vmm.h>

struct echo {
	uint64_t read;	 /* the value reads return */
	int64_t dump;	 /* the dump port, or -1 */
	uint64_t reads;	 /* reads answered */
	uint64_t writes; /* writes counted (an OUTS counts once) */
	uint64_t bytes;	 /* bytes written */
	uint64_t dumps;	 /* dumps that read guest memory */
};

static const char *prefix = ""; /* --prefix TEXT */

/* A line on the output descriptor (none: dropped), cut at 511 bytes. */
static void report(struct vmmux_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void report(struct vmmux_ctx *ctx, const char *fmt, ...)
{
	char line[512];
	size_t cap = sizeof(line) - 1, n = strnlen(prefix, cap);
	memcpy(line, prefix, n);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, cap + 1 - n, fmt, ap);
	va_end(ap);
	n = m < 0 ? n : n + (size_t)m < cap ? n + (size_t)m : cap;
	line[n++] = '\n';
	int fd = vmmux_output_fd(ctx);
	if (fd >= 0 && write(fd, line, n) < 0)
		vmmux_log(ctx, VMMUX_LOG_WARN, "output: %s", strerror(errno));
}

/* Argument KEY as a number (decimal, or hex with 0x; at most MAX), or DEF. */
static int arg_number(struct vmmux_ctx *ctx, const char *key, uint64_t def, uint64_t max,
		      uint64_t *out)
{
	const char *s = vmmux_arg(ctx, key);
	*out = def;
	if (s == NULL)
		return 0;
	int hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *digits = hex ? s + 2 : s;
	char *end;
	errno = 0;
	*out = strtoull(digits, &end, hex ? 16 : 10);
	if (!(hex ? isxdigit((unsigned char)*digits) : isdigit((unsigned char)*digits)) ||
	    *end != '\0' || errno != 0 || *out > max) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "argument %s='%s' is not a number from 0 to %#llx (decimal or 0x hex)",
			  key, s, (unsigned long long)max);
		return -1;
	}
	return 0;
}

static int echo_init(struct vmmux_ctx *ctx)
{
	struct echo *e = vmmux_priv(ctx);
	uint64_t dump;
	if (arg_number(ctx, "read", 0, UINT64_MAX, &e->read) < 0 ||
	    arg_number(ctx, "dump", UINT64_MAX, 0xffff, &dump) < 0)
		return -1;
	e->dump = vmmux_arg(ctx, "dump") ? (int64_t)dump : -1;
	return 0;
}

static void echo_dump(struct vmmux_ctx *ctx, struct echo *e, uint64_t gpa)
{
	uint8_t b[8];
	if (vmmux_gm_read(ctx, gpa, b, sizeof(b)) < 0) {
		report(ctx, "dump %#llx: not granted", (unsigned long long)gpa);
		return;
	}
	e->dumps++;
	report(ctx, "dump %#llx: %02x %02x %02x %02x %02x %02x %02x %02x", (unsigned long long)gpa,
	       b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
	vmmux_log(ctx, VMMUX_LOG_INFO, "dumped 8 bytes at %#llx", (unsigned long long)gpa);
}

static int echo_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	struct echo *e = vmmux_priv(ctx);
	if (ev->type != VMMUX_EV_IO)
		return -EINVAL; /* the host applies the built-in default */
	size_t len = (size_t)ev->size * ev->count;
	if (!(ev->flags & VMMUX_EVF_WRITE)) {
		e->reads++;
		if (ev->data != NULL) /* INS: fill the guest's buffer */
			memset(ev->data, (int)(e->read & 0xff), len);
		rep->value = e->read; /* the host masks it to the access size */
		return 0;
	}
	e->writes++;
	e->bytes += len;
	if (ev->data != NULL) {
		char hex[2 * 64 + 1] = ""; /* the first 64 bytes */
		for (size_t i = 0; i < len && i < 64; i++)
			snprintf(hex + 2 * i, 3, "%02x", ((const uint8_t *)ev->data)[i]);
		report(ctx, "write %llu: port %#llx size %u count %u data %s%s",
		       (unsigned long long)e->writes, (unsigned long long)ev->key, ev->size,
		       ev->count, hex, len > 64 ? "..." : "");
		return 0;
	}
	report(ctx, "write %llu: port %#llx size %u value %#llx", (unsigned long long)e->writes,
	       (unsigned long long)ev->key, ev->size, (unsigned long long)ev->value);
	if ((int64_t)ev->key == e->dump && ev->size == 4)
		echo_dump(ctx, e, ev->value);
	return 0;
}

static void echo_fini(struct vmmux_ctx *ctx)
{
	const struct echo *e = vmmux_priv(ctx);
	report(ctx, "%s: %llu reads answered, %llu writes counted (%llu bytes), %llu dumps",
	       vmmux_name(ctx), (unsigned long long)e->reads, (unsigned long long)e->writes,
	       (unsigned long long)e->bytes, (unsigned long long)e->dumps);
}

static const char *const echo_args[] = {"read", "dump", NULL};
static const char *const echo_raises[] = {NULL};

static const struct vmmux_role echo_role = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "echo",
    .summary = "answers port reads with a value, counts writes, dumps guest memory",
    .priv_size = sizeof(struct echo),
    .init = echo_init,
    .fini = echo_fini,
    .handle = echo_handle,
    .args = echo_args,
    .raises = echo_raises,
};

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
			prefix = argv[++i];
		} else {
			fprintf(stderr,
				"usage: %s [--prefix TEXT] (started by vmmux: see README.md)\n",
				argv[0]);
			return 2;
		}
	}
	return vmmux_vmm_main(&echo_role);
}
