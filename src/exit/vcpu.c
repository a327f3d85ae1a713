/*
 * vcpu.c: the vCPU loop (vcpu.h).
 */
#include "exit/vcpu.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>

#include "exit/classify.h"
#include "route/router.h"
#include "stats/stats.h"
#include "util/log.h"
#include "vm/ioregion.h"
#include "vm/vm.h"
#include "vmm/debug.h"
#include "vmm/machine.h"
#include "vmm/parallel.h"
#include "vmm/vmm.h"

#define KICK_SIGNAL SIGUSR1

static pthread_t threads[CPUS_MAX];
static _Atomic bool started[CPUS_MAX];
/* vCPU is single-stepping over the instruction at a hardware breakpoint. */
static bool stepping_over[CPUS_MAX];

void vcpu_reset_debug(unsigned index)
{
	stepping_over[index] = false;
}

static void kick_handler(int sig)
{
	(void)sig;
}

void vcpu_kick_signal_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
}

void vcpu_kick(unsigned index)
{
	struct vm *vm = machine_vm();
	if (index >= vm->ncpus || !atomic_load(&started[index]))
		return;
	__atomic_store_n(&vm->vcpus[index].run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(threads[index], KICK_SIGNAL);
}

void vcpu_flush(unsigned index)
{
	struct vm_vcpu *v = &machine_vm()->vcpus[index];
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (ioctl(v->fd, KVM_RUN, 0) == 0 && v->run->exit_reason != KVM_EXIT_INTR)
		log_debug("vCPU %u: exit %s while completing pending I/O", index,
			  exit_reason_name(v->run->exit_reason));
	/* A kick that came meanwhile is not lost: the caller reads the flags
	 * the kicker set before it, after this store. */
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

static void reinject(struct vm_vcpu *v, const struct vmmux_event *ev)
{
	struct kvm_vcpu_events events;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &events) < 0) {
		log_error("vCPU %u: KVM_GET_VCPU_EVENTS: %s", v->index, strerror(errno));
		return;
	}
	events.exception.injected = 1;
	events.exception.nr = (uint8_t)ev->key;
	events.exception.has_error_code = 0;
	events.exception.error_code = 0;
	events.flags = 0;
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &events) < 0)
		log_error("vCPU %u: cannot reinject exception %llu: %s", v->index,
			  (unsigned long long)ev->key, strerror(errno));
}

/*
 * Resume past an instruction breakpoint. RFLAGS.RF would suppress it once,
 * but KVM's emulator, which runs CPL0 code on PVM hosts, ignores RF; so the
 * vCPU executes that one instruction with the breakpoints off and
 * single-step on, and the breakpoints return on the single-step #DB.
 */
static void step_over_breakpoint(struct vm *vm, unsigned index)
{
	struct errbuf e;
	if (vm_vcpu_guest_debug(vm, index, machine_config(), true, &e) < 0) {
		log_error("%s", e.msg);
		return;
	}
	stepping_over[index] = true;
}

/* The single-step #DB that ends a step over a breakpoint; true when it is
 * vmmux's own and must not be routed. */
static bool step_over_done(struct vm *vm, unsigned index, const struct kvm_run *run)
{
	if (!stepping_over[index] || run->exit_reason != KVM_EXIT_DEBUG ||
	    run->debug.arch.exception != VMMUX_VEC_DB || !(run->debug.arch.dr6 & (1u << 14)))
		return false;
	stepping_over[index] = false;
	struct errbuf e;
	if (vm_vcpu_guest_debug(vm, index, machine_config(), false, &e) < 0)
		log_error("%s", e.msg);
	/* With --single-step on, or a debugger stepping this vCPU, the step
	 * is also the user's event. */
	return !machine_config()->single_step && !debug_vcpu_stepping(index);
}

static void fatal_exit(struct vm *vm, unsigned index, const char *msg)
{
	log_error("%s", msg);
	vm_dump_vcpu(vm, index);
	machine_stop(EXIT_HOST, "vCPU %u stopped on an exit vmmux does not model", index);
}

void *vcpu_thread_main(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	struct vm *vm = machine_vm();
	struct vm_vcpu *v = &vm->vcpus[index];

	machine_thread_enter(SELF_VCPU);
	threads[index] = pthread_self();
	atomic_store(&started[index], true);
	router_thread_register();
	pvmm_thread_slot = index; /* this vCPU's request slot in parallel VMMs */

	while (machine_vcpu_gate(index)) {
		/* Held by a debugger (vmm/debug.h): wait, then through the
		 * gate again. One load when no debugger holds a vCPU. */
		if (debug_hold_pending() && debug_vcpu_hold(index, stepping_over[index]))
			continue;
		/* Online across KVM_RUN, with a quiescent state announced before
		 * it (one load when no writer waits), instead of going offline
		 * and online around it (three memory fences on every exit). A
		 * writer that waits kicks the vCPUs (router_set_kick, vcpu_kick):
		 * they come back here and run offline until it is done. */
		bool offline = router_gp_pending();
		if (offline)
			router_thread_offline();
		else
			router_quiescent();
		int r = ioctl(v->fd, KVM_RUN, 0);
		int err = errno;
		if (offline)
			router_thread_online();
		if (r < 0) {
			if (err == EINTR || err == EAGAIN) {
				/* Cleared with a sequentially consistent store before
				 * the loop reads the flags a kicker sets before its own
				 * store of 1 (machine_vcpu_gate, router_gp_pending):
				 * either this vCPU sees the flag, or the kicker's store
				 * comes after this one and the next KVM_RUN returns at
				 * once. A kick is never lost. */
				__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			char msg[128];
			snprintf(msg, sizeof(msg), "vCPU %u: KVM_RUN failed: %s", index,
				 strerror(err));
			fatal_exit(vm, index, msg);
			break;
		}

		/* A userspace exit: counted, and what KVM's coalesced ring holds
		 * goes out first, so that this exit's event follows the writes
		 * the guest made before it (routes compiled into KVM). */
		stats_count_exit(v->run->exit_reason);
		ioregion_drain();

		if (step_over_done(vm, index, v->run))
			continue;

		struct vmmux_event ev;
		struct errbuf e;
		switch (exit_classify(v->run, vm->run_size, index, &ev, &e)) {
		case CLASSIFY_NONE:
			continue;
		case CLASSIFY_FATAL:
			fatal_exit(vm, index, e.msg);
			goto out;
		case CLASSIFY_EVENT:
			break;
		}

		struct vmmux_reply rep;
		vmm_route_deliver(&ev, &rep, 0);
		unsigned steps = exit_apply(v->run, &ev, &rep);
		if (steps & APPLY_REINJECT)
			reinject(v, &ev);
		else if (steps & APPLY_SKIP_BP)
			step_over_breakpoint(vm, index);
	}
out:
	router_thread_unregister();
	return NULL;
}
