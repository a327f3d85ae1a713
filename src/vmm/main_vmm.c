/*
 * main_vmm.c: the main VMM's own handler (VMM id 0).
 *
 * The main VMM handles the life of the VM (reset, power-off, exit requests,
 * crashes), raises interrupt lines (it alone holds the KVM descriptors), and
 * gives every event that no keyed route claims its type's built-in default:
 *   io, mmio   reads return all ones, writes are dropped
 *   msr        #GP, as hardware does for an MSR it lacks
 *   hlt        the vCPU stops for good (nothing can wake it without the
 *              in-kernel irqchip); when every vCPU has stopped, the run ends
 *   hypercall  ignored
 *   exception  caught by guest debug: resumed; reported by the guest: the
 *              guest crashed, the run ends
 *   shutdown   the guest crashed (triple fault), the run ends
 *   platform   smi: counted and ignored (no SMI handler); reset: the VM is
 *              reset; poweroff and powerbtn: the run ends with status 0;
 *              watchdog: the run ends as a guest crash
 *   irq        the in-kernel irqchip's line is set
 *   request    exit: the run ends with the requested status
 * Unrouted keys are counted and each is logged once, so that a guest that
 * probes hardware neither crashes vmmux nor floods the log.
 *
 * An extension (main_vmm.h) installed for the run sees every event first
 * (copies handed on by VMMs aside) and may take it over: the Solo5 hvt host
 * handles its guest's walltime, poll and halt hypercalls this way.
 *
 * Copies a VMM handed on (grant forward, a device event raised by a VMM):
 * one that a from= route sends here gets the built-in handling above, as the
 * route asks (a HLT copy stops its vCPU, a shutdown copy ends the run, the
 * others change nothing: the guest has the handing VMM's answer); one that
 * no from= route takes (VMMUX_EVF_UNROUTED, router.h) is dropped and
 * logged once per key: a VMM that hands events on for others to see
 * never halts or ends the guest by doing so.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "event/event.h"
#include "route/spec.h"
#include "stats/stats.h"
#include "util/log.h"
#include "vmm/machine.h"
#include "vmm/main_vmm.h"
#include "vmm/hint.h"
#include "vmm/parallel.h"
#include "vmm/vmm.h"

/* The first keys of each type that were logged; later ones are not logged. */
#define LOGGED_KEYS_MAX 64

struct logged_keys {
	pthread_mutex_t lock;
	size_t n;
	bool full_reported;
	uint64_t key[LOGGED_KEYS_MAX];
};

static struct logged_keys logged[VMMUX_EV__COUNT];
static pthread_once_t logged_once = PTHREAD_ONCE_INIT;

static void logged_init(void)
{
	for (size_t i = 0; i < VMMUX_EV__COUNT; i++)
		pthread_mutex_init(&logged[i].lock, NULL);
}

