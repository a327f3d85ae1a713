/*
 * vmmux.h: the interface between vmmux and a VMM role.
 *
 * A role is the code of a virtual machine monitor for some privileged events
 * (a UART, an exit device, an SMI handler, a monitor ...). It is written once
 * against this header and runs unchanged either inside the main VMM (the
 * vmmux process) or in a parallel VMM process. Everything a role sees of the
 * machine goes through a struct vmmux_ctx: the events routed to it, checked
 * access to the guest-memory windows granted to it, and the events it raises.
 * A role never holds a KVM descriptor and never calls the router itself.
 *
 * This header is self-contained (C11, <stdint.h>, <stddef.h>, <stdbool.h>).
 *
 * Threading contract: the host serialises every call into one VMM instance
 * (init, handle, input, reset, save, restore, fini never run concurrently for
 * the same ctx), so a role needs no locking of its own state.
 */
#ifndef VMMUX_VMMUX_H
#define VMMUX_VMMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this interface; a role built for another major is refused. */
#define VMMUX_ROLE_ABI_VERSION 1

/* ---------------------------------------------------------------------- */
/* Events                                                                   */
/* ---------------------------------------------------------------------- */

/* The type of a privileged event. The order is part of the ABI. */
enum vmmux_event_type {
	VMMUX_EV_IO = 0,    /* port I/O; key = port, size, count, flags WRITE */
	VMMUX_EV_MMIO,	    /* MMIO; key = guest-physical address, size */
	VMMUX_EV_MSR,	    /* RDMSR/WRMSR; key = MSR index, size = 8 */
	VMMUX_EV_HLT,	    /* HLT with no in-kernel irqchip; key = 0 */
	VMMUX_EV_HYPERCALL, /* 32-bit OUT to 0x500+nr; key = nr, value = arg GPA */
	VMMUX_EV_EXCEPTION, /* key = vector; value = RIP; aux = error code/DR6 */
	VMMUX_EV_SHUTDOWN,  /* triple fault; key = 0 */
	VMMUX_EV_PLATFORM,  /* key = enum vmmux_platform_code; value = detail */
	VMMUX_EV_IRQ,	    /* interrupt request; key = IRQ line; value = level */
	VMMUX_EV_REQUEST,   /* a VMM asks for a privileged operation; key = kind */
	VMMUX_EV_FAULT,	    /* a VMM failed; key = its id, value = vmmux_fault_reason */
	VMMUX_EV__COUNT
};

/* The names of the event types, in enum order, as routes and logs write
 * them: static const char *const names[VMMUX_EV__COUNT] = VMMUX_EV_NAMES; */
#define VMMUX_EV_NAMES                                                                             \
	{                                                                                          \
		"io", "mmio", "msr", "hlt", "hypercall", "exception", "shutdown", "platform",      \
		    "irq", "request", "fault"                                                      \
	}

/* Event flags. */
#define VMMUX_EVF_WRITE		 0x0001u /* OUT, MMIO write, WRMSR, IRQ assert */
#define VMMUX_EVF_STRING	 0x0002u /* INS/OUTS: data holds count*size bytes */
#define VMMUX_EVF_HOSTDEBUG	 0x0004u /* exception caught by KVM guest debug */
#define VMMUX_EVF_GUEST_REPORTED 0x0008u /* exception reported by the guest */
#define VMMUX_EVF_UNKNOWN_MSR	 0x0010u /* MSR that KVM does not know */
#define VMMUX_EVF_UNROUTED	 0x0020u /* no route names it: built-in type default */
/* Writes KVM delivered without an exit (routes compiled into KVM; the vCPU
 * is not known: VMMUX_NO_VCPU): */
#define VMMUX_EVF_DOORBELL                                                                         \
	0x0040u /* a doorbell ring (one eventfd count); value:                                     \
		 * the route's doorbell=VALUE, else 0, never                                       \
		 * the written value */
#define VMMUX_EVF_COALESCED                                                                        \
	0x0080u /* from KVM's coalesced ring: value, size and                                      \
		 * order are the guest's */
/* Set by a parallel VMM's library on an event that a VMM of the same name
 * may have started to handle before it died: it may have been applied
 * already (include/vmmux/vmm.h, vmmux_event_seq; docs/parallel-vmm.md,
 * "Exactly-once delivery"). Never set for an in-process VMM. */
#define VMMUX_EVF_REDELIVERED 0x0100u

/* Platform event codes (key of VMMUX_EV_PLATFORM). */
enum vmmux_platform_code {
	VMMUX_PLAT_SMI = 0, /* value = the APM command byte written to 0xB2 */
	VMMUX_PLAT_RESET,   /* value = 0 */
	VMMUX_PLAT_POWEROFF,
	VMMUX_PLAT_POWERBTN,
	VMMUX_PLAT_WATCHDOG,
	VMMUX_PLAT__COUNT
};
#define VMMUX_PLAT_NAMES                                                                           \
	{                                                                                          \
		"smi", "reset", "poweroff", "powerbtn", "watchdog"                                 \
	}

