/*
 * rsp.h: the framing of the GDB remote serial protocol (RSP), pure functions
 * with no I/O, shared by the gdbstub role (gdbstub.c) and its unit tests.
 *
 * A packet on the wire is '$' PAYLOAD '#' CC, CC being the sum of the
 * payload's bytes modulo 256 in two lower-case hex digits. Inside the
 * payload, the bytes '#', '$', '}' and '*' are escaped as '}' followed by
 * the byte XOR 0x20; a run of one byte may be run-length encoded as the byte,
 * '*', and a count byte N meaning N - 29 more repetitions (N printable, never
 * '#' or '$'). Outside packets the peer sends '+' (acknowledged), '-'
 * (resend) and the byte 0x03 (interrupt: the user pressed Ctrl-C).
 */
#ifndef VMMUX_VMMS_GDBSTUB_RSP_H
#define VMMUX_VMMS_GDBSTUB_RSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest payload the stub takes or sends (advertised as PacketSize). */
#define RSP_PAYLOAD_MAX 16384

/* The modulo-256 sum of LEN bytes of P. */
uint8_t rsp_checksum(const void *p, size_t len);

/*
 * Frame payload P (LEN bytes) as "$...#cc" into OUT (CAP bytes, no NUL
 * written). Escapes '#', '$', '}' and '*'; with RLE, runs of 4 or more equal
 * bytes are run-length encoded (never with a count byte '#', '$', '+' or
 * '-'). Returns the framed length, or -1 when it does not fit.
 */
long rsp_frame(const void *p, size_t len, bool rle, char *out, size_t cap);

/*
 * Decode a received payload IN (LEN bytes) into OUT (CAP bytes): undo
 * escapes and run-length encoding. Returns the decoded length, or -1 when
 * the payload is malformed (a '}' at the end, a '*' with no byte before it
 * or no count, a count byte below 29) or the expansion exceeds CAP bytes.
 */
long rsp_unescape(const char *in, size_t len, char *out, size_t cap);

/* What rsp_rx_feed found. */
enum rsp_rx_event {
	RSP_RX_NONE = 0,  /* byte taken, nothing complete yet */
	RSP_RX_PACKET,	  /* a packet with a good checksum: rx->buf, rx->len */
	RSP_RX_BAD,	  /* a packet with a wrong checksum or malformed: send '-' */
	RSP_RX_INTERRUPT, /* 0x03 outside a packet */
	RSP_RX_ACK,	  /* '+' */
	RSP_RX_NACK,	  /* '-': resend the last packet */
	RSP_RX_OVERFLOW,  /* a payload longer than RSP_PAYLOAD_MAX: dropped, send '-' */
};

/* Receiver state: zero it (or rsp_rx_init) before the first byte. */
struct rsp_rx {
	enum { RSP_IDLE = 0, RSP_DATA, RSP_CSUM1, RSP_CSUM2 } state;
	bool overflow;
	uint8_t sum, want;
	size_t raw_len;		       /* bytes of the packet being received */
	char raw[RSP_PAYLOAD_MAX];     /* as received (escaped) */
	size_t len;		       /* decoded payload bytes in buf, after PACKET */
	char buf[RSP_PAYLOAD_MAX + 1]; /* NUL-terminated after PACKET */
};

void rsp_rx_init(struct rsp_rx *rx);

/* Feed one received byte. After RSP_RX_PACKET, rx->buf holds the decoded
 * payload (NUL-terminated; binary data may hold NULs, rx->len counts all). */
enum rsp_rx_event rsp_rx_feed(struct rsp_rx *rx, uint8_t byte);

/* Hex helpers. rsp_hex_val: the value of one hex digit, or -1. */
int rsp_hex_val(char c);
/* Write LEN bytes of P as 2*LEN lower-case hex digits at OUT (no NUL). */
void rsp_hex_encode(const void *p, size_t len, char *out);
/* Decode 2*LEN hex digits of S into LEN bytes; -1 on a non-hex digit. */
int rsp_hex_decode(const char *s, size_t len, void *out);
/*
 * Parse a hex number at *S (at least one digit), advancing *S past it. Returns 0, or -1 when there
 * is no digit or it overflows 64 bits.
 */
int rsp_parse_hex(const char **s, uint64_t *out);

#endif
