/*
 * qemu.c: the QEMU-compatible front end (qemu.h).
 *
 * QEMU's options are single-dash words (a double dash is accepted too, as
 * QEMU does), each with at most one argument. They are read in order into
 * a struct qopts, checked, and turned into `vmmux run` arguments:
 *
 *   --no-defaults, then QEMU's pc machine: --irqchip --fw-cfg, the chipset
 *   (reset at 0x64 and 0xcf9, ACPI power-off at 0x604) and the SMM ports
 *   0xb2-0xb3; COM1 (uart16550 at 0x3f8) on the -serial backend;
 *   isa-debug-exit (debug-exit) and pc-testdev (sink) when -device asks;
 *   --kernel, --append, --initrd, --mem (QEMU's -m, rounded up to 8 KiB as
 *   QEMU does), --cpus; -s / -gdb / -S as --gdb ADDR / --gdb-wait.
 *
 * Then cli_parse_run, config_finish and machine_run, as `vmmux run`. Every
 * message is "PROG: -option: problem" on stderr, and every error status 1.
 */
#include "cli/qemu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "util/log.h"
#include "vmm/machine.h"

#define QEMU_VERSION	 "7.2.0" /* the pc machine vmmux models (vmms/fwcfg/pc_memmap.h) */
#define QEMU_MEM_DEFAULT (128ull << 20)
#define QEMU_MEM_ALIGN	 8192ull /* QEMU rounds -m up to this */
#define QEMU_ERROR	 1
#define CHARDEVS_MAX	 8
#define RUN_ARGS_MAX	 96

/* A character backend: where COM1's bytes go. */
enum backend { BACKEND_UNSET, BACKEND_STDIO, BACKEND_FILE, BACKEND_NULL };

struct chardev {
	char *id;
	enum backend kind;
	char *path;
};

struct qopts {
	const char *prog;
	const char *kernel, *append, *initrd, *mem, *smp;
	bool nographic, nodefaults, no_reboot;
	enum backend serial;
	const char *serial_path;
	bool serial_given;
	bool debug_exit;
	unsigned long exit_base, exit_size;
	bool testdev;
	const char *gdb;
	bool gdb_wait;
	size_t nchardevs;
	struct chardev chardevs[CHARDEVS_MAX];
};

bool qemu_is_name(const char *argv0)
{
	if (argv0 == NULL)
		return false;
	const char *base = strrchr(argv0, '/');
	base = base != NULL ? base + 1 : argv0;
	return strcmp(base, "qemu-system-x86_64") == 0;
}

