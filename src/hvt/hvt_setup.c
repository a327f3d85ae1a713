/*
 * hvt_setup.c: the set-up of a Solo5 hvt run (hvt.h), shared by `vmmux hvt`
 * (a drop-in for solo5-hvt: its options become a config's hvt section) and
 * `vmmux run --config` (guest.format "hvt", the file's hvt section).
 *
 * It validates the unikernel and its manifest, opens every device the
 * manifest declares (disk images read-write, taps, one readiness eventfd
 * per net device), fills in the manifest copy, and adds to the config:
 *
 *   VMM       role         placement             descriptors
 *   console   hvt-console  in-process            output stdout
 *   blockK    hvt-block    parallel (default)    input: the image
 *   netK      hvt-net      parallel (default)    input: the tap, output: readiness
 *
 * each device VMM with two windows: guest memory from HVT_GUEST_MIN_BASE,
 * and read-only what the host wrote for the guest (HVT_HOST_AREA_END). When
 * a VMM per device does not fit (devices_per_vmm), a block or net VMM
 * serves a group of devices: "handles", its devices' descriptors as its
 * further descriptors (vmmux_fd), for net an epoll descriptor of the taps
 * as its input.
 *
 *   hypercall:1=main  hypercall:3=main  hypercall:8=main  hypercall:2=console
 *   hypercall:4-5=block0 (block1 from block0 ...)   hypercall:6-7=net0 (...)
 *   type:io=main type:mmio=main type:hlt=main type:shutdown=main
 *   type:exception=main type:hypercall=main
 *
 * A VMM of the config by one of these names sets its placement (and
 * timeout, spin, cpu; the console's output); a route of the config that
 * takes the same keys replaces the default one. The main VMM's part
 * (hvt_core.c) is installed for the run: its boot hook and its handler of
 * the events routed to main. The outcome maps to solo5-hvt's exit
 * statuses: the guest's halt status, 1 for every host or hvt error.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "hvt/hvt.h"
#include "hvt/hvt_roles.h"
#include "route/spec.h"
#include "util/log.h"
#include "vmm/machine.h"

#define HVT_DEFAULT_MEM_MIB 512u

const char hvt_usage[] =
    "Usage: vmmux hvt [OPTIONS] [--] UNIKERNEL [ARGS...]\n"
    "\n"
    "Run a Solo5 hvt unikernel (hvt ABI version 2), as solo5-hvt does: same\n"
    "options, same exit statuses. ARGS become the unikernel's command line.\n"
    "\n"
    "Options:\n"
    "  --mem=MiB                      guest memory (default 512, rounded down\n"
    "                                 to 2 MiB, at most 4096)\n"
    "  --block:NAME=PATH              attach block device NAME to the disk image\n"
    "                                 PATH\n"
    "  --block-sector-size:NAME=N     its sector size (a power of two >= 512;\n"
    "                                 default 512)\n"
    "  --net:NAME=IFACE               attach network device NAME to the tap IFACE\n"
    "  --net-mac:NAME=MAC             its MAC address (default: a random one)\n"
    "vmmux options:\n"
    "  --placement=parallel|main      where the block and net VMMs run: sandboxed\n"
    "                                 parallel VMM processes (default) or inside\n"
    "                                 vmmux\n"
    "  --stats                        print vmmux's event statistics at exit\n"
    "solo5-hvt-debug options:\n"
    "  --dumpcore=DIR                 on an abort or a guest trap, write an ELF core\n"
    "                                 of the guest to DIR/core.solo5-hvt.PID\n"
    "  --gdb[=PORT], --gdb-port=PORT  serve the GDB remote protocol on TCP PORT\n"
    "                                 (default 1234) and wait for the debugger\n"
    "                                 before the first instruction\n"
    "                                 (docs/debugging.md)\n"
    "  -h, --help                     show this help\n"
    "\n"
    "Every device the unikernel's manifest declares must be attached.\n"
    "Exit status: the unikernel's own (solo5_exit), 255 when it aborts, 1 on an\n"
    "error (bad options or image, a device that cannot be attached, a bad\n"
    "pointer in a hypercall, a write to its code, a port access that is not a\n"
    "hypercall). See docs/guests.md.\n";

enum dev_kind { DEV_BLOCK, DEV_NET };

struct dev_opt {
	enum dev_kind kind;
	char name[HVT_MFT_NAME_SIZE];
	const char *target; /* PATH or IFACE; NULL when only a sub-option named it */
	uint64_t sector;    /* block: 0 = default */
	bool mac_set;
	uint8_t mac[6];
};

struct opts {
	uint64_t mem_mib;
	bool parallel;
	bool stats;
	const char *dumpcore; /* --dumpcore=DIR */
	char gdb[32];	      /* --gdb[=PORT], --gdb-port=PORT: "tcp::PORT", or "" */
	const char *kernel;
	int nargs;
	char **args;
	unsigned ndev;
	struct dev_opt dev[HVT_DEVS_MAX];
};

