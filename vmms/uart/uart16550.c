/*
 * uart16550.c: a 16550A UART (role "uart16550").
 *
 * The route decides the base: the register is the event's key & 7 (port or
 * MMIO address, base = key & ~7). Every register is one byte wide; only
 * single-byte accesses are accepted (INS/OUTS with size 1 included).
 *
 * Transmit never blocks the guest: a THR write goes to the output descriptor
 * at once (one write per event, a whole OUTS in one write), so THRE and
 * TEMT are always set. A regular output file is written with pwrite(2) at an
 * offset kept in the saved state, so that a successor re-applying a write
 * after a crash rewrites the same bytes in place; other outputs get write(2),
 * and bytes written just before a crash may repeat (role_util.h, role_out). Receive: the input
 * callback reads the input descriptor into a 4 KiB line buffer, from which bytes move into the
 * receive FIFO (16 bytes, or a single holding register while FIFOs are disabled) whenever it has
 * room. Interrupt causes follow the 16550A priorities; each change of the interrupt output raises
 * VMMUX_EV_IRQ on the configured line.
 *
 * Not modelled: baud rate and character timing (the divisor latch only
 * stores), parity/framing errors and breaks (never happen on a byte stream),
 * DMA mode. Without a timer, the character-timeout indication (IIR 0x0C) is
 * reported at once while the FIFO holds fewer bytes than the trigger level.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"

/* Register offsets. */
enum {
	UART_RBR = 0, /* read, DLAB=0; THR on write; DLL with DLAB=1 */
	UART_IER = 1, /* DLM with DLAB=1 */
	UART_IIR = 2, /* read; FCR on write */
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
};

#define IER_RDI	 0x01 /* received data available */
#define IER_THRI 0x02 /* THR empty */
#define IER_RLSI 0x04 /* receiver line status */
#define IER_MSI	 0x08 /* modem status */
#define IER_MASK 0x0f

#define IIR_NONE 0x01
#define IIR_MSI	 0x00
#define IIR_THRI 0x02
#define IIR_RDI	 0x04
#define IIR_RLSI 0x06
#define IIR_CTI	 0x0c /* character timeout */
#define IIR_FIFO 0xc0 /* FIFOs enabled */

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_TRIGGER  0xc0
#define FCR_KEPT     (FCR_ENABLE | FCR_TRIGGER)

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR	  0x01
#define LSR_OE	  0x02
#define LSR_ERR	  0x1e /* OE, PE, FE, BI: the sticky error bits */
#define LSR_THRE  0x20
#define LSR_TEMT  0x40
#define LSR_RESET (LSR_THRE | LSR_TEMT)

#define MSR_DCTS  0x01
#define MSR_DDSR  0x02
#define MSR_TERI  0x04
#define MSR_DDCD  0x08
#define MSR_DELTA 0x0f
#define MSR_CTS	  0x10
#define MSR_DSR	  0x20
#define MSR_RI	  0x40
#define MSR_DCD	  0x80
/* Modem inputs outside loopback: a terminal is attached and ready. */
#define MSR_LINES_CONNECTED (MSR_DCD | MSR_DSR | MSR_CTS)

#define UART_FIFO_SIZE 16
#define UART_BUF_SIZE  4096

#define UART_IRQ_DEFAULT 4
#define UART_IRQ_MAX	 23

struct uart {
	/* registers */
	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm;
	uint8_t lsr_err;   /* sticky LSR error bits (only OE happens) */
	uint8_t msr_delta; /* MSR delta bits, cleared by reading MSR */
	bool thri;	   /* THR-empty interrupt pending */
	bool irq_level;	   /* level of the interrupt output last raised */
	/* receive FIFO (a ring) */
	uint8_t rx[UART_FIFO_SIZE];
	unsigned rx_head, rx_count;
	/* line buffer between the input descriptor and the FIFO (a ring) */
	uint8_t buf[UART_BUF_SIZE];
	unsigned buf_head, buf_count;
	/* configuration and host-side state */
	uint32_t irq;
	struct role_out out;
	bool output_error_logged;
};

/*
 * Saved state, version 2: struct uart_state_v1, the output's offset (struct
 * role_out_state), then buf_count line bytes. Version 1 (no offset) is still
 * taken: the output then continues at its file's end.
 */
