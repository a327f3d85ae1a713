/*
 * fault_report.c: the port through which the guest runtime reports an
 * exception it cannot handle (role "fault-report"; the layout is in
 * fault_report.h).
 *
 * A 32-bit OUT to the base port with EAX = the guest-physical address of a
 * struct vmmux_fault_report: the role reads the structure with
 * vmmux_gm_read and raises VMMUX_EV_EXCEPTION with key = vector, value =
 * rip, aux = error_code, flags VMMUX_EVF_GUEST_REPORTED, on behalf of the
 * reporting vCPU. An address outside the granted guest memory, or a vector
 * above 255, is logged and the report ignored. Reads of the four ports
 * return all ones; writes of another width or to another of its ports are
 * refused (-EINVAL), as are accesses outside its ports (-ERANGE).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <vmmux/vmmux.h>

#include "../role_util.h"
#include "../roles.h"
#include "fault_report.h"

struct fault_report {
	uint16_t iobase;
};

static const char *const vector_names[32] = {
    [0] = "#DE",  [1] = "#DB",	[2] = "NMI",  [3] = "#BP",  [4] = "#OF",
    [5] = "#BR",  [6] = "#UD",	[7] = "#NM",  [8] = "#DF",  [10] = "#TS",
    [11] = "#NP", [12] = "#SS", [13] = "#GP", [14] = "#PF", [16] = "#MF",
    [17] = "#AC", [18] = "#MC", [19] = "#XM", [20] = "#VE", [21] = "#CP",
};

static const char *fault_vector_name(uint32_t vector)
{
	if (vector < 32 && vector_names[vector])
		return vector_names[vector];
	return vector < 32 ? "reserved" : "external";
}

static int fault_report_init(struct vmmux_ctx *ctx)
{
	struct fault_report *f = vmmux_priv(ctx);
	uint64_t base;

	if (role_arg_u64(ctx, "iobase", VMMUX_FAULT_REPORT_PORT, 0,
			 0x10000 - VMMUX_FAULT_REPORT_PORTS, &base) < 0)
		return -EINVAL;
	f->iobase = (uint16_t)base;
	return 0;
}

static int fault_report_handle(struct vmmux_ctx *ctx, const struct vmmux_event *ev,
			       struct vmmux_reply *rep)
{
	struct fault_report *f = vmmux_priv(ctx);
	struct vmmux_fault_report r;
	uint64_t gpa;

	if (!role_is_plain_io(ev))
		return -EINVAL;
	if (ev->key < f->iobase || ev->key >= (uint64_t)f->iobase + VMMUX_FAULT_REPORT_PORTS)
		return -ERANGE;
	if (!(ev->flags & VMMUX_EVF_WRITE)) {
		rep->value = role_size_mask(ev->size);
		return 0;
	}
	if (ev->key != f->iobase || ev->size != 4)
		return -EINVAL;

	gpa = ev->value & 0xffffffffu;
	if (vmmux_gm_read(ctx, gpa, &r, sizeof(r)) < 0) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "fault report at guest-physical 0x%llx: not in granted guest memory; "
			  "ignored",
			  (unsigned long long)gpa);
		return 0;
	}
	if (r.vector > 255) {
		vmmux_log(ctx, VMMUX_LOG_ERROR,
			  "fault report at guest-physical 0x%llx: vector %u is above 255; ignored",
			  (unsigned long long)gpa, r.vector);
		return 0;
	}
	vmmux_log(ctx, VMMUX_LOG_INFO,
		  "guest reports exception %u %s at rip 0x%llx, error code 0x%llx, cr2 0x%llx",
		  r.vector, fault_vector_name(r.vector), (unsigned long long)r.rip,
		  (unsigned long long)r.error_code, (unsigned long long)r.cr2);
	if (role_raise(ctx, VMMUX_EV_EXCEPTION, VMMUX_EVF_GUEST_REPORTED, r.vector, r.rip,
		       r.error_code, ev->vcpu) < 0)
		return -EAGAIN;
	return 0;
}

static const char *const fault_report_args[] = {"iobase", NULL};

static const char *const fault_report_raises[] = {"exception", NULL};

const struct vmmux_role vmmux_role_fault_report = {
    .abi_version = VMMUX_ROLE_ABI_VERSION,
    .name = "fault-report",
    .summary = "guest exception reports on port 0x4f0: raises the exception event",
    .priv_size = sizeof(struct fault_report),
    .init = fault_report_init,
    .handle = fault_report_handle,
    .args = fault_report_args,
    .raises = fault_report_raises,
};
