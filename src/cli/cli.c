/*
 * cli.c: the commands of vmmux (run, routes, roles, top, ctl, help; vmm, internal), --help and
 * --version. Option parsing lives in cli_parse.c.
 *
 * Output discipline: help, the routing table and the role list go to stdout;
 * errors go to stderr as "vmmux: message", followed for command-line errors
 * by a hint to the command's help, with exit status EXIT_USAGE.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "snapshot/snapshot.h"
#include "snapshot/update.h"
#include "cli/ctl.h"
#include "cli/qemu.h"
#include "cli/top.h"
#include "config/config.h"
#include "event/event.h"
#include "route/table.h"
#include "util/log.h"
#include "vmm/machine.h"
#include "vmm/vmm.h"
#include "hvt/hvt.h"
#include "vmmlib/vmmlib.h"
#include "vmmux_commit.h" /* generated: VMMUX_COMMIT (meson.build) */

/* ---------------------------------------------------------------------- */
/* Help text                                                                */
/* ---------------------------------------------------------------------- */

static const char help_main[] =
    "Usage: vmmux COMMAND [OPTIONS]\n"
    "       vmmux --help | --version\n"
    "\n"
    "vmmux runs a guest in a Linux KVM virtual machine and routes every privileged\n"
    "event the guest cannot handle itself (port I/O, MMIO, MSR accesses, HLT,\n"
    "hypercalls, exceptions, shutdown, platform events, interrupt requests) through\n"
    "a routing table to the virtual machine monitor (VMM) the table names: the main\n"
    "VMM, which is vmmux itself, or an instance of a role such as a UART, an exit\n"
    "device, a chipset, an SMI handler or a monitor.\n"
    "\n"
    "Commands:\n"
    "  run              boot a guest and run it until it powers off, exits or\n"
    "                   crashes\n"
    "  routes           check a configuration and print its compiled routing table\n"
    "  roles            list the built-in VMM roles\n"
    "  top              watch a running VM: events, routes and VMMs with their\n"
    "                   rates and latencies, through its control socket\n"
    "  ctl              send a command to a running VM through its control socket:\n"
    "                   change its routes, add, stop, restart or swap VMMs, raise\n"
    "                   platform events, read its statistics\n"
    "  hvt              run a Solo5 hvt unikernel, as solo5-hvt does (vmmux hvt\n"
    "                   --help)\n"
    "  qemu ARGS        run a kernel from qemu-system-x86_64's command line, also\n"
    "                   when started as qemu-system-x86_64 (vmmux qemu -help)\n"
    "  help [COMMAND]   show this help, or the help of COMMAND\n"
    "  vmm NAME         (internal) serve a built-in role as a parallel VMM process;\n"
    "                   vmmux run starts it, in its sandbox, for a VMM whose\n"
    "                   placement is parallel\n"
    "\n"
    "Options:\n"
    "  -h, --help       show this help\n"
    "  --version        print the version and the commit it was built from\n"
    "\n"
    "'vmmux help COMMAND' or 'vmmux COMMAND --help' shows a command's options.\n";

static const char help_run_intro[] =
    "Usage: vmmux run [OPTIONS]\n"
    "\n"
    "Boot the guest image given by --kernel (or guest.kernel in a --config file) in\n"
    "a new KVM virtual machine and run it until the guest powers off, ends the run\n"
    "through the exit device, or crashes. Each privileged event of the guest goes\n"
    "to the VMM that the routing table names; the table is made of the --route\n"
    "options, the routes of the config file and the PC-like defaults.\n"
    "\n"
    "A --config file is loaded first, wherever it appears on the command line; the\n"
    "other options then apply in the order given and override the file's values\n"
    "(--route, --vmm and --break add to the file's lists).\n";

