/*
 * test_roles.c: the role table behind role_find() and role_at()
 * (src/vmm/vmm.h): every built-in role is there once, with a valid
 * descriptor, and is found by its name only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../../vmms/roles.h"
#include "vmm/vmm.h"

static const char *const names[] = {"uart16550",   "smm",	   "chipset", "debug-exit",
				    "monitor",	   "fault-report", "sink",    "fwcfg",
				    "hvt-console", "hvt-block",	   "hvt-net", "gdbstub"};

static void test_find(void **state)
{
	(void)state;
	assert_ptr_equal(role_find("uart16550"), &vmmux_role_uart16550);
	assert_ptr_equal(role_find("debug-exit"), &vmmux_role_debug_exit);
	assert_ptr_equal(role_find("chipset"), &vmmux_role_chipset);
	assert_ptr_equal(role_find("smm"), &vmmux_role_smm);
	assert_ptr_equal(role_find("monitor"), &vmmux_role_monitor);
	assert_ptr_equal(role_find("fault-report"), &vmmux_role_fault_report);
	assert_ptr_equal(role_find("sink"), &vmmux_role_sink);
	assert_ptr_equal(role_find("gdbstub"), &vmmux_role_gdbstub);
	assert_null(role_find(NULL));
	assert_null(role_find(""));
	assert_null(role_find("uart"));
	assert_null(role_find("UART16550"));
	assert_null(role_find("main"));
	/* the machine's part of an hvt guest is the main VMM's, not a role */
	assert_null(role_find("hvt"));
	assert_non_null(role_find("hvt-console"));
	assert_non_null(role_find("hvt-block"));
	assert_non_null(role_find("hvt-net"));
}

static void test_table(void **state)
{
	size_t n = 0;

	(void)state;
	for (const struct vmmux_role *r; (r = role_at(n)) != NULL; n++) {
		assert_int_equal(r->abi_version, VMMUX_ROLE_ABI_VERSION);
		assert_non_null(r->name);
		assert_non_null(r->summary);
		assert_true(strlen(r->summary) > 10);
		assert_non_null(r->handle);
		assert_true(r->priv_size > 0);
		assert_ptr_equal(role_find(r->name), r);
		/* save and restore come in pairs */
		assert_true((r->save == NULL) == (r->restore == NULL));
		for (size_t j = 0; j < n; j++)
			assert_true(strcmp(role_at(j)->name, r->name) != 0);
	}
	assert_int_equal(n, sizeof(names) / sizeof(names[0]));
	assert_null(role_at(n));
	assert_null(role_at((size_t)-1));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_non_null(role_find(names[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
