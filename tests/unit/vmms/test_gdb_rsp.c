/*
 * test_gdb_rsp.c: the GDB remote protocol's framing (vmms/gdbstub/rsp.h):
 * checksums, escapes, run-length encoding both ways, the receiver's state
 * machine (acks, interrupts, bad checksums, overflow) and the hex helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../vmms/gdbstub/rsp.h"

/* Frame P, then feed the frame to a receiver: it must come out the same. */
static void round_trip(const void *p, size_t len, bool rle)
{
	static char frame[2 * RSP_PAYLOAD_MAX + 8];
	static struct rsp_rx rx;
	long n = rsp_frame(p, len, rle, frame, sizeof(frame));
	assert_true(n >= (long)(len > 0 ? 4 + 1 : 4));
	assert_int_equal(frame[0], '$');
	assert_int_equal(frame[n - 3], '#');
	rsp_rx_init(&rx);
	enum rsp_rx_event ev = RSP_RX_NONE;
	for (long i = 0; i < n; i++) {
		ev = rsp_rx_feed(&rx, (uint8_t)frame[i]);
		if (i < n - 1)
			assert_int_equal(ev, RSP_RX_NONE);
	}
	assert_int_equal(ev, RSP_RX_PACKET);
	assert_int_equal(rx.len, len);
	assert_memory_equal(rx.buf, p, len);
	assert_int_equal(rx.buf[len], '\0');
	/* no '#' or '$' inside the payload on the wire */
	for (long i = 1; i < n - 3; i++)
		assert_true(frame[i] != '#' && frame[i] != '$');
}

static void test_checksum(void **state)
{
	(void)state;
	char out[32];
	assert_int_equal(rsp_checksum("OK", 2), 0x9a);
	assert_int_equal(rsp_checksum("", 0), 0);
	long n = rsp_frame("OK", 2, false, out, sizeof(out));
	assert_int_equal(n, 6);
	assert_memory_equal(out, "$OK#9a", 6);
	n = rsp_frame("", 0, false, out, sizeof(out));
	assert_int_equal(n, 4);
	assert_memory_equal(out, "$#00", 4);
	/* g: a known packet from GDB's manual-style exchange */
	assert_int_equal(rsp_checksum("qSupported", 10), 0x37);
	/* too small a buffer */
	assert_int_equal(rsp_frame("OK", 2, false, out, 5), -1);
}

static void test_escape(void **state)
{
	(void)state;
	char out[64];
	long n = rsp_frame("a#b$c}d*e", 9, false, out, sizeof(out));
	/* each of # $ } * becomes } and the byte XOR 0x20 */
	const char want[] = "$a}\x03"
			    "b}\x04"
			    "c}]d}\x0a"
			    "e#";
	assert_true(n > (long)sizeof(want) - 1);
	assert_memory_equal(out, want, sizeof(want) - 1);
	/* the checksum covers the escaped bytes */
	char cs[3];
	snprintf(cs, sizeof(cs), "%02x", rsp_checksum(out + 1, (size_t)n - 4));
	assert_memory_equal(out + n - 2, cs, 2);
	round_trip("a#b$c}d*e", 9, false);
	round_trip("a#b$c}d*e", 9, true);
}

static void test_rle(void **state)
{
	(void)state;
	char out[64];
	/* 10 zeros: '0' then 9 more: count byte 9 + 29 = '&' */
	long n = rsp_frame("0000000000", 10, true, out, sizeof(out));
	assert_int_equal(n, 1 + 3 + 3);
	assert_memory_equal(out, "$0*&#", 5);
	/* 7 equal bytes: 6 more would be '#': 5 more, then one plain */
	n = rsp_frame("xxxxxxx", 7, true, out, sizeof(out));
	assert_memory_equal(out, "$x*\"x#", 6);
	/* 3 equal bytes are not worth encoding */
	n = rsp_frame("yyy", 3, true, out, sizeof(out));
	assert_memory_equal(out, "$yyy#", 5);
	/* every run length up to 300, every count byte printable and legal */
	char buf[300];
	for (size_t len = 1; len <= sizeof(buf); len++) {
		memset(buf, 'z', len);
		round_trip(buf, len, true);
		static char fr[1024];
		long m = rsp_frame(buf, len, true, fr, sizeof(fr));
		for (long i = 1; i < m - 3; i++)
			if (fr[i] == '*') {
				uint8_t c = (uint8_t)fr[i + 1];
				assert_true(c >= 32 && c <= 126);
				assert_true(c != '#' && c != '$' && c != '+' && c != '-');
				i++; /* the count byte itself may be a '*' */
			}
	}
	/* decoding: "0*#" is not legal on the wire, but the decoder takes
	 * counts: "a* " = a + 3 more */
	char dec[16];
	assert_int_equal(rsp_unescape("a* ", 3, dec, sizeof(dec)), 4);
	assert_memory_equal(dec, "aaaa", 4);
}

static void test_unescape_bad(void **state)
{
	(void)state;
	char dec[8];
	assert_int_equal(rsp_unescape("ab}", 3, dec, sizeof(dec)), -1);	   /* } at the end */
	assert_int_equal(rsp_unescape("*!", 2, dec, sizeof(dec)), -1);	   /* nothing to repeat */
	assert_int_equal(rsp_unescape("a*", 2, dec, sizeof(dec)), -1);	   /* no count */
	assert_int_equal(rsp_unescape("a*\x10", 3, dec, sizeof(dec)), -1); /* count < 29 */
	assert_int_equal(rsp_unescape("a*~", 3, dec, sizeof(dec)), -1);	   /* 98 bytes > 8 */
	assert_int_equal(rsp_unescape("123456789", 9, dec, sizeof(dec)), -1);
	assert_int_equal(rsp_unescape("}]", 2, dec, sizeof(dec)), 1); /* an escaped } */
	assert_int_equal(dec[0], '}');
}