static const char help_options[] =
    "Guest:\n"
    "  --kernel FILE          the guest image (run needs one): multiboot v1,\n"
    "                         entered in 32-bit protected mode as 'qemu -kernel'\n"
    "                         does; ELF64, entered in 64-bit long mode; or a raw\n"
    "                         binary with --format raw\n"
    "  --format auto|raw      image format (default auto: a multiboot header in the\n"
    "                         first 8 KiB, then ELF64); raw loads the file as it is\n"
    "                         at --load-addr\n"
    "  --load-addr ADDR       where a raw image is loaded (required with --format raw)\n"
    "  --entry ADDR           entry point of a raw image (default: the load address)\n"
    "  --cpu-mode MODE        the mode the vCPUs start in: real, protected, long, or\n"
    "                         user (64-bit at CPL3 with IOPL 3: guest code runs at\n"
    "                         native speed there); default: the image format's mode\n"
    "  --append TEXT          multiboot command line text; the guest gets the image\n"
    "                         path, a space, then TEXT, as QEMU builds it\n"
    "                         (default: empty, so the path and a space)\n"
    "  --initrd \"FILE ARGS,FILE2\"\n"
    "                         multiboot modules in QEMU's -initrd syntax: a comma\n"
    "                         separates modules, ',,' is a literal comma; each\n"
    "                         module's string (what the kernel sees) is its text,\n"
    "                         the file is that text up to its first space. Modules\n"
    "                         are loaded page-aligned after the kernel, in order;\n"
    "                         a later --initrd replaces an earlier one\n"
    "  --module \"FILE[ ARGS]\"\n"
    "                         add one multiboot module after the --initrd ones\n"
    "                         (repeatable; commas are taken as they are)\n"
    "\n"
    "Machine:\n"
    "  --mem SIZE             guest RAM: a number with a K, M, G or T suffix (binary\n"
    "                         units), a bare number meaning MiB as QEMU's -m; a\n"
    "                         multiple of 4K from 1M to 4G (default 64M)\n"
    "  --cpus N               number of vCPUs, 1 to 64 (default 1)\n"
    "  The machine: a multiboot kernel (what qemu -kernel boots) gets QEMU's pc\n"
    "  machine, with the in-kernel irqchip and fw_cfg; ELF64 and raw images get\n"
    "  neither unless asked for; hvt unikernels get solo5-hvt's machine.\n"
    "  --irqchip              use KVM's in-kernel local APIC, I/O APIC and PIT\n"
    "  --no-irqchip           do not: HLT then exits to vmmux, where a type:hlt\n"
    "                         route can send it to a VMM; a multiboot kernel's\n"
    "                         other vCPUs then never get their INIT and SIPI\n"
    "  --fw-cfg               QEMU's firmware configuration interface: a VMM\n"
    "                         'fwcfg' (role fwcfg) on io:0x510-0x511 that gives\n"
    "                         the signature, the CPU count, the maximum CPU count,\n"
    "                         the RAM size and the file etc/e820\n"
    "  --no-fw-cfg            no fw_cfg\n"
    "\n"
    "Routing:\n"
    "  --route SPEC           add a route (repeatable); see ROUTES below\n"
    "  --vmm NAME=ROLE[,KEY=VALUE...]\n"
    "                         add a VMM named NAME running role ROLE (repeatable;\n"
    "                         'vmmux roles' lists the roles). input=stdin|none|PATH\n"
    "                         and output=stdout|stderr|none|PATH give its input and\n"
    "                         output (default none), placement=main|parallel where\n"
    "                         it runs (inside vmmux, the default, or as a separate\n"
    "                         sandboxed process), memory=all|A-B|A+SIZE the guest\n"
    "                         RAM it may access (repeatable, 4 KiB-aligned;\n"
    "                         default none), raise=GRANT what it may raise\n"
    "                         (repeatable: irq:LINE[:edge|:level], platform:NAME,\n"
    "                         request:NAME, exception, forward; default: its\n"
    "                         role's own),\n"
    "                         timeout=DURATION how long a parallel VMM may take to\n"
    "                         answer (default 1s), spin=DURATION how long each side\n"
    "                         of its shared-memory transport spins before it\n"
    "                         sleeps (at most 1ms), cpu=N the CPU a parallel VMM\n"
    "                         is pinned to (default: not pinned). ROLE 'external'\n"
    "                         with\n"
    "                         program=PATH runs a third party's parallel VMM\n"
    "                         program. Every other KEY=VALUE is an argument of the\n"
    "                         role (at most 16)\n"
    "  --parallel             run every VMM whose placement is not given as a\n"
    "                         parallel VMM process\n"
    "  --spin DURATION        how long both sides of a parallel VMM's transport\n"
    "                         spin before they sleep, for VMMs without their own\n"
    "                         spin= (default 50us, at most 1ms; 0s: never spin)\n"
    "  --no-defaults          do not add the PC-like default VMMs and routes\n"
    "  --config FILE.json     load a JSON config file (see CONFIG FILE below)\n"
    "\n"
    "Debugging and statistics:\n"
    "  --single-step          single-step the guest through KVM guest debug\n"
    "  --sw-breakpoints       let KVM report the guest's int3 (#BP) as an exception\n"
    "                         event, vector 3 (KVM_GUESTDBG_USE_SW_BP; hosts without\n"
    "                         hardware VMX cannot: see docs/host-limits.md)\n"
    "  --break ADDR           hardware breakpoint at guest address ADDR, below the\n"
    "                         RAM size (repeatable, at most 4: DR0-DR3)\n"
    "  --gdb tcp::PORT|tcp:HOST:PORT|unix:PATH\n"
    "                         a GDB remote stub on that socket (TCP on 127.0.0.1\n"
    "                         unless HOST is given): the VMM 'gdb' (role gdbstub)\n"
    "                         with the routes exception:1=gdb and exception:3=gdb;\n"
    "                         see docs/debugging.md\n"
    "  --gdb-wait             with --gdb: hold the guest before its first\n"
    "                         instruction until the debugger continues it\n"
    "  --no-seccomp           debugging only: run vmmux's own threads without\n"
    "                         their seccomp filters (docs/security.md)\n"
    "  --watchdog DURATION    end the run as a guest crash when it lasts longer than\n"
    "                         DURATION: a number with ns, us, ms or s (for example\n"
    "                         5s); default: no watchdog\n"
    "  --stats                print event statistics at exit: per event type, per\n"
    "                         route and per VMM, with latency percentiles\n"
    "  --stats-json FILE      write the statistics as JSON to FILE at exit\n"
    "  --trace FILE           write a trace of the routed events to FILE at exit,\n"
    "                         in the Chrome/Perfetto JSON trace format (one track\n"
    "                         per vCPU and one for the main loop; open it in\n"
    "                         ui.perfetto.dev or chrome://tracing). Each track\n"
    "                         keeps its last --trace-events events\n"
    "  --trace-events N       events kept per track, 1 to 1048576 (default 65536;\n"
    "                         64 bytes each)\n"
    "  --api-sock PATH        open a control socket at PATH (a Unix socket, mode\n"
    "                         0600, only vmmux's own user may connect) through\n"
    "                         which 'vmmux ctl' and 'vmmux top' watch and change\n"
    "                         the running VM (docs/control-api.md). PATH must not\n"
    "                         exist, unless it is a stale socket (nobody listens\n"
    "                         on it), which is replaced; it is removed at exit\n"
    "  --restore PATH         resume the machine stored in the snapshot PATH\n"
    "                         ('vmmux ctl snapshot'): run with the command line\n"
    "                         it was started with, in its working directory,\n"
    "                         followed by the other options given here\n"
    "                         (docs/snapshot.md)\n"
    "  --log-level LEVEL      error, warn (the default), info or debug; the\n"
    "                         environment variable VMMUX_LOG sets it too, below the\n"
    "                         config file and this option\n"
    "  --log-timestamps       start each log line with the monotonic time since\n"
    "                         vmmux started, in seconds: [    0.123456]\n"
    "  -h, --help             show this help\n"
    "\n"
    "ADDR and N are decimal, or hexadecimal with 0x.\n";

