/*
 * test_role_common.c: properties every built-in role must have, checked
 * through the test host: init with no args, no crash and a sane reply on
 * malformed and odd events, a save/restore round trip, refusal of another
 * role's state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host.h"
#include "../../../vmms/roles.h"

static const struct vmmux_role *const roles[] = {
    &vmmux_role_uart16550, &vmmux_role_debug_exit, &vmmux_role_chipset,
    &vmmux_role_smm,	   &vmmux_role_monitor,	   &vmmux_role_fault_report,
};
#define NROLES (sizeof(roles) / sizeof(roles[0]))

static const struct vmmux_role *role_at(size_t i)
{
	return i < NROLES ? roles[i] : NULL;
}

/* Every role, fed malformed and odd events, returns without crashing. */
static void test_malformed_events(void **state)
{
	static const uint8_t sizes[] = {0, 1, 2, 3, 4, 5, 8, 16, 255};
	static const uint16_t flags[] = {0, VMMUX_EVF_WRITE, VMMUX_EVF_STRING,
					 VMMUX_EVF_STRING | VMMUX_EVF_WRITE, 0xffff};
	static const uint64_t keys[] = {0,     0x60,  0x64,   0xb2,    0xb3,
					0xf4,  0x3f8, 0x3fd,  0x4f0,   0x604,
					0x605, 0xcf9, 0xffff, 0x10000, UINT64_MAX};
	static const uint32_t counts[] = {0, 1, 2, 16};

	(void)state;
	for (size_t r = 0; role_at(r); r++) {
		struct vmmux_ctx *ctx = host_new(role_at(r), "any");
		int out = host_output(ctx);

		host_guest_memory(ctx, 0, 4096);
		assert_int_equal(host_init(ctx), 0);
		for (uint16_t type = 0; type <= VMMUX_EV__COUNT + 1; type++)
			for (size_t s = 0; s < sizeof(sizes); s++)
				for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
					for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
						for (size_t c = 0; c < 4; c++)
							for (int withdata = 0; withdata < 2;
							     withdata++) {
								uint8_t data[16 * 255];
								struct vmmux_event ev =
								    host_event(type, keys[k],
									       sizes[s], 0x1004);
								struct vmmux_reply rep;

								memset(data, 0xaa, sizeof(data));
								ev.flags = flags[f];
								ev.count = counts[c];
								ev.data = withdata ? data : NULL;
								(void)host_handle(ctx, &ev, &rep);
								assert_true(rep.action <
									    VMMUX_ACT__COUNT);
								ctx->nraised = 0;
								ctx->nlogs = 0;
								char buf[4096];
								while (host_recv(out, buf,
										 sizeof(buf)) >= 0)
									;
							}
		if (ctx->role->reset)
			ctx->role->reset(ctx);
		close(out);
		host_free(ctx);
	}
}

static void test_save_restore_all(void **state)
{
	(void)state;
	for (size_t r = 0; role_at(r); r++) {
		const struct vmmux_role *role = role_at(r);
		struct vmmux_ctx *a, *b;
		uint8_t st[8192], junk[64];
		long len;

		if (!role->save)
			continue;
		a = host_new(role, "a");
		b = host_new(role, "b");
		assert_int_equal(host_init(a), 0);
		assert_int_equal(host_init(b), 0);
		len = role->save(a, st, sizeof(st));
		assert_true(len > 0);
		assert_int_equal(role->save(a, st, 0), -1);
		assert_int_equal(role->save(a, NULL, sizeof(st)), -1);
		assert_int_equal(role->restore(b, st, (size_t)len), 0);
		memset(junk, 0x5a, sizeof(junk));
		assert_true(role->restore(b, junk, sizeof(junk)) < 0);
		assert_true(role->restore(b, NULL, 0) < 0);
		/* a state of another role is refused */
		for (size_t o = 0; role_at(o); o++) {
			const struct vmmux_role *other = role_at(o);
			struct vmmux_ctx *c;
			long olen;

			if (other == role || !other->save)
				continue;
			c = host_new(other, "c");
			assert_int_equal(host_init(c), 0);
			olen = other->save(c, st, sizeof(st));
			assert_true(olen > 0);
			assert_true(role->restore(b, st, (size_t)olen) < 0);
			host_free(c);
		}
		host_free(a);
		host_free(b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_malformed_events),
	    cmocka_unit_test(test_save_restore_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
