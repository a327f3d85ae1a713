/*
 * block: the "hvt-block" role, one block device of a Solo5 hvt guest
 * (include/vmmux/hvt_abi.h): the block write (4) and block read (5)
 * hypercalls.
 *
 * The role holds one descriptor, its input: the disk image, opened
 * read-write by vmmux (`vmmux hvt --block:NAME=PATH`, passed as "fd:N"),
 * which init maps shared (the image's size is its capacity; writes reach
 * the file through the page cache, as pwrite's do, without fsync, as
 * solo5-hvt), and reaches guest memory only through its granted window.
 * A disk image truncated by someone else under a running guest makes the
 * mapping fault (SIGBUS): the VMM dies (parallel: restarted by vmmux). Written against
 * include/vmmux/vmmux.h only: it runs in the main VMM or as a sandboxed
 * parallel VMM.
 *
 * Several devices (all of one block size) in one VMM: "handles" instead of
 * "handle", the images as its further descriptors (vmmux_fd 0, 1, ... in
 * the order of the list).
 *
 * Arguments:
 *   handle=N        its manifest index (the guest's handle), 1-63
 *   handles=N,M,... the manifest indices of the devices it serves
 *   block_size=N    the sector size, a power of two >= 512 (default 512)
 *   next=yes|no     a request for another handle is handed on (grant
 *                   "forward"; a route with from=THIS VMM takes it) rather
 *                   than refused with EINVAL (default no)
 *
 * A request: the argument struct (40 bytes) at the event's value, then
 * offset and length multiples of the block size, length > 0, the range
 * inside the capacity (overflow checked): otherwise ret = EINVAL. The data
 * buffer must lie inside the window: otherwise the guest passed a bad
 * pointer, the run ends with status 1 (an exit request, grant request:exit)
 * and nothing is read or written.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vmmux/hvt_abi.h>
#include <vmmux/vmmux.h>

#include "../hvt_handles.h"
#include "../role_util.h"

/* One device. */
struct block_dev {
	int fd;
	uint64_t handle;
	uint64_t capacity;
	uint8_t *map; /* the image, mapped shared read-write */
};

struct block {
	uint64_t block_size;
	bool next;
	unsigned ndev;
	struct block_dev dev[HVT_MFT_MAX_ENTRIES - 1];
};

/* Check and map device D's image (descriptor D->fd). */
static int dev_open(struct vmmux_ctx *ctx, struct block *b, struct block_dev *d)
{
	struct stat st;
	if (d->fd < 0 || fstat(d->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "device %llu: its descriptor must be the disk image, a regular file "
			  "opened read-write",
			  (unsigned long long)d->handle);
		return -EINVAL;
	}
	d->capacity = (uint64_t)st.st_size;
	if (d->capacity % b->block_size) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "Backing storage size must be block aligned");
		return -EINVAL;
	}
	if (d->capacity > SIZE_MAX / 2) {
		vmmux_log(ctx, VMMUX_LOG_ERROR, "disk image of %llu bytes is too large to map",
			  (unsigned long long)d->capacity);
		return -EINVAL;
	}
	if (d->capacity > 0) {
		void *m =
		    mmap(NULL, (size_t)d->capacity, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
		if (m == MAP_FAILED) {
			vmmux_log(ctx, VMMUX_LOG_ERROR, "mapping the disk image: %s",
				  strerror(errno));
			return -EINVAL;
		}
		d->map = m;
	}
	return 0;
}

static void block_fini(struct vmmux_ctx *ctx)
{
	struct block *b = vmmux_priv(ctx);
	for (unsigned i = 0; i < b->ndev; i++) {
		if (b->dev[i].map)
			munmap(b->dev[i].map, (size_t)b->dev[i].capacity);
		b->dev[i].map = NULL;
	}
	b->ndev = 0;
}