static int usage_fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "vmmux hvt: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'vmmux hvt --help'.\n");
	return 1;
}

static struct dev_opt *dev_get(struct opts *o, enum dev_kind k, const char *name, size_t nlen)
{
	for (unsigned i = 0; i < o->ndev; i++)
		if (o->dev[i].kind == k && strlen(o->dev[i].name) == nlen &&
		    memcmp(o->dev[i].name, name, nlen) == 0)
			return &o->dev[i];
	if (o->ndev == HVT_DEVS_MAX || nlen == 0 || nlen >= HVT_MFT_NAME_SIZE)
		return NULL;
	struct dev_opt *d = &o->dev[o->ndev++];
	memset(d, 0, sizeof(*d));
	d->kind = k;
	memcpy(d->name, name, nlen);
	return d;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &tail) != 6 ||
	    strlen(s) != 17)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* "--PREFIX:NAME=VALUE": NAME and VALUE, or -1. */
static int split_dev_opt(const char *arg, const char *prefix, const char **name, size_t *nlen,
			 const char **val)
{
	size_t pl = strlen(prefix);
	if (strncmp(arg, prefix, pl) != 0)
		return -1;
	const char *n = arg + pl, *eq = strchr(n, '=');
	if (eq == NULL || eq == n)
		return -2;
	*name = n;
	*nlen = (size_t)(eq - n);
	*val = eq + 1;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mem_mib = HVT_DEFAULT_MEM_MIB;
	o->parallel = true;
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i], *name, *val;
		size_t nlen;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(hvt_usage, stdout);
			return 0;
		}
		if (strncmp(a, "--mem=", 6) == 0) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(a + 6, &end, 10);
			if (errno || end == a + 6 || *end || a[6] == '-')
				return usage_fail("--mem: '%s' is not a number of MiB", a + 6);
			o->mem_mib = v;
			continue;
		}
		if (strcmp(a, "--placement=parallel") == 0 || strcmp(a, "--placement=main") == 0) {
			o->parallel = a[12] == 'p';
			continue;
		}
		if (strcmp(a, "--stats") == 0) {
			o->stats = true;
			continue;
		}
		if (strcmp(a, "--gdb") == 0 || strncmp(a, "--gdb=", 6) == 0 ||
		    strncmp(a, "--gdb-port=", 11) == 0) {
			const char *port = a[5] == '\0' ? "1234" : strchr(a, '=') + 1;
			char *end;
			errno = 0;
			unsigned long v = strtoul(port, &end, 10);
			if (errno || end == port || *end || port[0] == '-' || v == 0 || v > 65535)
				return usage_fail("'%s': not a TCP port (1-65535)", a);
			snprintf(o->gdb, sizeof(o->gdb), "tcp::%lu", v);
			continue;
		}
		if (strncmp(a, "--dumpcore=", 11) == 0) {
			if (a[11] == '\0')
				return usage_fail("%s: give the directory for the core file", a);
			o->dumpcore = a + 11;
			continue;
		}
		int r;
		struct dev_opt *d;
		if ((r = split_dev_opt(a, "--block-sector-size:", &name, &nlen, &val)) != -1) {
			if (r < 0 || (d = dev_get(o, DEV_BLOCK, name, nlen)) == NULL)
				return usage_fail("malformed option '%s'", a);
			char *end;
			errno = 0;
			d->sector = strtoull(val, &end, 10);
			if (errno || end == val || *end || val[0] == '-' || d->sector < 512 ||
			    (d->sector & (d->sector - 1)))
				return usage_fail(
				    "Block size must be a multiple of 2 greater than or "
				    "equal 512 ('%s')",
				    val);
			continue;
		}
		if ((r = split_dev_opt(a, "--block:", &name, &nlen, &val)) != -1 ||
		    (r = split_dev_opt(a, "--net:", &name, &nlen, &val)) != -1) {
			enum dev_kind k = a[2] == 'b' ? DEV_BLOCK : DEV_NET;
			if (r < 0 || *val == '\0' || (d = dev_get(o, k, name, nlen)) == NULL)
				return usage_fail("malformed option '%s'", a);
			if (d->target != NULL)
				return usage_fail("device given twice: '%s'", a);
			d->target = val;
			continue;
		}
		if ((r = split_dev_opt(a, "--net-mac:", &name, &nlen, &val)) != -1) {
			if (r < 0 || (d = dev_get(o, DEV_NET, name, nlen)) == NULL)
				return usage_fail("malformed option '%s'", a);
			if (parse_mac(val, d->mac) < 0)
				return usage_fail(
				    "malformed MAC address '%s' (want xx:xx:xx:xx:xx:xx)", val);
			d->mac_set = true;
			continue;
		}
		return usage_fail("Invalid option: '%s'", a);
	}
	if (i >= argc)
		return usage_fail("%s", "missing the unikernel to run");
	o->kernel = argv[i];
	o->args = argv + i + 1;
	o->nargs = argc - i - 1;
	for (unsigned k = 0; k < o->ndev; k++)
		if (o->dev[k].target == NULL)
			return usage_fail(o->dev[k].kind == DEV_BLOCK
					      ? "--block-sector-size:%s given without --block:NAME"
					      : "--net-mac:%s given without --net:NAME",
					  o->dev[k].name);
	if (o->mem_mib < 2 || o->mem_mib > HVT_MEM_MAX >> 20)
		return usage_fail("--mem: %s MiB is outside 2-4096", "the size");
	o->mem_mib &= ~1ull;
	return -1; /* go on */
}

