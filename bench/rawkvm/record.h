/*
 * record.h: the exits rawkvm --record writes and replay_bench replays: one
 * fixed-size record per port-I/O or MMIO exit of bench_io's device (port
 * 0xe0, MMIO 0xff000000), with what KVM had put in kvm_run.
 */
#ifndef VMMUX_BENCH_RECORD_H
#define VMMUX_BENCH_RECORD_H

#include <stdint.h>

#define REC_MAGIC 0x31584552u /* "REX1" */

struct rec_exit {
	uint32_t magic;
	uint32_t exit_reason; /* KVM_EXIT_IO or KVM_EXIT_MMIO */
	/* KVM_EXIT_IO */
	uint8_t io_direction, io_size;
	uint16_t io_port;
	uint32_t io_count;
	/* KVM_EXIT_MMIO */
	uint64_t mmio_addr;
	uint32_t mmio_len;
	uint8_t mmio_is_write;
	uint8_t pad[3];
	uint8_t data[8]; /* OUT bytes, MMIO write data */
};

#endif