static int qerr(const struct qopts *q, const char *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int qerr(const struct qopts *q, const char *opt, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", q->prog);
	if (opt != NULL)
		fprintf(stderr, "-%s: ", opt);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -1;
}

static void print_version(FILE *f)
{
	fprintf(f,
		"QEMU emulator version " QEMU_VERSION " (vmmux %s, not QEMU: vmmux's "
		"QEMU-compatible front end)\n"
		"vmmux runs the guest under KVM on QEMU's pc machine; see vmmux qemu -help\n",
		VMMUX_VERSION);
}

void qemu_help(FILE *f)
{
	print_version(f);
	fputs("usage: qemu-system-x86_64 [options] -kernel FILE\n"
	      "\n"
	      "The options vmmux accepts (every other one is refused):\n"
	      "-kernel bzImage   the multiboot kernel to boot (required)\n"
	      "-append cmdline   its command line\n"
	      "-initrd file      multiboot modules: 'file1 arg,file2' (',,' is a comma)\n"
	      "-m [size=]megs[M|G|T|K]  guest RAM (default 128M; fractions: 1.5G)\n"
	      "-smp [cpus=]n     number of vCPUs\n"
	      "-machine|-M pc[,accel=kvm]  QEMU's pc machine (the only one)\n"
	      "-accel kvm, -enable-kvm     KVM (the only accelerator)\n"
	      "-cpu host|max|qemu64|kvm64[,+flag|-flag|flag=on|off]  accepted; CPUID\n"
	      "                  comes from KVM (the host's)\n"
	      "-nodefaults, -no-user-config, -nographic, -display none, -vga none,\n"
	      "-vnc none, -name string\n"
	      "-no-reboot        a triple fault ends the run with status 0\n"
	      "-no-shutdown      accepted; power-off ends the run with status 0\n"
	      "-serial stdio|mon:stdio|file:path|null|none|chardev:id  COM1's backend\n"
	      "-chardev file,id=id,path=path | stdio,id=id | null,id=id\n"
	      "-device isa-debug-exit[,iobase=0x501][,iosize=0x02]\n"
	      "                  a write of V ends the run with status (V << 1) | 1\n"
	      "-device help      the devices (isa-debug-exit, pc-testdev)\n"
	      "-device pc-testdev  its ports (0xe0-0xe7, 0x2000-0x2017) and MMIO\n"
	      "                  (0xff000000, 64 KiB): writes taken, reads 0\n"
	      "-s                shorthand for -gdb tcp::1234\n"
	      "-gdb dev          the GDB stub on dev (tcp::PORT or unix:PATH)\n"
	      "-S                wait for the debugger before the first instruction\n"
	      "-help, -version\n"
	      "\n"
	      "Exit status: the isa-debug-exit status, 0 at power-off, 1 on error.\n",
	      f);
}

/* QEMU's size syntax for -m: a number (fractions allowed), an optional
 * suffix B, K, M, G, T (any case; none: MiB). */
static int parse_mem(const struct qopts *q, const char *s, uint64_t *out)
{
	const char *v = s;
	if (strncmp(v, "size=", 5) == 0)
		v += 5;
	if (strchr(v, ',') != NULL)
		return qerr(q, "m", "'%s': only a size (or size=SIZE) is supported", s);
	errno = 0;
	char *end;
	double d = strtod(v, &end);
	if (end == v || errno != 0 || !(d > 0) || v[0] == '-' || v[0] == '+')
		return qerr(q, "m", "'%s': not a size", s);
	double unit = 1 << 20;
	if (*end != '\0') {
		switch (end[0]) {
		case 'b':
		case 'B':
			unit = 1;
			break;
		case 'k':
		case 'K':
			unit = 1 << 10;
			break;
		case 'm':
		case 'M':
			unit = 1 << 20;
			break;
		case 'g':
		case 'G':
			unit = 1 << 30;
			break;
		case 't':
		case 'T':
			unit = 1099511627776.0;
			break;
		default:
			return qerr(q, "m", "'%s': unknown size suffix '%s' (use K, M, G or T)", s,
				    end);
		}
		if (end[1] != '\0')
			return qerr(q, "m", "'%s': unknown size suffix '%s' (use K, M, G or T)", s,
				    end);
	}
	double bytes = d * unit;
	if (bytes > (double)MEM_MAX || bytes < 1)
		return qerr(q, "m", "'%s': RAM size out of range (at most 4G)", s);
	uint64_t b = (uint64_t)bytes;
	if ((double)b < bytes)
		b++;
	*out = (b + QEMU_MEM_ALIGN - 1) & ~(QEMU_MEM_ALIGN - 1);
	return 0;
}

static int parse_smp(const struct qopts *q, const char *s, unsigned long *out)
{
	const char *v = strncmp(s, "cpus=", 5) == 0 ? s + 5 : s;
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (end == v || errno != 0 || v[0] == '-')
		return qerr(q, "smp", "'%s': not a CPU count", s);
	if (*end != '\0')
		return qerr(q, "smp", "'%s': only a CPU count (or cpus=N) is supported", s);
	if (n < 1 || n > CPUS_MAX)
		return qerr(q, "smp", "'%s': 1 to %d CPUs", s, CPUS_MAX);
	*out = n;
	return 0;
}

/* Does the comma-separated list S, after its first item, hold only
 * accel=kvm? (-machine pc,accel=kvm) */
static int check_machine(const struct qopts *q, const char *opt, const char *s)
{
	char buf[256];
	if (strlen(s) >= sizeof(buf))
		return qerr(q, opt, "'%s': too long", s);
	strcpy(buf, s);
	char *save = NULL;
	bool first = true;
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (strncmp(t, "accel=", 6) == 0) {
			if (strcmp(t + 6, "kvm") != 0)
				return qerr(q, opt, "accel '%s': vmmux runs guests under KVM only",
					    t + 6);
		} else if (first && (strcmp(t, "pc") == 0 || strcmp(t, "type=pc") == 0 ||
				     strncmp(t, "pc-i440fx-", 10) == 0)) {
			/* QEMU's pc machine */
		} else if (first && strchr(t, '=') == NULL) {
			return qerr(q, opt,
				    "machine '%s' is not supported: vmmux has QEMU's pc "
				    "machine only",
				    t);
		} else {
			return qerr(q, opt, "'%s' is not supported (only pc and accel=kvm)", t);
		}
		first = false;
	}
	return 0;
}