/* The command line: ARGS joined by spaces. */
static char *join_args(size_t n, char *const *args)
{
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(args[i]) + 1;
	char *s = malloc(len);
	if (s == NULL)
		return NULL;
	s[0] = '\0';
	size_t at = 0;
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(s + at, len - at, "%s%s", i ? " " : "", args[i]);
	return s;
}

/* One attached device of the run. */
struct hvt_dev {
	const struct config_hvt_dev *cfg;
	int index; /* manifest index */
	int fd, ready_fd;
};

static struct {
	unsigned ndev;
	struct hvt_dev dev[HVT_DEVS_MAX];
} run;

/*
 * Where device D's FIELD ("path", "tap", "sector_size", "mac") came from,
 * for messages: the config file's JSON path, or `vmmux hvt`'s option.
 */
static const char *dev_where(const struct config_hvt *h, const struct config_hvt_dev *d,
			     const char *field, char *buf, size_t len)
{
	const char *kind = d->net ? "net" : "block";
	if (h->source != NULL)
		snprintf(buf, len, "%s: hvt.%s.%s.%s", h->source, kind, d->name, field);
	else if (strcmp(field, "sector_size") == 0)
		snprintf(buf, len, "--block-sector-size:%s", d->name);
	else if (strcmp(field, "mac") == 0)
		snprintf(buf, len, "--net-mac:%s", d->name);
	else
		snprintf(buf, len, "--%s:%s", kind, d->name);
	return buf;
}

/* Open and describe device D in manifest M; -1 with a message. */
static int attach(const struct config_hvt *h, struct hvt_dev *d, struct hvt_mft *m,
		  struct errbuf *e)
{
	const struct config_hvt_dev *c = d->cfg;
	const char *kind = c->net ? "net" : "block";
	char w[256];
	d->index =
	    hvt_mft_find(m, c->name, c->net ? HVT_MFT_DEV_NET_BASIC : HVT_MFT_DEV_BLOCK_BASIC);
	if (d->index < 0)
		return err_set(e, "%s: the unikernel declares no %s device named '%s'",
			       dev_where(h, c, c->net ? "tap" : "path", w, sizeof(w)), kind,
			       c->name);
	struct hvt_mft_entry *en = &m->e[d->index];
	if (!c->net) {
		uint64_t bs = c->sector ? c->sector : 512;
		dev_where(h, c, "path", w, sizeof(w));
		if (bs > 0xffff)
			return err_set(e, "%s: %llu does not fit the manifest's 16-bit block size",
				       dev_where(h, c, "sector_size", w, sizeof(w)),
				       (unsigned long long)bs);
		d->fd = open(c->target, O_RDWR | O_CLOEXEC);
		struct stat st;
		if (d->fd < 0 || fstat(d->fd, &st) < 0)
			return err_set(e, "%s: %s: %s", w, c->target, strerror(errno));
		if (!S_ISREG(st.st_mode))
			return err_set(e, "%s: %s is not a regular file", w, c->target);
		if ((uint64_t)st.st_size % bs)
			return err_set(
			    e,
			    "%s: Backing storage size must be block aligned (%s: %llu bytes, "
			    "block size %llu)",
			    w, c->target, (unsigned long long)st.st_size, (unsigned long long)bs);
		en->u.block_basic.capacity = (uint64_t)st.st_size;
		en->u.block_basic.block_size = (uint16_t)bs;
	} else {
		dev_where(h, c, "tap", w, sizeof(w));
		if (strlen(c->target) >= IFNAMSIZ)
			return err_set(e, "%s: interface name '%s' is too long", w, c->target);
		if (if_nametoindex(c->target) == 0)
			return err_set(e,
				       "%s: no network interface '%s' (create the tap first: ip "
				       "tuntap add %s mode tap)",
				       w, c->target, c->target);
		d->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (d->fd < 0)
			return err_set(e, "%s: /dev/net/tun: %s", w, strerror(errno));
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", c->target);
		if (ioctl(d->fd, TUNSETIFF, &ifr) < 0)
			return err_set(e, "%s: attaching to tap '%s': %s%s", w, c->target,
				       strerror(errno),
				       errno == EBUSY	 ? " (in use by another program?)"
				       : errno == EINVAL ? " (not a tap interface?)"
							 : "");
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", c->target);
		int r = s < 0 ? -1 : ioctl(s, SIOCGIFMTU, &ifr);
		int err = errno;
		if (s >= 0)
			close(s);
		if (r < 0)
			return err_set(e, "%s: reading the MTU of '%s': %s", w, c->target,
				       strerror(err));
		uint8_t mac[6];
		if (c->mac_set) {
			memcpy(mac, c->mac, 6);
		} else {
			if (getrandom(mac, sizeof(mac), 0) != (ssize_t)sizeof(mac))
				return err_set(e, "getrandom: %s", strerror(errno));
			mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* local, unicast */
		}
		memcpy(en->u.net_basic.mac, mac, 6);
		en->u.net_basic.mtu = (uint16_t)ifr.ifr_mtu;
		d->ready_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (d->ready_fd < 0)
			return err_set(e, "eventfd: %s", strerror(errno));
	}
	en->hostfd = (uint64_t)d->fd;
	en->attached = true;
	return 0;
}

