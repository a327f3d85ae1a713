/*
 * test_uart16550.c: the 16550A UART role through its vmmux_role callbacks.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host.h"
#include "../../../vmms/roles.h"

#define COM1 0x3f8
#define RBR  (COM1 + 0)
#define THR  (COM1 + 0)
#define IER  (COM1 + 1)
#define IIR  (COM1 + 2)
#define FCR  (COM1 + 2)
#define LCR  (COM1 + 3)
#define MCR  (COM1 + 4)
#define LSR  (COM1 + 5)
#define MSR  (COM1 + 6)
#define SCR  (COM1 + 7)

static struct vmmux_ctx *uart_new(void)
{
	struct vmmux_ctx *ctx = host_new(&vmmux_role_uart16550, "com1");

	assert_int_equal(host_init(ctx), 0);
	return ctx;
}

static void out(struct vmmux_ctx *ctx, uint64_t port, uint8_t v)
{
	assert_int_equal(host_out(ctx, port, 1, v), 0);
}

static int in(struct vmmux_ctx *ctx, uint64_t port)
{
	int v = host_inb(ctx, port);

	assert_true(v >= 0);
	return v;
}

/* The raised event I is an IRQ on LINE with LEVEL. */
static void assert_irq(struct vmmux_ctx *ctx, size_t i, uint64_t line, uint64_t level)
{
	assert_true(i < ctx->nraised);
	assert_int_equal(ctx->raised[i].type, VMMUX_EV_IRQ);
	assert_int_equal(ctx->raised[i].flags, VMMUX_EVF_WRITE);
	assert_int_equal(ctx->raised[i].key, line);
	assert_int_equal(ctx->raised[i].value, level);
}

/* Feed BYTES through an input pipe and the input callback. */
static void feed(struct vmmux_ctx *ctx, int wfd, const char *bytes, size_t len)
{
	assert_int_equal(write(wfd, bytes, len), (ssize_t)len);
	assert_int_equal(ctx->role->input(ctx), (int)len);
}

static void test_thr_output(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int rfd = host_output(ctx);
	char buf[64];

	(void)state;
	out(ctx, THR, 'H');
	out(ctx, THR, 'i');
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "H");
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "i");
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), -1);
	/* any base: the register is key & 7 */
	out(ctx, 0x2f8, '!');
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "!");
	/* no interrupt enabled: nothing raised */
	assert_int_equal(ctx->nraised, 0);
	close(rfd);
	host_free(ctx);
}

static void test_outs_one_write(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int rfd = host_output(ctx);
	char text[] = "hello, string I/O";
	struct vmmux_event ev = host_event(VMMUX_EV_IO, THR, 1, 0);
	struct vmmux_reply rep;
	char buf[64];

	(void)state;
	ev.flags = VMMUX_EVF_WRITE | VMMUX_EVF_STRING;
	ev.count = (uint32_t)strlen(text);
	ev.data = text;
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), (long)strlen(text));
	assert_string_equal(buf, text);
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), -1);
	close(rfd);
	host_free(ctx);
}

static void test_no_output_fd(void **state)
{
	struct vmmux_ctx *ctx = uart_new();

	(void)state;
	/* without an output the byte is dropped and the guest never waits */
	out(ctx, THR, 'x');
	assert_int_equal(in(ctx, LSR), 0x60);
	host_free(ctx);
}

static void test_lsr_and_power_on(void **state)
{
	struct vmmux_ctx *ctx = uart_new();

	(void)state;
	assert_int_equal(in(ctx, LSR), 0x60); /* THRE | TEMT */
	assert_int_equal(in(ctx, IIR), 0x01);
	assert_int_equal(in(ctx, IER), 0x00);
	assert_int_equal(in(ctx, LCR), 0x00);
	assert_int_equal(in(ctx, MCR), 0x00);
	assert_int_equal(in(ctx, SCR), 0x00);
	assert_int_equal(in(ctx, MSR), 0xb0); /* DCD, DSR, CTS */
	assert_int_equal(in(ctx, RBR), 0x00); /* empty */
	host_free(ctx);
}

static void test_dlab(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int rfd = host_output(ctx);
	char buf[8];

	(void)state;
	out(ctx, IER, 0x05);
	out(ctx, LCR, 0x83); /* DLAB, 8N1 */
	out(ctx, COM1 + 0, 0x0c);
	out(ctx, COM1 + 1, 0x01);
	assert_int_equal(in(ctx, COM1 + 0), 0x0c);
	assert_int_equal(in(ctx, COM1 + 1), 0x01);
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), -1); /* DLL write sent nothing */
	out(ctx, LCR, 0x03);
	assert_int_equal(in(ctx, LCR), 0x03);
	assert_int_equal(in(ctx, IER), 0x05); /* IER untouched by the DLM write */
	out(ctx, THR, 'z');
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "z");
	out(ctx, LCR, 0x80);
	assert_int_equal(in(ctx, COM1 + 0), 0x0c); /* divisor kept */
	close(rfd);
	host_free(ctx);
}