static const char help_routes_grammar[] =
    "ROUTES\n"
    "  A route spec is KIND:KEY=VMM[;OPTION...]\n"
    "    KIND    io, mmio, msr, hypercall, exception, platform, request or type\n"
    "    KEY     one key, A-B (an inclusive range) or A+N (a base and a size), for\n"
    "            every kind. Keys are numbers (decimal or 0x hex) or names:\n"
    "              type:      io mmio msr hlt hypercall exception shutdown platform\n"
    "                         irq request fault\n"
    "              platform:  smi reset poweroff powerbtn watchdog\n"
    "              request:   exit\n"
    "              exception: de db nmi bp of br ud nm df ts np ss gp pf mf ac mc\n"
    "                         xm\n"
    "            Domains: io 0-0xffff; mmio 64-bit addresses; msr 32-bit indices;\n"
    "            hypercall 0-255 (hypercall N is a 32-bit OUT to port 0x500+N with\n"
    "            the argument's guest-physical address in EAX); exception 0-255.\n"
    "    VMM     main (vmmux itself) or the name of a VMM ([a-z0-9_-], at most 31),\n"
    "            or a group chosen per event: group(POLICY:NAME,NAME*WEIGHT,...)\n"
    "            with POLICY least-loaded, round-robin, weighted (NAME*WEIGHT) or\n"
    "            sticky (one member per vCPU); docs/routing.md states each rule\n"
    "    OPTION  posted            writes are queued to the VMM and the guest goes\n"
    "                              on without waiting (io and mmio only)\n"
    "            fallback=VMM      the VMM that takes over when VMM fails or times\n"
    "                              out\n"
    "            timeout=DURATION  how long to wait for VMM's reply\n"
    "            from=VMM          match only events that VMM raises or hands on\n"
    "                              (routes by source; they come first)\n"
    "            coalesced         writes go to KVM's coalesced ring, no exit each;\n"
    "                              vmmux drains it in order to VMM (io and mmio)\n"
    "            doorbell[=VALUE]  one aligned write signals an eventfd in KVM, no\n"
    "                              exit; VMM sees a write of VALUE (default 0)\n"
    "            posted, fallback and timeout concern parallel VMMs: an in-process\n"
    "            VMM answers at once and never fails over.\n"
    "  An access is routed by its first port or address. Routes of one key space\n"
    "  may not overlap (io and hypercall routes share the port space). A type:\n"
    "  route names the VMM of the events of that type that no keyed route takes;\n"
    "  without one, they go to main.\n"
    "\n"
    "  Examples:\n"
    "    io:0x3f8-0x3ff=uart           COM1's eight ports to the VMM 'uart'\n"
    "    mmio:0xd0000000+0x1000=mon    a 4 KiB MMIO page to 'mon'\n"
    "    msr:0x40001000-0x400010ff=mon 256 MSRs to 'mon'\n"
    "    type:hlt=mon                  every HLT to 'mon' (needs --no-irqchip)\n"
    "    platform:smi=smm              system management interrupts to 'smm'\n"
    "    hypercall:2=mon               hypercall 2 (port 0x502) to 'mon'\n"
    "    io:0x3f8-0x3ff=uart;posted;fallback=main;timeout=50ms\n"
    "                                  COM1 with posted writes; main takes over\n"
    "                                  when 'uart' fails or is 50 ms late\n";

static const char help_defaults[] =
    "PC-LIKE DEFAULTS\n"
    "  Unless --no-defaults is given (or \"defaults\": false in a config file),\n"
    "  these VMMs and routes are added; the VMMs and routes of the command line\n"
    "  and of a config file add to them:\n"
    "    uart     uart16550 on stdin/stdout  io:0x3f8-0x3ff=uart (COM1)\n"
    "    exit     debug-exit                 io:0xf4-0xf7=exit\n"
    "    chipset  chipset                    io:0x64=chipset (i8042 reset),\n"
    "                                        io:0xcf9=chipset (reset control),\n"
    "                                        io:0x604-0x605=chipset (ACPI power-off)\n"
    "    smm      smm                        io:0xb2-0xb3=smm (APM), platform:smi=smm\n"
    "    fault    fault-report               io:0x4f0-0x4f3=fault (guest faults)\n"
    "  A --vmm with a default's name replaces that default VMM (the default routes\n"
    "  then go to yours). A route of yours replaces only the keys it covers of a\n"
    "  default route: --route io:0x3f8=main leaves io:0x3f9-0x3ff=uart. A default\n"
    "  route covered whole is left out, and so is a default VMM left with no\n"
    "  route.\n";

