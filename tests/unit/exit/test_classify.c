/*
 * Unit tests of exit classification and reply application, on synthetic
 * kvm_run records (exit/classify.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exit/classify.h"

#define RUN_SIZE 8192

struct fixture {
	union {
		struct kvm_run run;
		uint8_t bytes[RUN_SIZE];
	};
};

static struct fixture *new_run(unsigned reason)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->run.exit_reason = reason;
	return f;
}

static void test_io_out_single(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_IO);
	f->run.io.direction = KVM_EXIT_IO_OUT;
	f->run.io.size = 2;
	f->run.io.port = 0x3f8;
	f->run.io.count = 1;
	f->run.io.data_offset = 4096;
	f->bytes[4096] = 0x34;
	f->bytes[4097] = 0x12;
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 3, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.type, VMMUX_EV_IO);
	assert_int_equal(ev.key, 0x3f8);
	assert_int_equal(ev.size, 2);
	assert_int_equal(ev.count, 1);
	assert_int_equal(ev.value, 0x1234);
	assert_true(ev.flags & VMMUX_EVF_WRITE);
	assert_false(ev.flags & VMMUX_EVF_STRING);
	assert_null(ev.data);
	assert_int_equal(ev.vcpu, 3);
	assert_int_equal(ev.src_kind, VMMUX_SRC_VCPU);
	assert_int_equal(ev.src_id, 3);
	free(f);
}

static void test_io_in_reply_masked(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_IO);
	f->run.io.direction = KVM_EXIT_IO_IN;
	f->run.io.size = 1;
	f->run.io.port = 0x80;
	f->run.io.count = 1;
	f->run.io.data_offset = 4096;
	memset(f->bytes + 4096, 0xee, 8);
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_false(ev.flags & VMMUX_EVF_WRITE);
	struct vmmux_reply rep = {.action = VMMUX_ACT_DONE, .value = 0xabcd};
	assert_int_equal(exit_apply(&f->run, &ev, &rep), 0);
	assert_int_equal(f->bytes[4096], 0xcd);
	assert_int_equal(f->bytes[4097], 0xee); /* one byte only */
	free(f);
}

static void test_io_string(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_IO);
	f->run.io.direction = KVM_EXIT_IO_OUT;
	f->run.io.size = 1;
	f->run.io.port = 0x81;
	f->run.io.count = 16;
	f->run.io.data_offset = 4096;
	memcpy(f->bytes + 4096, "0123456789abcdef", 16);
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_true(ev.flags & VMMUX_EVF_STRING);
	assert_int_equal(ev.count, 16);
	assert_ptr_equal(ev.data, f->bytes + 4096);
	assert_memory_equal(ev.data, "0123456789abcdef", 16);
	free(f);
}

static void test_io_data_outside_run(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_IO);
	f->run.io.direction = KVM_EXIT_IO_IN;
	f->run.io.size = 4;
	f->run.io.count = 1025; /* one element past the end */
	f->run.io.data_offset = 4096;
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_FATAL);
	assert_non_null(strstr(e.msg, "outside kvm_run"));
	f->run.io.size = 3;
	f->run.io.count = 1;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_FATAL);
	assert_non_null(strstr(e.msg, "size 3"));
	free(f);
}

static void test_mmio(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_MMIO);
	f->run.mmio.phys_addr = 0xd0000004;
	f->run.mmio.len = 4;
	f->run.mmio.is_write = 0;
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 1, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.type, VMMUX_EV_MMIO);
	assert_int_equal(ev.key, 0xd0000004);
	assert_int_equal(ev.size, 4);
	struct vmmux_reply rep = {.value = 0x1122334455667788ull};
	exit_apply(&f->run, &ev, &rep);
	uint64_t got = 0;
	memcpy(&got, f->run.mmio.data, 8);
	assert_int_equal(got, 0x55667788ull);

	f->run.mmio.is_write = 1;
	f->run.mmio.len = 8;
	memcpy(f->run.mmio.data, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 1, &ev, &e), CLASSIFY_EVENT);
	assert_true(ev.flags & VMMUX_EVF_WRITE);
	assert_int_equal(ev.value, 0x0807060504030201ull);

	f->run.mmio.len = 9;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 1, &ev, &e), CLASSIFY_FATAL);
	free(f);
}

static void test_msr(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_X86_RDMSR);
	f->run.msr.index = 0x40001000;
	f->run.msr.reason = KVM_MSR_EXIT_REASON_FILTER;
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.type, VMMUX_EV_MSR);
	assert_int_equal(ev.key, 0x40001000);
	assert_false(ev.flags & VMMUX_EVF_UNKNOWN_MSR);
	struct vmmux_reply rep = {.action = VMMUX_ACT_DONE, .value = 0xfeed};
	exit_apply(&f->run, &ev, &rep);
	assert_int_equal(f->run.msr.data, 0xfeed);
	assert_int_equal(f->run.msr.error, 0);
	rep.action = VMMUX_ACT_GP;
	exit_apply(&f->run, &ev, &rep);
	assert_int_equal(f->run.msr.error, 1);

	f->run.exit_reason = KVM_EXIT_X86_WRMSR;
	f->run.msr.reason = KVM_MSR_EXIT_REASON_UNKNOWN;
	f->run.msr.data = 0x99;
	f->run.msr.error = 0;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_true(ev.flags & VMMUX_EVF_WRITE);
	assert_true(ev.flags & VMMUX_EVF_UNKNOWN_MSR);
	assert_int_equal(ev.value, 0x99);
	rep.action = VMMUX_ACT_GP;
	exit_apply(&f->run, &ev, &rep);
	assert_int_equal(f->run.msr.error, 1);
	free(f);
}

