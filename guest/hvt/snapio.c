/*
 * snapio.c: the snapshot guest of hvt, with one block device "storage" and
 * one network device "service0". argv[1] is the number of steps (default
 * 400). At step i it writes a sector (i modulo the capacity) with bytes
 * made of i and its running checksum, reads back an earlier one and folds it
 * into the checksum, sends one frame (EtherType 0x88b5) and polls the
 * network for 0 ns, then prints "io NNNNN CCCCCCCC". The disk starts zeroed,
 * so the output depends on nothing but the steps: a run snapshotted and
 * restored (with the disk as it was left) prints what an uninterrupted run
 * prints. The monotonic clock is read at every step: a value below the
 * previous one prints "clock went back". Ends with "snapio done".
 */
#include "hvt_rt.h"

static uint8_t sector[4096];
static uint8_t frame[64];

int main(int argc, char **argv)
{
	const struct hvt_mft_entry *be, *ne;
	int b = hvt_device("storage", HVT_MFT_DEV_BLOCK_BASIC, &be);
	int n = hvt_device("service0", HVT_MFT_DEV_NET_BASIC, &ne);
	if (b < 0 || n < 0) {
		printf("devices missing\n");
		return 1;
	}
	uint64_t bs = be->u.block_basic.block_size;
	uint64_t nsec = be->u.block_basic.capacity / bs;
	uint64_t steps = argc > 1 ? hvt_atou(argv[1]) : 400;
	if (bs > sizeof(sector) || nsec == 0) {
		printf("block size %lu unsupported\n", bs);
		return 1;
	}
	uint32_t sum = 0;
	uint64_t last = 0;
	int back = 0;
	for (uint64_t i = 0; i < steps; i++) {
		for (uint64_t k = 0; k < bs; k++)
			sector[k] = (uint8_t)(i * 13 + k + sum);
		if (hvt_block_io(1, (uint64_t)b, (i % nsec) * bs, sector, bs) != HVT_OK) {
			printf("write %lu failed\n", i);
			return 1;
		}
		if (hvt_block_io(0, (uint64_t)b, ((i * 7) % (i + 1) % nsec) * bs, sector, bs) !=
		    HVT_OK) {
			printf("read %lu failed\n", i);
			return 1;
		}
		for (uint64_t k = 0; k < bs; k++)
			sum = sum * 31u + sector[k];
		memset(frame, 0xff, 6);
		memcpy(frame + 6, ne->u.net_basic.mac, 6);
		frame[12] = 0x88;
		frame[13] = 0xb5;
		frame[14] = (uint8_t)i;
		if (hvt_net_write((uint64_t)n, frame, sizeof(frame)) != HVT_OK) {
			printf("net write %lu failed\n", i);
			return 1;
		}
		uint64_t ready = 0;
		hvt_poll(0, &ready);
		uint64_t t = hvt_monotonic_ns();
		if (t < last && !back) {
			printf("clock went back at step %lu\n", i);
			back = 1;
		}
		last = t;
		printf("io %05lu %08x\n", i, sum);
	}
	printf("snapio done\n");
	return 0;
}