#define UART_STATE_MAGIC   0x41363155u /* "U16A" */
#define UART_STATE_VERSION 2
struct uart_state_v1 {
	struct role_state_hdr hdr;
	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm, lsr_err;
	uint8_t msr_delta, thri, irq_level, rx_count;
	uint8_t rx[UART_FIFO_SIZE]; /* FIFO contents, oldest first */
	uint16_t buf_count;
	uint16_t reserved;
};
_Static_assert(sizeof(struct uart_state_v1) == 40, "uart state layout");
struct uart_state_v2 {
	struct uart_state_v1 v1; /* hdr.version 2, hdr.size sizeof(struct uart_state_v2) */
	struct role_out_state out;
};
_Static_assert(sizeof(struct uart_state_v2) == 64, "uart state layout");

static bool uart_fifo_enabled(const struct uart *u)
{
	return u->fcr & FCR_ENABLE;
}

static unsigned uart_rx_capacity(const struct uart *u)
{
	return uart_fifo_enabled(u) ? UART_FIFO_SIZE : 1;
}

static bool uart_loopback(const struct uart *u)
{
	return u->mcr & MCR_LOOP;
}

/* Receive FIFO trigger level in bytes, from FCR bits 6-7. */
static unsigned uart_rx_trigger(const struct uart *u)
{
	static const unsigned levels[4] = {1, 4, 8, 14};

	return levels[(u->fcr & FCR_TRIGGER) >> 6];
}

/* The modem status inputs (MSR bits 4-7) as the current MCR makes them. */
static uint8_t uart_msr_lines(uint8_t mcr)
{
	uint8_t lines = 0;

	if (!(mcr & MCR_LOOP))
		return MSR_LINES_CONNECTED;
	if (mcr & MCR_RTS)
		lines |= MSR_CTS;
	if (mcr & MCR_DTR)
		lines |= MSR_DSR;
	if (mcr & MCR_OUT1)
		lines |= MSR_RI;
	if (mcr & MCR_OUT2)
		lines |= MSR_DCD;
	return lines;
}

/* The highest-priority pending interrupt cause (IIR bits 0-3). */
static uint8_t uart_iir_cause(const struct uart *u)
{
	if ((u->ier & IER_RLSI) && (u->lsr_err & LSR_ERR))
		return IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count > 0) {
		if (uart_fifo_enabled(u) && u->rx_count < uart_rx_trigger(u))
			return IIR_CTI;
		return IIR_RDI;
	}
	if ((u->ier & IER_THRI) && u->thri)
		return IIR_THRI;
	if ((u->ier & IER_MSI) && (u->msr_delta & MSR_DELTA))
		return IIR_MSI;
	return IIR_NONE;
}

/* Raise VMMUX_EV_IRQ when the interrupt output differs from the last raised. */
static void uart_update_irq(struct vmmux_ctx *ctx, struct uart *u)
{
	bool level = uart_iir_cause(u) != IIR_NONE;

	if (level == u->irq_level)
		return;
	if (role_raise(ctx, VMMUX_EV_IRQ, VMMUX_EVF_WRITE, u->irq, level, 0, VMMUX_NO_VCPU) == 0)
		u->irq_level = level;
}

static void uart_rx_clear(struct uart *u)
{
	u->rx_head = 0;
	u->rx_count = 0;
}

