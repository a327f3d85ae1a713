/*
 * chipset.c: the PC chipset's reset and power-off controls (role "chipset").
 *
 * Platform events come from ordinary io routes: the role decodes the ports
 * below and raises VMMUX_EV_PLATFORM on behalf of the accessing vCPU; the
 * routing table decides who acts on it (the main VMM by default).
 *
 *   0xcf9        reset control register (8 bits). A write with bit 2
 *                (RST_CPU) set raises VMMUX_PLAT_RESET; the register keeps
 *                the other bits; reads return it.
 *   0x64         i8042 command/status. Command 0xFE, or any pulse command
 *                0xF0-0xFE with bit 0 (the reset line) low, raises
 *                VMMUX_PLAT_RESET; other commands are accepted and ignored.
 *                Reads return status 0x1c (no data, input buffer empty).
 *   0x60         i8042 data: reads 0, writes ignored.
 *   0x604-0x605  ACPI PM1a control register (16 bits, as in QEMU's PC
 *                machine). Byte writes merge into it. A write that sets
 *                SLP_EN (bit 13) with SLP_TYP (bits 10-12) 0 raises
 *                VMMUX_PLAT_POWEROFF; other sleep types are logged and
 *                ignored. SLP_EN is write-only: reads return the register
 *                without it.
 *
 * The register at the access's first port takes the access (an access is
 * routed by its first port): its low byte for 8-bit registers, the 16-bit
 * PM1a register from 0x604; bytes past the register read as ones and are
 * ignored on write. In particular a dword at 0xcf8 (PCI CONFIG_ADDRESS)
 * never reaches the reset control register, which is byte-wide.
 * Other ports read all ones and ignore writes, with one warning per port.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"

#define PORT_KBD_DATA	 0x60
#define PORT_KBD_CMD	 0x64
#define PORT_PM1A_CNT	 0x604
#define PORT_PM1A_CNT_HI 0x605
#define PORT_RCR	 0xcf9

#define RCR_RST_CPU 0x04

#define KBD_STATUS	0x1c /* system flag, last write a command, not inhibited */
#define KBD_CMD_PULSE	0xf0 /* 0xF0-0xFF: pulse output lines with a 0 bit */
#define KBD_PULSE_RESET 0x01 /* output line 0: the reset line */

#define PM1_SLP_EN	  0x2000
#define PM1_SLP_TYP_SHIFT 10
#define PM1_SLP_TYP_MASK  0x7

#define CHIPSET_STATE_MAGIC   0x50494843u /* "CHIP" */
#define CHIPSET_STATE_VERSION 1

struct chipset {
	uint8_t rcr;
	uint16_t pm1_cnt;	     /* never holds SLP_EN */
	uint8_t warned[0x10000 / 8]; /* ports already warned about */
};

struct chipset_state_v1 {
	struct role_state_hdr hdr;
	uint16_t pm1_cnt;
	uint8_t rcr;
	uint8_t reserved;
};
_Static_assert(sizeof(struct chipset_state_v1) == 12, "chipset state layout");

static int chipset_raise(struct vmmux_ctx *ctx, uint16_t code, uint16_t vcpu)
{
	return role_raise(ctx, VMMUX_EV_PLATFORM, 0, code, 0, 0, vcpu) < 0 ? -EAGAIN : 0;
}

/* Merge BYTES (a mask of 0x00ff, 0xff00 or both) of V into PM1a_CNT. */
static int chipset_pm1_write(struct vmmux_ctx *ctx, struct chipset *c, uint16_t v, uint16_t bytes,
			     uint16_t vcpu)
{
	uint16_t now = (uint16_t)((c->pm1_cnt & ~bytes) | (v & bytes));
	unsigned typ;

	c->pm1_cnt = now & (uint16_t)~PM1_SLP_EN;
	if (!(now & PM1_SLP_EN))
		return 0;
	typ = (now >> PM1_SLP_TYP_SHIFT) & PM1_SLP_TYP_MASK;
	if (typ != 0) {
		vmmux_log(
		    ctx, VMMUX_LOG_INFO,
		    "PM1a_CNT: sleep type %u requested, only 0 (soft off) is supported; ignored",
		    typ);
		return 0;
	}
	vmmux_log(ctx, VMMUX_LOG_INFO, "PM1a_CNT: soft off requested");
	return chipset_raise(ctx, VMMUX_PLAT_POWEROFF, vcpu);
}