static const char help_config[] =
    "CONFIG FILE\n"
    "  A JSON object; every field is optional, unknown keys are errors:\n"
    "    {\"machine\":  {\"mem\": \"64M\", \"cpus\": 1, \"irqchip\": false,\n"
    "                  \"cpu_mode\": \"long\", \"fw_cfg\": false},\n"
    "     \"guest\":    {\"kernel\": \"guest.elf\", \"format\": \"auto\",\n"
    "                  \"load_addr\": \"0x100000\", \"entry\": \"0x100000\",\n"
    "                  \"append\": \"text\", \"initrd\": \"m1 a=1,m2\",\n"
    "                  \"modules\": [\"m3 b=2\"]},\n"
    "     \"vmms\":     [{\"name\": \"mon\", \"role\": \"monitor\", \"placement\": \"main\",\n"
    "                   \"input\": \"none\", \"output\": \"stderr\",\n"
    "                   \"args\": {\"key\": \"value\"}, \"memory\": [\"0x100000+0x1000\"],\n"
    "                   \"raise\": [\"irq:4\"], \"timeout\": \"1s\", \"spin\": \"50us\"},\n"
    "                  {\"name\": \"ext\", \"program\": \"my-vmm\",\n"
    "                   \"program_args\": [\"-v\"], \"placement\": \"parallel\"}],\n"
    "     \"routes\":   [\"io:0x80=mon\"],\n"
    "     \"debug\":    {\"single_step\": false, \"breakpoints\": [\"0x100010\"]},\n"
    "     \"watchdog\": \"5s\", \"stats\": true, \"stats_json\": \"stats.json\",\n"
    "     \"trace\": \"trace.json\", \"trace_events\": 65536,\n"
    "     \"log_level\": \"warn\", \"log_timestamps\": false, \"defaults\": true,\n"
    "     \"api_sock\": \"vm.sock\"}\n"
    "  Numbers are JSON integers or strings (\"0x7c00\"); machine.mem is a size\n"
    "  string or an integer number of MiB. Relative paths are relative to the\n"
    "  file's directory.\n";

static const char help_exit[] =
    "EXIT STATUS\n"
    "  0     the guest powered off\n"
    "  odd   the guest wrote V to the exit device (io:0xf4): ((V << 1) | 1) & 0xff\n"
    "  2     bad command line or config\n"
    "  4     bad guest image\n"
    "  6     host or KVM failure\n"
    "  8     the guest crashed: triple fault, unhandled exception, halted for\n"
    "        good, or the watchdog fired\n"
    "\n"
    "  SIGINT, SIGTERM or SIGHUP end the run; vmmux restores the terminal and dies\n"
    "  of the same signal.\n";

static const char help_run_examples[] =
    "EXAMPLES\n"
    "  vmmux run --kernel guest.elf\n"
    "  vmmux run --kernel boot.bin --format raw --load-addr 0x7c00 --cpu-mode real\n"
    "  vmmux run --kernel guest.elf --vmm mon=monitor,output=stderr \\\n"
    "            --route io:0x80=mon --route type:hlt=mon\n"
    "  vmmux run --config vm.json --mem 128M --stats\n";

static const char help_routes_intro[] =
    "Usage: vmmux routes [--json] [OPTIONS]\n"
    "\n"
    "Check a configuration as 'vmmux run' would (the PC-like defaults added, every\n"
    "VMM name resolved, overlaps refused) and print the routing table it compiles\n"
    "to: one line per route in key order, the type defaults last. No guest is run\n"
    "and --kernel is not needed. The options are those of 'vmmux run', so that\n"
    "replacing run by routes in a command line shows the table that run would use;\n"
    "the ones that matter here are --config, --route, --vmm, --no-defaults and\n"
    "--irqchip/--no-irqchip. Exit status 0, or 2 with the error.\n"
    "\n"
    "The first line is a header: SPEC, VMM, OPTIONS. With --json, the table is\n"
    "printed as JSON instead: {\"routes\": [{\"spec\", \"kind\", \"vmm\", \"implicit\",\n"
    "\"group\", \"posted\", \"coalesced\", \"doorbell\", \"fallback\", \"from\",\n"
    "\"timeout_ns\"}...]}, every key always there (docs/routing.md).\n"
    "\n"
    "Example:\n"
    "  vmmux routes --vmm mon=monitor --route io:0x80=mon --route type:hlt=mon\n"
    "\n";

static const char help_roles[] =
    "Usage: vmmux roles [--json]\n"
    "\n"
    "List the built-in VMM roles, with what each does. A role is the code of a\n"
    "VMM; '--vmm NAME=ROLE' (or \"vmms\" in a config file) starts an instance of it\n"
    "named NAME, which routes then name.\n"
    "\n"
    "  --json   print {\"roles\": [{\"name\", \"summary\", \"args\", \"raises\"}...]}:\n"
    "           each role's name, its one-line summary, the arguments it takes\n"
    "           and what it raises by default (docs/routing.md)\n";

static const char help_help[] =
    "Usage: vmmux help [COMMAND]\n"
    "\n"
    "Show the help of vmmux, or of COMMAND: any command that 'vmmux help' lists.\n";

