/*
 * fwcfg.c: QEMU's firmware configuration interface, the legacy port I/O
 * form (role "fwcfg"), so that kernels written for `qemu -kernel` find the
 * machine's facts where they look for them.
 *
 * Ports (the route decides the base, normally io:0x510-0x511; the register
 * is key - iobase):
 *   base+0  selector: a 16-bit write selects item VALUE and rewinds its
 *           read offset to 0. A byte write is ignored (as QEMU does).
 *   base+1  data: each byte read returns the next byte of the selected item,
 *           0 past its end or for an unknown item. Writes are ignored (QEMU
 *           has not taken data writes since 2.4).
 *   A byte read of base+0 reads data too, as QEMU's combined port does.
 *   Other widths, and string I/O, are refused (-EINVAL: the access gets the
 *   host's default).
 *
 * Items, in fw_cfg's byte order (numbers little-endian, the file directory
 * big-endian):
 *   0x0000 signature  "QEMU"
 *   0x0001 id         u32 1: the traditional interface only (no DMA)
 *   0x0003 ram size   u64, bytes
 *   0x0005 CPU count  u16 (boot CPUs)
 *   0x000f max CPUs   u16
 *   0x0019 file dir   u32 count, then per file: u32 size, u16 selector,
 *                     u16 reserved, char name[56]
 *   0x0020 "etc/e820" QEMU's pc machine's table (pc_memmap.h): reserved
 *                     0xfeffc000 +16 KiB, reserved 0xfd00000000 +12 GiB on an
 *                     AMD host (QEMU's HyperTransport range), RAM from 0;
 *                     entries of u64 address, u64 length, u32 type
 *
 * Args: cpus (1-255, required), max_cpus (cpus-255, default cpus), ram
 * (bytes, 1 MiB to 1 TiB, required), iobase (default 0x510). vmmux fills in
 * cpus, max_cpus and ram from the machine for every VMM of this role in the
 * config that does not give them (src/config/config.c); a VMM added at run
 * time gives them itself.
 *
 * Guest-visible state: the selector and the read offset (saved, reset to
 * selector 0, offset 0).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"
#include "fwcfg.h"
#include "pc_memmap.h"

#define FWCFG_IOBASE 0x510

#define KEY_SIGNATURE 0x0000u
#define KEY_ID	      0x0001u
#define KEY_RAM_SIZE  0x0003u
#define KEY_NB_CPUS   0x0005u
#define KEY_MAX_CPUS  0x000fu
#define KEY_FILE_DIR  0x0019u
#define KEY_E820      0x0020u /* the first file selector */

#define FILE_NAME_LEN 56u
#define FILE_ENTRY    64u
#define NFILES	      1u
#define E820_ENTRY    20u
#define E820_MAX      3u

#define FWCFG_STATE_MAGIC   0x47464346u /* "FCFG" */
#define FWCFG_STATE_VERSION 1

struct fwcfg {
	uint16_t iobase;
	uint16_t selector;
	uint32_t offset;
	/* The items, built at init. */
	uint8_t id[4];
	uint8_t ram[8];
	uint8_t cpus[2];
	uint8_t max_cpus[2];
	uint8_t dir[4 + NFILES * FILE_ENTRY];
	uint8_t e820[E820_MAX * E820_ENTRY];
	uint32_t e820_len;
};

struct fwcfg_state_v1 {
	struct role_state_hdr hdr;
	uint16_t selector;
	uint16_t reserved;
	uint32_t offset;
};
_Static_assert(sizeof(struct fwcfg_state_v1) == 16, "fwcfg state layout");

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_be(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[n - 1 - i] = (uint8_t)(v >> (8 * i));
}

static int fwcfg_init(struct vmmux_ctx *ctx)
{
	struct fwcfg *f = vmmux_priv(ctx);
	uint64_t cpus, max_cpus, ram, base;

	if (vmmux_arg(ctx, "cpus") == NULL || vmmux_arg(ctx, "ram") == NULL) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "args \"cpus\" and \"ram\" are required (vmmux gives them from the "
			  "machine to the VMMs of the config; a VMM added at run time must "
			  "give them)");
		return -EINVAL;
	}
	if (role_arg_u64(ctx, "cpus", 1, 1, 255, &cpus) < 0 ||
	    role_arg_u64(ctx, "ram", 0, 1ull << 20, 1ull << 40, &ram) < 0 ||
	    role_arg_u64(ctx, "iobase", FWCFG_IOBASE, 0, 0xfffe, &base) < 0)
		return -EINVAL;
	if (role_arg_u64(ctx, "max_cpus", cpus, cpus, 255, &max_cpus) < 0)
		return -EINVAL;
	f->iobase = (uint16_t)base;
	f->selector = KEY_SIGNATURE;
	f->offset = 0;
	put_le(f->id, 1, 4);
	put_le(f->ram, ram, 8);
	put_le(f->cpus, cpus, 2);
	put_le(f->max_cpus, max_cpus, 2);
	put_be(f->dir, NFILES, 4);
	uint8_t *ent = f->dir + 4;
	struct pc_memmap_ent map[E820_MAX];
	size_t n = pc_fwcfg_e820(ram, pc_amd_ht_hole(), map);
	f->e820_len = (uint32_t)(n * E820_ENTRY);
	for (size_t i = 0; i < n; i++) {
		put_le(f->e820 + i * E820_ENTRY, map[i].base, 8);
		put_le(f->e820 + i * E820_ENTRY + 8, map[i].len, 8);
		put_le(f->e820 + i * E820_ENTRY + 16, map[i].type, 4);
	}
	put_be(ent, f->e820_len, 4);
	put_be(ent + 4, KEY_E820, 2);
	static const char e820_name[] = "etc/e820";
	_Static_assert(sizeof(e820_name) <= FILE_NAME_LEN, "file name length");
	memcpy(ent + 8, e820_name, sizeof(e820_name));
	return 0;
}

