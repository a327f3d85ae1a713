/*
 * registry.h: the main VMM's state as machine_run sets it up
 * (src/vmm/machine.c), without a KVM VM and without starting vCPUs: a
 * finished config, its routing table published to the router, the live
 * route set, guest RAM (a plain allocation), and the VMM registry with
 * every VMM of the config in-process (its role's init run). What the
 * control API's read-only commands and the event path (vmm_route_deliver,
 * the main VMM, the built-in roles) read is then the product's own.
 *
 * fzr_up(JSON, EXTRA) builds it (aborts on a config the harness got
 * wrong); EXTRA, when not NULL, is called on the loaded config before it
 * is finished (to add what a JSON file may not say, such as the "fd:N"
 * descriptors vmmux hands its hvt VMMs);
 * fzr_down() takes it down again; the calling thread is a registered,
 * online router reader in between.
 */
#ifndef VMMUX_FUZZ_REGISTRY_H
#define VMMUX_FUZZ_REGISTRY_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz.h"
#include "route/router.h"
#include "route/table.h"
#include "vm/guest_mem.h"
#include "vm/ioregion.h"
#include "vm/vm.h"
#include "vmm/machine.h"
#include "vmm/live.h"
#include "vmm/parallel.h"
#include "vmm/vmm.h"

#define FZR_MEM (4u << 20) /* without KVM */

static struct vmmux_config fzr_config;
static uint64_t fzr_generation; /* of the table fzr_reset_routes last published */
static struct guest_mem fzr_mem;

static inline void fzr_fail(const char *what, const struct errbuf *e)
{
	fprintf(stderr, "fuzz harness set-up: %s: %s\n", what, e->msg);
	abort();
}

static inline void fzr_up(const char *json, void (*extra)(struct vmmux_config *c))
{
	struct errbuf e;
	config_init(&fzr_config);
	if (config_load_json_string(&fzr_config, "harness.json", json, NULL, &e) < 0)
		fzr_fail("config", &e);
	if (extra != NULL)
		extra(&fzr_config);
	if (config_finish_flags(&fzr_config, CONFIG_FINISH_NO_KERNEL, &e) < 0)
		fzr_fail("config", &e);
	fz_quiet();
	struct route_table *t = route_table_build(fzr_config.routes, fzr_config.nroutes,
						  config_vmm_resolve, &fzr_config, &e);
	if (t == NULL)
		fzr_fail("routes", &e);
	router_init(t);
	if (live_init(fzr_config.routes, fzr_config.nroutes, &e) < 0)
		fzr_fail("live", &e);
	static bool vm_tried;
	struct vm *vm = machine_vm();
	if (!vm_tried) {
		vm_tried = true;
		if (vm_create(vm, &fzr_config, &e) == 0) {
			fzr_mem = vm->mem;
		} else {
			fprintf(stderr,
				"fuzz harness: no KVM VM (%s): guest RAM is a plain "
				"allocation, KVM's part of route changes fails\n",
				e.msg);
			memset(vm, 0, sizeof(*vm));
			vm->kvm_fd = vm->vm_fd = -1;
			fzr_mem.host = calloc(1, FZR_MEM);
			if (fzr_mem.host == NULL)
				abort();
			fzr_mem.size = FZR_MEM;
			fzr_mem.memfd = -1;
		}
	}
	vmm_registry_set_memory(&fzr_mem);
	if (vmm_registry_init(fzr_config.vmms, fzr_config.nvmms, &e) < 0)
		fzr_fail("registry", &e);
	router_thread_register();
	fzr_generation = router_current()->generation;
}

/*
 * Put the config's routes back (what a routes.batch of them would do) when
 * the table changed since they were last put back: the live route set, a
 * new table published, KVM's compiled routes synced; and a quiescent state,
 * so that the tables retired meanwhile are freed (by liburcu's call_rcu
 * thread, some milliseconds later: an input that changed the routes ends
 * with more mallocs than frees, and libFuzzer checks it for leaks).
 */
static inline void fzr_reset_routes(void)
{
	struct errbuf e;
	router_quiescent();
	if (router_current()->generation == fzr_generation)
		return;
	live_fini();
	if (live_init(fzr_config.routes, fzr_config.nroutes, &e) < 0)
		fzr_fail("live", &e);
	struct route_table *t = route_table_build(fzr_config.routes, fzr_config.nroutes,
						  config_vmm_resolve, &fzr_config, &e);
	if (t == NULL)
		fzr_fail("routes", &e);
	router_publish(t);
	ioregion_sync(router_current());
	router_quiescent();
	fzr_generation = router_current()->generation;
}

static inline void fzr_down(void)
{
	router_thread_unregister();
	vmm_registry_fini();
	live_fini();
	router_fini();
	config_free(&fzr_config);
}

#endif