static void print_help_run(FILE *f)
{
	fprintf(f, "%s\n%s\n%s\n%s\n%s\n%s\n%s", help_run_intro, help_options, help_routes_grammar,
		help_defaults, help_config, help_exit, help_run_examples);
}

static void print_help_routes(FILE *f)
{
	fprintf(f, "%s%s\n%s\n%s", help_routes_intro, help_options, help_routes_grammar,
		help_defaults);
}

static void print_help_main(FILE *f)
{
	fprintf(f, "%s\n%s", help_main, help_exit);
}

/* ---------------------------------------------------------------------- */
/* Commands                                                                 */
/* ---------------------------------------------------------------------- */

/* "vmmux: MSG" and the hint to CMD's help (CMD NULL: vmmux's own help). */
static int usage_error(const char *cmd, const char *msg)
{
	fprintf(stderr, "vmmux: %s\nTry 'vmmux %s%s--help'.\n", msg, cmd ? cmd : "",
		cmd ? " " : "");
	return EXIT_USAGE;
}

/* A config from the command line: init, VMMUX_LOG, options. Returns NULL
 * with *status set when there is nothing to run (help shown, or error). */
static struct vmmux_config *parse_config(const char *cmd, int argc, char **argv, int *status,
					 void (*help)(FILE *))
{
	struct vmmux_config *c = malloc(sizeof(*c));
	if (c == NULL) {
		fprintf(stderr, "vmmux: out of memory\n");
		*status = EXIT_HOST;
		return NULL;
	}
	config_init(c);
	const char *env = getenv("VMMUX_LOG");
	if (env != NULL && env[0] != '\0') {
		struct errbuf e;
		if (config_parse_log_level(env, &c->log_level, &e))
			log_warn("VMMUX_LOG: %s; ignored", e.msg);
	}
	struct errbuf e;
	int rc = cli_parse_run(argc, argv, c, &e);
	if (rc == 0)
		return c;
	if (rc == CLI_HELP) {
		help(stdout);
		*status = 0;
	} else {
		*status = usage_error(cmd, e.msg);
	}
	config_free(c);
	free(c);
	return NULL;
}

/* NAME VALUE (or NAME=VALUE) among ARGV (NAME: --restore, or the internal
 * --resume-from-fd and --update-check-fd of a live update): its value and
 * the index of the option (-1: none); *WIDTH is 1 or 2 arguments. */
static const char *find_opt(int argc, char **argv, const char *name, int *at, int *width)
{
	size_t nl = strlen(name);
	*at = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], name) == 0 && i + 1 < argc) {
			*at = i;
			*width = 2;
			return argv[i + 1];
		}
		if (strncmp(argv[i], name, nl) == 0 && argv[i][nl] == '=') {
			*at = i;
			*width = 1;
			return argv[i] + nl + 1;
		}
	}
	return NULL;
}

/* A descriptor number given to an internal option, or -1. */
static int fd_arg(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' && v >= 0 && v < INT_MAX ? (int)v : -1;
}

/* The files the new program reads again as it starts (and at each guest
 * reset): the guest image and the multiboot modules, by the run's paths.
 * One that is gone since the run started would end the guest after the
 * exec, where nothing can go back. 0, or -1 naming the file. */