static int check_cpu(const struct qopts *q, const char *s)
{
	char buf[512];
	if (strlen(s) >= sizeof(buf))
		return qerr(q, "cpu", "'%s': too long", s);
	strcpy(buf, s);
	char *save = NULL;
	char *model = strtok_r(buf, ",", &save);
	if (model == NULL || (strcmp(model, "host") != 0 && strcmp(model, "max") != 0 &&
			      strcmp(model, "qemu64") != 0 && strcmp(model, "kvm64") != 0))
		return qerr(q, "cpu",
			    "model '%s' is not supported (host, max, qemu64, kvm64; the CPUID "
			    "comes from KVM)",
			    model != NULL ? model : "");
	for (char *t = strtok_r(NULL, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		bool ok = (t[0] == '+' || t[0] == '-') ? t[1] != '\0' : t[0] != '\0';
		if (!ok)
			return qerr(q, "cpu", "'%s': an empty CPU flag", s);
	}
	return 0;
}

static struct chardev *find_chardev(struct qopts *q, const char *id)
{
	for (size_t i = 0; i < q->nchardevs; i++)
		if (strcmp(q->chardevs[i].id, id) == 0)
			return &q->chardevs[i];
	return NULL;
}

/* -chardev BACKEND,id=ID[,path=PATH] */
static int parse_chardev(struct qopts *q, const char *s)
{
	if (q->nchardevs == CHARDEVS_MAX)
		return qerr(q, "chardev", "at most %d", CHARDEVS_MAX);
	char *buf = strdup(s);
	if (buf == NULL)
		return qerr(q, "chardev", "out of memory");
	struct chardev *c = &q->chardevs[q->nchardevs];
	memset(c, 0, sizeof(*c));
	char *save = NULL;
	char *kind = strtok_r(buf, ",", &save);
	int rc = 0;
	if (kind == NULL || (strcmp(kind, "file") != 0 && strcmp(kind, "stdio") != 0 &&
			     strcmp(kind, "null") != 0)) {
		rc = qerr(q, "chardev", "backend '%s' is not supported (file, stdio, null)",
			  kind != NULL ? kind : "");
		goto out;
	}
	c->kind = strcmp(kind, "file") == 0    ? BACKEND_FILE
		  : strcmp(kind, "stdio") == 0 ? BACKEND_STDIO
					       : BACKEND_NULL;
	for (char *t = strtok_r(NULL, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (strncmp(t, "id=", 3) == 0 && t[3] != '\0' && c->id == NULL) {
			c->id = strdup(t + 3);
		} else if (strncmp(t, "path=", 5) == 0 && t[5] != '\0' && c->kind == BACKEND_FILE &&
			   c->path == NULL) {
			c->path = strdup(t + 5);
		} else {
			rc = qerr(q, "chardev", "'%s': '%s' is not supported", s, t);
			goto out;
		}
	}
	if (c->id == NULL || (c->kind == BACKEND_FILE && c->path == NULL)) {
		bool no_path = c->kind == BACKEND_FILE && c->path == NULL;
		rc = qerr(q, "chardev", "'%s': needs %s%s%s", s, c->id == NULL ? "id=" : "",
			  c->id == NULL && no_path ? " and " : "", no_path ? "path=" : "");
		goto out;
	}
	if (find_chardev(q, c->id) != NULL) {
		rc = qerr(q, "chardev", "duplicate id '%s'", c->id);
		goto out;
	}
	q->nchardevs++;
out:
	if (rc < 0) {
		free(c->id);
		free(c->path);
		memset(c, 0, sizeof(*c));
	}
	free(buf);
	return rc;
}

static int parse_serial(struct qopts *q, const char *s)
{
	if (q->serial_given)
		return qerr(q, "serial", "'%s': vmmux has one serial port (COM1)", s);
	q->serial_given = true;
	if (strcmp(s, "stdio") == 0 || strcmp(s, "mon:stdio") == 0) {
		q->serial = BACKEND_STDIO;
	} else if (strcmp(s, "null") == 0 || strcmp(s, "none") == 0) {
		q->serial = BACKEND_NULL;
	} else if (strncmp(s, "file:", 5) == 0 && s[5] != '\0') {
		q->serial = BACKEND_FILE;
		q->serial_path = s + 5;
	} else if (strncmp(s, "chardev:", 8) == 0) {
		struct chardev *c = find_chardev(q, s + 8);
		if (c == NULL)
			return qerr(q, "serial", "'%s': no -chardev with id '%s' (give it first)",
				    s, s + 8);
		q->serial = c->kind;
		q->serial_path = c->path;
	} else {
		return qerr(q, "serial",
			    "'%s' is not supported (stdio, file:PATH, null, none, chardev:ID)", s);
	}
	return 0;
}

static int parse_ulong(const char *s, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (end == s || *end != '\0' || errno != 0 || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static int parse_device(struct qopts *q, const char *s)
{
	if (strcmp(s, "help") == 0 || strcmp(s, "?") == 0) {
		/* QEMU's list, for runners that probe it (grep '"pc-testdev"') */
		fputs("Misc devices:\n"
		      "name \"isa-debug-exit\", bus ISA\n"
		      "name \"pc-testdev\", bus ISA\n",
		      stdout);
		return 1;
	}
	char buf[256];
	if (strlen(s) >= sizeof(buf))
		return qerr(q, "device", "'%s': too long", s);
	strcpy(buf, s);
	char *save = NULL;
	char *drv = strtok_r(buf, ",", &save);
	if (drv != NULL && strcmp(drv, "pc-testdev") == 0) {
		if (strtok_r(NULL, ",", &save) != NULL)
			return qerr(q, "device", "'%s': pc-testdev takes no properties", s);
		q->testdev = true;
		return 0;
	}
	if (drv == NULL || strcmp(drv, "isa-debug-exit") != 0)
		return qerr(q, "device",
			    "'%s' is not supported (isa-debug-exit[,iobase=N,iosize=N], "
			    "pc-testdev)",
			    drv != NULL ? drv : s);
	if (q->debug_exit)
		return qerr(q, "device", "one isa-debug-exit at most");
	q->debug_exit = true;
	q->exit_base = 0x501; /* QEMU's defaults */
	q->exit_size = 2;
	for (char *t = strtok_r(NULL, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		unsigned long *f = strncmp(t, "iobase=", 7) == 0   ? &q->exit_base
				   : strncmp(t, "iosize=", 7) == 0 ? &q->exit_size
								   : NULL;
		if (f == NULL)
			return qerr(q, "device", "isa-debug-exit: property '%s' is not supported",
				    t);
		if (parse_ulong(t + 7, f) < 0)
			return qerr(q, "device", "isa-debug-exit: '%s': not a number", t);
	}
	if (q->exit_size < 1 || q->exit_size > 4 || q->exit_base > 0xffff ||
	    q->exit_base + q->exit_size > 0x10000)
		return qerr(q, "device", "isa-debug-exit: iobase 0x%lx, iosize %lu out of range",
			    q->exit_base, q->exit_size);
	return 0;
}

/* The options that take an argument, and those that do not. */
static const char *const with_arg[] = {
    "kernel", "append",	 "initrd", "smp",  "m",	      "machine", "M",	"accel", "cpu",
    "serial", "chardev", "device", "name", "display", "vga",	 "vnc", "gdb",	 NULL};
static const char *const without_arg[] = {
    "enable-kvm", "nodefaults", "no-user-config", "nographic", "no-reboot", "no-shutdown",
    "S",	  "s",		"help",		  "h",	       "version",   NULL};

static bool in_list(const char *const *l, const char *s)
{
	for (; *l != NULL; l++)
		if (strcmp(*l, s) == 0)
			return true;
	return false;
}

/* Returns 0, 1 for -help/-version done, or -1 after a message. */
static int parse(struct qopts *q, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0')
			return qerr(q, NULL, "'%s': not an option (vmmux boots -kernel FILE)", a);
		const char *o = a + 1;
		if (o[0] == '-') /* QEMU takes --opt as -opt */
			o++;
		if (in_list(without_arg, o)) {
			if (strcmp(o, "help") == 0 || strcmp(o, "h") == 0) {
				qemu_help(stdout);
				return 1;
			}
			if (strcmp(o, "version") == 0) {
				print_version(stdout);
				return 1;
			}
			if (strcmp(o, "nographic") == 0)
				q->nographic = true;
			else if (strcmp(o, "nodefaults") == 0)
				q->nodefaults = true;
			else if (strcmp(o, "no-reboot") == 0)
				q->no_reboot = true;
			else if (strcmp(o, "s") == 0)
				q->gdb = "tcp::1234";
			else if (strcmp(o, "S") == 0)
				q->gdb_wait = true;
			/* -enable-kvm, -no-shutdown: nothing more to do */
			continue;
		}
		if (!in_list(with_arg, o))
			return qerr(q, o, "option not supported by vmmux (see -help)");
		if (i + 1 >= argc)
			return qerr(q, o, "requires an argument");
		const char *v = argv[++i];
		unsigned long n;
		uint64_t mem;
		if (strcmp(o, "kernel") == 0) {
			q->kernel = v;
		} else if (strcmp(o, "append") == 0) {
			q->append = v;
		} else if (strcmp(o, "initrd") == 0) {
			q->initrd = v;
		} else if (strcmp(o, "smp") == 0) {
			if (parse_smp(q, v, &n) < 0)
				return -1;
			q->smp = v;
		} else if (strcmp(o, "m") == 0) {
			if (parse_mem(q, v, &mem) < 0)
				return -1;
			q->mem = v;
		} else if (strcmp(o, "machine") == 0 || strcmp(o, "M") == 0) {
			if (check_machine(q, o, v) < 0)
				return -1;
		} else if (strcmp(o, "accel") == 0) {
			if (strcmp(v, "kvm") != 0)
				return qerr(q, o, "'%s': vmmux runs guests under KVM only", v);
		} else if (strcmp(o, "cpu") == 0) {
			if (check_cpu(q, v) < 0)
				return -1;
		} else if (strcmp(o, "serial") == 0) {
			if (parse_serial(q, v) < 0)
				return -1;
		} else if (strcmp(o, "chardev") == 0) {
			if (parse_chardev(q, v) < 0)
				return -1;
		} else if (strcmp(o, "device") == 0) {
			int d = parse_device(q, v);
			if (d != 0)
				return d;
		} else if (strcmp(o, "display") == 0 || strcmp(o, "vga") == 0 ||
			   strcmp(o, "vnc") == 0) {
			if (strcmp(v, "none") != 0)
				return qerr(
				    q, o, "'%s' is not supported (none: vmmux has no display)", v);
		} else if (strcmp(o, "gdb") == 0) {
			q->gdb = v;
		}
		/* -name: accepted, nothing to do */
	}
	if (q->kernel == NULL)
		return qerr(q, NULL, "no -kernel: vmmux boots a kernel given with -kernel FILE");
	return 0;
}

/* A growing argv for `vmmux run`; strings it formats are owned by it. */
struct runargs {
	int n;
	char *v[RUN_ARGS_MAX + 1];
	bool owned[RUN_ARGS_MAX + 1];
};

static int add(struct runargs *r, const char *s)
{
	if (r->n >= RUN_ARGS_MAX)
		return -1;
	r->owned[r->n] = false;
	r->v[r->n++] = (char *)s;
	r->v[r->n] = NULL;
	return 0;
}

static int addf(struct runargs *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int addf(struct runargs *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int len = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (len < 0 || add(r, s) < 0) {
		free(len < 0 ? NULL : s);
		return -1;
	}
	r->owned[r->n - 1] = true;
	return 0;
}

static void runargs_free(struct runargs *r)
{
	for (int i = 0; i < r->n; i++)
		if (r->owned[i])
			free(r->v[i]);
}

static int build(const struct qopts *q, struct runargs *r)
{
	uint64_t mem = QEMU_MEM_DEFAULT;
	unsigned long cpus = 1;
	if (q->mem != NULL && parse_mem(q, q->mem, &mem) < 0)
		return -1;
	if (q->smp != NULL && parse_smp(q, q->smp, &cpus) < 0)
		return -1;
	/* COM1: -serial, else stdio with -nographic, else nowhere (QEMU's
	 * window; none with -nodefaults). */
	enum backend serial = q->serial_given ? q->serial
			      : q->nographic  ? BACKEND_STDIO
					      : BACKEND_NULL;
	if (serial == BACKEND_FILE && strchr(q->serial_path, ',') != NULL)
		return qerr(q, "serial", "'%s': vmmux takes no comma in a serial file's path",
			    q->serial_path);
	int rc = 0;
	rc |= add(r, "run");
	rc |= add(r, "--no-defaults");
	rc |= add(r, "--irqchip");
	rc |= add(r, "--fw-cfg");
	rc |= add(r, "--kernel");
	rc |= add(r, q->kernel);
	if (q->append != NULL) {
		rc |= add(r, "--append");
		rc |= add(r, q->append);
	}
	if (q->initrd != NULL) {
		rc |= add(r, "--initrd");
		rc |= add(r, q->initrd);
	}
	rc |= addf(r, "--mem=%lluK", (unsigned long long)(mem >> 10));
	rc |= addf(r, "--cpus=%lu", cpus);
	static const char *const machine[] = {
	    "--vmm",   "chipset=chipset",  "--route", "io:0x64=chipset",
	    "--route", "io:0xcf9=chipset", "--route", "io:0x604-0x605=chipset",
	    "--vmm",   "smm=smm",	   "--route", "io:0xb2-0xb3=smm",
	    "--route", "platform:smi=smm", NULL};
	for (size_t i = 0; machine[i] != NULL; i++)
		rc |= add(r, machine[i]);
	if (serial != BACKEND_NULL) {
		rc |= add(r, "--vmm");
		if (serial == BACKEND_STDIO)
			rc |= add(r, "uart=uart16550,input=stdin,output=stdout");
		else
			rc |= addf(r, "uart=uart16550,output=%s", q->serial_path);
		rc |= add(r, "--route");
		rc |= add(r, "io:0x3f8-0x3ff=uart");
	}
	if (q->debug_exit) {
		rc |= add(r, "--vmm");
		rc |= add(r, "exit=debug-exit");
		rc |= add(r, "--route");
		rc |= addf(r, "io:0x%lx-0x%lx=exit", q->exit_base, q->exit_base + q->exit_size - 1);
	}
	if (q->testdev) {
		static const char *const testdev[] = {"--vmm",	 "testdev=sink",
						      "--route", "io:0xe0-0xe7=testdev",
						      "--route", "io:0x2000-0x2017=testdev",
						      "--route", "mmio:0xff000000+0x10000=testdev",
						      NULL};
		for (size_t i = 0; testdev[i] != NULL; i++)
			rc |= add(r, testdev[i]);
	}
	if (q->gdb != NULL) {
		rc |= add(r, "--gdb");
		rc |= add(r, q->gdb);
	}
	if (q->gdb_wait)
		rc |= add(r, "--gdb-wait");
	if (rc != 0)
		return qerr(q, NULL, "too many options");
	return 0;
}

/* vmmux's statuses as QEMU's: errors (vmmux's even statuses) 1; a guest
 * reset or crash 0 with -no-reboot (QEMU's "guest reset" exit), else 1. */
static int qemu_status(const struct qopts *q, int status)
{
	if (status == EXIT_GUEST_CRASH)
		return q->no_reboot ? 0 : QEMU_ERROR;
	if (status != 0 && (status & 1) == 0)
		return QEMU_ERROR;
	return status;
}

int qemu_main(int argc, char **argv)
{
	struct qopts q;
	memset(&q, 0, sizeof(q));
	const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
	q.prog = argc > 0 ? (base != NULL ? base + 1 : argv[0]) : "qemu-system-x86_64";
	int status = QEMU_ERROR;
	struct runargs r = {0};
	int p = parse(&q, argc, argv);
	if (p != 0) {
		status = p > 0 ? (fflush(stdout) == 0 ? 0 : QEMU_ERROR) : QEMU_ERROR;
		goto out;
	}
	if (build(&q, &r) < 0)
		goto out;
	const char *show = getenv("VMMUX_QEMU_SHOW");
	if (show != NULL && show[0] != '\0' && strcmp(show, "0") != 0) {
		fputs("vmmux", stderr);
		for (int i = 0; i < r.n; i++)
			fprintf(stderr, " %s", r.v[i]);
		fputc('\n', stderr);
	}
	struct vmmux_config *c = malloc(sizeof(*c));
	if (c == NULL) {
		qerr(&q, NULL, "out of memory");
		goto out;
	}
	config_init(c);
	const char *env = getenv("VMMUX_LOG");
	struct errbuf e;
	if (env != NULL && env[0] != '\0' && config_parse_log_level(env, &c->log_level, &e))
		log_warn("VMMUX_LOG: %s; ignored", e.msg);
	char *argv_copy[RUN_ARGS_MAX + 1];
	memcpy(argv_copy, r.v, sizeof(argv_copy));
	int rc = cli_parse_run(r.n, argv_copy, c, &e);
	if (rc != 0) {
		qerr(&q, NULL, "%s", rc == CLI_HELP ? "internal: help" : e.msg);
	} else if (config_finish(c, &e)) {
		qerr(&q, NULL, "%s", e.msg);
	} else {
		status = qemu_status(&q, machine_run(c));
	}
	config_free(c);
	free(c);
out:
	runargs_free(&r);
	for (size_t i = 0; i < q.nchardevs; i++) {
		free(q.chardevs[i].id);
		free(q.chardevs[i].path);
	}
	return status;
}
