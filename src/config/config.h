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
 *     "hvt":     {"block": {"NAME": {"path": "disk.img", "sector_size": 512}},
 *                 "net": {"NAME": {"tap": "tap0", "mac": "02:00:00:00:00:01"}}},
 *     "vmms":    [{"name": "uart", "role": "uart16550",
 *                  "placement": "main", "input": "stdin",
 *                  "output": "stdout", "args": {"key": "value"}}],
 *     "routes":  ["io:0x3f8-0x3ff=uart", "type:hlt=main"],
 *     "debug":   {"single_step": false, "sw_breakpoints": false,
 *                 "breakpoints": ["0x100010"], "gdb": "tcp::1234",
 *                 "gdb_wait": false},
 *     "watchdog": "5s",
 *     "stats":   true,
 *     "stats_json": "stats.json",
 *     "log_level": "warn",
 *     "defaults": false,
 *     "api_sock": "vmmux.sock",
 *     "trace": "trace.json",
 *     "trace_events": 65536
 *   }
 *
 * Every field is optional except guest.kernel (which the command line may
 * give instead). Numbers may be JSON integers or strings ("0x7c00"); sizes
 * and durations are strings with units ("64M", "50ms"); machine.mem may also
 * be an integer number of MiB. Every relative path in the file (guest.kernel,
 * a VMM's input and output, stats_json, api_sock, trace) is relative to the config
 * file's directory. Unknown keys, wrong JSON types and duplicate keys are errors.
 * Every error names the file and its JSON path: "vm.json: machine.mem: ...".
 * A file with "vmms" or "routes" turns the PC-like defaults off unless it
 * also says "defaults": true. guest.format "hvt" (with guest.args, the
 * unikernel's command line) makes the guest a Solo5 hvt unikernel, whose
 * devices the "hvt" section attaches (config.hvt; src/hvt/hvt.h runs it).
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

#define CONFIG_VMMS_MAX	       (VMM_MAX - 1)
#define CONFIG_ROUTES_MAX      1024
#define CONFIG_BREAKPOINTS_MAX 4
#define CPUS_MAX	       64
#define MEM_MIN		       (1ull << 20)
#define MEM_MAX		       (4ull << 30)
#define MEM_DEFAULT	       (64ull << 20)

/*
 * A Solo5 hvt guest (guest.format "hvt" and the "hvt" section,
 * docs/config.md; run by src/hvt/ with the config's VMMs and routes).
 */
#define CONFIG_HVT_DEVS_MAX 63
struct config_hvt_dev {
	bool net;	 /* a net device; else a block device */
	char *name;	 /* its name in the unikernel's manifest */
	char *target;	 /* block: the disk image's path; net: the tap's name */
	uint64_t sector; /* block: the sector size; 0: 512 */
	bool mac_set;	 /* net: mac given; else a random one */
	uint8_t mac[6];
};
struct config_hvt {
	bool on;      /* guest.format is "hvt" */
	char *source; /* the config file's name, for messages; NULL: none */
	size_t nargs; /* guest.args: the unikernel's command line */
	char **args;
	size_t ndev;
	struct config_hvt_dev dev[CONFIG_HVT_DEVS_MAX];
};

struct vmmux_config {
	/* machine */
	uint64_t mem_bytes; /* multiple of 4 KiB, MEM_MIN..MEM_MAX */
	unsigned cpus;	    /* 1..CPUS_MAX */
	bool irqchip;	    /* in-kernel irqchip and PIT */
	bool irqchip_set;   /* irqchip was given (option or file); else the machine's default */
	bool fw_cfg_set;    /* fw_cfg was given; else the machine's default */
	bool pc;	    /* set by config_finish: the guest gets QEMU's pc machine */
	/* guest */
	char *kernel;	       /* path; NULL until given */
	struct load_opts load; /* format, load_addr, entry, mode (cmdline unset) */
	bool load_addr_set;    /* load.load_addr was given (raw images need it) */
	char *append;	       /* multiboot command-line text, or NULL */
	/* Multiboot modules (loader/modules.h): the --initrd / guest.initrd list
	 * (a later one replaces it), then the --module / guest.modules strings
	 * (appended); config_finish joins them into load.modules (mb_modules). */
	char **initrd;
	size_t ninitrd;
	char **modules;
	size_t nmodules;
	const char **mb_modules;
	bool fw_cfg;	       /* --fw-cfg: the fwcfg VMM at io:0x510-0x511 (QEMU's fw_cfg) */
	struct config_hvt hvt; /* a Solo5 hvt guest (hvt.on) */
	/* VMMs (the main VMM is implicit and not listed) */
	size_t nvmms;
	struct vmm_config vmms[CONFIG_VMMS_MAX];
	/* routes */
	size_t nroutes;
	struct route_spec routes[CONFIG_ROUTES_MAX];
	bool defaults;	   /* add the PC-like default VMMs and routes */
	bool all_parallel; /* run --parallel: VMMs without a placement run as processes */
	bool spin_set;	   /* run --spin: the spin of parallel VMMs without their own */
	uint64_t spin_ns;
	/* debug */
	bool single_step;
	bool sw_breakpoints; /* KVM_GUESTDBG_USE_SW_BP: int3 exits as #BP */
	size_t nbreakpoints;
	uint64_t breakpoints[CONFIG_BREAKPOINTS_MAX];
	/* --gdb: the GDB stub's socket ("tcp::PORT", "tcp:HOST:PORT" or
	 * "unix:PATH"), or NULL; config_finish adds the VMM 'gdb' (role
	 * gdbstub) and the routes exception:1=gdb and exception:3=gdb */
	char *gdb;
	bool gdb_wait; /* --gdb-wait: hold the vCPUs until the debugger continues */
	/* run */
	uint64_t watchdog_ns;  /* 0 = none */
	bool stats;	       /* print statistics at exit */
	char *stats_json;      /* write statistics as JSON to this path */
	char *api_sock;	       /* the control socket's path (src/api/api.h), or NULL */
	char *trace;	       /* write the event trace to this path (stats/trace.h) */
	uint32_t trace_events; /* trace records per track (vCPU, main loop); 0: default */
	int log_level;
	bool log_timestamps; /* log lines start with seconds since start (log.h) */
	bool no_seccomp;     /* --no-seccomp: vmmux's threads run without their filters */
};

/* Defaults: 64 MiB, 1 vCPU, irqchip and fw_cfg not given (config_finish
 * decides them by the guest), defaults on, log level warn. */
void config_init(struct vmmux_config *c);
/* Free every string C owns and leave C as config_init makes it. */
void config_free(struct vmmux_config *c);

/*
 * Load the JSON file PATH into C (scalar fields present in the file replace
 * those in C; the lists vmms, routes and debug.breakpoints are appended to
 * those in C; a file with "vmms" or "routes" turns the PC-like defaults off
 * unless it says "defaults": true). Errors name the file and the JSON path
 * of the bad field. On error C may hold part of the file's fields but stays
 * consistent (config_free releases it).
 */
int config_load_json(struct vmmux_config *c, const char *path, struct errbuf *e);
/* The same from a string (NAME is used in messages; BASEDIR for relative
 * paths, may be NULL). */
int config_load_json_string(struct vmmux_config *c, const char *name, const char *text,
			    const char *basedir, struct errbuf *e);

/*
 * Parse "NAME=ROLE[,key=value...]" (the --vmm option) into a VMM config with
 * placement main; the keys input= and output= set the descriptors ("stdin",
 * "none" or a path; "stdout", "stderr", "none" or a path), placement= the
 * placement ("main"), the others become args (at most VMM_ARGS_MAX, each key
 * once). *out is overwritten; its strings are malloc'd: release them with
 * config_vmm_clear. On error *out owns nothing (clearing it is harmless).
 */
int config_parse_vmm_option(const char *s, struct vmm_config *out, struct errbuf *e);

/*
 * Parse the JSON object O, laid out as an entry of the config's "vmms" (the
 * same keys, types and checks; relative paths stay relative to the current
 * directory), into *OUT. NAME labels the object in messages ("NAME: role:
 * missing ..."). On error returns -1 and *out owns nothing. Release *out
 * with config_vmm_clear. (struct json_t is jansson's json_t.)
 */
struct json_t;
int config_vmm_from_json(struct json_t *o, const char *name, struct vmm_config *out,
			 struct errbuf *e);

/* True when one of the first N routes of C takes keys that R takes (the
 * overlap rule of config_finish's default routes; from= routes never
 * overlap). */
bool config_route_taken(const struct vmmux_config *c, size_t n, const struct route_spec *r);

/* Free the strings of V (input, output, args) and zero it. */
void config_vmm_clear(struct vmm_config *v);

/*
 * Append a VMM / a route; -1 when full, or for a VMM whose name is invalid,
 * "main" or taken, whose role is empty or too long, or with more than
 * VMM_ARGS_MAX args. config_add_vmm copies V's strings (the caller keeps V).
 */
int config_add_vmm(struct vmmux_config *c, const struct vmm_config *v, struct errbuf *e);
int config_add_route(struct vmmux_config *c, const struct route_spec *r, struct errbuf *e);

/*
 * Multiboot modules. config_set_initrd replaces the --initrd list with the
 * modules of S in QEMU's -initrd syntax ("FILE ARGS,FILE2", ",," a literal
 * comma); config_add_module appends one module string S ("FILE[ ARGS]", no
 * comma processing). The file part of each module is made relative to
 * BASEDIR when BASEDIR is not NULL (a config file's directory). OPT names
 * the option or field in messages. -1 with a message on a malformed value
 * or past MB_MODULES_MAX modules in all.
 */
int config_set_initrd(struct vmmux_config *c, const char *opt, const char *s, const char *basedir,
		      struct errbuf *e);
int config_add_module(struct vmmux_config *c, const char *opt, const char *s, const char *basedir,
		      struct errbuf *e);

/* Append a hardware breakpoint; -1 past CONFIG_BREAKPOINTS_MAX. */
int config_add_breakpoint(struct vmmux_config *c, uint64_t addr, struct errbuf *e);

/*
 * Field checks and parsers shared by the config file and the command line;
 * each returns 0 or -1 with a message that quotes the value.
 *   config_check_mem: a multiple of 4 KiB within MEM_MIN..MEM_MAX.
 *   config_check_cpus: 1..CPUS_MAX.
 *   config_check_trace_events: 1..TRACE_EVENTS_MAX (stats/trace.h), per track.
 *   config_parse_format: "auto" | "raw".
 *   config_parse_cpu_mode: "real" | "protected" | "long" | "user".
 *   config_parse_log_level: "error" | "warn" | "info" | "debug".
 */
int config_check_mem(uint64_t bytes, struct errbuf *e);
int config_check_cpus(uint64_t n, struct errbuf *e);
int config_check_trace_events(uint64_t n, struct errbuf *e);
int config_parse_format(const char *s, enum image_format *out, struct errbuf *e);
int config_parse_cpu_mode(const char *s, enum cpu_mode *out, struct errbuf *e);
int config_parse_log_level(const char *s, int *out, struct errbuf *e);

/*
 * Finish the config: when defaults is on, add the PC-like default VMMs that
 * the config does not define by name (uart: uart16550 on stdin/stdout, exit:
 * debug-exit, chipset, smm, fault: fault-report) and their routes
 * (io:0x3f8-0x3ff=uart, io:0xf4-0xf7=exit, io:0x64=chipset,
 * io:0xcf9=chipset, io:0x604-0x605=chipset, io:0xb2-0xb3=smm,
 * platform:smi=smm, io:0x4f0-0x4f3=fault), skipping each default route that
 * overlaps a route the user gave in the same key space (io and hypercall
 * share the port space, hypercall:N being port 0x500+N). A default VMM is
 * added only when it is still needed: one of its default routes survives, or
 * a route names it. A default route is added only when its VMM exists under
 * its default name (added now, or defined by the user). Then check what can
 * only be checked as a whole: a kernel is given, a type:hlt route is refused
 * with the irqchip on, a raw image has a load address, every breakpoint is
 * inside RAM, every route's VMM and fallback name "main" or a configured VMM.
 * With fw_cfg, a VMM "fwcfg" of role fwcfg is added unless one by that name
 * exists, with io:0x510-0x511=fwcfg unless a route overlaps those ports;
 * every VMM of role fwcfg gets the args cpus, max_cpus and ram from the
 * machine unless it gives them. The multiboot modules are joined into
 * load.modules (at most MB_MODULES_MAX).
 * Finally the global log_level and log_timestamps are set from C's.
 * Returns -1 with a
 * message. Calling it again adds nothing more.
 */
int config_finish(struct vmmux_config *c, struct errbuf *e);

/* config_finish with flags: CONFIG_FINISH_NO_KERNEL does not require a
 * kernel (`vmmux routes` shows a table without a guest). */
#define CONFIG_FINISH_NO_KERNEL 0x1u
int config_finish_flags(struct vmmux_config *c, unsigned flags, struct errbuf *e);

/*
 * vmm_resolve_fn over a finished config (ARG is the struct vmmux_config *):
 * "main" is 0, the config's VMMs are 1..nvmms in order, exactly the ids the
 * VMM registry gives them. Lets `vmmux routes` build a table without starting
 * any VMM. config_vmm_name is the reverse (route_vmm_name_fn).
 */
uint16_t config_vmm_resolve(void *arg, const char *name);
const char *config_vmm_name(void *arg, uint16_t id);

#endif