static int guest_files_readable(const struct vmmux_config *c, struct errbuf *e)
{
	if (c->kernel != NULL && access(c->kernel, R_OK) < 0)
		return err_set(e, "the guest image %s: %s", c->kernel, strerror(errno));
	for (size_t i = 0; i < c->load.nmodules; i++) {
		const char *m = c->load.modules[i];
		size_t n = strcspn(m, " ");
		char *file = strndup(m, n);
		int rc = file != NULL && access(file, R_OK) == 0 ? 0 : -1;
		int err = file != NULL ? errno : ENOMEM;
		if (rc < 0)
			err_set(e, "the multiboot module %.*s: %s", (int)n, m, strerror(err));
		free(file);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* `vmmux run --update-check-fd FD` (src/snapshot/update.h): does this vmmux
 * take the live update's state on FD? One line on stdout, which the old
 * program reads. */
static int update_check(const char *arg)
{
	int fd = fd_arg(arg), sargc, status;
	char **sargv;
	struct errbuf e;
	if (fd < 0) {
		printf("vmmux update-check: refused: '%s' is not a descriptor number\n", arg);
		return EXIT_USAGE;
	}
	if (update_check_open(fd, &sargc, &sargv, &e) < 0) {
		printf("vmmux update-check: refused: %s\n", e.msg);
		snapshot_restore_close();
		return EXIT_IMAGE;
	}
	struct vmmux_config *c = parse_config("run", sargc, sargv, &status, print_help_run);
	if (c == NULL) {
		printf("vmmux update-check: refused: the run's command line does not parse "
		       "here (status %d)\n",
		       status);
		snapshot_restore_close();
		return EXIT_USAGE;
	}
	/* the configuration against the state, as the run will check it (a VMM
	 * added or swapped at run time is not in the command line) */
	int rc = !c->hvt.on && (config_finish(c, &e) || snapshot_restore_check(c, &e) < 0) ? -1 : 0;
	if (rc < 0)
		printf("vmmux update-check: refused: the run's configuration: %s\n", e.msg);
	else if ((rc = guest_files_readable(c, &e)) < 0)
		printf("vmmux update-check: refused: %s (the new program reads it as it "
		       "starts)\n",
		       e.msg);
	else
		printf("vmmux update-check: ok\n");
	config_free(c);
	free(c);
	snapshot_restore_close();
	return rc < 0 ? EXIT_USAGE : 0;
}

static int cmd_run(int argc, char **argv)
{
	int status;
	int at, width;
	const char *check = find_opt(argc, argv, "--update-check-fd", &at, &width);
	if (check != NULL)
		return update_check(check);
	const char *resume = find_opt(argc, argv, "--resume-from-fd", &at, &width);
	const char *restore = resume ? resume : find_opt(argc, argv, "--restore", &at, &width);
	char **joined = NULL;
	if (restore != NULL) {
		/* The stored command line, then the options given here. */
		int sargc;
		char **sargv;
		const char *cwd;
		struct errbuf e;
		int rc = resume == NULL ? snapshot_restore_open(restore, &sargc, &sargv, &cwd, &e)
			 : fd_arg(resume) < 0
			     ? err_set(&e, "--resume-from-fd %s: not a descriptor number", resume)
			 : fcntl(fd_arg(resume), F_SETFD, FD_CLOEXEC) < 0
			     ? err_set(&e, "--resume-from-fd %s: %s", resume, strerror(errno))
			     : snapshot_restore_open_fd(fd_arg(resume), "the live update's state",
							&sargc, &sargv, &cwd, &e);
		if (resume != NULL) { /* the old program's address-space holders, reaped later */
			pid_t reap[8];
			unsigned nreap = update_reap_take(reap, 8);
			for (unsigned i = 0; i < nreap; i++)
				machine_reap_later(reap[i]);
		}
		if (rc == 0 && resume != NULL)
			rc = snapshot_restore_claim_fds(&e);
		if (rc < 0) {
			fprintf(stderr, "vmmux: %s refused: %s\n",
				resume ? "live update" : "restore", e.msg);
			snapshot_restore_close();
			return EXIT_IMAGE;
		}
		joined = calloc((size_t)sargc + (size_t)argc + 1, sizeof(char *));
		if (joined == NULL) {
			snapshot_restore_close();
			return EXIT_HOST;
		}
		int n = 0;
		for (int i = 0; i < sargc; i++)
			joined[n++] = sargv[i];
		for (int i = 1; i < argc; i++)
			if (i < at || i >= at + width)
				joined[n++] = argv[i];
		argc = n;
		argv = joined;
	}
	snapshot_set_command_line(argc, argv);
	struct vmmux_config *c = parse_config("run", argc, argv, &status, print_help_run);
	if (c == NULL) {
		free(joined);
		snapshot_restore_close();
		return status;
	}
	struct errbuf e;
	if (c->hvt.on) {
		/* a Solo5 hvt guest (src/hvt/, docs/guests.md): its set-up adds its
		 * VMMs and routes, then finishes the config */
		status = hvt_run_config(c, true);
	} else if (config_finish(c, &e)) {
		fprintf(stderr, "vmmux: %s\n", e.msg);
		status = EXIT_USAGE;
	} else {
		status = machine_run(c);
	}
	config_free(c);
	free(c);
	free(joined);
	snapshot_restore_close();
	return status;
}

/* Print JSON to stdout, indented, with a final newline; 0 or EXIT_HOST.
 * Takes the reference. */
static int print_json(json_t *j)
{
	int rc = j != NULL && json_dumpf(j, stdout, JSON_INDENT(2)) == 0 ? 0 : EXIT_HOST;
	json_decref(j);
	if (rc == 0 && (fputc('\n', stdout) == EOF || fflush(stdout) != 0))
		rc = EXIT_HOST;
	if (rc != 0)
		fprintf(stderr, "vmmux: cannot write the JSON output\n");
	return rc;
}

static json_t *name_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/*
 * `vmmux routes --json` (docs/routing.md, "vmmux routes"): {"routes": [...]}
 * in the text table's order, each {"spec", "kind", "vmm", "implicit",
 * "group", "posted", "coalesced", "doorbell", "fallback", "from",
 * "timeout_ns"}: every key always present (null when it does not apply).
 */
static json_t *routes_json(const struct route_table *t, struct vmmux_config *c)
{
	json_t *a = json_array();
	uint16_t *order = malloc(t->nroutes * sizeof(*order));
	if (a == NULL || order == NULL) {
		json_decref(a);
		free(order);
		return NULL;
	}
	route_table_key_order(t, order);
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct route *r = &t->routes[order[i]];
		json_t *group = json_null();
		const char *vmm = r->group == NULL ? config_vmm_name(c, r->vmm) : NULL;
		char members[ROUTE_GROUP_MAX * (VMMUX_NAME_MAX + 1)] = "";
		if (r->group != NULL) {
			json_t *m = json_array();
			size_t off = 0;
			for (unsigned k = 0; k < r->group->n; k++) {
				const char *mn = config_vmm_name(c, r->group->member[k]);
				json_array_append_new(m, json_pack("{s:o, s:i}", "vmm",
								   name_or_null(mn), "weight",
								   (int)r->group->weight[k]));
				off += (size_t)snprintf(members + off, sizeof(members) - off,
							"%s%s", k ? "," : "", mn ? mn : "?");
			}
			group = json_pack("{s:s, s:o}", "policy",
					  route_policy_name(r->group->policy), "members", m);
			vmm = members;
		}
		json_t *o = json_pack(
		    "{s:s, s:s, s:o, s:b, s:o, s:b, s:b, s:b, s:o, s:o, s:o}", "spec", r->spec.text,
		    "kind", route_kind_name(r->spec.kind), "vmm", name_or_null(vmm), "implicit",
		    (r->flags & ROUTE_FLAG_IMPLICIT) != 0, "group", group, "posted",
		    (r->flags & ROUTE_OPT_POSTED) != 0, "coalesced",
		    (r->flags & ROUTE_OPT_COALESCED) != 0, "doorbell",
		    (r->flags & ROUTE_OPT_DOORBELL) != 0, "fallback",
		    name_or_null((r->flags & ROUTE_OPT_FALLBACK) ? config_vmm_name(c, r->fallback)
								 : NULL),
		    "from",
		    name_or_null((r->flags & ROUTE_OPT_FROM) ? config_vmm_name(c, r->from) : NULL),
		    "timeout_ns",
		    (r->flags & ROUTE_OPT_TIMEOUT) ? json_integer((json_int_t)r->timeout_ns)
						   : json_null());
		if (o == NULL || json_array_append_new(a, o) < 0) {
			json_decref(a);
			free(order);
			return NULL;
		}
	}
	free(order);
	return json_pack("{s:o}", "routes", a);
}

/* Takes "--json" out of ARGV (the other options are those of run): true
 * when it was there. */
static bool take_json_option(int *argc, char **argv)
{
	bool found = false;
	int n = 0;
	for (int i = 0; i < *argc; i++) {
		if (i > 0 && strcmp(argv[i], "--json") == 0)
			found = true;
		else
			argv[n++] = argv[i];
	}
	argv[n] = NULL;
	*argc = n;
	return found;
}

static int cmd_routes(int argc, char **argv)
{
	int status;
	bool json = take_json_option(&argc, argv);
	struct vmmux_config *c = parse_config("routes", argc, argv, &status, print_help_routes);
	if (c == NULL)
		return status;
	struct errbuf e;
	struct route_table *t = NULL;
	int ok;
	if (c->hvt.on) { /* the hvt set-up adds its VMMs and routes, then finishes */
		if (hvt_prepare_config(c, true) < 0) {
			config_free(c);
			free(c);
			return EXIT_USAGE;
		}
		ok = 1;
	} else {
		ok = config_finish_flags(c, CONFIG_FINISH_NO_KERNEL, &e) == 0;
	}
	/* Check what `vmmux run` checks before it starts the guest. */
	for (size_t i = 0; ok && i < c->nvmms; i++)
		ok = vmm_config_check(&c->vmms[i], &e) == 0;
	if (ok)
		t = route_table_build(c->routes, c->nroutes, config_vmm_resolve, c, &e);
	struct route_range msr_ranges[16];
	if (t != NULL && route_table_msr_ranges(t, msr_ranges, 16, &e) < 0) {
		route_table_free(t);
		t = NULL;
	}
	if (t == NULL) {
		fprintf(stderr, "vmmux: %s\n", e.msg);
		status = EXIT_USAGE;
	} else {
		if (json) {
			status = print_json(routes_json(t, c));
		} else {
			route_table_dump_header(stdout);
			route_table_dump(stdout, t, config_vmm_name, c);
			status = fflush(stdout) == 0 ? 0 : EXIT_HOST;
		}
		route_table_free(t);
	}
	config_free(c);
	free(c);
	return status;
}

/* `vmmux roles --json`: {"roles": [{"name", "summary", "args", "raises"}]},
 * args and raises as the role declares them (lists, maybe empty). */
static json_t *roles_json(void)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && role_at(i) != NULL; i++) {
		const struct vmmux_role *r = role_at(i);
		json_t *args = json_array(), *raises = json_array();
		for (size_t k = 0; r->args != NULL && r->args[k] != NULL; k++)
			json_array_append_new(args, json_string(r->args[k]));
		for (size_t k = 0; r->raises != NULL && r->raises[k] != NULL; k++)
			json_array_append_new(raises, json_string(r->raises[k]));
		json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:o}", "name", r->name,
						   "summary", r->summary ? r->summary : "", "args",
						   args, "raises", raises));
	}
	return a != NULL ? json_pack("{s:o}", "roles", a) : NULL;
}

