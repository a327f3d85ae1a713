/*
 * host.h: a minimal host for role unit tests.
 *
 * It implements the host side of include/vmmux/vmmux.h (the vmmux_* context
 * functions) for one role instance: a private-state buffer, an args list,
 * input and output descriptors (a pipe and a SOCK_SEQPACKET socket pair, so
 * that each write(2) of the role arrives as one message), a guest-memory
 * window, a record of raised events and of log lines. The role's callbacks
 * are called exactly as the real host calls them.
 */
#ifndef VMMUX_TEST_VMMS_HOST_H
#define VMMUX_TEST_VMMS_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmmux/vmmux.h>

#define HOST_ARGS_MAX	16
#define HOST_RAISED_MAX 64
#define HOST_LOGS_MAX	64
#define HOST_LOG_LEN	256

struct vmmux_ctx {
	const struct vmmux_role *role;
	void *priv;
	char name[32];
	uint16_t id;
	size_t nargs;
	struct {
		char key[32];
		char value[64];
	} args[HOST_ARGS_MAX];
	int in_fd, out_fd;
	int fds[8]; /* further descriptors (vmmux_fd), not owned */
	size_t nfds;
	/* guest memory: gm_size bytes at guest-physical gm_base */
	uint8_t *gm;
	uint64_t gm_base;
	size_t gm_size;
	/* events raised by the role, in order */
	struct vmmux_event raised[HOST_RAISED_MAX];
	size_t nraised;
	size_t raise_limit; /* refuse raises beyond this many (HOST_RAISED_MAX) */
	/* log lines */
	int log_level[HOST_LOGS_MAX];
	char log[HOST_LOGS_MAX][HOST_LOG_LEN];
	size_t nlogs;
	bool inited;
};

/* A new instance of ROLE named NAME (id 1), not initialised yet. */
struct vmmux_ctx *host_new(const struct vmmux_role *role, const char *name);
/* Add argument KEY=VALUE (before host_init). */
void host_arg(struct vmmux_ctx *ctx, const char *key, const char *value);
/* Call the role's init (0 when it has none); returns its result. */
int host_init(struct vmmux_ctx *ctx);
/* Call fini when init succeeded, close descriptors, free everything. */
void host_free(struct vmmux_ctx *ctx);

/*
 * Give the instance an output descriptor; returns the test's end, a
 * non-blocking SOCK_SEQPACKET socket on which every write(2) of the role is
 * one message.
 */
int host_output(struct vmmux_ctx *ctx);
/*
 * Give the instance an output descriptor opened on the file PATH with FLAGS
 * (O_WRONLY and the like; O_CLOEXEC is added, mode 0644); before host_init.
 */
void host_output_file(struct vmmux_ctx *ctx, const char *path, int flags);
/* The whole content of the file PATH, NUL-terminated (free it); *len its size. */
char *host_read_file(const char *path, size_t *len);
/* A fresh empty file's path in a new temporary directory (free it). */
char *host_temp_file(const char *name);
/* Remove what host_temp_file made (the file, its directory) and free PATH. */
void host_temp_remove(char *path);
/* Give the instance an input pipe; returns its write end. */
int host_input(struct vmmux_ctx *ctx);
/* Grant SIZE bytes of zeroed guest memory at BASE; returns the bytes. */
uint8_t *host_guest_memory(struct vmmux_ctx *ctx, uint64_t base, size_t size);

/* Receive one message from FD into BUF (NUL-terminated); -1 when none. */
long host_recv(int fd, char *buf, size_t cap);

/* An event of TYPE from vCPU 0, count 1, no flags. */
struct vmmux_event host_event(uint16_t type, uint64_t key, uint8_t size, uint64_t value);
/* Deliver EV to the role; returns handle's result, *rep as the role left it. */
int host_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep);
/* OUT of SIZE bytes to PORT; returns handle's result. */
int host_out(struct vmmux_ctx *ctx, uint64_t port, uint8_t size, uint64_t value);
/* IN of SIZE bytes from PORT; *value gets the reply masked to SIZE. */
int host_in(struct vmmux_ctx *ctx, uint64_t port, uint8_t size, uint64_t *value);
/* IN of one byte; the value, or -1 when handle failed. */
int host_inb(struct vmmux_ctx *ctx, uint64_t port);

/* Forget the raised events and the log lines. */
void host_clear(struct vmmux_ctx *ctx);
/* Number of log lines containing NEEDLE. */
size_t host_log_count(const struct vmmux_ctx *ctx, const char *needle);

#endif
