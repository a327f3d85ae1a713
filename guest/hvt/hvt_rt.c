/*
 * hvt_rt.c: the runtime of the hvt test guests (hvt_rt.h).
 */
#include "hvt_rt.h"

#include <stdbool.h>

/* The ABI note: hvt target, ABI version 2 (the manifest note is each
 * guest's generated NAME_manifest.c). */
HVT_ABI1_NOTE_DEFINE(hvt_abi1_note, {.abi_target = HVT_ABI_TARGET, .abi_version = HVT_ABI_VERSION});

const struct hvt_boot_info *hvt_bi;

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (unsigned char)*a - (unsigned char)*b;
}

uint64_t hvt_atou(const char *s)
{
	uint64_t v = 0;
	unsigned base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return v;
		v = v * base + d;
	}
}

void hvt_puts(const char *s, size_t len)
{
	volatile struct hvt_hc_puts a = {.data = (uint64_t)(uintptr_t)s, .len = len};
	hvt_call(HVT_HC_PUTS, &a);
}

uint64_t hvt_walltime(void)
{
	volatile struct hvt_hc_walltime a = {0};
	hvt_call(HVT_HC_WALLTIME, &a);
	return a.nsecs;
}

uint64_t hvt_tsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

uint64_t hvt_monotonic_ns(void)
{
	uint64_t t = hvt_tsc(), f = hvt_bi->cpu_cycle_freq;
	return (t / f) * 1000000000ull + (t % f) * 1000000000ull / f;
}

int hvt_poll(uint64_t timeout_ns, uint64_t *ready)
{
	volatile struct hvt_hc_poll a = {.timeout_nsecs = timeout_ns};
	hvt_call(HVT_HC_POLL, &a);
	if (ready)
		*ready = a.ready_set;
	return (int)a.ret;
}

int64_t hvt_block_io(int write, uint64_t handle, uint64_t off, void *buf, uint64_t len)
{
	volatile struct hvt_hc_block_io a = {.handle = handle,
					     .offset = off,
					     .data = (uint64_t)(uintptr_t)buf,
					     .len = len,
					     .ret = -1};
	hvt_call(write ? HVT_HC_BLOCK_WRITE : HVT_HC_BLOCK_READ, &a);
	return a.ret;
}

int64_t hvt_net_write(uint64_t handle, const void *buf, uint64_t len)
{
	volatile struct hvt_hc_net_write a = {
	    .handle = handle, .data = (uint64_t)(uintptr_t)buf, .len = len, .ret = -1};
	hvt_call(HVT_HC_NET_WRITE, &a);
	return a.ret;
}

int64_t hvt_net_read(uint64_t handle, void *buf, uint64_t *len)
{
	volatile struct hvt_hc_net_read a = {
	    .handle = handle, .data = (uint64_t)(uintptr_t)buf, .len = *len, .ret = -1};
	hvt_call(HVT_HC_NET_READ, &a);
	*len = a.len;
	return a.ret;
}

void hvt_halt(int status)
{
	hvt_halt_cookie(status, NULL);
}

void hvt_halt_cookie(int status, const void *cookie)
{
	volatile struct hvt_hc_halt a = {.cookie = (uint64_t)(uintptr_t)cookie,
					 .exit_status = status};
	for (;;)
		hvt_call(HVT_HC_HALT, &a);
}

int hvt_device(const char *name, uint32_t type, const struct hvt_mft_entry **out)
{
	const struct hvt_mft *m = (const struct hvt_mft *)(uintptr_t)hvt_bi->mft;
	for (uint32_t i = 1; i < m->entries; i++)
		if (m->e[i].type == type && strcmp(m->e[i].name, name) == 0) {
			if (out)
				*out = &m->e[i];
			return m->e[i].attached ? (int)i : -1;
		}
	return -1;
}

/* ---- printf ---- */

struct out {
	char buf[256];
	size_t n;
	int total;
};

static void out_c(struct out *o, char c)
{
	if (o->n == sizeof(o->buf)) {
		hvt_puts(o->buf, o->n);
		o->n = 0;
	}
	o->buf[o->n++] = c;
	o->total++;
}

static void out_u(struct out *o, uint64_t v, unsigned base, int width, char pad)
{
	char d[24];
	int n = 0;
	do {
		d[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (width-- > n)
		out_c(o, pad);
	while (n)
		out_c(o, d[--n]);
}

int printf(const char *fmt, ...)
{
	struct out o = {.n = 0, .total = 0};
	va_list ap;
	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			out_c(&o, *fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z')
			lng++, fmt++;
		switch (*fmt) {
		case 'd': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				out_c(&o, '-');
				v = -v;
			}
			out_u(&o, (uint64_t)v, 10, width, pad);
			break;
		}
		case 'u':
			out_u(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width,
			      pad);
			break;
		case 'x':
			out_u(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width,
			      pad);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s)
				out_c(&o, *s++);
			break;
		}
		case 'c':
			out_c(&o, (char)va_arg(ap, int));
			break;
		case '%':
			out_c(&o, '%');
			break;
		default:
			out_c(&o, '?');
			break;
		}
	}
	va_end(ap);
	if (o.n)
		hvt_puts(o.buf, o.n);
	return o.total;
}

#define ARGV_MAX 32
static char cmdline[HVT_CMDLINE_SIZE];

void hvt_rt_start(const struct hvt_boot_info *bi);
void hvt_rt_start(const struct hvt_boot_info *bi)
{
	hvt_bi = bi;
	const char *src = (const char *)(uintptr_t)bi->cmdline;
	size_t n = strlen(src);
	if (n >= sizeof(cmdline))
		n = sizeof(cmdline) - 1;
	memcpy(cmdline, src, n);
	cmdline[n] = '\0';
	char *argv[ARGV_MAX + 1];
	int argc = 0;
	argv[argc++] = "hvt";
	for (char *p = cmdline; *p && argc < ARGV_MAX;) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		argv[argc++] = p;
		while (*p && *p != ' ')
			p++;
	}
	argv[argc] = NULL;
	hvt_halt(main(argc, argv));
}