/* Put a received byte into the FIFO; a full FIFO drops it and sets OE. */
static void uart_rx_push(struct uart *u, uint8_t byte)
{
	if (u->rx_count >= uart_rx_capacity(u)) {
		u->lsr_err |= LSR_OE;
		return;
	}
	u->rx[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = byte;
	u->rx_count++;
}

/* Move line-buffer bytes into the FIFO while it has room (not in loopback). */
static void uart_rx_refill(struct uart *u)
{
	if (uart_loopback(u))
		return;
	while (u->buf_count > 0 && u->rx_count < uart_rx_capacity(u)) {
		uart_rx_push(u, u->buf[u->buf_head]);
		u->buf_head = (u->buf_head + 1) % UART_BUF_SIZE;
		u->buf_count--;
	}
}

static uint8_t uart_rx_pop(struct uart *u)
{
	uint8_t byte;

	if (u->rx_count == 0)
		return 0;
	byte = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
	u->rx_count--;
	uart_rx_refill(u);
	return byte;
}

/* Send transmitted bytes to the output descriptor (dropped when none). */
static void uart_output(struct vmmux_ctx *ctx, struct uart *u, const void *bytes, size_t len)
{
	int fd = vmmux_output_fd(ctx);

	if (fd < 0 || len == 0)
		return;
	if (role_out_write(ctx, &u->out, bytes, len) < 0 && !u->output_error_logged) {
		vmmux_log(ctx, VMMUX_LOG_WARN,
			  "output descriptor %d: %s; transmitted bytes are dropped", fd,
			  strerror(errno));
		u->output_error_logged = true;
	}
}

/*
 * Transmit LEN bytes written to THR: into the receive FIFO in loopback mode,
 * else to the output. The THR-empty interrupt is cleared by the write and
 * set again once the bytes are sent (at once), so an enabled THRI pulses the
 * interrupt output low then high: edge-triggered controllers see a new edge.
 */
static void uart_transmit(struct vmmux_ctx *ctx, struct uart *u, const uint8_t *bytes, size_t len)
{
	u->thri = false;
	uart_update_irq(ctx, u);
	if (uart_loopback(u)) {
		for (size_t i = 0; i < len; i++)
			uart_rx_push(u, bytes[i]);
	} else {
		uart_output(ctx, u, bytes, len);
	}
	u->thri = true;
}

static void uart_write_mcr(struct uart *u, uint8_t v)
{
	uint8_t old = uart_msr_lines(u->mcr);
	uint8_t now = uart_msr_lines(v & MCR_MASK);
	uint8_t changed = old ^ now;

	if (changed & MSR_CTS)
		u->msr_delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		u->msr_delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(now & MSR_RI))
		u->msr_delta |= MSR_TERI;
	if (changed & MSR_DCD)
		u->msr_delta |= MSR_DDCD;
	u->mcr = v & MCR_MASK;
	uart_rx_refill(u); /* leaving loopback reconnects the input */
}

static void uart_write_fcr(struct uart *u, uint8_t v)
{
	/* Changing the enable bit clears both FIFOs, as a clear request does. */
	if ((v ^ u->fcr) & FCR_ENABLE)
		v |= FCR_CLEAR_RX | FCR_CLEAR_TX;
	u->fcr = (v & FCR_ENABLE) ? (v & FCR_KEPT) : 0;
	if (v & FCR_CLEAR_RX)
		uart_rx_clear(u);
	/* the transmitter holds nothing to clear */
	uart_rx_refill(u);
}

/* A register write other than a THR write (done by the caller). */
static void uart_reg_write(struct uart *u, unsigned reg, uint8_t v)
{
	bool dlab = u->lcr & LCR_DLAB;

	switch (reg) {
	case UART_RBR:
		u->dll = v; /* only reached with DLAB */
		break;
	case UART_IER:
		if (dlab) {
			u->dlm = v;
			break;
		}
		/* Enabling THRI while THR is empty (always) makes it pending. */
		if ((v ^ u->ier) & IER_THRI)
			u->thri = (v & IER_THRI) != 0;
		u->ier = v & IER_MASK;
		break;
	case UART_IIR:
		uart_write_fcr(u, v);
		break;
	case UART_LCR:
		u->lcr = v;
		break;
	case UART_MCR:
		uart_write_mcr(u, v);
		break;
	case UART_LSR: /* factory test register: writes are ignored */
	case UART_MSR: /* read only */
		break;
	case UART_SCR:
		u->scr = v;
		break;
	}
}

static uint8_t uart_reg_read(struct uart *u, unsigned reg)
{
	bool dlab = u->lcr & LCR_DLAB;
	uint8_t v = 0xff;

	switch (reg) {
	case UART_RBR:
		v = dlab ? u->dll : uart_rx_pop(u);
		break;
	case UART_IER:
		v = dlab ? u->dlm : u->ier;
		break;
	case UART_IIR:
		v = uart_iir_cause(u);
		if (v == IIR_THRI)
			u->thri = false; /* reading IIR acknowledges THRI */
		if (uart_fifo_enabled(u))
			v |= IIR_FIFO;
		break;
	case UART_LCR:
		v = u->lcr;
		break;
	case UART_MCR:
		v = u->mcr;
		break;
	case UART_LSR:
		v = LSR_RESET | u->lsr_err | (u->rx_count > 0 ? LSR_DR : 0);
		u->lsr_err = 0; /* reading LSR clears the error bits */
		break;
	case UART_MSR:
		v = uart_msr_lines(u->mcr) | u->msr_delta;
		u->msr_delta = 0;
		break;
	case UART_SCR:
		v = u->scr;
		break;
	}
	return v;
}