static void test_scr(void **state)
{
	struct vmmux_ctx *ctx = uart_new();

	(void)state;
	out(ctx, SCR, 0xa5);
	assert_int_equal(in(ctx, SCR), 0xa5);
	out(ctx, SCR, 0x5a);
	assert_int_equal(in(ctx, SCR), 0x5a);
	host_free(ctx);
}

static void test_loopback(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int rfd = host_output(ctx);
	char buf[8];

	(void)state;
	out(ctx, FCR, 0x07);
	out(ctx, MCR, 0x10);
	out(ctx, THR, 'A');
	out(ctx, THR, 'B');
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), -1); /* nothing on the line */
	assert_int_equal(in(ctx, LSR), 0x61);
	assert_int_equal(in(ctx, RBR), 'A');
	assert_int_equal(in(ctx, RBR), 'B');
	assert_int_equal(in(ctx, LSR), 0x60);
	/* modem lines follow MCR, as the Linux probe checks */
	out(ctx, MCR, 0x1a); /* LOOP | OUT2 | RTS */
	assert_int_equal(in(ctx, MSR) & 0xf0, 0x90);
	out(ctx, MCR, 0x1f);
	assert_int_equal(in(ctx, MSR) & 0xf0, 0xf0);
	out(ctx, MCR, 0x00);
	out(ctx, THR, 'C');
	assert_int_equal(host_recv(rfd, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "C");
	assert_int_equal(in(ctx, LSR), 0x60);
	close(rfd);
	host_free(ctx);
}

/* In loopback the input is disconnected: bytes wait until loopback ends. */
static void test_loopback_holds_input(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int wfd = host_input(ctx);

	(void)state;
	out(ctx, MCR, 0x10);
	feed(ctx, wfd, "in", 2);
	assert_int_equal(in(ctx, LSR), 0x60);
	out(ctx, THR, 'L');
	assert_int_equal(in(ctx, RBR), 'L');
	assert_int_equal(in(ctx, LSR), 0x60);
	out(ctx, MCR, 0x00);
	assert_int_equal(in(ctx, LSR), 0x61);
	assert_int_equal(in(ctx, RBR), 'i');
	assert_int_equal(in(ctx, RBR), 'n');
	assert_int_equal(in(ctx, LSR), 0x60);
	close(wfd);
	host_free(ctx);
}

static void test_overrun(void **state)
{
	struct vmmux_ctx *ctx = uart_new();

	(void)state;
	/* FIFOs disabled: a single holding register */
	out(ctx, IER, 0x04);
	out(ctx, MCR, 0x10);
	out(ctx, THR, '1');
	out(ctx, THR, '2');
	assert_int_equal(in(ctx, IIR), 0x06); /* receiver line status */
	assert_int_equal(in(ctx, LSR), 0x63); /* DR | OE */
	assert_int_equal(in(ctx, LSR), 0x61); /* OE cleared by the read */
	assert_int_equal(in(ctx, RBR), '1');
	assert_int_equal(in(ctx, IIR), 0x01);
	assert_int_equal(ctx->nraised, 2);
	assert_irq(ctx, 0, 4, 1);
	assert_irq(ctx, 1, 4, 0);
	host_free(ctx);
}

static void test_rx(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int wfd = host_input(ctx);

	(void)state;
	out(ctx, IER, 0x01);
	assert_int_equal(ctx->nraised, 0);
	feed(ctx, wfd, "abc", 3);
	assert_int_equal(in(ctx, LSR), 0x61);
	assert_int_equal(in(ctx, IIR), 0x04);
	assert_int_equal(ctx->nraised, 1);
	assert_irq(ctx, 0, 4, 1);
	assert_int_equal(in(ctx, RBR), 'a');
	assert_int_equal(in(ctx, RBR), 'b');
	assert_int_equal(ctx->nraised, 1); /* still data: line stays up */
	assert_int_equal(in(ctx, RBR), 'c');
	assert_int_equal(in(ctx, LSR), 0x60);
	assert_int_equal(in(ctx, IIR), 0x01);
	assert_int_equal(ctx->nraised, 2);
	assert_irq(ctx, 1, 4, 0);
	/* end of input */
	close(wfd);
	assert_int_equal(ctx->role->input(ctx), -1);
	host_free(ctx);
}