static int block_init(struct vmmux_ctx *ctx)
{
	struct block *b = vmmux_priv(ctx);
	static const char *const yn[] = {"no", "yes"};
	size_t next = 0;
	if (role_arg_u64(ctx, "block_size", 512, 512, 1u << 30, &b->block_size) < 0 ||
	    role_arg_choice(ctx, "next", yn, 2, 0, &next) < 0)
		return -EINVAL;
	b->next = next == 1;
	if (b->block_size & (b->block_size - 1)) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "Block size must be a multiple of 2 greater than or equal 512 (%llu)",
			  (unsigned long long)b->block_size);
		return -EINVAL;
	}
	uint64_t h[HVT_MFT_MAX_ENTRIES - 1];
	int multi, n = hvt_arg_handles(ctx, h, &multi);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct block_dev *d = &b->dev[b->ndev++];
		d->handle = h[i];
		d->fd = multi ? vmmux_fd(ctx, (unsigned)i) : vmmux_input_fd(ctx);
		if (dev_open(ctx, b, d) < 0) {
			block_fini(ctx);
			return -EINVAL;
		}
	}
	return 0;
}

/* role_guest_fault for this device's calls. */
static void guest_fault(struct vmmux_ctx *ctx, const struct vmmux_event *ev, const char *what,
			uint64_t gpa, uint64_t len)
{
	role_guest_fault(ctx, ev->vcpu, "block", ev->key == HVT_HC_BLOCK_WRITE ? "write" : "read",
			 what, gpa, len);
}

/* Copy between the window and the image's mapping: no system call, no
 * bounce buffer (a parallel VMM's sandbox admits neither pread nor lseek
 * once it serves). */
static int64_t do_io(struct block_dev *d, struct vmmux_ctx *ctx, bool write, uint64_t off,
		     uint64_t gpa, uint64_t len)
{
	int r = write ? vmmux_gm_read(ctx, gpa, d->map + off, (size_t)len)
		      : vmmux_gm_write(ctx, gpa, d->map + off, (size_t)len);
	return r == 0 ? HVT_OK : HVT_EUNSPEC;
}

static int block_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			struct vmmux_reply *rep)
{
	struct block *b = vmmux_priv(ctx);
	rep->action = VMMUX_ACT_DONE;
	if (ev->type != VMMUX_EV_HYPERCALL ||
	    (ev->key != HVT_HC_BLOCK_WRITE && ev->key != HVT_HC_BLOCK_READ))
		return -1;
	struct hvt_hc_block_io a;
	if (vmmux_gm_read(ctx, ev->value, &a, sizeof(a)) < 0) {
		guest_fault(ctx, ev, "argument", ev->value, sizeof(a));
		return 0;
	}
	struct block_dev *d = NULL;
	for (unsigned i = 0; i < b->ndev && d == NULL; i++)
		if (b->dev[i].handle == a.handle)
			d = &b->dev[i];
	if (d == NULL) {
		if (b->next) {
			/* another block VMM's device: its route (from= this one) */
			struct vmmux_event copy = *ev;
			copy.data = NULL;
			vmmux_raise(ctx, &copy);
			return 0;
		}
		a.ret = HVT_EINVAL;
	} else if (!role_gm_range_ok_for(ctx, a.data, a.len, ev->key == HVT_HC_BLOCK_READ)) {
		guest_fault(ctx, ev, "buffer", a.data, a.len);
		return 0;
	} else if (a.len == 0 || a.offset % b->block_size || a.len % b->block_size ||
		   a.offset > d->capacity || a.len > d->capacity - a.offset) {
		a.ret = HVT_EINVAL;
	} else {
		a.ret = do_io(d, ctx, ev->key == HVT_HC_BLOCK_WRITE, a.offset, a.data, a.len);
	}
	if (vmmux_gm_write(ctx, ev->value + offsetof(struct hvt_hc_block_io, ret), &a.ret,
			   sizeof(a.ret)) < 0)
		guest_fault(ctx, ev, "argument", ev->value, sizeof(a));
	return 0;
}

static const char *const block_args[] = {"handle", "handles", "block_size", "next", NULL};
static const char *const block_raises[] = {"request:exit", NULL};

const struct vmmux_role vmmux_role_hvt_block = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "hvt-block",
    .summary = "Solo5 hvt block device: block read/write hypercalls on its disk image (input)",
    .priv_size = sizeof(struct block),
    .init = block_init,
    .fini = block_fini,
    .handle = block_handle,
    .args = block_args,
    .raises = block_raises,
};
