/*
 * blk.c: the hvt test guest with one block device, "storage". argv[1]:
 *   info            capacity and block size
 *   rw              write, read back and compare the first and the last
 *                   sector and a multi-sector request; every request at or
 *                   beyond the capacity, misaligned, empty or for another
 *                   handle is EINVAL; prints "rw ok"
 *   pattern V       fill every sector with byte V, read back, compare
 *   check V         every sector reads back as byte V
 *   badbuf          a read into a buffer outside guest memory (host ends: 1)
 *   lowbuf          a write from the command line where the host wrote it
 *                   (read-only low memory: allowed), read back and compared;
 *                   then a read into the boot information (the host ends: 1)
 *   bench SIZE N    N sequential writes then N reads of SIZE bytes from
 *                   offset 0 (wrapping at the capacity): ns per phase
 */
#include "hvt_rt.h"

static uint8_t buf[64 * 1024] __attribute__((aligned(4096)));
static uint8_t buf2[64 * 1024] __attribute__((aligned(4096)));

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("FAILED line %d: %s\n", __LINE__, #cond);                           \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

static int rw(uint64_t h, uint64_t cap, uint64_t bs)
{
	/* first sector, last sector, then 4 sectors from 1 */
	uint64_t offs[3] = {0, cap - bs, bs};
	uint64_t lens[3] = {bs, bs, 4 * bs};
	for (int t = 0; t < 3; t++) {
		for (uint64_t i = 0; i < lens[t]; i++)
			buf[i] = (uint8_t)(i * 7 + (uint64_t)t + offs[t] / bs);
		CHECK(hvt_block_io(1, h, offs[t], buf, lens[t]) == HVT_OK);
		memset(buf2, 0, lens[t]);
		CHECK(hvt_block_io(0, h, offs[t], buf2, lens[t]) == HVT_OK);
		CHECK(memcmp(buf, buf2, lens[t]) == 0);
	}
	/* at and beyond the capacity, misaligned, empty, other handles */
	for (int w = 0; w < 2; w++) {
		CHECK(hvt_block_io(w, h, cap, buf, bs) == HVT_EINVAL);
		CHECK(hvt_block_io(w, h, cap - bs, buf, 2 * bs) == HVT_EINVAL);
		CHECK(hvt_block_io(w, h, UINT64_MAX - bs + 1, buf, bs) == HVT_EINVAL);
		CHECK(hvt_block_io(w, h, 1, buf, bs) == HVT_EINVAL);
		CHECK(hvt_block_io(w, h, 0, buf, bs + 1) == HVT_EINVAL);
		CHECK(hvt_block_io(w, h, 0, buf, 0) == HVT_EINVAL);
		CHECK(hvt_block_io(w, h + 1, 0, buf, bs) == HVT_EINVAL);
		CHECK(hvt_block_io(w, 0, 0, buf, bs) == HVT_EINVAL);
	}
	/* the last sector is intact after the refused requests */
	CHECK(hvt_block_io(0, h, cap - bs, buf2, bs) == HVT_OK);
	for (uint64_t i = 0; i < bs; i++)
		CHECK(buf2[i] == (uint8_t)(i * 7 + 1 + (cap - bs) / bs));
	printf("rw ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	const struct hvt_mft_entry *e;
	int h = hvt_device("storage", HVT_MFT_DEV_BLOCK_BASIC, &e);
	if (h < 0) {
		printf("no block device 'storage' attached\n");
		return 1;
	}
	uint64_t cap = e->u.block_basic.capacity, bs = e->u.block_basic.block_size;
	const char *cmd = argc > 1 ? argv[1] : "info";
	uint64_t a2 = argc > 2 ? hvt_atou(argv[2]) : 0, a3 = argc > 3 ? hvt_atou(argv[3]) : 0;
	if (strcmp(cmd, "info") == 0) {
		printf("storage: handle %d capacity %lu block_size %lu\n", h, cap, bs);
		return 0;
	}
	if (strcmp(cmd, "rw") == 0)
		return rw((uint64_t)h, cap, bs);
	if (strcmp(cmd, "pattern") == 0 || strcmp(cmd, "check") == 0) {
		int write = cmd[0] == 'p';
		for (uint64_t off = 0; off < cap; off += bs) {
			memset(buf, (int)a2, bs);
			if (write)
				CHECK(hvt_block_io(1, (uint64_t)h, off, buf, bs) == HVT_OK);
			memset(buf2, 0, bs);
			CHECK(hvt_block_io(0, (uint64_t)h, off, buf2, bs) == HVT_OK);
			CHECK(memcmp(buf, buf2, bs) == 0);
		}
		printf("%s ok\n", cmd);
		return 0;
	}
	if (strcmp(cmd, "badbuf") == 0) {
		int64_t r = hvt_block_io(0, (uint64_t)h, 0,
					 (void *)(uintptr_t)(hvt_bi->mem_size - 256), bs);
		printf("badbuf returned %ld\n", r);
		return 0;
	}
	if (strcmp(cmd, "lowbuf") == 0) {
		const uint8_t *cl = (const uint8_t *)(uintptr_t)hvt_bi->cmdline;
		CHECK(bs <= HVT_CMDLINE_SIZE);
		CHECK(hvt_block_io(1, (uint64_t)h, 0, (void *)(uintptr_t)cl, bs) == HVT_OK);
		memset(buf2, 0, bs);
		CHECK(hvt_block_io(0, (uint64_t)h, 0, buf2, bs) == HVT_OK);
		CHECK(memcmp(buf2, cl, bs) == 0);
		printf("lowbuf write ok: %s\n", (const char *)buf2);
		int64_t r = hvt_block_io(0, (uint64_t)h, 0, (void *)(uintptr_t)hvt_bi, bs);
		printf("read into the boot information returned %ld\n", r);
		return 0;
	}
	if (strcmp(cmd, "bench") == 0) {
		uint64_t size = a2, n = a3;
		CHECK(size >= bs && size <= sizeof(buf) && size % bs == 0 && size <= cap);
		for (int w = 1; w >= 0; w--) {
			uint64_t off = 0, t0 = hvt_walltime();
			for (uint64_t i = 0; i < n; i++) {
				if (off + size > cap)
					off = 0;
				CHECK(hvt_block_io(w, (uint64_t)h, off, buf, size) == HVT_OK);
				off += size;
			}
			uint64_t t1 = hvt_walltime();
			printf("bench %s size=%lu n=%lu ns=%lu\n", w ? "write" : "read", size, n,
			       t1 - t0);
		}
		return 0;
	}
	printf("unknown test '%s'\n", cmd);
	return 2;
}
