/*
 * ioregion.h: routes compiled into KVM, where KVM can route without an exit.
 *
 * The routing table stays the single source of truth; this module keeps
 * what KVM holds of it in line with the published table:
 *   - a "coalesced" io or mmio route is a zone of KVM's coalesced ring
 *     (KVM_REGISTER_COALESCED_MMIO; pio = 1 for ports, KVM_CAP_COALESCED_PIO):
 *     KVM appends each write inside the zone (address, size, value) to one
 *     ring shared by every vCPU and resumes the guest without an exit. vmmux
 *     drains the ring in order (ioregion_drain) at every userspace exit of
 *     any vCPU, before that exit's event, and from its compiled-routes
 *     thread every 1 ms while writes arrive (up to 16 ms when idle), and
 *     delivers each entry as a posted write (VMMUX_EVF_COALESCED) to the VMM
 *     that the current table names for its key. A read on the route exits,
 *     so it finds every earlier write delivered. When the ring is full KVM
 *     exits with the write itself, which then takes the ordinary path after
 *     the ring is drained: no write is lost or reordered.
 *   - a "doorbell" route is a KVM_IOEVENTFD registration (address, size,
 *     pio, optionally datamatch) on an eventfd: KVM signals the eventfd and
 *     resumes the guest. For a parallel VMM the eventfd is handed to its
 *     process (src/transport/handshake.h, struct hs_doorbell), which waits on
 *     it itself (vhost-user style: vmmux never sees those rings); for an
 *     in-process VMM (the main VMM included) the compiled-routes thread
 *     waits on it. Each count of N becomes N write events (VMMUX_EVF_DOORBELL).
 *   - MSR routes are the KVM_X86_SET_MSR_FILTER bitmaps (vm.h) and granted
 *     IRQ lines KVM_IRQFD (src/vmm/parallel.c); they are not kept here.
 *
 * Changing the table (ioregion_sync, after router_publish): zones and
 * doorbells that the new table no longer has are removed from KVM first,
 * then the new ones registered, then the ring drained; a registration the
 * new table keeps unchanged stays. The steps and the guarantee (an event
 * reaches the VMM of the old table or of the new one, never a third, and is
 * never lost) are in docs/routing.md.
 *
 * Threads: ioregion_init and ioregion_fini run on the main thread,
 * ioregion_sync, ioregion_check and the quiesce calls on the control
 * thread, ioregion_vmm_started on a set-up worker or the control thread;
 * no socket send happens under the ioregion lock; ioregion_drain on any
 * registered router reader that delivers (vCPU threads, the main thread, the
 * compiled-routes thread, which uses request slot ncpus + 1 of parallel
 * VMMs: pvmm_global_init reserves it).
 */
#ifndef VMMUX_VM_IOREGION_H
#define VMMUX_VM_IOREGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/table.h"
#include "transport/handshake.h"
#include "vmm/parallel.h"
#include "util/err.h"

struct vm;
struct vmm;

#define IOREGION_ZONES_MAX     128 /* coalesced routes per table */
#define IOREGION_DOORBELLS_MAX 256 /* doorbell routes per table */

/*
 * Check T's compiled routes against this machine: the host has the KVM
 * capabilities they need (KVM_CAP_COALESCED_MMIO, KVM_CAP_COALESCED_PIO for
 * ports, KVM_CAP_IOEVENTFD), no mmio one lies in guest RAM (accesses there
 * never leave the guest), none covers a device of the in-kernel irqchip when
 * it is on (PIC 0x20-0x21 and 0xa0-0xa1, ELCR 0x4d0-0x4d1, PIT 0x40-0x43,
 * speaker 0x61, IOAPIC 0xfec00000-0xfec00fff, LAPIC 0xfee00000-0xfee00fff),
 * and the counts fit (IOREGION_ZONES_MAX, IOREGION_DOORBELLS_MAX,
 * HS_DOORBELLS_MAX per parallel VMM). 0, or -1 with a message naming the
 * route and the reason.
 */
int ioregion_check(const struct route_table *t, struct errbuf *e);

/*
 * Compile the current table into KVM (after the VMMs started) and start the
 * compiled-routes thread. -1 with a message (ioregion_check's, or the KVM
 * step that failed and errno).
 */
int ioregion_init(struct errbuf *e);

/* Remove every registration, stop the thread (its last drain delivers what
 * the ring still holds), close the eventfds. */
void ioregion_fini(void);

/* The table T was just published: bring KVM's registrations in line with
 * it, in the order above. A registration KVM refuses is logged; the
 * route's writes then take the ordinary path (exits), still routed by T. */
void ioregion_sync(const struct route_table *t);

/* Deliver every entry of KVM's coalesced ring, in order; returns how many.
 * Costs two loads when the ring is empty (or no zone was ever registered). */
unsigned ioregion_drain(void);

/*
 * A swap of V (the control thread, V's events held back): its doorbells
 * leave KVM, so that its writes exit and wait for the new instance, and
 * what its process has not read of them is taken, to go to the new
 * instance when the next ioregion_sync retires them. ioregion_vmm_unquiesce
 * undoes it (a swap that failed): the rings taken go back to V.
 */
struct vmm;
void ioregion_vmm_quiesce(struct vmm *v);
void ioregion_vmm_unquiesce(struct vmm *v);

/* V's process (re)started: give it the eventfds of its doorbells again. */
void ioregion_vmm_started(struct vmm *v);

/* Nothing of the compiled routes' thread on its way (machine_pause, before
 * a snapshot or a live update, whose execve ends the thread): no retired
 * doorbell left to deliver, no count waiting on a doorbell the thread
 * reads (in-process VMMs', given-up or stopped VMMs'), no ring it read and
 * has not delivered. A look, not a wait: false wakes the thread. */
bool ioregion_quiet(void);

/* Whether an eventfd of a doorbell given to V's process counts rings that
 * the process has not read (poll, no wait; the heartbeat of
 * tp_main_progress_stalled). False when the doorbell list is being changed
 * by another thread (it is not waited for). */
bool ioregion_doorbells_waiting(struct vmm *v);

/* stats_route_extra_fn: the doorbell rings parallel VMMs reported on the
 * route with canonical text SPEC (NULL: on every route). */
uint64_t ioregion_route_reported(const char *spec);

/* pvmm_send and pvmm_doorbell_rings: src/vmm/parallel.h. */

#endif