static bool uart_is_thr(const struct uart *u, unsigned reg)
{
	return reg == UART_RBR && !(u->lcr & LCR_DLAB);
}

static int uart_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	struct uart *u = vmmux_priv(ctx);
	bool write = ev->flags & VMMUX_EVF_WRITE;
	unsigned reg = (unsigned)(ev->key & 7);

	if (ev->type != VMMUX_EV_IO && ev->type != VMMUX_EV_MMIO)
		return -EINVAL;
	if (ev->size != 1)
		return -EINVAL; /* every register is one byte wide */

	if (ev->flags & VMMUX_EVF_STRING) {
		uint8_t *data = ev->data;

		if (ev->type != VMMUX_EV_IO || !data || ev->count == 0)
			return -EINVAL;
		if (write && uart_is_thr(u, reg)) {
			uart_transmit(ctx, u, data, ev->count);
		} else {
			for (uint32_t i = 0; i < ev->count; i++) {
				if (write)
					uart_reg_write(u, reg, data[i]);
				else
					data[i] = uart_reg_read(u, reg);
			}
		}
	} else {
		uint8_t byte = (uint8_t)ev->value;

		if (ev->count != 1)
			return -EINVAL;
		if (write && uart_is_thr(u, reg))
			uart_transmit(ctx, u, &byte, 1);
		else if (write)
			uart_reg_write(u, reg, byte);
		else
			rep->value = uart_reg_read(u, reg);
	}
	uart_update_irq(ctx, u);
	return 0;
}

static int uart_input(struct vmmux_ctx *ctx)
{
	struct uart *u = vmmux_priv(ctx);
	int fd = vmmux_input_fd(ctx);
	unsigned tail, room;
	ssize_t n;

	if (fd < 0)
		return -1;
	if (u->buf_count == UART_BUF_SIZE)
		return 0;
	tail = (u->buf_head + u->buf_count) % UART_BUF_SIZE;
	room = UART_BUF_SIZE - u->buf_count;
	if (room > UART_BUF_SIZE - tail)
		room = UART_BUF_SIZE - tail; /* contiguous part; the rest next time */
	n = read(fd, u->buf + tail, room);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		vmmux_log(ctx, VMMUX_LOG_ERROR, "input descriptor %d: %s; input stops", fd,
			  strerror(errno));
		return -1;
	}
	if (n == 0)
		return -1;
	u->buf_count += (unsigned)n;
	uart_rx_refill(u);
	uart_update_irq(ctx, u);
	return (int)n;
}

/* Power-on register values; the line buffer (host-side input) is kept. */
static void uart_power_on(struct uart *u)
{
	u->ier = 0;
	u->lcr = 0;
	u->mcr = 0;
	u->fcr = 0;
	u->scr = 0;
	u->dll = 0;
	u->dlm = 0;
	u->lsr_err = 0;
	u->msr_delta = 0;
	u->thri = false;
	uart_rx_clear(u);
}

static int uart_init(struct vmmux_ctx *ctx)
{
	struct uart *u = vmmux_priv(ctx);
	uint64_t irq;

	if (role_arg_u64(ctx, "irq", UART_IRQ_DEFAULT, 0, UART_IRQ_MAX, &irq) < 0)
		return -EINVAL;
	u->irq = (uint32_t)irq;
	uart_power_on(u);
	u->irq_level = false;
	role_out_init(ctx, &u->out);
	return 0;
}

static void uart_reset(struct vmmux_ctx *ctx)
{
	struct uart *u = vmmux_priv(ctx);

	uart_power_on(u);
	uart_rx_refill(u);
	uart_update_irq(ctx, u); /* lowers the line if it was up */
}

