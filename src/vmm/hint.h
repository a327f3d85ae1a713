/*
 * hint.h: one clear hint when a vCPU keeps touching a device the machine
 * does not have.
 *
 * The main VMM calls hint_unrouted for every unrouted port or MMIO access
 * it answers (src/vmm/main_vmm.c). Accesses are counted per key (the port,
 * or the 4 KiB page of an MMIO address); when one key reaches
 * HINT_THRESHOLD accesses (a guest polling in a loop; a driver probing a
 * missing device touches it a few times), one warning names the device and
 * the option that provides it, once per device kind for the run:
 *
 *   the local APIC (0xfee00000) or I/O APIC (0xfec00000), the PIT
 *   (0x40-0x43) or the PICs (0x20-0x21, 0xa0-0xa1): --irqchip (no irqchip:
 *     with it they are KVM's and never exit);
 *   fw_cfg (0x510-0x511): --fw-cfg;
 *   COM1 (0x3f8-0x3ff): the default uart VMM or a route to one;
 *   anything else: a route for that port or range (--route).
 *
 * "vCPU 0 keeps reading the local APIC at 0xfee00030 (1000 accesses); this
 * machine has no irqchip: give --irqchip (drop --no-irqchip or
 * machine.irqchip false)". Thread-safe (counters are atomic); costs one
 * atomic add per unrouted access.
 */
#ifndef VMMUX_VMM_HINT_H
#define VMMUX_VMM_HINT_H

#include <vmmux/vmmux.h>

#define HINT_THRESHOLD 1000u

void hint_unrouted(const struct vmmux_event *ev);

/* Forget every count and hint given (a new run). */
void hint_reset(void);

#endif
