/*
 * vcpu.h: the vCPU loop, one thread per vCPU.
 *
 * Each pass: gate (reset, halt, end of run) -> KVM_RUN (offline for the
 * router: a vCPU inside KVM is quiescent) -> classify the exit into an event
 * -> route and deliver it (vmm_route_deliver) -> apply the reply -> again.
 */
#ifndef VMMUX_EXIT_VCPU_H
#define VMMUX_EXIT_VCPU_H

#include <stdint.h>

/* Thread body; ARG is the vCPU index cast to a pointer. */
void *vcpu_thread_main(void *arg);

/* Make vCPU INDEX leave KVM_RUN soon (immediate_exit and a signal). */
void vcpu_kick(unsigned index);

/* Install the no-op handler of the kick signal (once, before any thread). */
void vcpu_kick_signal_init(void);

/* Complete an I/O that KVM left pending (KVM_RUN with immediate_exit), so
 * that the vCPU's state is consistent before it is overwritten. */
void vcpu_flush(unsigned index);

/* Forget a step over a breakpoint (the VM is being reset). */
void vcpu_reset_debug(unsigned index);

#endif
