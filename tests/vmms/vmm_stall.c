/*
 * vmm_stall: a parallel VMM (built on the VMM library) that stalls, for
 * ever, inside one of its control callbacks, as a hostile or broken VMM
 * can: argument stall=reset (its role's reset, when the VM resets) or
 * stall=restore (the state restore of a swap that brings it in). Before it
 * stalls it logs "stalling in reset" or "stalling in restore" (warn level),
 * so that a test knows when vmmux is waiting for it. Its events are
 * answered at once (reads get 0). Its state is one word, so that it can be
 * swapped in and out.
 */
#include <poll.h>

#include "testvmm.h"

enum { STALL_NONE, STALL_RESET, STALL_RESTORE };

struct stall {
	int where;
	uint32_t events;
};

static void stall_forever(struct vmmux_ctx *ctx, const char *what)
{
	vmmux_log(ctx, VMMUX_LOG_WARN, "stalling in %s", what);
	for (;;)
		poll(NULL, 0, 1000);
}

static int stall_init(struct vmmux_ctx *ctx)
{
	struct stall *s = vmmux_priv(ctx);
	const char *w = vmmux_arg(ctx, "stall");
	if (w == NULL)
		s->where = STALL_NONE;
	else if (strcmp(w, "reset") == 0)
		s->where = STALL_RESET;
	else if (strcmp(w, "restore") == 0)
		s->where = STALL_RESTORE;
	else
		return -EINVAL;
	return 0;
}

static int stall_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			struct vmmux_reply *rep)
{
	struct stall *s = vmmux_priv(ctx);
	s->events++;
	tv_answer_read(ev, rep, 0);
	return 0;
}

static void stall_reset(struct vmmux_ctx *ctx)
{
	struct stall *s = vmmux_priv(ctx);
	if (s->where == STALL_RESET)
		stall_forever(ctx, "reset");
}

static long stall_save(struct vmmux_ctx *ctx, void *buf, size_t cap)
{
	struct stall *s = vmmux_priv(ctx);
	if (cap < sizeof(s->events))
		return -1;
	memcpy(buf, &s->events, sizeof(s->events));
	return (long)sizeof(s->events);
}

static int stall_restore(struct vmmux_ctx *ctx, const void *buf, size_t len)
{
	struct stall *s = vmmux_priv(ctx);
	if (s->where == STALL_RESTORE)
		stall_forever(ctx, "restore");
	(void)buf;
	(void)len;
	return 0;
}

static const char *const stall_args[] = {"stall", NULL};

static const struct vmmux_role stall_role = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "stall-test",
    .summary = "stalls for ever in its reset or its state restore",
    .priv_size = sizeof(struct stall),
    .init = stall_init,
    .handle = stall_handle,
    .reset = stall_reset,
    .save = stall_save,
    .restore = stall_restore,
    .args = stall_args,
};

int main(void)
{
	return vmmux_vmm_main(&stall_role);
}