static void close_devices(void)
{
	for (unsigned i = 0; i < run.ndev; i++) {
		if (run.dev[i].fd >= 0)
			close(run.dev[i].fd);
		if (run.dev[i].ready_fd >= 0)
			close(run.dev[i].ready_fd);
		run.dev[i].fd = run.dev[i].ready_fd = -1;
	}
	run.ndev = 0;
}

/* One VMM the set-up needs: its role and what it holds. */
struct vmm_need {
	const char *name, *role;
	bool parallel; /* the default placement */
	const char *input, *output;
	const int *fds; /* further descriptors (vmmux_fd) */
	size_t nfds;
	const char *const *args; /* key, value, ..., NULL */
	const char *const *grants;
	const char *why; /* for messages: what the VMM serves */
};

/* Index of C's VMM NAME, or -1. */
static int find_vmm(const struct vmmux_config *c, const char *name)
{
	for (size_t i = 0; i < c->nvmms; i++)
		if (strcmp(c->vmms[i].name, name) == 0)
			return (int)i;
	return -1;
}

/*
 * Add the VMM N needs, with the windows a device role needs: the guest's
 * own memory, from its image up, and read-only the boot information,
 * manifest copy and command line, which the guest may pass as a buffer
 * (Solo5's tests puts the boot information's command line); never the page
 * tables or the GDT. A VMM of the config by that name (vmms[i]) is replaced by it,
 * keeping what the config may choose (placement, timeout, spin, cpu; the
 * console's output); it must have N's role and leave the rest to the set-up.
 */
static int add_vmm(struct vmmux_config *c, const struct vmm_need *n, uint64_t mem, struct errbuf *e)
{
	struct vmm_config v;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", n->name);
	snprintf(v.role, sizeof(v.role), "%s", n->role);
	v.placement = n->parallel ? VMM_PARALLEL : VMM_IN_PROCESS;
	v.placement_set = true;
	v.input = (char *)n->input;
	v.output = (char *)n->output;
	v.nfds = n->nfds;
	for (size_t i = 0; i < n->nfds && i < VMM_FDS_MAX; i++)
		v.fds[i] = n->fds[i];
	for (size_t i = 0; n->args && n->args[i] && n->args[i + 1] && v.nargs < VMM_ARGS_MAX;
	     i += 2) {
		v.args[v.nargs].key = (char *)n->args[i];
		v.args[v.nargs++].value = (char *)n->args[i + 1];
	}
	for (size_t i = 0; n->grants && n->grants[i] && v.ngrants < VMM_GRANTS_MAX; i++)
		v.grants[v.ngrants++] = (char *)n->grants[i];
	v.raise_set = n->grants != NULL;
	v.windows[v.nwindows++] = (struct vmm_window){
	    HVT_BOOT_INFO_BASE, HVT_HOST_AREA_END - HVT_BOOT_INFO_BASE, .ro = true};
	if (mem > HVT_GUEST_MIN_BASE)
		v.windows[v.nwindows++] =
		    (struct vmm_window){HVT_GUEST_MIN_BASE, mem - HVT_GUEST_MIN_BASE, false};
	int at = find_vmm(c, n->name);
	if (at < 0)
		return config_add_vmm(c, &v, e);
	/* The config's own VMM of that name. */
	struct vmm_config *u = &c->vmms[at];
	bool console = strcmp(n->role, "hvt-console") == 0;
	const char *set = u->program			 ? "program"
			  : u->input			 ? "input"
			  : u->output && !console	 ? "output"
			  : u->nargs			 ? "args"
			  : u->memory_all || u->nwindows ? "memory"
			  : u->raise_set		 ? "raise"
							 : NULL;
	if (strcmp(u->role, n->role) != 0)
		return err_set(e,
			       "vmms[%d] ('%s'): the VMM of the hvt guest's %s has role '%s', not "
			       "'%s'",
			       at, u->name, n->why, n->role, u->role);
	if (set != NULL)
		return err_set(e,
			       "vmms[%d] ('%s'): %s: set by vmmux for the hvt guest's %s; leave it "
			       "out (give only placement, timeout, spin, cpu%s)",
			       at, u->name, set, n->why, console ? ", output" : "");
	if (u->placement_set)
		v.placement = u->placement;
	v.timeout_ns = u->timeout_ns;
	v.spin_set = u->spin_set;
	v.spin_ns = u->spin_ns;
	v.cpu_set = u->cpu_set;
	v.cpu = u->cpu;
	char *out = NULL;
	if (console && u->output != NULL) {
		out = u->output; /* kept: u's strings are cleared below */
		u->output = NULL;
		v.output = out;
	}
	/* Replace it in its place (ids follow the config's order). */
	struct vmm_config old = *u;
	size_t keep = c->nvmms;
	c->nvmms = (size_t)at;
	int rc = config_add_vmm(c, &v, e);
	c->nvmms = keep;
	if (rc < 0) {
		*u = old;
		free(out);
		return -1;
	}
	config_vmm_clear(&old);
	free(out);
	return 0;
}