/* True the first time KEY of TYPE is seen (and while the list has room). */
static bool first_time(unsigned type, uint64_t key)
{
	pthread_once(&logged_once, logged_init);
	struct logged_keys *l = &logged[type];
	bool first = true;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->n; i++)
		if (l->key[i] == key) {
			first = false;
			break;
		}
	if (first) {
		if (l->n < LOGGED_KEYS_MAX) {
			l->key[l->n++] = key;
		} else {
			if (!l->full_reported)
				log_warn(
				    "more than %d distinct unrouted %s keys: no longer logging "
				    "them (see --stats)",
				    LOGGED_KEYS_MAX, event_type_name(type));
			l->full_reported = true;
			first = false;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return first;
}

static void log_unrouted(const struct vmmux_event *ev, const char *action)
{
	/* A route that names main on purpose is not worth a warning. */
	if (!(ev->flags & VMMUX_EVF_UNROUTED) || !first_time(ev->type, ev->key))
		return;
	char desc[256];
	log_warn("unrouted %s: %s (logged once per key)", event_describe(ev, desc, sizeof(desc)),
		 action);
}

static const struct main_vmm_ext *_Atomic ext_installed;

int main_vmm_ext_install(const struct main_vmm_ext *x)
{
	const struct main_vmm_ext *none = NULL;
	return x != NULL && atomic_compare_exchange_strong(&ext_installed, &none, x) ? 0 : -1;
}

void main_vmm_ext_remove(const struct main_vmm_ext *x)
{
	const struct main_vmm_ext *cur = x;
	atomic_compare_exchange_strong(&ext_installed, &cur, NULL);
}

const struct main_vmm_ext *main_vmm_ext_current(void)
{
	return atomic_load_explicit(&ext_installed, memory_order_acquire);
}

static uint64_t all_ones(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

void main_vmm_default(const struct vmmux_event *ev, struct vmmux_reply *rep)
{
	rep->action = VMMUX_ACT_DONE;
	rep->value = 0;
	switch (ev->type) {
	case VMMUX_EV_IO:
	case VMMUX_EV_MMIO:
		if (!(ev->flags & VMMUX_EVF_WRITE)) {
			rep->value = all_ones(ev->size);
			if (ev->data)
				memset(ev->data, 0xff, (size_t)ev->size * ev->count);
		}
		break;
	case VMMUX_EV_MSR:
		rep->action = VMMUX_ACT_GP;
		break;
	case VMMUX_EV_SHUTDOWN:
		rep->action = VMMUX_ACT_END;
		break;
	case VMMUX_EV_EXCEPTION:
		if (ev->flags & VMMUX_EVF_GUEST_REPORTED)
			rep->action = VMMUX_ACT_END;
		break;
	default:
		break;
	}
}

static void handle_platform(struct vmmux_event *ev)
{
	static _Atomic uint64_t smis;
	char desc[256];
	switch (ev->key) {
	case VMMUX_PLAT_SMI:
		atomic_fetch_add(&smis, 1);
		if (first_time(ev->type, ev->key))
			log_warn("SMI (command 0x%llx) with no SMI handler routed: ignored (route "
				 "platform:smi to a VMM to handle SMIs; logged once)",
				 (unsigned long long)ev->value);
		break;
	case VMMUX_PLAT_RESET:
		machine_reset(event_describe(ev, desc, sizeof(desc)));
		break;
	case VMMUX_PLAT_POWEROFF:
		machine_stop(EXIT_POWEROFF, "guest powered off (%s)",
			     event_describe(ev, desc, sizeof(desc)));
		break;
	case VMMUX_PLAT_POWERBTN:
		machine_stop(EXIT_POWEROFF, "power button pressed: the guest has no ACPI handler "
					    "in vmmux, powering off");
		break;
	case VMMUX_PLAT_WATCHDOG:
		machine_stop(EXIT_GUEST_CRASH, "watchdog expired: the guest did not end in time");
		break;
	default:
		log_warn("unknown platform event %llu ignored", (unsigned long long)ev->key);
		break;
	}
}

/* A device event that a VMM handed on (a copy: the guest has its answer). */
static bool handed_on(const struct vmmux_event *ev)
{
	return ev->src_kind == VMMUX_SRC_VMM && event_is_device(ev->type);
}

int main_vmm_handle(struct vmmux_event *ev, struct vmmux_reply *rep)
{
	char desc[256];
	bool copy = handed_on(ev);
	if (copy && (ev->flags & VMMUX_EVF_UNROUTED)) {
		/* A copy no from= route takes: the VMM that handed it on answered
		 * the guest, and a copy nobody asked for must not halt a vCPU or
		 * end the run. Logged once per key. */
		rep->action = VMMUX_ACT_DONE;
		rep->value = 0;
		log_unrouted(ev, "a copy handed on by a VMM with no from= route for it: dropped");
		return 0;
	}
	/* A copy that a from= route gives the main VMM on purpose gets the
	 * built-in handling below (a HLT stops its vCPU, a shutdown ends the
	 * run), never the extension's (it would answer the guest a second
	 * time). */
	const struct main_vmm_ext *x = main_vmm_ext_current();
	if (!copy && x != NULL && x->handle(ev, rep))
		return 0;
	main_vmm_default(ev, rep);
	if (ev->flags & VMMUX_EVF_UNROUTED)
		stats_count_unrouted(ev->type);
	switch (ev->type) {
	case VMMUX_EV_IO:
	case VMMUX_EV_MMIO: {
		char what[64] = "write dropped";
		if (!(ev->flags & VMMUX_EVF_WRITE))
			snprintf(what, sizeof(what), "the guest reads 0x%llx (all ones)",
				 (unsigned long long)rep->value);
		log_unrouted(ev, what);
		if (ev->flags & VMMUX_EVF_UNROUTED)
			hint_unrouted(ev); /* a device the machine lacks (vmm/hint.h) */
		break;
	}
	case VMMUX_EV_MSR:
		log_unrouted(ev, "#GP injected");
		break;
	case VMMUX_EV_HYPERCALL:
		log_unrouted(ev, "ignored");
		break;
	case VMMUX_EV_HLT:
		machine_vcpu_halt(ev->vcpu);
		break;
	case VMMUX_EV_EXCEPTION:
		if (ev->flags & VMMUX_EVF_HOSTDEBUG)
			log_info("%s: resumed", event_describe(ev, desc, sizeof(desc)));
		break;
	case VMMUX_EV_SHUTDOWN:
		break; /* END: vmm_deliver ends the run as a guest crash */
	case VMMUX_EV_PLATFORM:
		handle_platform(ev);
		break;
	case VMMUX_EV_IRQ:
		/* a parallel VMM's level line wired to KVM: only a withdrawal
		 * comes here */
		if (ev->src_kind == VMMUX_SRC_VMM && ev->value == 0 &&
		    pvmm_irq_withdraw(ev->src_id, (unsigned)ev->key) == 0)
			break;
		if (machine_irq_line((uint32_t)ev->key, ev->value ? 1 : 0) < 0 &&
		    first_time(ev->type, ev->key))
			log_warn("%s: there is no in-kernel irqchip (--irqchip): dropped (logged "
				 "once per line)",
				 event_describe(ev, desc, sizeof(desc)));
		break;
	case VMMUX_EV_REQUEST:
		if (ev->key == VMMUX_REQ_EXIT)
			machine_stop((int)(ev->value & 0xff),
				     "exit requested with status %llu (%s)",
				     (unsigned long long)(ev->value & 0xff),
				     event_describe(ev, desc, sizeof(desc)));
		else
			log_warn("%s: unknown request ignored",
				 event_describe(ev, desc, sizeof(desc)));
		break;
	case VMMUX_EV_FAULT:
		/* A parallel VMM failed: restart it (with backoff). */
		log_info("%s: restarting it", event_describe(ev, desc, sizeof(desc)));
		pvmm_schedule_restart((uint16_t)ev->key);
		break;
	default:
		break;
	}
	return 0;
}
