/*
 * rt.c: the part of the guest runtime shared by the 64-bit and the 32-bit
 * multiboot guests: console, printf, exit, and the memory functions that
 * freestanding gcc may call. Uses no 64-bit division (there is no 32-bit
 * libgcc), so the same file builds with -m32 and -m64.
 */
#include "rt.h"

volatile uint32_t *const rt_persist = (volatile uint32_t *)RT_PERSIST_ADDR;

#define UART_THR 0u
#define UART_LSR 5u
#define LSR_THRE 0x20u

void putc(char c)
{
	while (!(inb(RT_UART_BASE + UART_LSR) & LSR_THRE))
		cpu_relax();
	outb(RT_UART_BASE + UART_THR, (uint8_t)c);
}

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

/*
 * Divide *V by 10 in place and return the remainder, with 32-bit divisions
 * only (16 bits at a time, so every partial dividend fits in 32 bits).
 */
static unsigned divmod10(uint64_t *v)
{
	uint64_t q = 0;
	uint32_t rem = 0;
	for (int shift = 48; shift >= 0; shift -= 16) {
		uint32_t cur = rem << 16 | (uint32_t)(*v >> shift & 0xffffu);
		q |= (uint64_t)(cur / 10u) << shift;
		rem = cur % 10u;
	}
	*v = q;
	return rem;
}

struct out {
	int count;
};

static void out_char(struct out *o, char c)
{
	putc(c);
	o->count++;
}

/* Print V in BASE (10 or 16), at least WIDTH characters, padded with PAD. */
static void out_num(struct out *o, uint64_t v, unsigned base, bool neg, bool upper, int width,
		    char pad)
{
	char buf[24];
	int n = 0;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	do {
		if (base == 16) {
			buf[n++] = digits[v & 0xfu];
			v >>= 4;
		} else {
			buf[n++] = digits[divmod10(&v)];
		}
	} while (v != 0 && n < (int)sizeof(buf));
	if (neg && pad == '0') {
		out_char(o, '-');
		width--;
	}
	for (int w = n + (neg && pad != '0'); w < width; w++)
		out_char(o, pad);
	if (neg && pad != '0')
		out_char(o, '-');
	while (n > 0)
		out_char(o, buf[--n]);
}

int vprintf(const char *fmt, va_list ap)
{
	struct out o = {0};

	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			out_char(&o, *p);
			continue;
		}
		p++;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*p == '0') {
			pad = '0';
			p++;
		}
		while (*p >= '0' && *p <= '9')
			width = width * 10 + (*p++ - '0');
		while (*p == 'l') {
			lng++;
			p++;
		}
		switch (*p) {
		case 'd':
		case 'i': {
			int64_t v = lng >= 2   ? va_arg(ap, long long)
				    : lng == 1 ? va_arg(ap, long)
					       : va_arg(ap, int);
			bool neg = v < 0;
			out_num(&o, neg ? 0 - (uint64_t)v : (uint64_t)v, 10, neg, false, width,
				pad);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			uint64_t v = lng >= 2	? va_arg(ap, unsigned long long)
				     : lng == 1 ? va_arg(ap, unsigned long)
						: va_arg(ap, unsigned);
			out_num(&o, v, *p == 'u' ? 10 : 16, false, *p == 'X', width, pad);
			break;
		}
		case 'p':
			out_char(&o, '0');
			out_char(&o, 'x');
			out_num(&o, (uintptr_t)va_arg(ap, void *), 16, false, false, width, pad);
			break;
		case 'c':
			out_char(&o, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			int len = (int)strlen(s);
			for (int w = len; w < width; w++)
				out_char(&o, ' ');
			while (*s)
				out_char(&o, *s++);
			break;
		}
		case '%':
			out_char(&o, '%');
			break;
		case '\0':
			return o.count; /* a lone '%' at the end */
		default:		/* unknown conversion: print it as is */
			out_char(&o, '%');
			out_char(&o, *p);
			break;
		}
	}
	return o.count;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}

void park(void)
{
	for (;;)
		cpu_relax();
}

void exit(unsigned v)
{
	outb(RT_EXIT_PORT, (uint8_t)v);
	/* The run is ending (or the exit device is missing): stop here. HLT
	 * and CLI would fault at CPL3, so spin there instead. */
	if (cpl() != 0)
		park();
	for (;;) {
		cli();
		hlt();
	}
}

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;
	if (dp < sp) {
		while (n--)
			*dp++ = *sp++;
	} else {
		while (n--)
			dp[n] = sp[n];
	}
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (; n; n--, x++, y++) {
		if (*x != *y)
			return *x < *y ? -1 : 1;
	}
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}
