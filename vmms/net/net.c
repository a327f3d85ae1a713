/*
 * net: the "hvt-net" role, one network device of a Solo5 hvt guest
 * (include/vmmux/hvt_abi.h): the net write (6) and net read (7) hypercalls,
 * and the device's readiness for the poll hypercall.
 *
 * The role holds two descriptors, both opened by vmmux (`vmmux hvt
 * --net:NAME=IFACE`, passed as "fd:N"): its input, the tap (non-blocking,
 * frames without a packet-information header), and its output, an eventfd
 * that is its readiness: set exactly while frames wait for the guest. The
 * host polls the tap for the role (input callback), which takes the frames
 * into a ring of 32 and sets the eventfd; the guest's reads take them from
 * the ring (refilled from the tap when it runs empty) and clear the eventfd
 * with the last one. The main VMM's poll hypercall waits on these eventfds
 * directly: no request to this VMM, no socket. Written against
 * include/vmmux/vmmux.h only: it runs in the main VMM or as a sandboxed
 * parallel VMM.
 *
 * Several devices in one VMM: "handles" instead of "handle"; its further
 * descriptors (vmmux_fd) are each device's tap and eventfd in turn (2i,
 * 2i + 1, in the order of the list), its input an epoll descriptor of
 * every tap, which the host polls for it.
 *
 * Arguments:
 *   handle=N     its manifest index (the guest's handle), 1-63
 *   handles=N,.. the manifest indices of the devices it serves
 *   next=yes|no  a request for another handle is handed on (grant
 *                "forward") rather than refused with EINVAL (default no)
 *
 * Argument struct and buffer outside the granted window: the guest's fault,
 * the run ends with status 1 (grant request:exit). A write: the whole frame
 * (at most 64 KiB) or EUNSPEC. A read: the oldest frame, truncated to the
 * buffer, len = its length; AGAIN when none waits.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vmmux/hvt_abi.h>
#include <vmmux/vmmux.h>

#include "../hvt_handles.h"
#include "../role_util.h"

#define FRAME_MAX (64u * 1024u)
#define RING	  32u /* frames taken from the tap and not yet read by the guest */

/* One device: its tap, its readiness, its ring. */
struct net_dev {
	int tap, ready;
	uint64_t handle;
	bool is_ready; /* what the eventfd says */
	unsigned head, count;
	uint32_t len[RING];
	uint8_t frame[RING][FRAME_MAX];
};

struct net {
	bool next;
	unsigned ndev;
	struct net_dev *dev[HVT_MFT_MAX_ENTRIES - 1]; /* allocated by init */
	uint8_t buf[FRAME_MAX];
};