static int add_route(struct vmmux_config *c, size_t nuser, const char *text, struct errbuf *e)
{
	struct route_spec r;
	if (route_spec_parse(text, &r, e) < 0)
		return -1;
	/* A route of the config that takes these keys wins. */
	if (!(r.opts & ROUTE_OPT_FROM) && config_route_taken(c, nuser, &r))
		return 0;
	return config_add_route(c, &r, e);
}

/* The block size of device D (0 for a net device). */
static uint64_t dev_bs(const struct hvt_dev *d)
{
	return d->cfg->net ? 0 : d->cfg->sector ? d->cfg->sector : 512;
}

/*
 * The VMMs of one kind of device: groups of at most PER devices (of one
 * block size), in manifest order, each group one VMM. Returns the number of
 * VMMs, and with G fills G[i] with the group of run.dev[i] (-1: another
 * kind).
 */
static unsigned group_devices(bool net, unsigned per, int *g)
{
	unsigned ngroups = 0;
	int open[HVT_DEVS_MAX];	     /* the group being filled, per first device of its size */
	unsigned fill[HVT_DEVS_MAX]; /* its count */
	for (unsigned i = 0; i < run.ndev; i++) {
		if (g)
			g[i] = -1;
		if (run.dev[i].cfg->net != net)
			continue;
		unsigned first = i; /* the first device of this block size */
		for (unsigned j = 0; j < i; j++)
			if (run.dev[j].cfg->net == net &&
			    dev_bs(&run.dev[j]) == dev_bs(&run.dev[i])) {
				first = j;
				break;
			}
		if (first == i || fill[first] == per) {
			open[first] = (int)ngroups++;
			fill[first] = 0;
		}
		fill[first]++;
		if (g)
			g[i] = open[first];
	}
	return ngroups;
}

/*
 * The VMMs and routes of one kind of device, chained by handle: a VMM per
 * group of devices (group_devices; PER 1: a VMM per device, its descriptors
 * the input and output; more: its devices' handles in "handles" and their
 * descriptors as its further descriptors, for net an epoll descriptor of
 * the taps as its input).
 */
