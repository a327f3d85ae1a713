/*
 * rsp.c: framing of the GDB remote serial protocol (rsp.h).
 */
#include "rsp.h"

#include <string.h>

uint8_t rsp_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + b[i]);
	return sum;
}

static bool needs_escape(uint8_t c)
{
	return c == '#' || c == '$' || c == '}' || c == '*';
}

static const char hexdig[] = "0123456789abcdef";

long rsp_frame(const void *p, size_t len, bool rle, char *out, size_t cap)
{
	const uint8_t *in = p;
	size_t o = 0;
	uint8_t sum = 0;

#define PUT(ch)                                                                                    \
	do {                                                                                       \
		if (o >= cap)                                                                      \
			return -1;                                                                 \
		out[o++] = (char)(ch);                                                             \
	} while (0)
#define PUTS(ch)                                                                                   \
	do {                                                                                       \
		uint8_t c_ = (uint8_t)(ch);                                                        \
		PUT(c_);                                                                           \
		sum = (uint8_t)(sum + c_);                                                         \
	} while (0)

	PUT('$');
	for (size_t i = 0; i < len;) {
		uint8_t c = in[i];
		if (needs_escape(c)) {
			PUTS('}');
			PUTS(c ^ 0x20);
			i++;
			continue;
		}
		size_t run = 1;
		while (i + run < len && in[i + run] == c && run < 98)
			run++;
		PUTS(c);
		size_t extra = run - 1;
		if (rle && extra >= 3) {
			/* count byte extra + 29: never '#' (6), '$' (7), '+' (14), '-' (16) */
			if (extra == 6 || extra == 7)
				extra = 5;
			else if (extra == 14 || extra == 16)
				extra--;
			PUTS('*');
			PUTS(extra + 29);
			i += 1 + extra;
		} else {
			i++;
		}
	}
	PUT('#');
	PUT(hexdig[sum >> 4]);
	PUT(hexdig[sum & 15]);
#undef PUT
#undef PUTS
	return (long)o;
}

long rsp_unescape(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)in[i];
		if (c == '}') {
			if (++i >= len || o >= cap)
				return -1;
			out[o++] = (char)((uint8_t)in[i] ^ 0x20);
		} else if (c == '*') {
			if (o == 0 || ++i >= len || (uint8_t)in[i] < 29)
				return -1;
			size_t n = (uint8_t)in[i] - 29u;
			if (n > cap - o)
				return -1;
			memset(out + o, out[o - 1], n);
			o += n;
		} else {
			if (o >= cap)
				return -1;
			out[o++] = (char)c;
		}
	}
	return (long)o;
}

void rsp_rx_init(struct rsp_rx *rx)
{
	rx->state = RSP_IDLE;
	rx->overflow = false;
	rx->sum = rx->want = 0;
	rx->raw_len = rx->len = 0;
	rx->buf[0] = '\0';
}

int rsp_hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum rsp_rx_event rsp_rx_feed(struct rsp_rx *rx, uint8_t byte)
{
	int d;
	switch (rx->state) {
	case RSP_IDLE:
		if (byte == '$') {
			rx->state = RSP_DATA;
			rx->overflow = false;
			rx->sum = 0;
			rx->raw_len = 0;
			return RSP_RX_NONE;
		}
		if (byte == 0x03)
			return RSP_RX_INTERRUPT;
		if (byte == '+')
			return RSP_RX_ACK;
		if (byte == '-')
			return RSP_RX_NACK;
		return RSP_RX_NONE; /* noise between packets */
	case RSP_DATA:
		if (byte == '#') {
			rx->state = RSP_CSUM1;
			return RSP_RX_NONE;
		}
		if (byte == '$') { /* a new packet restarts: the old one was cut */
			rx->overflow = false;
			rx->sum = 0;
			rx->raw_len = 0;
			return RSP_RX_NONE;
		}
		rx->sum = (uint8_t)(rx->sum + byte);
		if (rx->raw_len >= sizeof(rx->raw))
			rx->overflow = true;
		else
			rx->raw[rx->raw_len++] = (char)byte;
		return RSP_RX_NONE;
	case RSP_CSUM1:
		d = rsp_hex_val((char)byte);
		rx->want = (uint8_t)((d < 0 ? 0 : d) << 4);
		rx->state = d < 0 ? RSP_IDLE : RSP_CSUM2;
		return d < 0 ? RSP_RX_BAD : RSP_RX_NONE;
	case RSP_CSUM2: {
		rx->state = RSP_IDLE;
		d = rsp_hex_val((char)byte);
		if (rx->overflow)
			return RSP_RX_OVERFLOW;
		if (d < 0 || (uint8_t)(rx->want | d) != rx->sum)
			return RSP_RX_BAD;
		long n = rsp_unescape(rx->raw, rx->raw_len, rx->buf, RSP_PAYLOAD_MAX);
		if (n < 0)
			return RSP_RX_BAD;
		rx->len = (size_t)n;
		rx->buf[n] = '\0';
		return RSP_RX_PACKET;
	}
	}
	return RSP_RX_NONE;
}

void rsp_hex_encode(const void *p, size_t len, char *out)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hexdig[b[i] >> 4];
		out[2 * i + 1] = hexdig[b[i] & 15];
	}
}

int rsp_hex_decode(const char *s, size_t len, void *out)
{
	uint8_t *b = out;
	for (size_t i = 0; i < len; i++) {
		int hi = rsp_hex_val(s[2 * i]), lo = hi < 0 ? -1 : rsp_hex_val(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int rsp_parse_hex(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	int n = 0;
	for (int d; (d = rsp_hex_val(*p)) >= 0; p++, n++) {
		if (v >> 60)
			return -1; /* more than 64 bits */
		v = v << 4 | (uint64_t)d;
	}
	if (n == 0)
		return -1;
	*s = p;
	*out = v;
	return 0;
}
