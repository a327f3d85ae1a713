/*
 * hvt_handles.h: the device list of an hvt block or net VMM (vmms/block,
 * vmms/net). A VMM serves one device (arg "handle", its descriptors the
 * input and output) or several of one kind (arg "handles", a comma-separated
 * list of manifest indices, its descriptors from vmmux_fd): vmmux hvt groups
 * devices when a manifest declares more than there may be VMMs.
 */
#ifndef VMMUX_VMMS_HVT_HANDLES_H
#define VMMUX_VMMS_HVT_HANDLES_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vmmux/hvt_abi.h>
#include <vmmux/vmmux.h>

#include "role_util.h"

/*
 * The handles the VMM serves into H (room for HVT_MFT_MAX_ENTRIES - 1), in
 * order: "handles=1,4,9" (distinct, each 1-63), else "handle=N". *MULTI
 * says which form. Returns their count, or -EINVAL with a message naming the
 * argument.
 */
static inline int hvt_arg_handles(struct vmmux_ctx *ctx, uint64_t *h, int *multi)
{
	const char *list = vmmux_arg(ctx, "handles");
	*multi = list != NULL;
	if (list == NULL) {
		if (vmmux_arg(ctx, "handle") == NULL) {
			vmmux_log(ctx, VMMUX_LOG_ERROR,
				  "arg \"handle\" (its manifest index) or \"handles\" is required");
			return -EINVAL;
		}
		if (role_arg_u64(ctx, "handle", 0, 1, HVT_MFT_MAX_ENTRIES - 1, &h[0]) < 0)
			return -EINVAL;
		return 1;
	}
	int n = 0;
	for (const char *p = list;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char num[8];
		uint64_t v = 0;
		bool ok = len > 0 && len < sizeof(num) && n < (int)HVT_MFT_MAX_ENTRIES - 1;
		if (ok) {
			memcpy(num, p, len);
			num[len] = '\0';
			ok = role_parse_u64(num, HVT_MFT_MAX_ENTRIES - 1, &v) == 0 && v >= 1;
		}
		for (int i = 0; ok && i < n; i++)
			ok = h[i] != v;
		if (!ok) {
			vmmux_log(
			    ctx, VMMUX_LOG_ERROR,
			    "arg \"handles\" = \"%s\": not a list of distinct manifest indices "
			    "1-%u",
			    list, HVT_MFT_MAX_ENTRIES - 1);
			return -EINVAL;
		}
		h[n++] = v;
		if (end == NULL)
			return n;
		p = end + 1;
	}
}

#endif
