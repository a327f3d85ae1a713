/*
 * hvt_console.c: the "hvt-console" role: the puts hypercall of an hvt guest
 * (hvt.h). Written against include/vmmux/vmmux.h only, so that it runs in
 * the main VMM or as a parallel VMM: it reads the argument struct and the
 * string from its granted guest-memory window (checked, overflow included)
 * and writes the bytes to its output descriptor. A pointer outside the
 * window is the guest's fault: the role logs it and raises an exit request
 * with status 1 (grant request:exit), as solo5-hvt exits 1.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <vmmux/hvt_abi.h>
#include <vmmux/vmmux.h>

#include "../../vmms/role_util.h"

#define CHUNK 4096u

/* End the run: the guest passed a bad pointer. */
static void guest_fault(struct vmmux_ctx *ctx, const struct vmmux_event *ev)
{
	role_raise(ctx, VMMUX_EV_REQUEST, 0, VMMUX_REQ_EXIT, 1, 0, ev->vcpu);
}

static int console_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			  struct vmmux_reply *rep)
{
	rep->action = VMMUX_ACT_DONE;
	if (ev->type != VMMUX_EV_HYPERCALL || ev->key != HVT_HC_PUTS)
		return -1;
	struct hvt_hc_puts a;
	if (vmmux_gm_read(ctx, ev->value, &a, sizeof(a)) < 0) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "puts: invalid guest access: argument at 0x%llx is outside guest memory",
			  (unsigned long long)ev->value);
		guest_fault(ctx, ev);
		return 0;
	}
	/* Check the whole string first (every page of it): nothing is written
	 * for a bad one. */
	if (!role_gm_range_ok(ctx, a.data, a.len)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "puts: invalid guest access: string at 0x%llx (%llu bytes) is outside "
			  "guest memory",
			  (unsigned long long)a.data, (unsigned long long)a.len);
		guest_fault(ctx, ev);
		return 0;
	}
	int fd = vmmux_output_fd(ctx);
	char *buf = vmmux_priv(ctx);
	for (uint64_t done = 0; done < a.len;) {
		size_t n = a.len - done < CHUNK ? (size_t)(a.len - done) : CHUNK;
		if (vmmux_gm_read(ctx, a.data + done, buf, n) < 0) {
			vmmux_log(ctx, VMMUX_LOG_ERROR,
				  "puts: invalid guest access: string at 0x%llx (%llu bytes) "
				  "is outside guest memory",
				  (unsigned long long)a.data, (unsigned long long)a.len);
			guest_fault(ctx, ev);
			return 0;
		}
		done += n;
		/* a closed console drops the text, as a terminal would */
		if (fd >= 0)
			(void)role_write_all(fd, buf, n);
	}
	return 0;
}

static const char *const console_raises[] = {"request:exit", NULL};

const struct vmmux_role hvt_console_role = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "hvt-console",
    .summary = "Solo5 hvt console: the puts hypercall, to its output",
    .priv_size = CHUNK, /* the bounce buffer */
    .handle = console_handle,
    .raises = console_raises,
};
