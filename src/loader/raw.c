/*
 * raw.c: a flat binary copied to load_addr and entered at entry.
 *
 * Real mode (the default) can reach only the first MiB: the image and its
 * entry must lie below 1 MiB. 32-bit protected mode (flat, no paging) can
 * reach 4 GiB. Long mode and user mode run on cpu_setup's identity page
 * tables, so the image may not overlap [0, LOADER_LOW_RESERVED), where those
 * tables live. In every mode the image must fit in guest RAM and the entry
 * must be one of its bytes (nothing else is loaded that could be executed).
 */
#include "loader/loader.h"

#include <string.h>

#define ONE_MIB	 0x100000ull
#define FOUR_GIB 0x100000000ull

int loader_raw(const char *name, const uint8_t *img, size_t len, const struct load_opts *o,
	       struct guest_mem *m, struct boot_image *out, struct errbuf *e)
{
	memset(out, 0, sizeof(*out));
	enum cpu_mode mode = o->mode == CPU_MODE_DEFAULT ? CPU_MODE_REAL : o->mode;
	if (mode != CPU_MODE_REAL && mode != CPU_MODE_PROT32 && mode != CPU_MODE_LONG &&
	    mode != CPU_MODE_USER)
		return err_set(e, "%s: unknown cpu mode %d", name, (int)o->mode);
	if (len == 0)
		return err_set(e, "%s: image is empty", name);

	uint64_t lo = o->load_addr;
	uint64_t entry = o->has_entry ? o->entry : lo;
	const char *mn = cpu_mode_name(mode);
	if ((uint64_t)len > UINT64_MAX - lo)
		return err_set(e, "%s: load address 0x%llx plus the image size %zu wraps around",
			       name, (unsigned long long)lo, len);
	uint64_t hi = lo + len;

	switch (mode) {
	case CPU_MODE_REAL:
		if (hi > ONE_MIB)
			return err_set(
			    e,
			    "%s: image [0x%llx, 0x%llx) extends beyond 1 MiB, which real "
			    "mode cannot reach (choose a lower --load-addr or another "
			    "--cpu-mode)",
			    name, (unsigned long long)lo, (unsigned long long)hi);
		if (entry >= ONE_MIB)
			return err_set(e,
				       "%s: entry 0x%llx is not below 1 MiB, which real mode needs",
				       name, (unsigned long long)entry);
		break;
	case CPU_MODE_PROT32:
		if (hi > FOUR_GIB)
			return err_set(e,
				       "%s: image [0x%llx, 0x%llx) extends beyond 4 GiB, which "
				       "32-bit protected mode cannot reach",
				       name, (unsigned long long)lo, (unsigned long long)hi);
		break;
	default: /* long, user */
		if (lo < LOADER_LOW_RESERVED)
			return err_set(e,
				       "%s: image [0x%llx, 0x%llx) overlaps the low area [0, 0x%x) "
				       "that %s mode reserves for the GDT and page tables (use "
				       "--load-addr 0x%x or above)",
				       name, (unsigned long long)lo, (unsigned long long)hi,
				       LOADER_LOW_RESERVED, mn, LOADER_LOW_RESERVED);
		break;
	}
	if (!gm_range_ok(m, lo, len))
		return err_set(e,
			       "%s: image [0x%llx, 0x%llx) (%zu bytes) extends beyond guest RAM "
			       "(0x%llx bytes)",
			       name, (unsigned long long)lo, (unsigned long long)hi, len,
			       (unsigned long long)m->size);
	if (entry < lo || entry >= hi)
		return err_set(e, "%s: entry 0x%llx is outside the image [0x%llx, 0x%llx)", name,
			       (unsigned long long)entry, (unsigned long long)lo,
			       (unsigned long long)hi);

	uint8_t *dst = gm_ptr(m, lo, len);
	if (dst == NULL)
		return err_set(e, "%s: image leaves guest RAM", name);
	memcpy(dst, img, len);
	out->kind = BOOT_RAW;
	out->mode = mode;
	out->entry = entry;
	out->image_lo = lo;
	out->image_hi = hi;
	return 0;
}
