/*
 * net.c: the hvt test guest with one network device, "service0". argv[1]:
 *   info            its MAC and MTU
 *   echo N          answer N frames of EtherType 0x88b5: each goes back to
 *                   its sender with the MACs swapped and the payload kept;
 *                   waits with poll (1 s at a time, at most 30 times idle);
 *                   prints "echo done N"
 *   pollto NS       drain the tap, then poll with the device idle: ret,
 *                   ready set, ms waited
 *   readempty       a read with nothing on the tap is AGAIN
 *   badbuf          a read into a buffer outside guest memory (host ends: 1)
 */
#include "hvt_rt.h"

#define ETHERTYPE_TEST 0x88b5

static uint8_t frame[2048];

int main(int argc, char **argv)
{
	const struct hvt_mft_entry *e;
	int h = hvt_device("service0", HVT_MFT_DEV_NET_BASIC, &e);
	if (h < 0) {
		printf("no net device 'service0' attached\n");
		return 1;
	}
	const uint8_t *mac = e->u.net_basic.mac;
	const char *cmd = argc > 1 ? argv[1] : "info";
	uint64_t a2 = argc > 2 ? hvt_atou(argv[2]) : 0;
	if (strcmp(cmd, "info") == 0) {
		printf("service0: handle %d mac %02x:%02x:%02x:%02x:%02x:%02x mtu %u\n", h, mac[0],
		       mac[1], mac[2], mac[3], mac[4], mac[5], e->u.net_basic.mtu);
		return 0;
	}
	if (strcmp(cmd, "pollto") == 0) {
		/* drain what the host's stack sent before (none expected) */
		for (uint64_t len = sizeof(frame); hvt_net_read((uint64_t)h, frame, &len) == HVT_OK;
		     len = sizeof(frame))
			printf("drained a frame of %lu bytes\n", len);
		uint64_t ready = 99, t0 = hvt_walltime();
		int r = hvt_poll(a2, &ready);
		uint64_t t1 = hvt_walltime();
		printf("poll ret=%d ready=%lu waited_ms=%lu\n", r, ready, (t1 - t0) / 1000000);
		return 0;
	}
	if (strcmp(cmd, "readempty") == 0) {
		uint64_t len = sizeof(frame);
		int64_t r = hvt_net_read((uint64_t)h, frame, &len);
		printf("read ret=%ld\n", r);
		return r == HVT_AGAIN ? 0 : 1;
	}
	if (strcmp(cmd, "badbuf") == 0) {
		uint64_t len = 1514;
		hvt_net_write((uint64_t)h, (void *)(uintptr_t)(hvt_bi->mem_size - 64), len);
		printf("badbuf returned\n");
		return 0;
	}
	if (strcmp(cmd, "echo") == 0) {
		uint64_t done = 0;
		unsigned idle = 0;
		printf("echo ready\n");
		while (done < a2) {
			uint64_t ready = 0;
			if (hvt_poll(1000000000ull, &ready) == 0) {
				if (++idle == 30) {
					printf("echo idle: %lu of %lu\n", done, a2);
					return 3;
				}
				continue;
			}
			idle = 0;
			if (!(ready & (1ull << h)))
				continue;
			for (;;) {
				uint64_t len = sizeof(frame);
				int64_t r = hvt_net_read((uint64_t)h, frame, &len);
				if (r == HVT_AGAIN)
					break;
				if (r != HVT_OK) {
					printf("read failed %ld\n", r);
					return 1;
				}
				if (len < 14 || frame[12] != (ETHERTYPE_TEST >> 8) ||
				    frame[13] != (ETHERTYPE_TEST & 0xff))
					continue;
				memcpy(frame, frame + 6, 6);
				memcpy(frame + 6, mac, 6);
				if (hvt_net_write((uint64_t)h, frame, len) != HVT_OK) {
					printf("write failed\n");
					return 1;
				}
				done++;
			}
		}
		printf("echo done %lu\n", done);
		return 0;
	}
	printf("unknown test '%s'\n", cmd);
	return 2;
}