static int cmd_roles(int argc, char **argv)
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(help_roles, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
			continue;
		}
		char msg[300];
		snprintf(msg, sizeof(msg), "roles: unexpected argument '%s'", argv[i]);
		return usage_error("roles", msg);
	}
	if (json)
		return print_json(roles_json());
	size_t width = 0;
	for (size_t i = 0; role_at(i) != NULL; i++) {
		size_t n = strlen(role_at(i)->name);
		if (n > width)
			width = n;
	}
	for (size_t i = 0; role_at(i) != NULL; i++) {
		const struct vmmux_role *r = role_at(i);
		printf("%-*s  %s\n", (int)width, r->name, r->summary ? r->summary : "");
	}
	return fflush(stdout) == 0 ? 0 : EXIT_HOST;
}

static const char help_vmm[] =
    "Usage: vmmux vmm NAME\n"
    "\n"
    "Internal: serve a built-in role as a parallel VMM process. vmmux run starts\n"
    "it in its sandbox, with its set-up socket as descriptor 3, for every VMM\n"
    "whose placement is parallel; NAME is the VMM's name, for ps.\n";

static void print_help_top(FILE *f)
{
	top_print_help(f); /* src/cli/top.c */
}

static void print_help_ctl(FILE *f)
{
	ctl_print_help(f); /* src/cli/ctl.c */
}

