/*
 * config.h: the whole description of a run.
 *
 * A run is described by one struct vmmux_config, filled from a JSON file
 * (config_load_json) and then from the command line (cli/), which overrides
 * the file field by field. The JSON layout (docs/config.md):
 *
 *   {
 *     "machine": {"mem": "64M", "cpus": 1, "irqchip": false,
 *                 "cpu_mode": "long"},
 *     "guest":   {"kernel": "guest.elf", "format": "auto",
 *                 "load_addr": "0x7c00", "entry": "0x7c00",
 *                 "append": "console=ttyS0"},
 *     "vmms":    [{"name": "uart", "role": "uart16550",
 *                  "placement": "main", "input": "stdin",
 *                  "output": "stdout", "args": {"key": "value"}}],
 *     "routes":  ["io:0x3f8-0x3ff=uart", "type:hlt=main"],
 *     "debug":   {"single_step": false, "breakpoints": ["0x100010"]},
 *     "watchdog": "5s",
 *     "stats":   true
 *   }
 *
 * Every field is optional except guest.kernel (which the command line may
 * give instead). Numbers may be JSON integers or strings ("0x7c00"); sizes
 * and durations are strings with units ("64M", "50ms"). A relative
 * guest.kernel is relative to the config file's directory. Unknown keys are
 * errors. Every error names its JSON path: "vm.json: machine.mem: ...".
 */
#ifndef VMMUX_CONFIG_CONFIG_H
#define VMMUX_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loader/loader.h"
#include "route/spec.h"
#include "util/err.h"
#include "vmm/vmm.h"

#define CONFIG_VMMS_MAX (VMM_MAX - 1)
#define CONFIG_ROUTES_MAX 1024
#define CONFIG_BREAKPOINTS_MAX 4
#define CPUS_MAX 64
#define MEM_MIN (1ull << 20)
#define MEM_MAX (4ull << 30)
#define MEM_DEFAULT (64ull << 20)

struct vmmux_config {
	/* machine */
	uint64_t mem_bytes; /* multiple of 4 KiB, MEM_MIN..MEM_MAX */
	unsigned cpus;      /* 1..CPUS_MAX */
	bool irqchip;       /* in-kernel irqchip and PIT */
	/* guest */
	char *kernel;       /* path; NULL until given */
	struct load_opts load; /* format, load_addr, entry, mode (cmdline unset) */
	char *append;       /* multiboot command-line text, or NULL */
	/* VMMs (the main VMM is implicit and not listed) */
	size_t nvmms;
	struct vmm_config vmms[CONFIG_VMMS_MAX];
	/* routes */
	size_t nroutes;
	struct route_spec routes[CONFIG_ROUTES_MAX];
	bool defaults; /* add the PC-like default VMMs and routes */
	/* debug */
	bool single_step;
	size_t nbreakpoints;
	uint64_t breakpoints[CONFIG_BREAKPOINTS_MAX];
	/* run */
	uint64_t watchdog_ns; /* 0 = none */
	bool stats;           /* print statistics at exit */
	char *stats_json;     /* write statistics as JSON to this path */
	int log_level;
};

/* Defaults: 64 MiB, 1 vCPU, no irqchip, defaults on, log level warn. */
void config_init(struct vmmux_config *c);
void config_free(struct vmmux_config *c);

/*
 * Load the JSON file PATH into C (fields present in the file replace those in
 * C; a file with "vmms" or "routes" turns the PC-like defaults off). Errors
 * name the file and the JSON path of the bad field.
 */
int config_load_json(struct vmmux_config *c, const char *path, struct errbuf *e);
/* The same from a string (NAME is used in messages; BASEDIR for relative
 * paths, may be NULL). */
int config_load_json_string(struct vmmux_config *c, const char *name, const char *text,
			    const char *basedir, struct errbuf *e);

/*
 * Parse "NAME=ROLE[,key=value...]" (the --vmm option) into a VMM config with
 * placement main; the keys input= and output= set the descriptors, the others
 * become args.
 */
int config_parse_vmm_option(const char *s, struct vmm_config *out, struct errbuf *e);

/* Append a VMM / a route; -1 when full or the VMM name is taken. */
int config_add_vmm(struct vmmux_config *c, const struct vmm_config *v, struct errbuf *e);
int config_add_route(struct vmmux_config *c, const struct route_spec *r, struct errbuf *e);

/*
 * Finish the config: when defaults is on, add the PC-like default VMMs that
 * the config does not define by name (uart: uart16550 on stdin/stdout, exit:
 * debug-exit, chipset, smm, fault: fault-report) and their routes
 * (io:0x3f8-0x3ff=uart, io:0xf4-0xf7=exit, io:0x64=chipset,
 * io:0xcf9=chipset, io:0x604-0x605=chipset, io:0xb2-0xb3=smm,
 * io:0x4f0-0x4f3=fault), skipping each default route that overlaps a route
 * the user gave. Then check what can only be checked as a whole: a kernel
 * is given, a type:hlt route is refused with the irqchip on, every
 * breakpoint is below the RAM size... Returns -1 with a message.
 */
int config_finish(struct vmmux_config *c, struct errbuf *e);

/*
 * vmm_resolve_fn over a finished config (ARG is the struct vmmux_config *):
 * "main" is 0, the config's VMMs are 1..nvmms in order, exactly the ids the
 * VMM registry gives them. Lets `vmmux routes` build a table without starting
 * any VMM. config_vmm_name is the reverse (route_vmm_name_fn).
 */
uint16_t config_vmm_resolve(void *arg, const char *name);
const char *config_vmm_name(void *arg, uint16_t id);

#endif