static int add_devices(struct vmmux_config *c, size_t nuser, bool net, bool parallel, uint64_t mem,
		       unsigned per, struct errbuf *e)
{
	const char *prefix = net ? "net" : "block";
	unsigned lo = net ? HVT_HC_NET_WRITE : HVT_HC_BLOCK_WRITE;
	int g[HVT_DEVS_MAX];
	unsigned total = group_devices(net, per, g);
	for (unsigned k = 0; k < total; k++) {
		char name[32], in[32], out[32], handles[256], bs[24], route[96], why[300];
		struct vmm_need need = {
		    .name = name, .role = net ? "hvt-net" : "hvt-block", .parallel = parallel};
		int fds[VMM_FDS_MAX];
		size_t nfds = 0, at = 0, ndev = 0;
		uint64_t size = 512;
		handles[0] = '\0';
		const struct hvt_dev *one = NULL;
		for (unsigned i = 0; i < run.ndev; i++) {
			if (g[i] != (int)k)
				continue;
			struct hvt_dev *d = &run.dev[i];
			one = d;
			size = d->cfg->sector ? d->cfg->sector : 512;
			at += (size_t)snprintf(handles + at, sizeof(handles) - at, "%s%d",
					       ndev ? "," : "", d->index);
			fds[nfds++] = d->fd;
			if (net)
				fds[nfds++] = d->ready_fd;
			ndev++;
		}
		snprintf(name, sizeof(name), "%s%u", prefix, k);
		snprintf(bs, sizeof(bs), "%llu", (unsigned long long)size);
		if (ndev == 1)
			snprintf(why, sizeof(why), "%s device '%s'", prefix, one->cfg->name);
		else
			snprintf(why, sizeof(why), "%s devices %s (manifest indices)", prefix,
				 handles);
		bool next = k + 1 < total;
		const char *args[] = {
		    ndev == 1 ? "handle" : "handles", handles, "next", next ? "yes" : "no",
		    net ? NULL : "block_size",	      bs,      NULL};
		static const char *const chain_grants[] = {"request:exit", "forward", NULL};
		need.args = args;
		need.grants = next ? chain_grants : NULL;
		need.why = why;
		int epfd = -1;
		if (ndev == 1) {
			snprintf(in, sizeof(in), "fd:%d", one->fd);
			snprintf(out, sizeof(out), "fd:%d", one->ready_fd);
			need.input = in;
			need.output = net ? out : NULL;
		} else {
			need.fds = fds;
			need.nfds = nfds;
			if (net) {
				/* the taps, polled by the host as the VMM's input */
				epfd = epoll_create1(EPOLL_CLOEXEC);
				for (size_t f = 0; epfd >= 0 && f < nfds; f += 2) {
					struct epoll_event ev = {.events = EPOLLIN};
					if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[f], &ev) < 0) {
						close(epfd);
						epfd = -1;
					}
				}
				if (epfd < 0)
					return err_set(e, "epoll for the taps of %s: %s", name,
						       strerror(errno));
				snprintf(in, sizeof(in), "fd:%d", epfd);
				need.input = in;
			}
		}
		int rc = add_vmm(c, &need, mem, e);
		if (epfd >= 0)
			close(epfd); /* the VMM holds its own duplicate */
		if (rc < 0)
			return -1;
		if (k == 0)
			snprintf(route, sizeof(route), "hypercall:%u-%u=%s", lo, lo + 1, name);
		else
			snprintf(route, sizeof(route), "hypercall:%u-%u=%s;from=%s%u", lo, lo + 1,
				 name, prefix, k - 1);
		if (add_route(c, nuser, route, e) < 0)
			return -1;
	}
	return 0;
}

/*
 * The VMMs of one kind hand a request for another's device on along their
 * chain, one raise per hop: a chain may be as long as a raised event may go
 * deep (vmm.h: deeper than 8 raises is refused), 9 VMMs.
 */
#define HVT_CHAIN_MAX 9u

/*
 * Devices per VMM: 1 while a VMM per device fits (besides the console and
 * the config's own VMMs, and at most HVT_CHAIN_MAX VMMs of a kind), else
 * the fewest that fit; 0 when nothing fits.
 */
static unsigned devices_per_vmm(const struct vmmux_config *c)
{
	for (unsigned per = 1; per <= HVT_DEVS_MAX; per++) {
		unsigned nb = group_devices(false, per, NULL), nn = group_devices(true, per, NULL);
		unsigned need = 1 + (unsigned)c->nvmms + nb + nn;
		if (find_vmm(c, "console") >= 0)
			need--;
		if (need <= CONFIG_VMMS_MAX && nb <= HVT_CHAIN_MAX && nn <= HVT_CHAIN_MAX)
			return per;
	}
	return 0;
}

/* The default routes of an hvt run: the machine's hypercalls and every exit
 * an hvt guest must not make go to the main VMM (hvt_core.c). */
static const char *const main_routes[] = {"hypercall:1=main",
					  "hypercall:2=console",
					  "hypercall:3=main",
					  "hypercall:8=main",
					  "type:io=main",
					  "type:mmio=main",
					  "type:hlt=main",
					  "type:shutdown=main",
					  "type:exception=main",
					  "type:hypercall=main",
					  NULL};

/* "NAME: " for messages of the config path, "" for vmmux hvt's. */
static const char *src_prefix(const struct config_hvt *h, char *buf, size_t len)
{
	if (h->source == NULL)
		buf[0] = '\0';
	else
		snprintf(buf, len, "%s: ", h->source);
	return buf;
}

/* Everything but running: image, devices, VMMs, routes, the finished
 * config. Returns 0, or -1 with the error printed. */
