/*
 * fault_report.h: the fault-report port, shared by the "fault-report" role
 * and the guest runtime (freestanding: <stdint.h> only).
 *
 * When the guest meets an exception it cannot handle, its IDT stub fills a
 * struct vmmux_fault_report in guest memory below 4 GiB and executes a 32-bit
 * OUT to VMMUX_FAULT_REPORT_PORT with EAX = the structure's guest-physical
 * address. The role reads the structure and raises VMMUX_EV_EXCEPTION
 * (key = vector, value = rip, aux = error_code, flags
 * VMMUX_EVF_GUEST_REPORTED) on behalf of the reporting vCPU; the routing
 * table decides who handles it.
 *
 * All fields are little-endian; the structure is 32 bytes with no padding.
 */
#ifndef VMMUX_VMMS_FAULT_REPORT_H
#define VMMUX_VMMS_FAULT_REPORT_H

#include <stdint.h>

/* Default base port; the device decodes 4 ports from its base. */
#define VMMUX_FAULT_REPORT_PORT	 0x4f0
#define VMMUX_FAULT_REPORT_PORTS 4

struct vmmux_fault_report {
	uint32_t vector;     /* exception vector, 0-255 */
	uint32_t reserved;   /* 0 */
	uint64_t error_code; /* the CPU's error code, 0 for vectors without one */
	uint64_t rip;	     /* RIP of the faulting instruction */
	uint64_t cr2;	     /* CR2 (faulting address) for #PF, else 0 */
};

_Static_assert(sizeof(struct vmmux_fault_report) == 32, "fault report is 32 bytes");

#endif