static long uart_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct uart *u = vmmux_priv(ctx);
	struct uart_state_v2 st2;
	struct uart_state_v1 st;
	size_t len = sizeof(st2) + u->buf_count;
	uint8_t *out = buf;

	if (!buf || cap < len)
		return -1;
	memset(&st, 0, sizeof(st));
	st.hdr.magic = UART_STATE_MAGIC;
	st.hdr.version = UART_STATE_VERSION;
	st.hdr.size = sizeof(st2);
	st.ier = u->ier;
	st.lcr = u->lcr;
	st.mcr = u->mcr;
	st.fcr = u->fcr;
	st.scr = u->scr;
	st.dll = u->dll;
	st.dlm = u->dlm;
	st.lsr_err = u->lsr_err;
	st.msr_delta = u->msr_delta;
	st.thri = u->thri;
	st.irq_level = u->irq_level;
	st.rx_count = (uint8_t)u->rx_count;
	for (unsigned i = 0; i < u->rx_count; i++)
		st.rx[i] = u->rx[(u->rx_head + i) % UART_FIFO_SIZE];
	st.buf_count = (uint16_t)u->buf_count;
	st2.v1 = st;
	role_out_save(&u->out, &st2.out);
	memcpy(out, &st2, sizeof(st2));
	for (unsigned i = 0; i < u->buf_count; i++)
		out[sizeof(st2) + i] = u->buf[(u->buf_head + i) % UART_BUF_SIZE];
	return (long)len;
}

static int uart_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct uart *u = vmmux_priv(ctx);
	struct uart_state_v1 st;
	struct role_out_state out;
	size_t fixed = 0;
	const char *bad = NULL;

	if (!buf || len < sizeof(st)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: state of %zu bytes is too short", len);
		return -EINVAL;
	}
	memcpy(&st, buf, sizeof(st));
	memset(&out, 0, sizeof(out));
	if (st.hdr.version == 1 && st.hdr.size == sizeof(st))
		fixed = sizeof(st);
	else if (st.hdr.version == UART_STATE_VERSION &&
		 st.hdr.size == sizeof(struct uart_state_v2) && len >= sizeof(struct uart_state_v2))
		fixed = sizeof(struct uart_state_v2);
	if (fixed == sizeof(struct uart_state_v2))
		memcpy(&out, (const uint8_t *)buf + sizeof(st), sizeof(out));
	if (st.hdr.magic != UART_STATE_MAGIC)
		bad = "not a uart16550 state (bad magic)";
	else if (fixed == 0)
		bad = "unsupported state version";
	else if (len != fixed + st.buf_count || st.buf_count > UART_BUF_SIZE)
		bad = "line buffer length does not match the state size";
	else if ((st.ier & ~IER_MASK) || (st.mcr & ~MCR_MASK) || (st.fcr & ~FCR_KEPT) ||
		 (st.lsr_err & ~LSR_ERR) || (st.msr_delta & ~MSR_DELTA) || st.thri > 1 ||
		 st.irq_level > 1)
		bad = "register value out of range";
	else if (st.rx_count > ((st.fcr & FCR_ENABLE) ? UART_FIFO_SIZE : 1))
		bad = "receive FIFO count out of range";
	if (bad) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: %s", bad);
		return -EINVAL;
	}
	u->ier = st.ier;
	u->lcr = st.lcr;
	u->mcr = st.mcr;
	u->fcr = st.fcr;
	u->scr = st.scr;
	u->dll = st.dll;
	u->dlm = st.dlm;
	u->lsr_err = st.lsr_err;
	u->msr_delta = st.msr_delta;
	u->thri = st.thri;
	u->irq_level = st.irq_level;
	u->rx_head = 0;
	u->rx_count = st.rx_count;
	memcpy(u->rx, st.rx, sizeof(u->rx));
	u->buf_head = 0;
	u->buf_count = st.buf_count;
	memcpy(u->buf, (const uint8_t *)buf + fixed, st.buf_count);
	if (fixed == sizeof(struct uart_state_v2))
		role_out_restore(&u->out, &out);
	uart_update_irq(ctx, u); /* no-op for a consistent state */
	return 0;
}

static const char *const uart16550_args[] = {"irq", NULL};

static const char *const uart16550_raises[] = {"irq:4", NULL};

const struct vmmux_role vmmux_role_uart16550 = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "uart16550",
    .summary = "16550A UART: THR to the output, input into the receive FIFO, IRQ on a line",
    .priv_size = sizeof(struct uart),
    .init = uart_init,
    .handle = uart_handle,
    .input = uart_input,
    .reset = uart_reset,
    .save = uart_save,
    .restore = uart_restore,
    .args = uart16550_args,
    .raises = uart16550_raises,
};