static int prepare(struct vmmux_config *c, bool parallel)
{
	struct errbuf e;
	struct hvt_host *h = &hvt_host;
	const struct config_hvt *ch = &c->hvt;
	char pfx[256];
	src_prefix(ch, pfx, sizeof(pfx));
	if (c->kernel == NULL) {
		fprintf(stderr, "vmmux: %sguest.kernel: missing (the hvt unikernel)\n", pfx);
		return -1;
	}
	if (c->append != NULL || c->ninitrd || c->nmodules) {
		fprintf(stderr,
			"vmmux: %sguest.%s: not for a Solo5 hvt guest (its command line is "
			"guest.args)\n",
			pfx, c->append ? "append" : "modules");
		return -1;
	}
	if (c->cpus != 1) {
		fprintf(stderr,
			"vmmux: %smachine.cpus: an hvt guest has exactly one vCPU (%u given)\n",
			pfx, c->cpus);
		return -1;
	}
	if (c->irqchip || c->load.format != IMAGE_AUTO || c->load.mode != CPU_MODE_DEFAULT) {
		fprintf(stderr, "vmmux: %s%s: not for a Solo5 hvt guest\n", pfx,
			c->irqchip		       ? "machine.irqchip"
			: c->load.format != IMAGE_AUTO ? "guest.format"
						       : "machine.cpu_mode");
		return -1;
	}
	uint64_t mem = c->mem_bytes & ~((2ull << 20) - 1);
	if (mem < (2ull << 20) || mem > HVT_MEM_MAX) {
		fprintf(stderr, "vmmux: %smachine.mem: an hvt guest has 2 MiB to 4 GiB\n", pfx);
		return -1;
	}
	c->mem_bytes = mem;
	uint8_t *img = NULL;
	size_t len = 0;
	if (loader_read_file(c->kernel, mem, &img, &len, &e) < 0) {
		fprintf(stderr, "vmmux hvt: %s\n", e.msg);
		return -1;
	}
	int rc = hvt_image_parse(c->kernel, img, len, mem, &h->image, &e);
	free(img);
	if (rc < 0) {
		fprintf(stderr, "vmmux hvt: %s\n", e.msg);
		return -1;
	}
	h->mft_size = h->image.mft_size;
	h->mft = malloc(h->mft_size);
	h->cmdline = join_args(ch->nargs, ch->args);
	if (h->mft == NULL || h->cmdline == NULL) {
		fprintf(stderr, "vmmux hvt: out of memory\n");
		return -1;
	}
	memcpy(h->mft, h->image.mft, h->mft_size);
	if (strlen(h->cmdline) >= HVT_CMDLINE_SIZE) {
		fprintf(stderr,
			"vmmux hvt: the unikernel's command line is %zu characters; at "
			"most %u fit\n",
			strlen(h->cmdline), HVT_CMDLINE_SIZE - 1);
		return -1;
	}
	if (h->image.kernel_end + 0x10000 > mem) {
		fprintf(stderr, "vmmux hvt: %s needs more than %llu MiB of memory\n", c->kernel,
			(unsigned long long)(mem >> 20));
		return -1;
	}
	run.ndev = 0;
	for (size_t i = 0; i < ch->ndev && i < HVT_DEVS_MAX; i++) {
		struct hvt_dev *d = &run.dev[run.ndev++];
		*d = (struct hvt_dev){.cfg = &ch->dev[i], .index = -1, .fd = -1, .ready_fd = -1};
		if (attach(ch, d, h->mft, &e) < 0) {
			fprintf(stderr, "vmmux hvt: %s\n", e.msg);
			return -1;
		}
	}
	for (uint32_t i = 1; i < h->mft->entries; i++)
		if (!h->mft->e[i].attached) {
			bool blk = h->mft->e[i].type == HVT_MFT_DEV_BLOCK_BASIC;
			if (ch->source != NULL)
				fprintf(stderr,
					"vmmux hvt: %shvt.%s: the unikernel declares %s device "
					"'%s', which is not attached (give hvt.%s.%s)\n",
					pfx, blk ? "block" : "net", blk ? "block" : "net",
					h->mft->e[i].name, blk ? "block" : "net",
					h->mft->e[i].name);
			else
				fprintf(
				    stderr,
				    "vmmux hvt: the unikernel declares %s device '%s', which is "
				    "not attached (give --%s:%s=%s)\n",
				    blk ? "block" : "net", h->mft->e[i].name, blk ? "block" : "net",
				    h->mft->e[i].name, blk ? "PATH" : "IFACE");
			return -1;
		}
	h->nnet = 0;
	for (unsigned i = 0; i < run.ndev; i++)
		if (run.dev[i].cfg->net) {
			h->net_ready_fd[h->nnet] = run.dev[i].ready_fd;
			h->net_index[h->nnet++] = (unsigned)run.dev[i].index;
		}
	h->mem_size = mem;

	/* The VMMs and routes; the config's own routes come first and win. */
	size_t nuser = c->nroutes;
	c->defaults = false;
	struct vmm_need console = {
	    .name = "console", .role = "hvt-console", .output = "stdout", .why = "console (puts)"};
	unsigned per = devices_per_vmm(c);
	if (per == 0) {
		fprintf(stderr,
			"vmmux hvt: %sthe devices need more VMMs than fit besides the config's "
			"%zu (at most %d in all)\n",
			pfx, c->nvmms, CONFIG_VMMS_MAX);
		return -1;
	}
	if (add_vmm(c, &console, mem, &e) < 0 ||
	    add_devices(c, nuser, false, parallel, mem, per, &e) < 0 ||
	    add_devices(c, nuser, true, parallel, mem, per, &e) < 0) {
		fprintf(stderr, "vmmux hvt: %s%s\n", pfx, e.msg);
		return -1;
	}
	for (size_t i = 0; main_routes[i]; i++)
		if (add_route(c, nuser, main_routes[i], &e) < 0) {
			fprintf(stderr, "vmmux hvt: %s\n", e.msg);
			return -1;
		}
	if (config_finish(c, &e) < 0) {
		fprintf(stderr, "vmmux hvt: %s%s\n", pfx, e.msg);
		return -1;
	}
	h->active = true;
	return 0;
}