/* The help of every command that 'vmmux help' lists, in its order: each
 * command listed there has an entry here (tests/integration/test_cli.py
 * checks it). */
/* vmmux help qemu: the front end's own -help, after how to call it. */
static void print_help_qemu(FILE *f)
{
	fputs("Usage: vmmux qemu [QEMU OPTIONS...]\n"
	      "   or: qemu-system-x86_64 [QEMU OPTIONS...]   (vmmux under that name, a symlink)\n"
	      "\n"
	      "Runs a multiboot kernel from qemu-system-x86_64's command line, so that test\n"
	      "runners written for QEMU drive vmmux unchanged (docs/guests.md, 'Coming from\n"
	      "QEMU'). What it prints for -help:\n\n",
	      f);
	qemu_help(f);
}

static const struct {
	const char *name;
	void (*help)(FILE *);
	const char *text;
} help_topics[] = {
    {"run", print_help_run, NULL},   {"routes", print_help_routes, NULL},
    {"roles", NULL, help_roles},     {"top", print_help_top, NULL},
    {"ctl", print_help_ctl, NULL},   {"hvt", NULL, hvt_usage},
    {"qemu", print_help_qemu, NULL}, {"help", NULL, help_help},
    {"vmm", NULL, help_vmm},
};
#define NHELP_TOPICS (sizeof(help_topics) / sizeof(help_topics[0]))

/* "Commands: run, routes, ... Try 'vmmux --help'." (the internal vmm left
 * out). */
static void print_commands(FILE *f)
{
	fputs("Commands:", f);
	for (size_t i = 0, n = 0; i < NHELP_TOPICS; i++)
		if (strcmp(help_topics[i].name, "vmm") != 0)
			fprintf(f, "%s %s", n++ ? "," : "", help_topics[i].name);
	fputs(". Try 'vmmux --help'.\n", f);
}

static int cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		print_help_main(stdout);
		return 0;
	}
	if (argc > 2) {
		char msg[300];
		snprintf(msg, sizeof(msg), "help: unexpected argument '%s'", argv[2]);
		return usage_error("help", msg);
	}
	for (size_t i = 0; i < NHELP_TOPICS; i++) {
		if (strcmp(argv[1], help_topics[i].name) != 0)
			continue;
		if (help_topics[i].help != NULL)
			help_topics[i].help(stdout);
		else
			fputs(help_topics[i].text, stdout);
		return 0;
	}
	fprintf(stderr, "vmmux: help: unknown command '%s' (commands:", argv[1]);
	for (size_t i = 0; i < NHELP_TOPICS; i++)
		fprintf(stderr, "%s %s", i ? "," : "", help_topics[i].name);
	fprintf(stderr, ")\n");
	return EXIT_USAGE;
}

/* event_vmm_name_fn: the registry's name of VMM ID (src/vmm/vmm.h). */
static const char *registry_vmm_name(uint16_t id)
{
	struct vmm *v = vmm_get(id);
	return v != NULL ? v->name : NULL;
}

int cli_main(int argc, char **argv)
{
	log_start();				/* the origin of --log-timestamps */
	event_set_vmm_namer(registry_vmm_name); /* "VMM 'uart'" in messages */
	if (argc > 0 && qemu_is_name(argv[0]))	/* started as qemu-system-x86_64 */
		return qemu_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "qemu") == 0) { /* QEMU's options (cli/qemu.h) */
		argv[1] = (char *)"vmmux qemu";
		return qemu_main(argc - 1, argv + 1);
	}
	if (argc < 2) {
		fputs("Usage: vmmux COMMAND [OPTIONS]\n", stderr);
		print_commands(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "routes") == 0)
		return cmd_routes(argc - 1, argv + 1);
	if (strcmp(cmd, "roles") == 0)
		return cmd_roles(argc - 1, argv + 1);
	if (strcmp(cmd, "help") == 0)
		return cmd_help(argc - 1, argv + 1);
	if (strcmp(cmd, "top") == 0)
		return cmd_top(argc - 1, argv + 1);
	if (strcmp(cmd, "ctl") == 0)
		return cmd_ctl(argc - 1, argv + 1);
	if (strcmp(cmd, "hvt") == 0) /* a Solo5 hvt unikernel (src/hvt/, docs/guests.md) */
		return hvt_command(argc - 1, argv + 1);
	if (strcmp(cmd, "vmm") == 0) { /* a parallel VMM: the main VMM started us */
		if (argc > 2 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
			fputs(help_vmm, stdout);
			return 0;
		}
		return vmmlib_run(NULL, role_find);
	}
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		if (argc > 2)
			return usage_error(NULL, "--help takes no argument; 'vmmux help COMMAND' "
						 "shows a command's help");
		print_help_main(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("vmmux %s (commit %s)\n", VMMUX_VERSION, VMMUX_COMMIT);
		return 0;
	}
	if (cmd[0] == '-')
		fprintf(stderr,
			"vmmux: '%s' comes before a command; options follow the command "
			"(vmmux run %s ...)\n",
			cmd, cmd);
	else
		fprintf(stderr, "vmmux: unknown command '%s'\n", cmd);
	print_commands(stderr);
	return EXIT_USAGE;
}
