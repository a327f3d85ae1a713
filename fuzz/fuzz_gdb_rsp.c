/*
 * fuzz_gdb_rsp.c: the GDB remote serial protocol's framing (vmms/gdbstub/
 * rsp.c), what the gdbstub role reads from a debugger's connection before
 * any command runs: the receiver (rsp_rx_feed: packets, checksums, escapes,
 * run-length encoding, acks, interrupts, overlong payloads) and the parsers
 * the commands start with (rsp_parse_hex, rsp_hex_decode). Every packet
 * received is framed again (rsp_frame, with and without run-length
 * encoding) and fed back: it must come out as the same payload.
 *
 * Input: the bytes a debugger sends.
 */
#include <stdlib.h>
#include <string.h>

#include "../vmms/gdbstub/rsp.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

static struct rsp_rx rx, again;
static char framed[2 * RSP_PAYLOAD_MAX + 16], bin[RSP_PAYLOAD_MAX];

/* Frame P (LEN bytes) and receive it: the same payload, or an abort. */
static void round_trip(const char *p, size_t len, bool rle)
{
	long n = rsp_frame(p, len, rle, framed, sizeof(framed));
	if (n < 0)
		return; /* does not fit the output buffer */
	rsp_rx_init(&again);
	enum rsp_rx_event ev = RSP_RX_NONE;
	for (long i = 0; i < n; i++)
		ev = rsp_rx_feed(&again, (uint8_t)framed[i]);
	if (ev == RSP_RX_OVERFLOW && len > 0)
		return; /* longer once escaped than the receiver takes */
	if (ev != RSP_RX_PACKET || again.len != len || memcmp(again.buf, p, len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rsp_rx_init(&rx);
	for (size_t i = 0; i < size; i++) {
		if (rsp_rx_feed(&rx, data[i]) != RSP_RX_PACKET)
			continue;
		if (rx.len > RSP_PAYLOAD_MAX || rx.buf[rx.len] != '\0')
			abort();
		round_trip(rx.buf, rx.len, false);
		round_trip(rx.buf, rx.len, true);
		/* what the commands parse first: "m ADDR,LEN", "M ADDR,LEN:HEX" */
		const char *s = rx.buf + (rx.len > 0);
		uint64_t a, l;
		if (rsp_parse_hex(&s, &a) == 0 && *s == ',' && (s++, rsp_parse_hex(&s, &l) == 0) &&
		    *s == ':') {
			size_t hex = strlen(s + 1);
			if (hex / 2 <= sizeof(bin))
				rsp_hex_decode(s + 1, hex / 2, bin);
		}
	}
	return 0;
}