static void release(void)
{
	close_devices();
	hvt_image_free(&hvt_host.image);
	free(hvt_host.mft);
	free(hvt_host.cmdline);
	hvt_host.mft = NULL;
	hvt_host.cmdline = NULL;
	hvt_host.active = false;
	atomic_store(&hvt_host.halted, false);
	atomic_store(&hvt_host.faulted, false);
	atomic_store(&hvt_host.status, 0);
}

int hvt_run_config(struct vmmux_config *c, bool parallel)
{
	int status = 1;
	if (prepare(c, parallel) == 0) {
		if (hvt_core_install() < 0) {
			fprintf(stderr, "vmmux hvt: another guest kind holds the main VMM\n");
		} else {
			int s = machine_run(c);
			hvt_core_remove();
			if (atomic_load(&hvt_host.halted))
				status = atomic_load(&hvt_host.status);
			else if (s > 128 && s < 160)
				status = s; /* a signal (machine_run re-raises it) */
			else if (s == 0)
				status = 0; /* a power-off, a snapshot's --stop */
		}
	}
	release();
	return status;
}

int hvt_prepare_config(struct vmmux_config *c, bool parallel)
{
	int rc = prepare(c, parallel);
	release();
	return rc < 0 ? -1 : 0;
}

/* The options' devices into C's hvt section (C owns the copies). */
static int opts_to_config(const struct opts *o, struct vmmux_config *c)
{
	struct config_hvt *h = &c->hvt;
	h->on = true;
	c->mem_bytes = o->mem_mib << 20;
	c->cpus = 1;
	c->stats = o->stats;
	c->defaults = false;
	if (o->gdb[0] != '\0') { /* solo5-hvt-debug waits for the debugger */
		if ((c->gdb = strdup(o->gdb)) == NULL)
			return -1;
		c->gdb_wait = true;
	}
	if ((c->kernel = strdup(o->kernel)) == NULL)
		return -1;
	if (o->nargs > 0 && (h->args = calloc((size_t)o->nargs, sizeof(char *))) == NULL)
		return -1;
	for (int i = 0; i < o->nargs; i++, h->nargs++)
		if ((h->args[i] = strdup(o->args[i])) == NULL)
			return -1;
	for (unsigned i = 0; i < o->ndev && i < CONFIG_HVT_DEVS_MAX; i++, h->ndev++) {
		const struct dev_opt *d = &o->dev[i];
		struct config_hvt_dev *x = &h->dev[i];
		x->net = d->kind == DEV_NET;
		x->sector = d->sector;
		x->mac_set = d->mac_set;
		memcpy(x->mac, d->mac, 6);
		x->name = strdup(d->name);
		x->target = strdup(d->target);
		if (x->name == NULL || x->target == NULL) {
			h->ndev++;
			return -1;
		}
	}
	return 0;
}

int hvt_command(int argc, char **argv)
{
	struct opts *o = calloc(1, sizeof(*o));
	struct vmmux_config *c = calloc(1, sizeof(*c));
	if (o == NULL || c == NULL) {
		free(o);
		free(c);
		fprintf(stderr, "vmmux hvt: out of memory\n");
		return 1;
	}
	config_init(c);
	int status = parse_opts(argc, argv, o);
	struct errbuf e;
	if (status < 0 && o->dumpcore != NULL) {
		hvt_host.dumpcore_dir_fd = hvt_dumpcore_open_dir(o->dumpcore, &e);
		if (hvt_host.dumpcore_dir_fd < 0) {
			fprintf(stderr, "vmmux hvt: %s\n", e.msg);
			status = 1;
		}
		hvt_host.dumpcore_dir = o->dumpcore;
		hvt_host.dumpcore_on = hvt_host.dumpcore_dir_fd >= 0;
	}
	if (status < 0) {
		if (opts_to_config(o, c) < 0) {
			fprintf(stderr, "vmmux hvt: out of memory\n");
			status = 1;
		} else {
			status = hvt_run_config(c, o->parallel);
		}
	}
	if (hvt_host.dumpcore_on)
		close(hvt_host.dumpcore_dir_fd);
	hvt_host.dumpcore_on = false;
	config_free(c);
	free(o);
	free(c);
	return status;
}