/* Request kinds (key of VMMUX_EV_REQUEST). */
enum vmmux_request_kind {
	VMMUX_REQ_EXIT = 0, /* end the run; value = vmmux's exit status 0-255 */
	VMMUX_REQ__COUNT
};
#define VMMUX_REQ_NAMES                                                                            \
	{                                                                                          \
		"exit"                                                                             \
	}

/* Why a VMM failed (value of VMMUX_EV_FAULT; aux: its exit status or the
 * signal that killed it). */
enum vmmux_fault_reason {
	VMMUX_FAULT_CRASH = 1,	  /* the process died */
	VMMUX_FAULT_TIMEOUT = 2,  /* it did not answer in time: killed */
	VMMUX_FAULT_PROTOCOL = 3, /* a malformed reply or a raise not granted: killed */
};

/* Exception vectors used by name. */
#define VMMUX_VEC_DB 1
#define VMMUX_VEC_BP 3

/* Where an event comes from. */
enum vmmux_source_kind {
	VMMUX_SRC_VCPU = 0, /* a vCPU of the guest (src_id = vCPU index) */
	VMMUX_SRC_VMM,	    /* a VMM raised it (src_id = VMM id) */
	VMMUX_SRC_HOST,	    /* vmmux itself: a timer, the control API */
};

#define VMMUX_NO_VCPU 0xffffu

/*
 * One privileged event. The same value whatever produced it.
 *
 * For VMMUX_EV_IO with VMMUX_EVF_STRING, data points to count*size bytes:
 * the guest's bytes for an OUTS, the buffer the handler fills for an INS. For
 * every other event data is NULL, and a write's value is in value. A handler
 * must not keep data after it returns.
 */
struct vmmux_event {
	uint16_t type;	  /* enum vmmux_event_type */
	uint16_t flags;	  /* VMMUX_EVF_* */
	uint8_t size;	  /* access width in bytes (1, 2, 4, 8), or 0 */
	uint8_t src_kind; /* enum vmmux_source_kind */
	uint16_t src_id;  /* vCPU index or VMM id, by src_kind */
	uint32_t count;	  /* string I/O repetitions, 1 otherwise */
	uint16_t vcpu;	  /* vCPU on whose behalf, or VMMUX_NO_VCPU */
	uint16_t reserved;
	uint64_t key;	     /* port, GPA, MSR, nr, vector, code, line, kind */
	uint64_t value;	     /* write data, argument, RIP, level, status */
	uint64_t aux;	     /* exception error code or DR6; else 0 */
	void *data;	     /* string I/O data; NULL otherwise */
	uint64_t generation; /* the routing table generation that routed it */
};

/* What a handler asks the host to do with the event. */
enum vmmux_action {
	VMMUX_ACT_DONE = 0, /* handled; a read's result is in reply.value */
	VMMUX_ACT_GP,	    /* MSR access: inject #GP into the guest */
	VMMUX_ACT_REINJECT, /* host-debug exception: deliver it to the guest */
	VMMUX_ACT_RESET,    /* shutdown: reset the VM instead of ending */
	VMMUX_ACT_END,	    /* shutdown/exception: end the run, guest crashed */
	VMMUX_ACT__COUNT
};
#define VMMUX_ACT_NAMES                                                                            \
	{                                                                                          \
		"done", "gp", "reinject", "reset", "end"                                           \
	}

/* The reply of a handler. value is masked by the host to the access size. */
struct vmmux_reply {
	uint32_t action; /* enum vmmux_action */
	uint32_t reserved;
	uint64_t value; /* IN, MMIO read or RDMSR result */
};

/* ---------------------------------------------------------------------- */
/* The context: what the host offers a role                                 */
/* ---------------------------------------------------------------------- */

struct vmmux_ctx;

/* The library's entry points: the only symbols libvmmux-vmm.a exports (its
 * internals are local to it, so a program's own names never clash). */
#define VMMUX_API __attribute__((visibility("default")))

/* The role's private state, priv_size bytes zeroed before init. */
VMMUX_API void *vmmux_priv(struct vmmux_ctx *ctx);

/* This VMM instance's name and id as the config gives them. */
VMMUX_API const char *vmmux_name(struct vmmux_ctx *ctx);
VMMUX_API uint16_t vmmux_id(struct vmmux_ctx *ctx);

/*
 * The value of argument KEY from the VMM's config ("args"), or NULL. Valid
 * for the life of the ctx.
 */
VMMUX_API const char *vmmux_arg(struct vmmux_ctx *ctx, const char *key);

/*
 * Descriptors the host opened for the VMM from its config ("input",
 * "output"); -1 when there is none. A role never opens files itself.
 */