static void set_ready(struct net_dev *n, bool on)
{
	uint64_t v = 1;
	if (on == n->is_ready)
		return;
	if (on) {
		if (write(n->ready, &v, sizeof(v)) == (ssize_t)sizeof(v))
			n->is_ready = true;
		return;
	}
	while (read(n->ready, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	n->is_ready = false;
}

/* Take what waits on the tap into the ring, while there is room. Returns
 * the bytes taken, or -1 when the tap failed. */
static long fill(struct net_dev *n)
{
	long total = 0;
	while (n->count < RING) {
		unsigned at = (n->head + n->count) % RING;
		ssize_t r = read(n->tap, n->frame[at], FRAME_MAX);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? total : -1;
		n->len[at] = (uint32_t)r;
		n->count++;
		total += r > 0 ? r : 1;
	}
	return total;
}

static void net_fini(struct vmmux_ctx *ctx)
{
	struct net *n = vmmux_priv(ctx);
	for (unsigned i = 0; i < n->ndev; i++)
		free(n->dev[i]);
	n->ndev = 0;
}

static int net_init(struct vmmux_ctx *ctx)
{
	struct net *n = vmmux_priv(ctx);
	static const char *const yn[] = {"no", "yes"};
	size_t next = 0;
	if (role_arg_choice(ctx, "next", yn, 2, 0, &next) < 0)
		return -EINVAL;
	n->next = next == 1;
	uint64_t h[HVT_MFT_MAX_ENTRIES - 1];
	int multi, cnt = hvt_arg_handles(ctx, h, &multi);
	if (cnt < 0)
		return cnt;
	for (int i = 0; i < cnt; i++) {
		struct net_dev *d = calloc(1, sizeof(*d));
		if (d == NULL) {
			vmmux_log(ctx, VMMUX_LOG_ERROR, "out of memory");
			net_fini(ctx);
			return -ENOMEM;
		}
		n->dev[n->ndev++] = d;
		d->handle = h[i];
		d->tap = multi ? vmmux_fd(ctx, 2u * (unsigned)i) : vmmux_input_fd(ctx);
		d->ready = multi ? vmmux_fd(ctx, 2u * (unsigned)i + 1) : vmmux_output_fd(ctx);
		if (d->tap < 0 || d->ready < 0 || (multi && vmmux_input_fd(ctx) < 0)) {
			vmmux_log(ctx, VMMUX_LOG_ERROR,
				  multi ? "its further descriptors must be each device's tap and "
					  "readiness eventfd, and its input an epoll descriptor of "
					  "the taps (vmmux hvt opens them)"
					: "its input must be the tap and its output the readiness "
					  "eventfd (vmmux hvt opens both)");
			net_fini(ctx);
			return -EINVAL;
		}
		d->is_ready = true;
		set_ready(d, false);
	}
	return 0;
}

/* A tap is readable (the input: the tap, or an epoll descriptor of every
 * device's tap): take the frames into the rings (so that the host keeps
 * polling without a pause) and publish the readiness. With every ring full
 * nothing is taken: 0, the host polls again a little later (the guest is
 * behind, and its reads refill the rings). */
static int net_input(struct vmmux_ctx *ctx)
{
	struct net *n = vmmux_priv(ctx);
	long taken = 0;
	bool failed = false;
	for (unsigned i = 0; i < n->ndev; i++) {
		struct net_dev *d = n->dev[i];
		if (d->count == RING)
			continue;
		long r = fill(d);
		set_ready(d, d->count > 0);
		if (r < 0)
			failed = true;
		else
			taken += r;
	}
	return failed ? -1 : taken > 0 ? 1 : 0;
}

/* role_guest_fault for this device's calls. */
static void guest_fault(struct vmmux_ctx *ctx, const struct vmmux_event *ev, const char *what,
			uint64_t gpa, uint64_t len)
{
	role_guest_fault(ctx, ev->vcpu, "net", ev->key == HVT_HC_NET_WRITE ? "write" : "read", what,
			 gpa, len);
}

static int net_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	struct net *nt = vmmux_priv(ctx);
	rep->action = VMMUX_ACT_DONE;
	if (ev->type != VMMUX_EV_HYPERCALL ||
	    (ev->key != HVT_HC_NET_WRITE && ev->key != HVT_HC_NET_READ))
		return -1;
	/* Both structs share handle, data, len and ret (the read's len is in/out). */
	struct hvt_hc_net_read a;
	_Static_assert(sizeof(struct hvt_hc_net_write) == sizeof(struct hvt_hc_net_read),
		       "net structs");
	if (vmmux_gm_read(ctx, ev->value, &a, sizeof(a)) < 0) {
		guest_fault(ctx, ev, "argument", ev->value, sizeof(a));
		return 0;
	}
	struct net_dev *n = NULL;
	for (unsigned i = 0; i < nt->ndev && n == NULL; i++)
		if (nt->dev[i]->handle == a.handle)
			n = nt->dev[i];
	if (n == NULL) {
		if (nt->next) {
			struct vmmux_event copy = *ev;
			copy.data = NULL;
			vmmux_raise(ctx, &copy);
			return 0;
		}
		a.ret = HVT_EINVAL;
	} else if (!role_gm_range_ok_for(ctx, a.data, a.len, ev->key == HVT_HC_NET_READ)) {
		guest_fault(ctx, ev, "buffer", a.data, a.len);
		return 0;
	} else if (ev->key == HVT_HC_NET_WRITE) {
		ssize_t w = -1;
		if (a.len > 0 && a.len <= FRAME_MAX &&
		    vmmux_gm_read(ctx, a.data, nt->buf, (size_t)a.len) == 0) {
			do
				w = write(n->tap, nt->buf, (size_t)a.len);
			while (w < 0 && errno == EINTR);
		}
		a.ret = w == (ssize_t)a.len ? HVT_OK : a.len > FRAME_MAX ? HVT_EINVAL : HVT_EUNSPEC;
	} else {
		/* The oldest frame of the ring; refilled from the tap when empty,
		 * so that frames the host has not polled for yet are not missed. */
		if (n->count == 0 && fill(n) < 0)
			a.ret = HVT_EUNSPEC;
		else if (n->count == 0)
			a.ret = HVT_AGAIN;
		else {
			uint32_t flen = n->len[n->head];
			size_t got = flen < a.len ? flen : (size_t)a.len;
			a.ret = vmmux_gm_write(ctx, a.data, n->frame[n->head], got) == 0
				    ? HVT_OK
				    : HVT_EUNSPEC;
			a.len = got;
			n->head = (n->head + 1) % RING;
			n->count--;
			if (n->count == 0)
				fill(n);
		}
		set_ready(n, n->count > 0);
	}
	if (vmmux_gm_write(ctx, ev->value, &a, sizeof(a)) < 0)
		guest_fault(ctx, ev, "argument", ev->value, sizeof(a));
	return 0;
}

static const char *const net_args[] = {"handle", "handles", "next", NULL};
static const char *const net_raises[] = {"request:exit", NULL};

const struct vmmux_role vmmux_role_hvt_net = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "hvt-net",
    .summary = "Solo5 hvt network device: net read/write hypercalls on its tap (input), "
	       "readiness on its eventfd (output)",
    .priv_size = sizeof(struct net),
    .init = net_init,
    .fini = net_fini,
    .handle = net_handle,
    .input = net_input,
    .args = net_args,
    .raises = net_raises,
};