/* The bytes of item KEY, or NULL (an unknown item reads as zeros). */
static const uint8_t *item(const struct fwcfg *f, uint16_t key, uint32_t *len)
{
	static const uint8_t sig[4] = {'Q', 'E', 'M', 'U'};
	switch (key) {
	case KEY_SIGNATURE:
		*len = sizeof(sig);
		return sig;
	case KEY_ID:
		*len = sizeof(f->id);
		return f->id;
	case KEY_RAM_SIZE:
		*len = sizeof(f->ram);
		return f->ram;
	case KEY_NB_CPUS:
		*len = sizeof(f->cpus);
		return f->cpus;
	case KEY_MAX_CPUS:
		*len = sizeof(f->max_cpus);
		return f->max_cpus;
	case KEY_FILE_DIR:
		*len = sizeof(f->dir);
		return f->dir;
	case KEY_E820:
		*len = f->e820_len;
		return f->e820;
	default:
		*len = 0;
		return NULL;
	}
}

static uint8_t read_data(struct fwcfg *f)
{
	uint32_t len;
	const uint8_t *p = item(f, f->selector, &len);
	if (p == NULL || f->offset >= len)
		return 0;
	return p[f->offset++];
}

static int fwcfg_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			struct vmmux_reply *rep)
{
	struct fwcfg *f = vmmux_priv(ctx);

	if (!role_is_plain_io(ev))
		return -EINVAL;
	if (ev->key < f->iobase || ev->key > (uint64_t)f->iobase + 1)
		return -ERANGE;
	unsigned reg = (unsigned)(ev->key - f->iobase);
	if (ev->flags & VMMUX_EVF_WRITE) {
		if (ev->size == 2 && reg == 0) {
			f->selector = (uint16_t)ev->value;
			f->offset = 0;
			return 0;
		}
		return ev->size == 1 ? 0 : -EINVAL;
	}
	if (ev->size != 1)
		return -EINVAL;
	rep->value = read_data(f);
	return 0;
}

static void fwcfg_reset(struct vmmux_ctx *ctx)
{
	struct fwcfg *f = vmmux_priv(ctx);

	f->selector = KEY_SIGNATURE;
	f->offset = 0;
}

static long fwcfg_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct fwcfg *f = vmmux_priv(ctx);
	struct fwcfg_state_v1 st;

	if (!buf || cap < sizeof(st))
		return -1;
	memset(&st, 0, sizeof(st));
	st.hdr.magic = FWCFG_STATE_MAGIC;
	st.hdr.version = FWCFG_STATE_VERSION;
	st.hdr.size = sizeof(st);
	st.selector = f->selector;
	st.offset = f->offset;
	memcpy(buf, &st, sizeof(st));
	return sizeof(st);
}

static int fwcfg_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct fwcfg *f = vmmux_priv(ctx);
	struct fwcfg_state_v1 st;

	if (!buf || len != sizeof(st)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: state of %zu bytes, expected %zu", len,
			  sizeof(st));
		return -EINVAL;
	}
	memcpy(&st, buf, sizeof(st));
	if (st.hdr.magic != FWCFG_STATE_MAGIC || st.hdr.version != FWCFG_STATE_VERSION ||
	    st.hdr.size != sizeof(st) || st.reserved != 0) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "restore: not an fwcfg state (magic or version)");
		return -EINVAL;
	}
	f->selector = st.selector;
	f->offset = st.offset;
	return 0;
}

static const char *const fwcfg_args[] = {"cpus", "max_cpus", "ram", "iobase", NULL};

const struct vmmux_role vmmux_role_fwcfg = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "fwcfg",
    .summary = "QEMU's fw_cfg at 0x510/0x511: signature, CPU count, max CPUs, RAM size, etc/e820",
    .priv_size = sizeof(struct fwcfg),
    .init = fwcfg_init,
    .handle = fwcfg_handle,
    .reset = fwcfg_reset,
    .save = fwcfg_save,
    .restore = fwcfg_restore,
    .args = fwcfg_args,
};
