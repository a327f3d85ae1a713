/*
 * event.h: describing events for people (log lines, error messages).
 * The event value itself is struct vmmux_event (include/vmmux/vmmux.h).
 */
#ifndef VMMUX_EVENT_EVENT_H
#define VMMUX_EVENT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmmux/vmmux.h>

/* Mnemonic of an exception vector ("#UD"), or "#?" when it has none. */
const char *exception_mnemonic(unsigned vector);

/*
 * One line describing EV: "vCPU 0: io write port 0x80 size 1 value 0x12",
 * "vCPU 0: exception #UD (vector 6) at rip 0x100234, error code 0 (reported
 * by the guest)", "VMM 'mon' (for vCPU 0): platform event reset value 0x0",
 * "vmmux: fault of VMM 'uart': crashed (reason 1)". A read (io, mmio, rdmsr)
 * has no value until it is answered: its line gives none. A VMM is named by
 * the namer (event_set_vmm_namer), or "VMM #ID" without one. Always
 * NUL-terminated; returns buf.
 */
char *event_describe(const struct vmmux_event *ev, char *buf, size_t len);

/*
 * The name of VMM ID for event_describe, or NULL when there is none. Set
 * once at start-up (vmmux's command line sets the VMM registry's); may be
 * called from any thread.
 */
typedef const char *(*event_vmm_name_fn)(uint16_t id);
void event_set_vmm_namer(event_vmm_name_fn fn);

/*
 * Whether TYPE is a device event: one only vCPUs produce (io, mmio, msr,
 * hlt, hypercall, shutdown). A VMM raises one only to hand a copy on.
 */
static inline bool event_is_device(unsigned type)
{
	return type == VMMUX_EV_IO || type == VMMUX_EV_MMIO || type == VMMUX_EV_MSR ||
	       type == VMMUX_EV_HLT || type == VMMUX_EV_HYPERCALL || type == VMMUX_EV_SHUTDOWN;
}

#endif
