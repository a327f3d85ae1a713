/*
 * maxdev.c: the hvt test guest whose manifest (maxdev.json) declares as
 * many devices as a manifest may hold: 63 (60 block devices storage0-59,
 * 3 net devices service0-2) besides the reserved first entry. argv[1]:
 *   (none)   every block device: sector 0 written with its manifest index
 *            and read back; every net device: a read is OK or AGAIN (not
 *            EINVAL); handle 0 and 64 are EINVAL for both kinds; prints
 *            "maxdev ok BLOCKS NETS"
 *   echo H N answer N frames of EtherType 0x88b5 on the net device of
 *            manifest index H, as hvt_net's echo (tests/integration/
 *            test_hvt_peer.py sends them); prints "echo done N"
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

static uint8_t frame[2048];

static int echo(unsigned h, uint64_t n)
{
	const struct hvt_mft *m = (const struct hvt_mft *)(uintptr_t)hvt_bi->mft;
	if (h >= m->entries || m->e[h].type != HVT_MFT_DEV_NET_BASIC) {
		printf("entry %u is not a net device\n", h);
		return 2;
	}
	const uint8_t *mac = m->e[h].u.net_basic.mac;
	uint64_t done = 0;
	unsigned idle = 0;
	while (done < n) {
		uint64_t ready = 0;
		if (hvt_poll(1000000000ull, &ready) == 0) {
			if (++idle == 30) {
				printf("echo idle: %lu of %lu\n", done, n);
				return 3;
			}
			continue;
		}
		idle = 0;
		if (!(ready & (1ull << h)))
			continue;
		for (;;) {
			uint64_t len = sizeof(frame);
			int64_t r = hvt_net_read(h, frame, &len);
			if (r == HVT_AGAIN)
				break;
			if (r != HVT_OK) {
				printf("read failed %ld\n", r);
				return 1;
			}
			if (len < 14 || frame[12] != 0x88 || frame[13] != 0xb5)
				continue;
			memcpy(frame, frame + 6, 6);
			memcpy(frame + 6, mac, 6);
			if (hvt_net_write(h, frame, len) != HVT_OK) {
				printf("write failed\n");
				return 1;
			}
			done++;
		}
	}
	printf("echo done %lu\n", done);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 3 && strcmp(argv[1], "echo") == 0)
		return echo((unsigned)hvt_atou(argv[2]), hvt_atou(argv[3]));
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
