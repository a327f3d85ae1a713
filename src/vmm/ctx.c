/*
 * ctx.c: the role context calls of include/vmmux/vmmux.h, for both hosts
 * (ctx.h). A role makes them from inside its callbacks, which its host
 * serialises, so nothing here locks.
 */
#include "vmm/ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

void *vmmux_priv(struct vmmux_ctx *ctx)
{
	return ctx->priv;
}

const char *vmmux_name(struct vmmux_ctx *ctx)
{
	return ctx->name;
}

uint16_t vmmux_id(struct vmmux_ctx *ctx)
{
	return ctx->id;
}

const char *vmmux_arg(struct vmmux_ctx *ctx, const char *key)
{
	for (size_t i = 0; i < ctx->nargs; i++)
		if (strcmp(ctx->args[i].key, key) == 0)
			return ctx->args[i].value;
	return NULL;
}

int vmmux_input_fd(struct vmmux_ctx *ctx)
{
	return ctx->in_fd;
}

int vmmux_output_fd(struct vmmux_ctx *ctx)
{
	return ctx->out_fd;
}

int vmmux_fd(struct vmmux_ctx *ctx, unsigned i)
{
	return i < ctx->nfds ? ctx->fds[i] : -1;
}

const struct gm_window *ctx_window(const struct vmmux_ctx *ctx, uint64_t gpa, uint64_t len)
{
	for (size_t i = 0; i < ctx->nwindows; i++) {
		const struct gm_window *w = &ctx->windows[i];
		if (gpa >= w->gpa && gpa - w->gpa <= w->size && len <= w->size - (gpa - w->gpa))
			return w;
	}
	return NULL;
}

int vmmux_gm_read(struct vmmux_ctx *ctx, uint64_t gpa, void *buf, size_t len)
{
	const struct gm_window *w = ctx_window(ctx, gpa, len);
	if (w == NULL)
		return -1;
	memcpy(buf, w->host + (gpa - w->gpa), len);
	return 0;
}

int vmmux_gm_write(struct vmmux_ctx *ctx, uint64_t gpa, const void *buf, size_t len)
{
	const struct gm_window *w = ctx_window(ctx, gpa, len);
	if (w == NULL || w->ro)
		return -1;
	memcpy(w->host + (gpa - w->gpa), buf, len);
	return 0;
}

int vmmux_raise(struct vmmux_ctx *ctx, const struct vmmux_event *ev)
{
	if (ev == NULL || ev->data != NULL || !ctx_raisable(ev->type))
		return -1;
	return ctx->raise(ctx, ev);
}

void vmmux_log(struct vmmux_ctx *ctx, int level, const char *fmt, ...)
{
	char prefix[CTX_NAME_MAX + 8];
	snprintf(prefix, sizeof(prefix), "vmm '%s'", ctx->name);
	if (level < VMMUX_LOG_ERROR)
		level = VMMUX_LOG_ERROR;
	if (level > VMMUX_LOG_DEBUG)
		level = VMMUX_LOG_DEBUG;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, prefix, fmt, ap);
	va_end(ap);
}
