/*
 * test_hint.c: the missing-device hint (src/vmm/hint.h): nothing below the
 * threshold, one warning at it, once per kind of device, the option named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"
#include "vmm/hint.h"

/* stderr into a temporary file; returns what was written since. */
static int saved = -1;
static FILE *tmp;

static void capture(void)
{
	fflush(stderr);
	tmp = tmpfile();
	assert_non_null(tmp);
	saved = dup(2);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), 2) >= 0);
}

static char *captured(void)
{
	fflush(stderr);
	assert_true(dup2(saved, 2) >= 0);
	close(saved);
	long n = ftell(tmp);
	char *s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	rewind(tmp);
	assert_int_equal(fread(s, 1, (size_t)n, tmp), (size_t)n);
	fclose(tmp);
	return s;
}

static unsigned count(const char *s, const char *what)
{
	unsigned n = 0;
	for (const char *p = strstr(s, what); p != NULL; p = strstr(p + 1, what))
		n++;
	return n;
}

static void touch(uint16_t type, uint64_t key, bool write, unsigned times)
{
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.key = key;
	ev.size = 4;
	ev.vcpu = 1;
	ev.flags = VMMUX_EVF_UNROUTED | (write ? VMMUX_EVF_WRITE : 0);
	for (unsigned i = 0; i < times; i++)
		hint_unrouted(&ev);
}

static int setup(void **state)
{
	(void)state;
	hint_reset();
	log_level = VMMUX_LOG_WARN;
	return 0;
}

static void test_lapic_once(void **state)
{
	(void)state;
	capture();
	touch(VMMUX_EV_MMIO, 0xfee00030, false, HINT_THRESHOLD - 1);
	char *s = captured();
	assert_string_equal(s, ""); /* below the threshold */
	free(s);
	capture();
	touch(VMMUX_EV_MMIO, 0xfee00030, false, 1);
	touch(VMMUX_EV_MMIO, 0xfee00300, true, 5 * HINT_THRESHOLD);  /* same page, same kind */
	touch(VMMUX_EV_MMIO, 0xfec00000, false, 3 * HINT_THRESHOLD); /* the I/O APIC */
	s = captured();
	assert_int_equal(count(s, " keeps "), 2);
	assert_non_null(strstr(s, "vCPU 1 keeps reading the local APIC at 0xfee00030 (1000 "
				  "accesses); this machine has no irqchip: give --irqchip"));
	assert_non_null(strstr(s, "keeps reading the I/O APIC at 0xfec00000"));
	free(s);
}

static void test_ports(void **state)
{
	(void)state;
	capture();
	touch(VMMUX_EV_IO, 0x510, true, HINT_THRESHOLD);
	touch(VMMUX_EV_IO, 0x511, false, HINT_THRESHOLD); /* fw_cfg already hinted */
	touch(VMMUX_EV_IO, 0x43, true, HINT_THRESHOLD);
	touch(VMMUX_EV_IO, 0x1234, false, HINT_THRESHOLD);
	touch(VMMUX_EV_IO, 0x80, false, 10); /* a few probes: nothing */
	char *s = captured();
	assert_int_equal(count(s, " keeps "), 3);
	assert_non_null(strstr(s, "keeps writing fw_cfg at port 0x510 (1000 accesses); this "
				  "machine has no fw_cfg: give --fw-cfg"));
	assert_non_null(strstr(s, "keeps writing the PIT at port 0x43"));
	assert_non_null(strstr(s,
			       "keeps reading port 0x1234 (1000 accesses), which no route "
			       "takes: route it to a VMM that serves it (--route io:0x1234=VMM)"));
	free(s);
}

static void test_routed_and_other_events_ignored(void **state)
{
	(void)state;
	capture();
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = VMMUX_EV_MSR;
	ev.key = 0x1b;
	for (unsigned i = 0; i < 2 * HINT_THRESHOLD; i++)
		hint_unrouted(&ev);
	char *s = captured();
	assert_string_equal(s, "");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_lapic_once, setup),
	    cmocka_unit_test_setup(test_ports, setup),
	    cmocka_unit_test_setup(test_routed_and_other_events_ignored, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
