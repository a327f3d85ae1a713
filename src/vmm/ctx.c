/*
 * ctx.c: the role context for VMMs that run inside the main VMM
 * (include/vmmux/vmmux.h). Every call is made by a role under its VMM's
 * mutex (vmm.c), so the per-VMM state here needs no further locking.
 */
#include <stdarg.h>
#include <string.h>

#include "util/log.h"
#include "vm/guest_mem.h"
#include "vmm/vmm.h"

static const struct guest_mem *granted;

void vmm_registry_set_memory(const struct guest_mem *m)
{
	granted = m;
}

void *vmmux_priv(struct vmmux_ctx *ctx)
{
	return ctx->vmm->priv;
}

const char *vmmux_name(struct vmmux_ctx *ctx)
{
	return ctx->vmm->name;
}

uint16_t vmmux_id(struct vmmux_ctx *ctx)
{
	return ctx->vmm->id;
}

const char *vmmux_arg(struct vmmux_ctx *ctx, const char *key)
{
	const struct vmm_config *c = &ctx->vmm->cfg;
	for (size_t i = 0; i < c->nargs; i++)
		if (strcmp(c->args[i].key, key) == 0)
			return c->args[i].value;
	return NULL;
}

int vmmux_input_fd(struct vmmux_ctx *ctx)
{
	return ctx->vmm->in_fd;
}

int vmmux_output_fd(struct vmmux_ctx *ctx)
{
	return ctx->vmm->out_fd;
}

/* An in-process VMM is granted all of guest RAM. */
int vmmux_gm_read(struct vmmux_ctx *ctx, uint64_t gpa, void *buf, size_t len)
{
	(void)ctx;
	const void *p = granted ? gm_ptr(granted, gpa, len) : NULL;
	if (p == NULL)
		return -1;
	memcpy(buf, p, len);
	return 0;
}

int vmmux_gm_write(struct vmmux_ctx *ctx, uint64_t gpa, const void *buf, size_t len)
{
	(void)ctx;
	void *p = granted ? gm_ptr(granted, gpa, len) : NULL;
	if (p == NULL)
		return -1;
	memcpy(p, buf, len);
	return 0;
}

int vmmux_raise(struct vmmux_ctx *ctx, const struct vmmux_event *ev)
{
	struct vmm *v = ctx->vmm;
	if (ev == NULL || ev->data != NULL || !vmm_raisable(ev->type))
		return -1;
	if (v->nraised >= VMM_RAISE_MAX) {
		if (v->raise_overflow++ == 0)
			log_warn("vmm '%s': more than %d events raised in one call; the rest are "
				 "dropped",
				 v->name, VMM_RAISE_MAX);
		return -1;
	}
	struct vmmux_event *q = &v->raised[v->nraised++];
	*q = *ev;
	q->count = q->count ? q->count : 1;
	return 0;
}

void vmmux_log(struct vmmux_ctx *ctx, int level, const char *fmt, ...)
{
	char prefix[VMMUX_NAME_MAX + 8];
	snprintf(prefix, sizeof(prefix), "vmm '%s'", ctx->vmm->name);
	if (level < VMMUX_LOG_ERROR)
		level = VMMUX_LOG_ERROR;
	if (level > VMMUX_LOG_DEBUG)
		level = VMMUX_LOG_DEBUG;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, prefix, fmt, ap);
	va_end(ap);
}
