/*
 * maxdev.c: the hvt test guest whose manifest (maxdev.json) declares as
 * many devices as a manifest may hold: 63 (60 block devices storage0-59,
 * 3 net devices service0-2) besides the reserved first entry. argv[1]:
 *   (none)   every block device: sector 0 written with its manifest index
 *            and read back; every net device: a read is OK or AGAIN (not
 *            EINVAL); handle 0 and 64 are EINVAL for both kinds; prints
 *            "maxdev ok BLOCKS NETS"
 */
#include "hvt_rt.h"

static uint8_t buf[4096] __attribute__((aligned(4096)));
static uint8_t buf2[4096] __attribute__((aligned(4096)));

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("FAILED line %d (entry %u): %s\n", __LINE__, i, #cond);             \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	const struct hvt_mft *m = (const struct hvt_mft *)(uintptr_t)hvt_bi->mft;
	unsigned blocks = 0, nets = 0, i = 0;
	CHECK(m->entries == HVT_MFT_MAX_ENTRIES);
	for (i = 1; i < m->entries; i++) {
		const struct hvt_mft_entry *e = &m->e[i];
		CHECK(e->attached);
		if (e->type == HVT_MFT_DEV_BLOCK_BASIC) {
			uint64_t bs = e->u.block_basic.block_size;
			CHECK(bs <= sizeof(buf) && e->u.block_basic.capacity >= bs);
			memset(buf, (int)i, bs);
			CHECK(hvt_block_io(1, i, 0, buf, bs) == HVT_OK);
			memset(buf2, 0, bs);
			CHECK(hvt_block_io(0, i, 0, buf2, bs) == HVT_OK);
			CHECK(memcmp(buf, buf2, bs) == 0);
			blocks++;
		} else {
			CHECK(e->type == HVT_MFT_DEV_NET_BASIC && e->u.net_basic.mtu > 0);
			uint64_t len = sizeof(buf);
			int64_t r = hvt_net_read(i, buf, &len);
			CHECK(r == HVT_OK || r == HVT_AGAIN);
			nets++;
		}
	}
	for (i = 0; i <= 64; i += 64) {
		CHECK(hvt_block_io(0, i, 0, buf, 512) == HVT_EINVAL);
		uint64_t len = sizeof(buf);
		CHECK(hvt_net_read(i, buf, &len) == HVT_EINVAL);
	}
	printf("maxdev ok %u %u\n", blocks, nets);
	return 0;
}
