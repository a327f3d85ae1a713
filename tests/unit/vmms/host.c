/*
 * host.c: the host side of the role ABI for unit tests (see host.h).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host.h"

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p) {
		fprintf(stderr, "test host: out of memory\n");
		abort();
	}
	return p;
}

struct vmmux_ctx *host_new(const struct vmmux_role *role, const char *name)
{
	struct vmmux_ctx *ctx = xcalloc(1, sizeof(*ctx));

	ctx->role = role;
	ctx->priv = xcalloc(1, role->priv_size);
	snprintf(ctx->name, sizeof(ctx->name), "%s", name);
	ctx->id = 1;
	ctx->in_fd = -1;
	ctx->out_fd = -1;
	ctx->raise_limit = HOST_RAISED_MAX;
	return ctx;
}

void host_arg(struct vmmux_ctx *ctx, const char *key, const char *value)
{
	if (ctx->nargs >= HOST_ARGS_MAX) {
		fprintf(stderr, "test host: too many args\n");
		abort();
	}
	snprintf(ctx->args[ctx->nargs].key, sizeof(ctx->args[0].key), "%s", key);
	snprintf(ctx->args[ctx->nargs].value, sizeof(ctx->args[0].value), "%s", value);
	ctx->nargs++;
}

int host_init(struct vmmux_ctx *ctx)
{
	int ret = ctx->role->init ? ctx->role->init(ctx) : 0;

	ctx->inited = ret == 0;
	return ret;
}

void host_free(struct vmmux_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->inited && ctx->role->fini)
		ctx->role->fini(ctx);
	if (ctx->in_fd >= 0)
		close(ctx->in_fd);
	if (ctx->out_fd >= 0)
		close(ctx->out_fd);
	free(ctx->gm);
	free(ctx->priv);
	free(ctx);
}

int host_output(struct vmmux_ctx *ctx)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("test host: socketpair");
		abort();
	}
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	ctx->out_fd = sv[1];
	return sv[0];
}

void host_output_file(struct vmmux_ctx *ctx, const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);

	if (fd < 0) {
		perror(path);
		abort();
	}
	ctx->out_fd = fd;
}

char *host_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		perror(path);
		abort();
	}
	buf = calloc(1, (size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		abort();
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

char *host_temp_file(const char *name)
{
	char dir[] = "/tmp/vmmux-role-test-XXXXXX";
	char *path;

	if (!mkdtemp(dir) || asprintf(&path, "%s/%s", dir, name) < 0) {
		perror("test host: temporary file");
		abort();
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(path);
		abort();
	}
	close(fd);
	return path;
}

void host_temp_remove(char *path)
{
	char *slash = strrchr(path, '/');

	unlink(path);
	*slash = '\0';
	rmdir(path);
	free(path);
}

int host_input(struct vmmux_ctx *ctx)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		perror("test host: pipe");
		abort();
	}
	ctx->in_fd = p[0];
	return p[1];
}

uint8_t *host_guest_memory(struct vmmux_ctx *ctx, uint64_t base, size_t size)
{
	free(ctx->gm);
	ctx->gm = xcalloc(1, size);
	ctx->gm_base = base;
	ctx->gm_size = size;
	return ctx->gm;
}

long host_recv(int fd, char *buf, size_t cap)
{
	ssize_t n = recv(fd, buf, cap - 1, MSG_DONTWAIT);

	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

struct vmmux_event host_event(uint16_t type, uint64_t key, uint8_t size, uint64_t value)
{
	struct vmmux_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.key = key;
	ev.size = size;
	ev.value = value;
	ev.count = 1;
	ev.src_kind = VMMUX_SRC_VCPU;
	ev.src_id = 0;
	ev.vcpu = 0;
	return ev;
}

int host_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	return ctx->role->handle(ctx, ev, rep);
}

int host_out(struct vmmux_ctx *ctx, uint64_t port, uint8_t size, uint64_t value)
{
	struct vmmux_event ev = host_event(VMMUX_EV_IO, port, size, value);
	struct vmmux_reply rep;

	ev.flags = VMMUX_EVF_WRITE;
	return host_handle(ctx, &ev, &rep);
}

int host_in(struct vmmux_ctx *ctx, uint64_t port, uint8_t size, uint64_t *value)
{
	struct vmmux_event ev = host_event(VMMUX_EV_IO, port, size, 0);
	struct vmmux_reply rep;
	int ret = host_handle(ctx, &ev, &rep);

	*value = size >= 8 ? rep.value : rep.value & ((UINT64_C(1) << (8 * size)) - 1);
	return ret;
}

int host_inb(struct vmmux_ctx *ctx, uint64_t port)
{
	uint64_t v;

	if (host_in(ctx, port, 1, &v) < 0)
		return -1;
	return (int)v;
}

void host_clear(struct vmmux_ctx *ctx)
{
	ctx->nraised = 0;
	ctx->nlogs = 0;
}

size_t host_log_count(const struct vmmux_ctx *ctx, const char *needle)
{
	size_t n = 0;

	for (size_t i = 0; i < ctx->nlogs; i++)
		if (strstr(ctx->log[i], needle))
			n++;
	return n;
}

/* ---- the context functions of vmmux.h ---- */

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

static bool host_gm_range(struct vmmux_ctx *ctx, uint64_t gpa, size_t len)
{
	if (!ctx->gm || gpa < ctx->gm_base)
		return false;
	if (gpa + len < gpa) /* overflow */
		return false;
	return gpa - ctx->gm_base <= ctx->gm_size && len <= ctx->gm_size - (gpa - ctx->gm_base);
}

int vmmux_gm_read(struct vmmux_ctx *ctx, uint64_t gpa, void *buf, size_t len)
{
	if (!host_gm_range(ctx, gpa, len))
		return -1;
	memcpy(buf, ctx->gm + (gpa - ctx->gm_base), len);
	return 0;
}

int vmmux_gm_write(struct vmmux_ctx *ctx, uint64_t gpa, const void *buf, size_t len)
{
	if (!host_gm_range(ctx, gpa, len))
		return -1;
	memcpy(ctx->gm + (gpa - ctx->gm_base), buf, len);
	return 0;
}

int vmmux_raise(struct vmmux_ctx *ctx, const struct vmmux_event *ev)
{
	if (!ev || ev->type >= VMMUX_EV__COUNT || ctx->nraised >= ctx->raise_limit ||
	    ctx->nraised >= HOST_RAISED_MAX)
		return -1;
	ctx->raised[ctx->nraised] = *ev;
	ctx->raised[ctx->nraised].src_kind = VMMUX_SRC_VMM;
	ctx->raised[ctx->nraised].src_id = ctx->id;
	ctx->nraised++;
	return 0;
}

void vmmux_log(struct vmmux_ctx *ctx, int level, const char *fmt, ...)
{
	va_list ap;
	char line[HOST_LOG_LEN];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (getenv("VMMUX_TEST_VERBOSE"))
		fprintf(stderr, "[%s] %d: %s\n", ctx->name, level, line);
	if (ctx->nlogs < HOST_LOGS_MAX) {
		ctx->log_level[ctx->nlogs] = level;
		memcpy(ctx->log[ctx->nlogs], line, sizeof(line));
		ctx->nlogs++;
	}
}