static void test_rx_fifo(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int wfd = host_input(ctx);
	const char *text = "0123456789abcdefghij"; /* 20 bytes: FIFO + line buffer */

	(void)state;
	out(ctx, FCR, 0x01); /* FIFO on, trigger 1 */
	assert_int_equal(in(ctx, IIR), 0xc1);
	out(ctx, IER, 0x01);
	feed(ctx, wfd, text, 20);
	assert_int_equal(in(ctx, IIR), 0xc4);
	out(ctx, FCR, 0xc1); /* trigger 14, FIFO holds 16 */
	assert_int_equal(in(ctx, IIR), 0xc4);
	for (int i = 0; i < 20; i++) {
		if (i == 20 - 13) /* 13 left in the FIFO: below 14 */
			assert_int_equal(in(ctx, IIR), 0xcc);
		assert_int_equal(in(ctx, RBR), text[i]);
	}
	assert_int_equal(in(ctx, LSR), 0x60);
	assert_int_equal(in(ctx, IIR), 0xc1);
	/* FCR clear drops what the FIFO holds */
	feed(ctx, wfd, "xy", 2);
	out(ctx, FCR, 0x03);
	assert_int_equal(in(ctx, LSR), 0x60);
	/* disabling the FIFO clears it as well */
	feed(ctx, wfd, "p", 1);
	out(ctx, FCR, 0x00);
	assert_int_equal(in(ctx, IIR), 0x01);
	assert_int_equal(in(ctx, LSR), 0x60);
	close(wfd);
	host_free(ctx);
}

