/*
 * ctx.h: the role context (struct vmmux_ctx, opaque to roles), shared by
 * both hosts of a role: the main VMM for in-process VMMs (src/vmm/vmm.c) and
 * the parallel VMM library (src/vmmlib/). Whatever the placement, a role sees
 * the same context: its arguments, its descriptors, the guest-memory windows
 * granted to it (nothing else of guest RAM), and a raise call; only how a
 * raised event travels differs (ctx->raise).
 */
#ifndef VMMUX_VMM_CTX_H
#define VMMUX_VMM_CTX_H

#include <stddef.h>
#include <stdint.h>

#include <vmmux/vmmux.h>

#define CTX_NAME_MAX 32

struct vmm_arg {
	char *key;
	char *value;
};

/* A granted window of guest RAM, as this process maps it. */
struct gm_window {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host; /* host address of gpa */
	bool ro;       /* read-only: vmmux_gm_write refuses it */
};

struct vmmux_ctx {
	void *priv;
	char name[CTX_NAME_MAX];
	uint16_t id;
	const struct vmm_arg *args;
	size_t nargs;
	int in_fd, out_fd;
	const int *fds; /* further descriptors (vmmux_fd) */
	size_t nfds;
	const struct gm_window *windows; /* sorted by gpa, not overlapping */
	size_t nwindows;
	/* Deliver a raised event (already checked by vmmux_raise). */
	int (*raise)(struct vmmux_ctx *ctx, const struct vmmux_event *ev);
	void *host; /* the host's object behind this context */
};

/* The window holding [gpa, gpa+len) entirely, or NULL (overflow checked). */
const struct gm_window *ctx_window(const struct vmmux_ctx *ctx, uint64_t gpa, uint64_t len);

/*
 * The event types a VMM may raise: every type but fault events, which only
 * the host raises. Whether this VMM may raise a given event is its grants'
 * business (grants.h): interrupt lines, platform events, requests,
 * guest-reported exceptions, and device events handed on ("forward").
 */
static inline int ctx_raisable(unsigned type)
{
	return type < VMMUX_EV__COUNT && type != VMMUX_EV_FAULT;
}

#endif
