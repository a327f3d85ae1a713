/*
 * hvt_core.c: the main VMM's part of an hvt guest (hvt.h).
 *
 * It runs inside the vmmux process (it touches the machine: the vCPU's
 * registers, memory slots, the end of the run), installed for the run by
 * hvt_core_install. Its boot hook (machine.h) lays down the hvt boot state
 * over the image the machine loaded, at boot and at every reset; its main
 * VMM extension (vmm/main_vmm.h) serves, for the events routed to main,
 * the hypercalls that belong to the machine and ends the run, as solo5-hvt
 * does, on every exit an hvt guest must not make:
 *   hypercall 1 walltime   CLOCK_REALTIME
 *   hypercall 3 poll       waits on the readiness eventfds of the net VMMs
 *   hypercall 8 halt       ends the run with the guest's status
 *   other hypercalls       "invalid hypercall", status 1
 *   io                     a port access that is not a hypercall, status 1
 *   mmio                   a write to read-only code (translation fault) or
 *                          an access outside RAM, status 1
 *   hlt                    the guest stopped its CPU: status 0
 *   shutdown, exception    the guest crashed: status 1
 */
#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "hvt/hvt.h"
#include "route/router.h"
#include "util/log.h"
#include "vm/vm.h"
#include "vmm/machine.h"
#include "vmm/main_vmm.h"

struct hvt_host hvt_host;

void hvt_fault(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!atomic_exchange(&hvt_host.faulted, true))
		fprintf(stderr, "vmmux hvt: %s\n", msg);
	machine_stop(1, "hvt: %s", msg);
}

/* The argument struct of a hypercall: [gpa, gpa+size) inside RAM. */
static void *arg_ptr(const struct vmmux_event *ev, size_t size, const char *call)
{
	void *p = gm_ptr(&machine_vm()->mem, ev->value, size);
	if (p == NULL)
		hvt_fault("%s: invalid guest access: argument at 0x%llx (%zu bytes) is outside "
			  "guest memory",
			  call, (unsigned long long)ev->value, size);
	return p;
}

static int core_boot(struct vm *vm, bool reset, struct errbuf *e)
{
	struct hvt_host *h = &hvt_host;
	if (!h->active)
		return err_set(e, "no hvt guest was set up");
	if (vm->ncpus != 1)
		return err_set(e, "an hvt guest has exactly one vCPU (%u given)", vm->ncpus);
	if (vm->mem.size != h->mem_size)
		return err_set(e, "guest memory is %llu bytes, the hvt set-up expected %llu",
			       (unsigned long long)vm->mem.size, (unsigned long long)h->mem_size);
	int khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0)
		return err_set(e, "KVM_GET_TSC_KHZ: %s", strerror(errno));
	if (hvt_boot_write(&vm->mem, &h->image, h->mft, h->mft_size, h->cmdline,
			   (uint64_t)khz * 1000, e) < 0 ||
	    hvt_boot_vcpu(vm->vcpus[0].fd, h->image.entry, vm->mem.size, e) < 0)
		return -1;
	/* The read-only slots stay across resets (the loader writes through
	 * vmmux's own mapping, which stays writable). */
	for (unsigned i = 0; !reset && i < h->image.nro; i++) {
		const struct hvt_range *r = &h->image.ro[i];
		if (vm_set_readonly(vm, r->lo, r->hi - r->lo, e) < 0)
			return err_prefix(e, "read-only code");
	}
	return 0;
}

static void do_walltime(const struct vmmux_event *ev)
{
	struct hvt_hc_walltime *a = arg_ptr(ev, sizeof(*a), "walltime");
	if (a == NULL)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	a->nsecs = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void do_poll(const struct vmmux_event *ev)
{
	struct hvt_hc_poll *a = arg_ptr(ev, sizeof(*a), "poll");
	if (a == NULL)
		return;
	struct hvt_host *h = &hvt_host;
	uint64_t timeout = a->timeout_nsecs;
	struct pollfd pfd[HVT_DEVS_MAX];
	for (unsigned i = 0; i < h->nnet; i++)
		pfd[i] = (struct pollfd){.fd = h->net_ready_fd[i], .events = POLLIN};
	struct timespec start, ts;
	clock_gettime(CLOCK_MONOTONIC, &start);
	int r;
	/* Offline for the router while it waits (nothing here reads a route):
	 * a long poll never holds back a table's reclamation. A kick (a reset,
	 * the run ending) interrupts it and it returns at once, with nothing
	 * ready, so that the vCPU reaches its gate. */
	bool was_online = router_wait_begin();
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t spent = (uint64_t)(ts.tv_sec - start.tv_sec) * 1000000000ull +
				 (uint64_t)ts.tv_nsec - (uint64_t)start.tv_nsec;
		uint64_t left = spent >= timeout ? 0 : timeout - spent;
		if (left > 3600ull * 1000000000ull)
			left = 3600ull * 1000000000ull;
		struct timespec to = {.tv_sec = (time_t)(left / 1000000000ull),
				      .tv_nsec = (long)(left % 1000000000ull)};
		r = ppoll(pfd, h->nnet, &to, NULL);
		if (r >= 0 || errno != EINTR || machine_stopping() || machine_reset_pending() ||
		    machine_pause_pending()) {
			if (r < 0)
				r = 0;
			break;
		}
	}
	router_wait_end(was_online);
	uint64_t set = 0;
	int n = 0;
	for (unsigned i = 0; r > 0 && i < h->nnet; i++)
		if (pfd[i].revents & POLLIN) {
			set |= 1ull << h->net_index[i];
			n++;
		}
	a->ready_set = set;
	a->ret = n;
}