static int chipset_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			  struct vmmux_reply *rep)
{
	struct chipset *c = vmmux_priv(ctx);
	uint64_t ones = role_size_mask(ev->size);
	bool write = ev->flags & VMMUX_EVF_WRITE;
	uint64_t v;

	if (!role_is_plain_io(ev) || ev->key > 0xffff)
		return -EINVAL;
	v = ev->value & ones;

	switch (ev->key) {
	case PORT_RCR:
		if (!write) {
			rep->value = (ones & ~UINT64_C(0xff)) | c->rcr;
			return 0;
		}
		c->rcr = (uint8_t)(v & ~RCR_RST_CPU);
		if (v & RCR_RST_CPU) {
			vmmux_log(ctx, VMMUX_LOG_INFO, "reset control register: CPU reset");
			return chipset_raise(ctx, VMMUX_PLAT_RESET, ev->vcpu);
		}
		return 0;
	case PORT_KBD_CMD:
		if (!write) {
			rep->value = (ones & ~UINT64_C(0xff)) | KBD_STATUS;
			return 0;
		}
		v &= 0xff;
		if (v >= KBD_CMD_PULSE && !(v & KBD_PULSE_RESET)) {
			vmmux_log(ctx, VMMUX_LOG_INFO, "i8042 command 0x%02llx: reset line pulsed",
				  (unsigned long long)v);
			return chipset_raise(ctx, VMMUX_PLAT_RESET, ev->vcpu);
		}
		return 0;
	case PORT_KBD_DATA:
		if (!write)
			rep->value = ones & ~UINT64_C(0xff);
		return 0;
	case PORT_PM1A_CNT:
		if (!write) {
			rep->value = ev->size == 1 ? (c->pm1_cnt & 0xff)
						   : ((ones & ~UINT64_C(0xffff)) | c->pm1_cnt);
			return 0;
		}
		return chipset_pm1_write(ctx, c, (uint16_t)v, ev->size == 1 ? 0x00ff : 0xffff,
					 ev->vcpu);
	case PORT_PM1A_CNT_HI:
		if (!write) {
			rep->value = (ones & ~UINT64_C(0xff)) | (uint8_t)(c->pm1_cnt >> 8);
			return 0;
		}
		return chipset_pm1_write(ctx, c, (uint16_t)(v << 8), 0xff00, ev->vcpu);
	default:
		if (!(c->warned[ev->key / 8] & (1u << (ev->key % 8)))) {
			c->warned[ev->key / 8] |= (uint8_t)(1u << (ev->key % 8));
			vmmux_log(ctx, VMMUX_LOG_WARN,
				  "port 0x%llx is not a chipset register: reads all ones, writes "
				  "ignored",
				  (unsigned long long)ev->key);
		}
		if (!write)
			rep->value = ones;
		return 0;
	}
}

static void chipset_reset(struct vmmux_ctx *ctx)
{
	struct chipset *c = vmmux_priv(ctx);

	c->rcr = 0;
	c->pm1_cnt = 0;
}

static long chipset_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct chipset *c = vmmux_priv(ctx);
	struct chipset_state_v1 st;

	if (!buf || cap < sizeof(st))
		return -1;
	memset(&st, 0, sizeof(st));
	st.hdr.magic = CHIPSET_STATE_MAGIC;
	st.hdr.version = CHIPSET_STATE_VERSION;
	st.hdr.size = sizeof(st);
	st.pm1_cnt = c->pm1_cnt;
	st.rcr = c->rcr;
	memcpy(buf, &st, sizeof(st));
	return sizeof(st);
}

static int chipset_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct chipset *c = vmmux_priv(ctx);
	struct chipset_state_v1 st;

	if (!buf || len != sizeof(st)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: state of %zu bytes, expected %zu", len,
			  sizeof(st));
		return -EINVAL;
	}
	memcpy(&st, buf, sizeof(st));
	if (st.hdr.magic != CHIPSET_STATE_MAGIC || st.hdr.version != CHIPSET_STATE_VERSION ||
	    st.hdr.size != sizeof(st) || (st.pm1_cnt & PM1_SLP_EN) || (st.rcr & RCR_RST_CPU)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "restore: not a valid chipset state (magic, version or register bits)");
		return -EINVAL;
	}
	c->pm1_cnt = st.pm1_cnt;
	c->rcr = st.rcr;
	return 0;
}

static const char *const chipset_raises[] = {"platform:reset", "platform:poweroff", NULL};

const struct vmmux_role vmmux_role_chipset = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "chipset",
    .summary = "PC reset and power-off controls: 0xcf9, i8042 0x64, ACPI PM1a_CNT 0x604",
    .priv_size = sizeof(struct chipset),
    .handle = chipset_handle,
    .reset = chipset_reset,
    .save = chipset_save,
    .restore = chipset_restore,
    .raises = chipset_raises,
};
