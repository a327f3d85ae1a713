/*
 * role_util.h: small helpers shared by the built-in roles.
 *
 * Everything here is written against include/vmmux/vmmux.h and the C library
 * only, like the roles themselves: the same code runs inside the main VMM or
 * in a sandboxed parallel VMM process. All functions are static inline so
 * that every role file stays self-contained when it is compiled alone.
 */
#ifndef VMMUX_VMMS_ROLE_UTIL_H
#define VMMUX_VMMS_ROLE_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vmmux/vmmux.h>

/*
 * Parse S as an unsigned number: decimal ("123") or hexadecimal with a 0x or
 * 0X prefix ("0x7b"). The whole string must be the number: no sign, no
 * spaces, no suffix, not empty. Returns 0 and stores the value in *out, or -1
 * when S is not such a number or exceeds MAX (*out untouched).
 */
static inline int role_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;

	if (!s || !*s)
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!*s)
			return -1;
	}
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return -1;
		if (v > (UINT64_MAX - d) / base)
			return -1;
		v = v * base + d;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * Read numeric argument KEY: DEF when it is absent, else its value, which
 * must be a number as role_parse_u64 takes it, between MIN and MAX. On a bad
 * value logs an error naming the argument, its value and the accepted range,
 * and returns -EINVAL; returns 0 otherwise.
 */
