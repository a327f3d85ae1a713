/*
 * hvt_setup.c: `vmmux hvt`, a drop-in for solo5-hvt (hvt.h).
 *
 * The command parses solo5-hvt's options, validates the unikernel and its
 * manifest, opens every device the manifest declares (disk images
 * read-write, taps, one readiness eventfd per net device), fills in the
 * manifest copy, and describes the run as an ordinary vmmux config:
 *
 *   VMM       role         placement          descriptors
 *   hvt       hvt          main VMM's process  -
 *   console   hvt-console  in-process          output stdout
 *   blockK    hvt-block    --placement         input: the image
 *   netK      hvt-net      --placement         input: the tap, output: readiness
 *
 *   hypercall:1=hvt  hypercall:3=hvt  hypercall:8=hvt  hypercall:2=console
 *   hypercall:4-5=block0 (block1 from block0 ...)   hypercall:6-7=net0 (...)
 *   type:io=hvt type:mmio=hvt type:hlt=hvt type:shutdown=hvt
 *   type:exception=hvt type:hypercall=hvt
 *
 * then runs it with machine_run and maps the outcome to solo5-hvt's exit
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
	int index; /* manifest index */
	int fd, ready_fd;
};

struct opts {
	uint64_t mem_mib;
	bool parallel;
	bool stats;
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
	d->fd = d->ready_fd = -1;
	d->index = -1;
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

static char *join_args(int n, char **args)
{
	size_t len = 1;
	for (int i = 0; i < n; i++)
		len += strlen(args[i]) + 1;
	char *s = malloc(len);
	if (s == NULL)
		return NULL;
	s[0] = '\0';
	size_t at = 0;
	for (int i = 0; i < n; i++)
		at += (size_t)snprintf(s + at, len - at, "%s%s", i ? " " : "", args[i]);
	return s;
}

/* Open and describe device D in manifest M; -1 with a message. */
static int attach(struct dev_opt *d, struct hvt_mft *m, struct errbuf *e)
{
	const char *kind = d->kind == DEV_BLOCK ? "block" : "net";
	d->index = hvt_mft_find(
	    m, d->name, d->kind == DEV_BLOCK ? HVT_MFT_DEV_BLOCK_BASIC : HVT_MFT_DEV_NET_BASIC);
	if (d->index < 0)
		return err_set(e, "--%s:%s: the unikernel declares no %s device named '%s'", kind,
			       d->name, kind, d->name);
	struct hvt_mft_entry *en = &m->e[d->index];
	if (d->kind == DEV_BLOCK) {
		uint64_t bs = d->sector ? d->sector : 512;
		d->fd = open(d->target, O_RDWR | O_CLOEXEC);
		struct stat st;
		if (d->fd < 0 || fstat(d->fd, &st) < 0)
			return err_set(e, "--block:%s: %s: %s", d->name, d->target,
				       strerror(errno));
		if (!S_ISREG(st.st_mode))
			return err_set(e, "--block:%s: %s is not a regular file", d->name,
				       d->target);
		if ((uint64_t)st.st_size % bs)
			return err_set(
			    e,
			    "Backing storage size must be block aligned (%s: %llu bytes, "
			    "block size %llu)",
			    d->target, (unsigned long long)st.st_size, (unsigned long long)bs);
		en->u.block_basic.capacity = (uint64_t)st.st_size;
		en->u.block_basic.block_size = (uint16_t)(bs > 0xffff ? 0 : bs);
		if (bs > 0xffff)
			return err_set(e,
				       "--block-sector-size:%s: %llu does not fit the manifest's "
				       "16-bit block size",
				       d->name, (unsigned long long)bs);
	} else {
		if (strlen(d->target) >= IFNAMSIZ)
			return err_set(e, "--net:%s: interface name '%s' is too long", d->name,
				       d->target);
		if (if_nametoindex(d->target) == 0)
			return err_set(e,
				       "--net:%s: no network interface '%s' (create the tap first: "
				       "ip tuntap add %s mode tap)",
				       d->name, d->target, d->target);
		d->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (d->fd < 0)
			return err_set(e, "--net:%s: /dev/net/tun: %s", d->name, strerror(errno));
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", d->target);
		if (ioctl(d->fd, TUNSETIFF, &ifr) < 0)
			return err_set(e, "--net:%s: attaching to tap '%s': %s%s", d->name,
				       d->target, strerror(errno),
				       errno == EBUSY	 ? " (in use by another program?)"
				       : errno == EINVAL ? " (not a tap interface?)"
							 : "");
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", d->target);
		int r = s < 0 ? -1 : ioctl(s, SIOCGIFMTU, &ifr);
		int err = errno;
		if (s >= 0)
			close(s);
		if (r < 0)
			return err_set(e, "--net:%s: reading the MTU of '%s': %s", d->name,
				       d->target, strerror(err));
		if (!d->mac_set) {
			if (getrandom(d->mac, sizeof(d->mac), 0) != (ssize_t)sizeof(d->mac))
				return err_set(e, "getrandom: %s", strerror(errno));
			d->mac[0] = (uint8_t)((d->mac[0] & 0xfe) | 0x02); /* local, unicast */
		}
		memcpy(en->u.net_basic.mac, d->mac, 6);
		en->u.net_basic.mtu = (uint16_t)ifr.ifr_mtu;
		d->ready_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (d->ready_fd < 0)
			return err_set(e, "eventfd: %s", strerror(errno));
	}
	en->hostfd = (uint64_t)d->fd;
	en->attached = true;
	return 0;
}

static int add_route(struct vmmux_config *c, const char *text, struct errbuf *e)
{
	struct route_spec r;
	if (route_spec_parse(text, &r, e) < 0 || config_add_route(c, &r, e) < 0)
		return -1;
	return 0;
}

static int add_vmm(struct vmmux_config *c, const char *name, const char *role, bool parallel,
		   const char *input, const char *output, uint64_t mem, const char *const *args,
		   const char *const *grants, struct errbuf *e)
{
	struct vmm_config v;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	snprintf(v.role, sizeof(v.role), "%s", role);
	v.placement = parallel ? VMM_PARALLEL : VMM_IN_PROCESS;
	v.placement_set = true;
	v.input = (char *)input;
	v.output = (char *)output;
	for (size_t i = 0; args && args[i] && args[i + 1] && v.nargs < VMM_ARGS_MAX; i += 2) {
		v.args[v.nargs].key = (char *)args[i];
		v.args[v.nargs++].value = (char *)args[i + 1];
	}
	for (size_t i = 0; grants && grants[i] && v.ngrants < VMM_GRANTS_MAX; i++)
		v.grants[v.ngrants++] = (char *)grants[i];
	v.raise_set = grants != NULL;
	/* The window a device role needs: the guest's own memory, from its
	 * image up; not the page tables, boot information or manifest. */
	if (mem > HVT_GUEST_MIN_BASE) {
		v.nwindows = 1;
		v.windows[0] = (struct vmm_window){HVT_GUEST_MIN_BASE, mem - HVT_GUEST_MIN_BASE};
	}
	return config_add_vmm(c, &v, e);
}

/* The VMMs and routes of one kind of device, chained by handle. */
static int add_devices(struct vmmux_config *c, struct opts *o, enum dev_kind k, uint64_t mem,
		       struct errbuf *e)
{
	const char *prefix = k == DEV_BLOCK ? "block" : "net";
	const char *role = k == DEV_BLOCK ? "hvt-block" : "hvt-net";
	unsigned lo = k == DEV_BLOCK ? HVT_HC_BLOCK_WRITE : HVT_HC_NET_WRITE;
	unsigned n = 0, total = 0;
	for (unsigned i = 0; i < o->ndev; i++)
		total += o->dev[i].kind == k;
	for (unsigned i = 0; i < o->ndev; i++) {
		struct dev_opt *d = &o->dev[i];
		if (d->kind != k)
			continue;
		char name[32], in[32], out[32], handle[16], bs[24], route[96];
		snprintf(name, sizeof(name), "%s%u", prefix, n);
		snprintf(in, sizeof(in), "fd:%d", d->fd);
		snprintf(out, sizeof(out), "fd:%d", d->ready_fd);
		snprintf(handle, sizeof(handle), "%d", d->index);
		snprintf(bs, sizeof(bs), "%llu", (unsigned long long)(d->sector ? d->sector : 512));
		bool next = n + 1 < total;
		const char *args[] = {"handle",
				      handle,
				      "next",
				      next ? "yes" : "no",
				      k == DEV_BLOCK ? "block_size" : NULL,
				      bs,
				      NULL};
		static const char *const chain_grants[] = {"request:exit", "forward", NULL};
		if (add_vmm(c, name, role, o->parallel, in, k == DEV_NET ? out : NULL, mem, args,
			    next ? chain_grants : NULL, e) < 0)
			return -1;
		if (n == 0)
			snprintf(route, sizeof(route), "hypercall:%u-%u=%s", lo, lo + 1, name);
		else
			snprintf(route, sizeof(route), "hypercall:%u-%u=%s;from=%s%u", lo, lo + 1,
				 name, prefix, n - 1);
		if (add_route(c, route, e) < 0)
			return -1;
		n++;
	}
	return 0;
}

static void close_devices(struct opts *o)
{
	for (unsigned i = 0; i < o->ndev; i++) {
		if (o->dev[i].fd >= 0)
			close(o->dev[i].fd);
		if (o->dev[i].ready_fd >= 0)
			close(o->dev[i].ready_fd);
		o->dev[i].fd = o->dev[i].ready_fd = -1;
	}
}

/* Everything but running: image, devices, config. Returns 0 or 1. */
static int prepare(struct opts *o, struct vmmux_config *c)
{
	struct errbuf e;
	struct hvt_host *h = &hvt_host;
	uint64_t mem = o->mem_mib << 20;
	uint8_t *img = NULL;
	size_t len = 0;
	if (loader_read_file(o->kernel, mem, &img, &len, &e) < 0) {
		fprintf(stderr, "vmmux hvt: %s\n", e.msg);
		return 1;
	}
	int rc = hvt_image_parse(o->kernel, img, len, mem, &h->image, &e);
	free(img);
	if (rc < 0) {
		fprintf(stderr, "vmmux hvt: %s\n", e.msg);
		return 1;
	}
	h->mft_size = h->image.mft_size;
	h->mft = malloc(h->mft_size);
	h->cmdline = join_args(o->nargs, o->args);
	if (h->mft == NULL || h->cmdline == NULL) {
		fprintf(stderr, "vmmux hvt: out of memory\n");
		return 1;
	}
	memcpy(h->mft, h->image.mft, h->mft_size);
	if (strlen(h->cmdline) >= HVT_CMDLINE_SIZE) {
		fprintf(stderr,
			"vmmux hvt: the unikernel's command line is %zu characters; at "
			"most %u fit\n",
			strlen(h->cmdline), HVT_CMDLINE_SIZE - 1);
		return 1;
	}
	if (h->image.kernel_end + 0x10000 > mem) {
		fprintf(stderr, "vmmux hvt: %s needs more than --mem=%llu MiB\n", o->kernel,
			(unsigned long long)o->mem_mib);
		return 1;
	}
	for (unsigned i = 0; i < o->ndev; i++)
		if (attach(&o->dev[i], h->mft, &e) < 0) {
			fprintf(stderr, "vmmux hvt: %s\n", e.msg);
			return 1;
		}
	for (uint32_t i = 1; i < h->mft->entries; i++)
		if (!h->mft->e[i].attached) {
			bool blk = h->mft->e[i].type == HVT_MFT_DEV_BLOCK_BASIC;
			fprintf(stderr,
				"vmmux hvt: the unikernel declares %s device '%s', which is not "
				"attached (give --%s:%s=%s)\n",
				blk ? "block" : "net", h->mft->e[i].name, blk ? "block" : "net",
				h->mft->e[i].name, blk ? "PATH" : "IFACE");
			return 1;
		}
	h->nnet = 0;
	for (unsigned i = 0; i < o->ndev; i++)
		if (o->dev[i].kind == DEV_NET) {
			h->net_ready_fd[h->nnet] = o->dev[i].ready_fd;
			h->net_index[h->nnet++] = (unsigned)o->dev[i].index;
		}
	h->mem_size = mem;

	config_init(c);
	c->defaults = false;
	c->mem_bytes = mem;
	c->cpus = 1;
	c->stats = o->stats;
	c->kernel = strdup(o->kernel);
	if (c->kernel == NULL ||
	    add_vmm(c, "hvt", "hvt", false, NULL, NULL, 0, NULL, NULL, &e) < 0 ||
	    add_vmm(c, "console", "hvt-console", false, NULL, "stdout", mem, NULL, NULL, &e) < 0 ||
	    add_devices(c, o, DEV_BLOCK, mem, &e) < 0 || add_devices(c, o, DEV_NET, mem, &e) < 0) {
		fprintf(stderr, "vmmux hvt: %s\n", c->kernel ? e.msg : "out of memory");
		return 1;
	}
	static const char *const routes[] = {"hypercall:1=hvt",
					     "hypercall:2=console",
					     "hypercall:3=hvt",
					     "hypercall:8=hvt",
					     "type:io=hvt",
					     "type:mmio=hvt",
					     "type:hlt=hvt",
					     "type:shutdown=hvt",
					     "type:exception=hvt",
					     "type:hypercall=hvt",
					     NULL};
	for (size_t i = 0; routes[i]; i++)
		if (add_route(c, routes[i], &e) < 0) {
			fprintf(stderr, "vmmux hvt: %s\n", e.msg);
			return 1;
		}
	if (config_finish(c, &e) < 0) {
		fprintf(stderr, "vmmux hvt: %s\n", e.msg);
		return 1;
	}
	h->active = true;
	hvt_core_impl = &hvt_core_impl_role;
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
	int status = parse_opts(argc, argv, o);
	if (status < 0) {
		config_init(c);
		status = prepare(o, c);
		if (status == 0) {
			int s = machine_run(c);
			if (atomic_load(&hvt_host.halted))
				status = atomic_load(&hvt_host.status);
			else if (s > 128 && s < 160)
				status = s; /* a signal (machine_run re-raises it) */
			else
				status = 1;
		}
		config_free(c);
	}
	close_devices(o);
	hvt_image_free(&hvt_host.image);
	free(hvt_host.mft);
	free(hvt_host.cmdline);
	hvt_host.mft = NULL;
	hvt_host.cmdline = NULL;
	hvt_host.active = false;
	hvt_core_impl = NULL;
	free(o);
	free(c);
	return status;
}