static void test_rx_buffer_full(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int wfd = host_input(ctx);
	char chunk[1024];
	int taken = 0, n;

	(void)state;
	memset(chunk, 'q', sizeof(chunk));
	for (int i = 0; i < 5; i++)
		assert_int_equal(write(wfd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	/* 1 byte in the holding register, 4096 in the line buffer */
	while ((n = ctx->role->input(ctx)) > 0)
		taken += n;
	assert_int_equal(n, 0);
	assert_int_equal(taken, 4097);
	assert_int_equal(in(ctx, RBR), 'q');
	assert_int_equal(ctx->role->input(ctx), 1); /* room for one more */
	assert_int_equal(ctx->role->input(ctx), 0);
	close(wfd);
	host_free(ctx);
}

static void test_ins(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	int wfd = host_input(ctx);
	struct vmmux_event ev = host_event(VMMUX_EV_IO, RBR, 1, 0);
	struct vmmux_reply rep;
	uint8_t data[4] = {0};

	(void)state;
	out(ctx, FCR, 0x01);
	feed(ctx, wfd, "wxyz", 4);
	ev.flags = VMMUX_EVF_STRING;
	ev.count = 4;
	ev.data = data;
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_memory_equal(data, "wxyz", 4);
	assert_int_equal(in(ctx, LSR), 0x60);
	close(wfd);
	host_free(ctx);
}

static void test_irq_sequence(void **state)
{
	struct vmmux_ctx *ctx;

	(void)state;
	ctx = host_new(&vmmux_role_uart16550, "com2");
	host_arg(ctx, "irq", "3");
	assert_int_equal(host_init(ctx), 0);

	/* enabling THRI with THR empty raises at once */
	out(ctx, IER, 0x02);
	assert_int_equal(ctx->nraised, 1);
	assert_irq(ctx, 0, 3, 1);
	/* reading IIR acknowledges THRI and lowers the line */
	assert_int_equal(in(ctx, IIR), 0x02);
	assert_int_equal(ctx->nraised, 2);
	assert_irq(ctx, 1, 3, 0);
	assert_int_equal(in(ctx, IIR), 0x01);
	/* a THR write: THR empties again at once, THRI pending again */
	out(ctx, THR, 'a');
	assert_int_equal(ctx->nraised, 3);
	assert_irq(ctx, 2, 3, 1);
	/* a THR write with the line up: a low-high pulse (a new edge) */
	out(ctx, THR, 'b');
	assert_int_equal(ctx->nraised, 5);
	assert_irq(ctx, 3, 3, 0);
	assert_irq(ctx, 4, 3, 1);
	/* disabling THRI lowers the line */
	out(ctx, IER, 0x00);
	assert_int_equal(ctx->nraised, 6);
	assert_irq(ctx, 5, 3, 0);
	assert_int_equal(in(ctx, IIR), 0x01);
	/* THR writes with interrupts disabled raise nothing */
	out(ctx, THR, 'c');
	assert_int_equal(ctx->nraised, 6);
	/* modem status interrupt from a loopback MCR change */
	out(ctx, IER, 0x08);
	out(ctx, MCR, 0x10); /* the inputs drop: DCTS, DDSR, DDCD */
	assert_int_equal(in(ctx, IIR), 0x00);
	assert_int_equal(ctx->nraised, 7);
	assert_irq(ctx, 6, 3, 1);
	assert_int_equal(in(ctx, MSR), 0x0b);
	assert_int_equal(ctx->nraised, 8);
	assert_irq(ctx, 7, 3, 0);
	host_free(ctx);
}

static void test_save_restore(void **state)
{
	struct vmmux_ctx *a = uart_new();
	struct vmmux_ctx *b = uart_new();
	int wfd = host_input(a);
	uint8_t st[8192];
	long len;

	(void)state;
	out(a, FCR, 0x81); /* FIFO, trigger 8 */
	out(a, LCR, 0x80);
	out(a, COM1 + 0, 0x30);
	out(a, COM1 + 1, 0x02);
	out(a, LCR, 0x1b);
	out(a, MCR, 0x0b);
	out(a, SCR, 0x77);
	out(a, IER, 0x01);
	feed(a, wfd, "restore me, please!!", 20); /* 16 in the FIFO, 4 buffered */
	assert_int_equal(a->nraised, 1);
	assert_irq(a, 0, 4, 1);

	len = a->role->save(a, st, sizeof(st));
	assert_true(len > 0);
	assert_int_equal(a->role->save(a, st, 10), -1); /* too small */
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	assert_int_equal(b->nraised, 0); /* the line was already up */

	assert_int_equal(in(b, LCR), 0x1b);
	assert_int_equal(in(b, MCR), 0x0b);
	assert_int_equal(in(b, SCR), 0x77);
	assert_int_equal(in(b, IER), 0x01);
	assert_int_equal(in(b, IIR), 0xc4);
	out(b, LCR, 0x9b);
	assert_int_equal(in(b, COM1 + 0), 0x30);
	assert_int_equal(in(b, COM1 + 1), 0x02);
	out(b, LCR, 0x1b);
	for (int i = 0; i < 20; i++)
		assert_int_equal(in(b, RBR), "restore me, please!!"[i]);
	assert_int_equal(in(b, LSR), 0x60);
	assert_int_equal(b->nraised, 1);
	assert_irq(b, 0, 4, 0);

	/* malformed states are refused and leave the instance alone */
	st[0] ^= 0xff;
	assert_true(b->role->restore(b, st, (size_t)len) < 0);
	st[0] ^= 0xff;
	assert_true(b->role->restore(b, st, (size_t)len - 1) < 0);
	assert_true(b->role->restore(b, st, 8) < 0);
	assert_int_equal(in(b, SCR), 0x77);
	close(wfd);
	host_free(a);
	host_free(b);
}

static void test_reset(void **state)
{
	struct vmmux_ctx *ctx = uart_new();

	(void)state;
	out(ctx, FCR, 0x01);
	out(ctx, LCR, 0x9b);
	out(ctx, COM1 + 0, 0x01);
	out(ctx, LCR, 0x1b);
	out(ctx, MCR, 0x1f);
	out(ctx, SCR, 0x42);
	out(ctx, THR, 'k'); /* loopback: into the FIFO */
	out(ctx, IER, 0x03);
	assert_int_equal(ctx->nraised, 1);
	host_clear(ctx);
	ctx->role->reset(ctx);
	assert_int_equal(ctx->nraised, 1);
	assert_irq(ctx, 0, 4, 0);
	assert_int_equal(in(ctx, LCR), 0x00);
	assert_int_equal(in(ctx, IER), 0x00);
	assert_int_equal(in(ctx, LSR), 0x60);
	assert_int_equal(in(ctx, IIR), 0x01);
	assert_int_equal(in(ctx, MCR), 0x00);
	assert_int_equal(in(ctx, SCR), 0x00);
	assert_int_equal(in(ctx, MSR), 0xb0);
	out(ctx, LCR, 0x80);
	assert_int_equal(in(ctx, COM1 + 0), 0x00);
	host_free(ctx);
}

static void test_bad_args(void **state)
{
	static const char *const bad[] = {
	    "24", "abc", "-1", "", "0x", "4 ", "99999999999999999999"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vmmux_ctx *ctx = host_new(&vmmux_role_uart16550, "u");

		host_arg(ctx, "irq", bad[i]);
		assert_true(host_init(ctx) < 0);
		assert_int_equal(host_log_count(ctx, "arg \"irq\""), 1);
		host_free(ctx);
	}
	struct vmmux_ctx *ctx = host_new(&vmmux_role_uart16550, "u");

	host_arg(ctx, "irq", "0x17");
	assert_int_equal(host_init(ctx), 0);
	out(ctx, IER, 0x02);
	assert_irq(ctx, 0, 23, 1);
	host_free(ctx);
}

static void test_refused_events(void **state)
{
	struct vmmux_ctx *ctx = uart_new();
	struct vmmux_event ev;
	struct vmmux_reply rep;

	(void)state;
	assert_true(host_out(ctx, THR, 2, 0x4141) < 0);
	assert_true(host_out(ctx, THR, 4, 0x41) < 0);
	ev = host_event(VMMUX_EV_MSR, 0x3f8, 8, 0);
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	ev = host_event(VMMUX_EV_IO, THR, 1, 0);
	ev.flags = VMMUX_EVF_STRING | VMMUX_EVF_WRITE; /* no data */
	ev.count = 3;
	assert_true(host_handle(ctx, &ev, &rep) < 0);
	/* MMIO byte accesses work like port accesses */
	ev = host_event(VMMUX_EV_MMIO, 0xfe000007, 1, 0x99);
	ev.flags = VMMUX_EVF_WRITE;
	assert_int_equal(host_handle(ctx, &ev, &rep), 0);
	assert_int_equal(in(ctx, SCR), 0x99);
	host_free(ctx);
}

/*
 * A parallel UART that dies after transmitting and before the record of
 * that write is committed: the successor restores the state saved before
 * it and applies the write again; the byte is in the output file once. A
 * state of version 1 (no offset) is taken, the output continuing at the
 * file's end.
 */
static void test_reapplied_write_once(void **state)
{
	char *path = host_temp_file("uart.out");
	struct vmmux_ctx *a = host_new(&vmmux_role_uart16550, "com1");
	struct vmmux_ctx *b = host_new(&vmmux_role_uart16550, "com1");
	struct vmmux_ctx *c = host_new(&vmmux_role_uart16550, "com1");
	uint8_t st[8192], v1[64];
	long len;
	size_t n;
	char *buf;

	(void)state;
	host_output_file(a, path, O_WRONLY);
	assert_int_equal(host_init(a), 0);
	out(a, THR, 'a');
	out(a, SCR, 0x55);
	len = a->role->save(a, st, sizeof(st)); /* committed with 'a' */
	assert_true(len > 0);
	out(a, THR, 'b'); /* written, then the process dies */
	host_free(a);

	host_output_file(b, path, O_WRONLY);
	assert_int_equal(host_init(b), 0);
	assert_int_equal(b->role->restore(b, st, (size_t)len), 0);
	assert_int_equal(in(b, SCR), 0x55);
	out(b, THR, 'b'); /* re-delivered */
	out(b, THR, 'c');
	buf = host_read_file(path, &n);
	assert_int_equal(n, 3);
	assert_string_equal(buf, "abc");
	free(buf);

	/* version 1: the 40-byte fixed part, no offset */
	memcpy(v1, st, 40);
	v1[4] = 1;  /* version */
	v1[6] = 40; /* size */
	host_output_file(c, path, O_WRONLY);
	assert_int_equal(host_init(c), 0);
	assert_int_equal(c->role->restore(c, v1, 40), 0);
	assert_int_equal(in(c, SCR), 0x55);
	out(c, THR, 'd');
	buf = host_read_file(path, &n);
	assert_string_equal(buf, "abcd");
	free(buf);
	host_free(b);
	host_free(c);
	host_temp_remove(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_thr_output),
	    cmocka_unit_test(test_outs_one_write),
	    cmocka_unit_test(test_no_output_fd),
	    cmocka_unit_test(test_lsr_and_power_on),
	    cmocka_unit_test(test_dlab),
	    cmocka_unit_test(test_scr),
	    cmocka_unit_test(test_loopback),
	    cmocka_unit_test(test_loopback_holds_input),
	    cmocka_unit_test(test_overrun),
	    cmocka_unit_test(test_rx),
	    cmocka_unit_test(test_rx_fifo),
	    cmocka_unit_test(test_rx_buffer_full),
	    cmocka_unit_test(test_ins),
	    cmocka_unit_test(test_irq_sequence),
	    cmocka_unit_test(test_save_restore),
	    cmocka_unit_test(test_reapplied_write_once),
	    cmocka_unit_test(test_reset),
	    cmocka_unit_test(test_bad_args),
	    cmocka_unit_test(test_refused_events),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