static void do_halt(const struct vmmux_event *ev)
{
	struct hvt_hc_halt *a = arg_ptr(ev, sizeof(*a), "halt");
	if (a == NULL)
		return;
	int status = (int)(a->exit_status & 0xff);
	if (status == 255) /* an abort (solo5_abort, or a trap with its frame) */
		hvt_dumpcore(ev->vcpu, a->cookie, "abort");
	atomic_store(&hvt_host.status, status);
	atomic_store(&hvt_host.halted, true);
	machine_stop(status, "hvt guest halted with status %d", status);
}

/* The main VMM's extension: the events of the machine; the others (platform,
 * requests, IRQs, faults of VMMs) go to the main VMM's own handling. */
static bool core_handle(struct vmmux_event *ev, struct vmmux_reply *rep)
{
	rep->action = VMMUX_ACT_DONE;
	rep->value = 0;
	switch (ev->type) {
	case VMMUX_EV_HYPERCALL:
		switch (ev->key) {
		case HVT_HC_WALLTIME:
			do_walltime(ev);
			break;
		case HVT_HC_POLL:
			do_poll(ev);
			break;
		case HVT_HC_HALT:
			do_halt(ev);
			break;
		default:
			hvt_fault("invalid guest hypercall: num=%llu (no such call, or no device "
				  "of its kind attached)",
				  (unsigned long long)ev->key);
			break;
		}
		break;
	case VMMUX_EV_IO:
		hvt_fault("invalid guest port access: port=0x%llx (%s, %u bytes): not a hypercall",
			  (unsigned long long)ev->key, ev->flags & VMMUX_EVF_WRITE ? "out" : "in",
			  ev->size);
		if (!(ev->flags & VMMUX_EVF_WRITE))
			rep->value = ~0ull;
		break;
	case VMMUX_EV_MMIO:
		if (gm_range_ok(&machine_vm()->mem, ev->key, 1) && (ev->flags & VMMUX_EVF_WRITE))
			hvt_fault("host/guest translation fault: write to read-only guest memory "
				  "at 0x%llx (the unikernel's code)",
				  (unsigned long long)ev->key);
		else
			hvt_fault("invalid guest memory access: %s at 0x%llx is outside guest "
				  "memory",
				  ev->flags & VMMUX_EVF_WRITE ? "write" : "read",
				  (unsigned long long)ev->key);
		rep->value = ~0ull;
		break;
	case VMMUX_EV_HLT:
		atomic_store(&hvt_host.status, 0);
		atomic_store(&hvt_host.halted, true);
		machine_stop(0, "hvt guest executed HLT");
		break;
	case VMMUX_EV_SHUTDOWN:
		hvt_dumpcore(ev->vcpu, 0, "guest triple fault");
		hvt_fault("guest triple fault (KVM_EXIT_SHUTDOWN)");
		rep->action = VMMUX_ACT_END;
		break;
	case VMMUX_EV_EXCEPTION:
		hvt_dumpcore(ev->vcpu, 0, "guest exception");
		hvt_fault("guest exception %llu at RIP 0x%llx", (unsigned long long)ev->key,
			  (unsigned long long)ev->value);
		if (ev->flags & VMMUX_EVF_GUEST_REPORTED)
			rep->action = VMMUX_ACT_END;
		break;
	default:
		return false;
	}
	return true;
}

static const struct machine_boot_hook boot_hook = {.name = "hvt", .boot = core_boot};
static const struct main_vmm_ext main_ext = {.name = "hvt", .handle = core_handle};

int hvt_core_install(void)
{
	if (main_vmm_ext_install(&main_ext) < 0)
		return -1;
	machine_set_boot_hook(&boot_hook);
	return 0;
}

void hvt_core_remove(void)
{
	machine_set_boot_hook(NULL);
	main_vmm_ext_remove(&main_ext);
}