static void test_hlt_shutdown(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_HLT);
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.type, VMMUX_EV_HLT);
	f->run.exit_reason = KVM_EXIT_SHUTDOWN;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.type, VMMUX_EV_SHUTDOWN);
	free(f);
}

/* #DB from a hardware breakpoint: resumed with RF set, or reinjected. */
static void test_debug_db(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_DEBUG);
	f->run.debug.arch.exception = 1;
	f->run.debug.arch.pc = 0x100123;
	f->run.debug.arch.dr6 = 0xffff0ff1; /* B0 */
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.type, VMMUX_EV_EXCEPTION);
	assert_int_equal(ev.key, 1);
	assert_int_equal(ev.value, 0x100123);
	assert_true(ev.flags & VMMUX_EVF_HOSTDEBUG);
	struct vmmux_reply rep = {.action = VMMUX_ACT_DONE};
	assert_int_equal(exit_apply(&f->run, &ev, &rep), APPLY_SKIP_BP);
	rep.action = VMMUX_ACT_REINJECT;
	assert_true(exit_apply(&f->run, &ev, &rep) & APPLY_REINJECT);
	/* single-step (BS, bit 14) needs no RF */
	f->run.debug.arch.dr6 = 0xffff4ff0;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	rep.action = VMMUX_ACT_DONE;
	assert_int_equal(exit_apply(&f->run, &ev, &rep), 0);
	free(f);
}

/* #BP through KVM_GUESTDBG_USE_SW_BP, as hosts with hardware VMX report it. */
static void test_debug_bp(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_DEBUG);
	f->run.debug.arch.exception = 3;
	f->run.debug.arch.pc = 0x100200;
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 2, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.type, VMMUX_EV_EXCEPTION);
	assert_int_equal(ev.key, VMMUX_VEC_BP);
	assert_int_equal(ev.value, 0x100200);
	assert_int_equal(ev.vcpu, 2);
	struct vmmux_reply rep = {.action = VMMUX_ACT_REINJECT};
	assert_int_equal(exit_apply(&f->run, &ev, &rep), APPLY_REINJECT);
	rep.action = VMMUX_ACT_DONE;
	assert_int_equal(exit_apply(&f->run, &ev, &rep), 0);
	free(f);
}

static void test_system_event(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_SYSTEM_EVENT);
	f->run.system_event.type = KVM_SYSTEM_EVENT_RESET;
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.type, VMMUX_EV_PLATFORM);
	assert_int_equal(ev.key, VMMUX_PLAT_RESET);
	f->run.system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_EVENT);
	assert_int_equal(ev.key, VMMUX_PLAT_POWEROFF);
	f->run.system_event.type = KVM_SYSTEM_EVENT_CRASH;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_FATAL);
	free(f);
}

static void test_fatal_and_none(void **state)
{
	(void)state;
	struct fixture *f = new_run(KVM_EXIT_INTERNAL_ERROR);
	f->run.internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
	f->run.internal.ndata = 2;
	f->run.internal.data[0] = 0xabc;
	struct vmmux_event ev;
	struct errbuf e;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_FATAL);
	assert_non_null(strstr(e.msg, "KVM_EXIT_INTERNAL_ERROR"));
	assert_non_null(strstr(e.msg, "could not emulate"));
	assert_non_null(strstr(e.msg, "0xabc"));
	f->run.exit_reason = KVM_EXIT_FAIL_ENTRY;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_FATAL);
	assert_non_null(strstr(e.msg, "KVM_EXIT_FAIL_ENTRY"));
	f->run.exit_reason = 9999;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_FATAL);
	assert_non_null(strstr(e.msg, "not modelled"));
	f->run.exit_reason = KVM_EXIT_INTR;
	assert_int_equal(exit_classify(&f->run, RUN_SIZE, 0, &ev, &e), CLASSIFY_NONE);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_io_out_single),  cmocka_unit_test(test_io_in_reply_masked),
	    cmocka_unit_test(test_io_string),	   cmocka_unit_test(test_io_data_outside_run),
	    cmocka_unit_test(test_mmio),	   cmocka_unit_test(test_msr),
	    cmocka_unit_test(test_hlt_shutdown),   cmocka_unit_test(test_debug_db),
	    cmocka_unit_test(test_debug_bp),	   cmocka_unit_test(test_system_event),
	    cmocka_unit_test(test_fatal_and_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