VMMUX_API int vmmux_input_fd(struct vmmux_ctx *ctx);
VMMUX_API int vmmux_output_fd(struct vmmux_ctx *ctx);
/*
 * Further descriptors the host opened for the VMM, numbered from 0 in the
 * order its set-up gave them (only vmmux's own set-up code gives any: e.g.
 * the disk images of an hvt block VMM that serves several devices); -1
 * past the last.
 */
VMMUX_API int vmmux_fd(struct vmmux_ctx *ctx, unsigned i);

/*
 * Checked access to guest memory: [gpa, gpa+len) must lie inside a window
 * granted to this VMM (overflow checked). Return 0, or -1 when the range is
 * not granted (nothing is copied).
 */
VMMUX_API int vmmux_gm_read(struct vmmux_ctx *ctx, uint64_t gpa, void *buf, size_t len);
VMMUX_API int vmmux_gm_write(struct vmmux_ctx *ctx, uint64_t gpa, const void *buf, size_t len);

/*
 * Raise an event on behalf of this VMM: an interrupt request (VMMUX_EV_IRQ),
 * a platform event, a request, an exception the guest reported, or a copy
 * of the device event its handle is serving, handed on from inside that
 * handle call (grant "forward"; the routes with from=VMM, and only they,
 * decide where it goes; a made-up device event, or a copy raised at any
 * other time, is refused).
 * Fault events are refused (-1), and so is what the VMM's config does not
 * grant it (the host checks). The host sets the source, routes the event
 * through the routing table and delivers it after the current callback
 * returns, in the order raised. ev->vcpu says on whose behalf (the vCPU of
 * the event being handled, or VMMUX_NO_VCPU). Returns 0, or -1 when the
 * event is malformed or the pending queue is full.
 */
VMMUX_API int vmmux_raise(struct vmmux_ctx *ctx, const struct vmmux_event *ev);

/* Log levels and logging through the host's log (prefixed with the VMM). */
enum vmmux_log_level {
	VMMUX_LOG_ERROR = 0,
	VMMUX_LOG_WARN,
	VMMUX_LOG_INFO,
	VMMUX_LOG_DEBUG,
};
VMMUX_API void vmmux_log(struct vmmux_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------------- */
/* Roles                                                                    */
/* ---------------------------------------------------------------------- */

/*
 * A role. Every callback but handle may be NULL. Callbacks return 0 on
 * success; a negative return is an error that the host reports with the
 * VMM's name (from init: the VMM does not start; from handle: the event gets
 * its type's built-in default and the error is counted).
 */
struct vmmux_role {
	uint32_t abi_version; /* VMMUX_ROLE_ABI_VERSION */
	const char *name;     /* role name used in configs: "uart16550" */
	const char *summary;  /* one line for `vmmux roles` and --help */
	size_t priv_size;     /* bytes of private state (vmmux_priv) */

	/* Set up from args; may validate them and fail with a logged reason. */
	int (*init)(struct vmmux_ctx *ctx);
	/* Release what init took. */
	void (*fini)(struct vmmux_ctx *ctx);
	/* Handle one event routed to this VMM; fill *rep (zeroed: DONE, 0). */
	int (*handle)(struct vmmux_ctx *ctx, const struct vmmux_event *ev, struct vmmux_reply *rep);
	/*
	 * The input descriptor is readable. Read what fits; return the number
	 * of bytes taken, 0 when the role has no room now (the host polls
	 * again later), or -1 at end of input (the host stops polling).
	 */
	int (*input)(struct vmmux_ctx *ctx);
	/* The VM is being reset: return to power-on state. */
	void (*reset)(struct vmmux_ctx *ctx);
	/*
	 * Export the guest-visible state into buf (at most cap bytes) and
	 * return its length, or -1; restore it in a new instance. A parallel
	 * VMM's library saves the state after every event it handles, and a
	 * restarted instance restores the last one, so that the guest-visible
	 * state survives a crash.
	 */
	long (*save)(struct vmmux_ctx *ctx, void *buf, size_t cap);
	int (*restore)(struct vmmux_ctx *ctx, const void *buf, size_t len);
	/*
	 * The names of the arguments the role accepts, NULL-terminated (NULL:
	 * none). The host refuses a VMM config that gives any other argument,
	 * so a misspelt name is an error, never silently ignored.
	 */
	const char *const *args;
	/*
	 * What the role raises, NULL-terminated grant strings ("irq:4",
	 * "platform:reset", "request:exit", "exception", "forward"): the grants
	 * a VMM of this built-in role gets when its config lists none. A third
	 * party's program gets only what its config grants ("raise"): a program
	 * does not grant itself anything. The host refuses any other raised
	 * event.
	 */
	const char *const *raises;
};

#ifdef __cplusplus
}
#endif
#endif /* VMMUX_VMMUX_H */