static inline int role_arg_u64(struct vmmux_ctx *ctx, const char *key, uint64_t def, uint64_t min,
			       uint64_t max, uint64_t *out)
{
	const char *s = vmmux_arg(ctx, key);
	uint64_t v;

	if (!s) {
		*out = def;
		return 0;
	}
	if (role_parse_u64(s, max, &v) < 0 || v < min) {
		vmmux_log(
		    ctx, VMMUX_LOG_ERROR,
		    "arg \"%s\": \"%s\" is not a number from %llu to %llu (decimal or 0x hex)", key,
		    s, (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/*
 * Read argument KEY, which must be one of the NCHOICES strings in CHOICES;
 * *out gets its index, or DEF when the argument is absent. On any other
 * value logs an error naming the argument and the accepted words, and
 * returns -EINVAL.
 */
static inline int role_arg_choice(struct vmmux_ctx *ctx, const char *key,
				  const char *const *choices, size_t nchoices, size_t def,
				  size_t *out)
{
	const char *s = vmmux_arg(ctx, key);
	char list[128];
	size_t used = 0;

	if (!s) {
		*out = def;
		return 0;
	}
	for (size_t i = 0; i < nchoices; i++) {
		if (strcmp(s, choices[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	list[0] = '\0';
	for (size_t i = 0; i < nchoices && used < sizeof(list); i++) {
		size_t n = strlen(choices[i]);

		if (used + n + 3 >= sizeof(list))
			break;
		if (i > 0) {
			memcpy(list + used, ", ", 2);
			used += 2;
		}
		memcpy(list + used, choices[i], n);
		used += n;
		list[used] = '\0';
	}
	vmmux_log(ctx, VMMUX_LOG_ERROR, "arg \"%s\": \"%s\" is not one of: %s", key, s, list);
	return -EINVAL;
}

/*
 * Write LEN bytes of BUF to FD: with OFF NULL by write(2) at the file's
 * offset, else by pwrite(2) at *OFF, which advances with the bytes written
 * (and stays where it was when the call fails). One system call in the
 * normal case; a call interrupted by a signal is retried, and a short write
 * continues with the rest. Returns 0, or -1 with errno set (EAGAIN on a
 * full non-blocking descriptor) when the bytes could not all be written.
 */
static inline int role_write_loop(int fd, const void *buf, size_t len, uint64_t *off)
{
	const uint8_t *p = buf;
	uint64_t at = off != NULL ? *off : 0;

	while (len > 0) {
		ssize_t n = off != NULL ? pwrite(fd, p, len, (off_t)at) : write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		at += (uint64_t)n;
	}
	if (off != NULL)
		*off = at;
	return 0;
}

/* Write LEN bytes of BUF to FD at its file offset (role_write_loop). */
static inline int role_write_all(int fd, const void *buf, size_t len)
{
	return role_write_loop(fd, buf, len, NULL);
}

/*
 * A role's output descriptor, written exactly once across crashes where the
 * output is a regular file (docs/parallel-vmm.md, "Exactly-once delivery").
 *
 * A parallel VMM that dies after its handler wrote and before the library
 * committed the event's record is given the event again; its successor
 * restores the state committed before the event. A role that writes at the
 * file's shared offset would append the bytes a second time. A positioned
 * output instead writes with pwrite(2) at an offset the role keeps in its
 * saved state: the offset advances with each write and is committed with
 * the state, so the successor re-applying the event writes the same bytes at
 * the same place (idempotent), and later events continue after them.
 *
 * Positioned: a regular file whose open file description lacks O_APPEND
 * (Linux's pwrite ignores the offset under O_APPEND). vmmux gives a VMM
 * whose output is "stdout" or "stderr", when that is a regular file, a
 * description of its own opened with O_APPEND (src/vmm/vmm.c), so that
 * several VMMs sharing it append instead of overwriting each other: such an
 * output, a pipe, a terminal or a socket is written with write(2) at the
 * shared offset, and a line written just before a crash may appear twice.
 *
 * The offset starts at the file's end when the instance is initialised.
 * role_out_restore takes the saved offset only when the saved state names
 * the same file (device and inode) and the offset is within it: a restarted
 * successor (same descriptor) rewrites from the committed offset; a swap
 * that gives the new instance another file (or the same path truncated
 * again by vmmux's open) keeps that file's end, never the old file's offset.
 * Bytes a dead process wrote for an event that is not given again (the
 * fallback took it) are overwritten in place by the successor's next
 * writes; a stale tail longer than those can remain at the file's end.
 */
struct role_out {
	int fd;		   /* -1: no output */
	bool positioned;   /* pwrite at off; else write(2) */
	uint64_t off;	   /* offset of the next byte (positioned) */
	uint64_t dev, ino; /* the file (positioned) */
	uint64_t end;	   /* the file's size at init, or as far as written since */
};

/* Saved with the role's state (little-endian, the host's order). */
struct role_out_state {
	uint64_t off;
	uint64_t dev, ino;
};

/*
 * Look at the output descriptor (call from init: it makes fstat and fcntl
 * calls, which the sandbox allows only before the lock-down).
 */
static inline void role_out_init(struct vmmux_ctx *ctx, struct role_out *o)
{
	struct stat st;
	int fl;

	memset(o, 0, sizeof(*o));
	o->fd = vmmux_output_fd(ctx);
	if (o->fd < 0 || fstat(o->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	fl = fcntl(o->fd, F_GETFL);
	if (fl < 0 || (fl & O_APPEND))
		return;
	o->positioned = true;
	o->dev = (uint64_t)st.st_dev;
	o->ino = (uint64_t)st.st_ino;
	o->end = (uint64_t)st.st_size;
	o->off = o->end;
}

/*
 * Write LEN bytes of BUF to the output; 0 (also without an output), or -1
 * with errno set (the offset not advanced). A descriptor other than the one
 * role_out_init examined is written with write(2).
 */
static inline int role_out_write(struct vmmux_ctx *ctx, struct role_out *o, const void *buf,
				 size_t len)
{
	int fd = vmmux_output_fd(ctx);

	if (fd < 0)
		return 0;
	if (!o->positioned || fd != o->fd)
		return role_write_all(fd, buf, len);
	if (role_write_loop(fd, buf, len, &o->off) < 0)
		return -1;
	if (o->off > o->end)
		o->end = o->off;
	return 0;
}

/* What to save with the state. */
static inline void role_out_save(const struct role_out *o, struct role_out_state *s)
{
	memset(s, 0, sizeof(*s));
	if (!o->positioned)
		return;
	s->off = o->off;
	s->dev = o->dev;
	s->ino = o->ino;
}

/*
 * Take a saved offset (untrusted: from the region): only for the same file
 * and within its size (at init, or as far as this instance wrote); else the
 * offset stays where it is (the file's end for a new instance).
 */
static inline void role_out_restore(struct role_out *o, const struct role_out_state *s)
{
	if (o->positioned && s->dev == o->dev && s->ino == o->ino && s->off <= o->end)
		o->off = s->off;
}

/* Mask of the low SIZE bytes (SIZE 1 to 8). */
static inline uint64_t role_size_mask(unsigned size)
{
	return size >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * size)) - 1;
}

/* True for a plain (non-string) port access of size 1, 2 or 4. */
static inline bool role_is_plain_io(const struct vmmux_event *ev)
{
	return ev->type == VMMUX_EV_IO && !(ev->flags & VMMUX_EVF_STRING) && ev->count == 1 &&
	       (ev->size == 1 || ev->size == 2 || ev->size == 4);
}

/*
 * Raise an event of TYPE with KEY and VALUE on behalf of the vCPU VCPU (or
 * VMMUX_NO_VCPU). Returns vmmux_raise's result; a refusal is logged.
 */
static inline int role_raise(struct vmmux_ctx *ctx, uint16_t type, uint16_t flags, uint64_t key,
			     uint64_t value, uint64_t aux, uint16_t vcpu)
{
	struct vmmux_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.flags = flags;
	ev.count = 1;
	ev.vcpu = vcpu;
	ev.key = key;
	ev.value = value;
	ev.aux = aux;
	if (vmmux_raise(ctx, &ev) < 0) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "could not raise event type %u key %llu value 0x%llx: host refused it",
			  (unsigned)type, (unsigned long long)key, (unsigned long long)value);
		return -1;
	}
	return 0;
}

/*
 * Whether every byte of guest memory [GPA, GPA+LEN) is inside the windows
 * granted to the role (overflow included; LEN 0 is always inside), and
 * with WRITE inside writable ones (not a read-only window). Checked page by
 * page, so that a gap between windows is found before any I/O.
 */
static inline bool role_gm_range_ok_for(struct vmmux_ctx *ctx, uint64_t gpa, uint64_t len,
					bool write)
{
	uint8_t x = 0;
	if (len == 0)
		return true;
	if (len - 1 > UINT64_MAX - gpa)
		return false;
	/* a write of 0 bytes finds the window and its mode, and writes nothing */
	for (uint64_t off = 0; off < len; off += 4096 - ((gpa + off) & 4095))
		if ((write ? vmmux_gm_write(ctx, gpa + off, &x, 0)
			   : vmmux_gm_read(ctx, gpa + off, &x, 1)) < 0)
			return false;
	return (write ? vmmux_gm_write(ctx, gpa + len - 1, &x, 0)
		      : vmmux_gm_read(ctx, gpa + len - 1, &x, 1)) == 0;
}

static inline bool role_gm_range_ok(struct vmmux_ctx *ctx, uint64_t gpa, uint64_t len)
{
	return role_gm_range_ok_for(ctx, gpa, len, false);
}

/*
 * The guest passed a pointer outside its memory to device DEV's operation
 * OP: log "DEV OP: invalid guest access: WHAT of LEN bytes at GPA is outside
 * guest memory" and ask the host to end the run with status 1 (a request
 * event, VMMUX_REQ_EXIT), as a Solo5 tender ends it.
 */
static inline void role_guest_fault(struct vmmux_ctx *ctx, uint16_t vcpu, const char *dev,
				    const char *op, const char *what, uint64_t gpa, uint64_t len)
{
	vmmux_log(ctx, VMMUX_LOG_ERROR,
		  "%s %s: invalid guest access: %s of %llu bytes at 0x%llx is outside guest "
		  "memory",
		  dev, op, what, (unsigned long long)len, (unsigned long long)gpa);
	role_raise(ctx, VMMUX_EV_REQUEST, 0, VMMUX_REQ_EXIT, 1, 0, vcpu);
}

/* Header of every role's saved state (little-endian, the host's order). */
struct role_state_hdr {
	uint32_t magic;	  /* role-specific */
	uint16_t version; /* layout version of what follows */
	uint16_t size;	  /* bytes of the fixed part, header included */
};

#endif