static void test_binary_round_trip(void **state)
{
	(void)state;
	uint8_t buf[1024];
	srand(7);
	for (int round = 0; round < 200; round++) {
		size_t len = (size_t)(rand() % (int)sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)(rand() % 4 == 0 ? '}' : rand() % 3 == 0 ? 'r' : rand());
		round_trip(buf, len, round % 2 == 0);
	}
	/* every byte value once */
	for (int i = 0; i < 256; i++)
		buf[i] = (uint8_t)i;
	round_trip(buf, 256, false);
	round_trip(buf, 256, true);
}

static void test_rx(void **state)
{
	(void)state;
	static struct rsp_rx rx;
	rsp_rx_init(&rx);
	assert_int_equal(rsp_rx_feed(&rx, '+'), RSP_RX_ACK);
	assert_int_equal(rsp_rx_feed(&rx, '-'), RSP_RX_NACK);
	assert_int_equal(rsp_rx_feed(&rx, 0x03), RSP_RX_INTERRUPT);
	assert_int_equal(rsp_rx_feed(&rx, 'z'), RSP_RX_NONE); /* noise */
	/* a good packet */
	const char *good = "$g#67";
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(rsp_rx_feed(&rx, (uint8_t)good[i]), RSP_RX_NONE);
	assert_int_equal(rsp_rx_feed(&rx, (uint8_t)good[4]), RSP_RX_PACKET);
	assert_string_equal(rx.buf, "g");
	/* a wrong checksum */
	const char *bad = "$g#68";
	enum rsp_rx_event ev = RSP_RX_NONE;
	for (size_t i = 0; i < 5; i++)
		ev = rsp_rx_feed(&rx, (uint8_t)bad[i]);
	assert_int_equal(ev, RSP_RX_BAD);
	/* a non-hex checksum digit */
	assert_int_equal(rsp_rx_feed(&rx, '$'), RSP_RX_NONE);
	assert_int_equal(rsp_rx_feed(&rx, '#'), RSP_RX_NONE);
	assert_int_equal(rsp_rx_feed(&rx, 'q'), RSP_RX_BAD);
	/* 0x03 inside a packet is data, not an interrupt */
	char fr[16];
	long n = rsp_frame("a\x03"
			   "b",
			   3, false, fr, sizeof(fr));
	for (long i = 0; i < n; i++)
		ev = rsp_rx_feed(&rx, (uint8_t)fr[i]);
	assert_int_equal(ev, RSP_RX_PACKET);
	assert_int_equal(rx.len, 3);
	/* a '$' inside a packet starts it again */
	const char *restart = "$abc$OK#9a";
	for (size_t i = 0; restart[i]; i++)
		ev = rsp_rx_feed(&rx, (uint8_t)restart[i]);
	assert_int_equal(ev, RSP_RX_PACKET);
	assert_string_equal(rx.buf, "OK");
	/* a payload longer than the stub takes */
	assert_int_equal(rsp_rx_feed(&rx, '$'), RSP_RX_NONE);
	for (size_t i = 0; i < RSP_PAYLOAD_MAX + 10; i++)
		assert_int_equal(rsp_rx_feed(&rx, 'a'), RSP_RX_NONE);
	assert_int_equal(rsp_rx_feed(&rx, '#'), RSP_RX_NONE);
	assert_int_equal(rsp_rx_feed(&rx, '0'), RSP_RX_NONE);
	assert_int_equal(rsp_rx_feed(&rx, '0'), RSP_RX_OVERFLOW);
	/* and the receiver is usable after it */
	for (size_t i = 0; i < 5; i++)
		ev = rsp_rx_feed(&rx, (uint8_t)good[i]);
	assert_int_equal(ev, RSP_RX_PACKET);
}

static void test_hex(void **state)
{
	(void)state;
	const char *s = "1f,";
	uint64_t v;
	assert_int_equal(rsp_parse_hex(&s, &v), 0);
	assert_int_equal(v, 0x1f);
	assert_string_equal(s, ",");
	s = "ffffffffffffffff";
	assert_int_equal(rsp_parse_hex(&s, &v), 0);
	assert_true(v == UINT64_MAX);
	s = "000000000000000000001"; /* leading zeros do not count */
	assert_int_equal(rsp_parse_hex(&s, &v), 0);
	assert_int_equal(v, 1);
	s = "10000000000000000"; /* 65 bits */
	assert_int_equal(rsp_parse_hex(&s, &v), -1);
	s = ",1";
	assert_int_equal(rsp_parse_hex(&s, &v), -1);
	assert_string_equal(s, ",1");
	uint8_t b[4] = {0xde, 0xad, 0x00, 0x7f}, d[4];
	char h[9] = {0};
	rsp_hex_encode(b, 4, h);
	assert_string_equal(h, "dead007f");
	assert_int_equal(rsp_hex_decode("DEad007F", 4, d), 0);
	assert_memory_equal(b, d, 4);
	assert_int_equal(rsp_hex_decode("de-d", 2, d), -1);
	assert_int_equal(rsp_hex_val('g'), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checksum),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_rle),
	    cmocka_unit_test(test_unescape_bad),
	    cmocka_unit_test(test_binary_round_trip),
	    cmocka_unit_test(test_rx),
	    cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
