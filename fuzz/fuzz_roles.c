/*
 * fuzz_roles.c: the event path and the built-in roles fed random event
 * sequences: vmm_route_deliver (the one entry point of every vCPU exit:
 * the router, the main VMM's defaults, the VMM's reply checked), events
 * raised by a VMM (vmm_dispatch_raised_from: its grants checked, then
 * routed) and by the host (vmm_dispatch_raised), over a registry that
 * holds every built-in role that runs without a guest kind of its own, all
 * in-process: uart16550, debug-exit, chipset, smm, fault-report (reading
 * its report from guest RAM), monitor, sink, fwcfg, with the routes of
 * configs/demo.json and their own; and the Solo5 hvt device roles as
 * `vmmux hvt` sets them up (hvt_setup.c: descriptors handed as "fd:N"):
 * hvt-console (puts), hvt-block over a 64 KiB disk image in a temporary
 * file, hvt-net over a datagram socket pair standing for the tap (whose
 * other end the fuzzer writes frames into, taken by the role's input
 * callback) and an eventfd for its readiness. HLT goes to the monitor, as in
 * configs/demo.json: the main VMM's handling of it parks the vCPU in the
 * machine's run state, which only machine_run makes.
 *
 * Input: a sequence of events, each a few bytes: who sends it (a vCPU's
 * exit, a VMM's raise, the host, a frame arriving on the tap, or the
 * guest writing its own RAM: the argument structs and buffers that
 * hypercalls and the fault report point at), the type, flags and size as the
 * exit classifier makes them, a key near one of the routed ones or any key, a value, and for string
 * I/O the repetition count and the bytes. The registry is built once; each input starts with every
 * role reset to its power-on state (vmm_reset_all, as a VM reset does), so that an input's run
 * depends little on the inputs before it (guest RAM and what a role keeps across resets stay).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "registry.h"

static const char config_json[] =
    "{\"machine\": {\"mem\": \"4M\", \"cpus\": 1, \"irqchip\": false},"
    " \"vmms\": ["
    "  {\"name\": \"uart\", \"role\": \"uart16550\", \"input\": \"none\", \"output\": \"none\"},"
    "  {\"name\": \"exit\", \"role\": \"debug-exit\"},"
    "  {\"name\": \"chipset\", \"role\": \"chipset\"},"
    "  {\"name\": \"smm\", \"role\": \"smm\"},"
    "  {\"name\": \"fault\", \"role\": \"fault-report\", \"memory\": [\"all\"]},"
    "  {\"name\": \"mon\", \"role\": \"monitor\", \"output\": \"none\", \"args\": {\"read\": "
    "\"0x600d\", \"msr_read\": \"0x1122334455667788\", \"shutdown\": \"reset\"}},"
    "  {\"name\": \"sink\", \"role\": \"sink\"},"
    "  {\"name\": \"fwcfg\", \"role\": \"fwcfg\"}"
    " ],"
    " \"routes\": [\"io:0x3f8-0x3ff=uart\", \"io:0xf4-0xf7=exit\", \"io:0x64=chipset\","
    "  \"io:0xcf9=chipset\", \"io:0x604-0x605=chipset\", \"io:0xb2-0xb3=smm\","
    "  \"platform:smi=smm\", \"io:0x4f0-0x4f3=fault\", \"mmio:0xd0000000+0x1000=mon\","
    "  \"msr:0x40001000-0x400010ff=mon\", \"hypercall:1=mon\", \"exception:3=mon\","
    "  \"io:0x80-0x8f=sink\", \"mmio:0xfee00000+0x1000=sink;posted\", \"io:0x510-0x511=fwcfg\","
    "  \"io:0x514-0x51b=fwcfg\", \"type:shutdown=mon\", \"platform:reset=mon\","
    "  \"type:hlt=mon\", \"hypercall:2=hcon\", \"hypercall:4-5=hblk\", \"hypercall:6-7=hnet\"]}";

static int tap[2] = {-1, -1}, net_ready = -1, disk = -1;
static uint16_t net_id;

static void add_vmm(struct vmmux_config *c, const char *name, const char *role, const char *in,
		    const char *out, const char *const *args)
{
	struct vmm_config v;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	snprintf(v.role, sizeof(v.role), "%s", role);
	v.placement = VMM_IN_PROCESS;
	v.input = (char *)in;
	v.output = (char *)out;
	v.memory_all = true;
	for (; args != NULL && args[0] != NULL; args += 2, v.nargs++) {
		v.args[v.nargs].key = (char *)args[0];
		v.args[v.nargs].value = (char *)args[1];
	}
	struct errbuf e;
	if (config_add_vmm(c, &v, &e) < 0)
		fzr_fail(name, &e);
}

/* The hvt VMMs, with the descriptors vmmux would hand them. */
static void hvt_vmms(struct vmmux_config *c)
{
	char path[] = "/tmp/vmmux-fuzz-disk.XXXXXX";
	disk = mkstemp(path);
	if (disk < 0 || ftruncate(disk, 64 << 10) < 0)
		abort();
	unlink(path);
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, tap) < 0)
		abort();
	net_ready = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (net_ready < 0)
		abort();
	char din[16], nin[16], nout[16];
	snprintf(din, sizeof(din), "fd:%d", disk);
	snprintf(nin, sizeof(nin), "fd:%d", tap[0]);
	snprintf(nout, sizeof(nout), "fd:%d", net_ready);
	static const char *const blk_args[] = {"handle", "1", "block_size", "512", NULL};
	static const char *const net_args[] = {"handle", "2", NULL};
	add_vmm(c, "hcon", "hvt-console", NULL, NULL, NULL);
	add_vmm(c, "hblk", "hvt-block", din, NULL, blk_args);
	add_vmm(c, "hnet", "hvt-net", nin, nout, net_args);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	fzr_up(config_json, hvt_vmms);
	net_id = vmm_lookup("hnet");
	if (net_id == VMM_ID_NONE)
		abort();
	return 0;
}

/* Keys near which events fall: the routed ones, and edges. */
static const uint64_t keys[] = {0x3f8,	    0xf4,	0x64, 0xcf9,  0x604,	 0xb2,	     0x4f0,
				0xd0000000, 0x40001000, 1,    3,      0x80,	 0xfee00000, 0x510,
				0x514,	    0x1ff000,	0,    0xffff, 0xfffff000};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const uint8_t sizes[] = {1, 2, 4, 8};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	vmm_reset_all();
	router_quiescent();
	/* what the guest sent on the tap last time is gone */
	static uint8_t sink[1 << 16];
	while (recv(tap[1], sink, sizeof(sink), MSG_DONTWAIT) >= 0)
		;
	uint8_t buf[16 * 8];
	for (unsigned k = 0; k < 256 && f.n > 0; k++) {
		uint8_t who = fz_u8(&f);
		if (who % 6 == 5) { /* the guest writes its RAM */
			uint64_t gpa = fz_u32(&f) % (fzr_mem.size - 64);
			unsigned len = 1 + fz_u8(&f) % 48;
			for (unsigned i = 0; i < len; i++)
				fzr_mem.host[gpa + i] = fz_u8(&f);
			continue;
		}
		uint8_t b = fz_u8(&f);
		struct vmmux_event ev = {0};
		ev.type = (uint16_t)(fz_u8(&f) % VMMUX_EV__COUNT);
		ev.size = sizes[b & 3];
		ev.count = 1;
		if (b & 4)
			ev.flags |= VMMUX_EVF_WRITE;
		uint8_t ksel = fz_u8(&f);
		ev.key = ksel < NKEYS * 12 ? keys[ksel % NKEYS] + (ksel / NKEYS) : fz_u64(&f);
		ev.value = (b & 8) ? fz_u64(&f) : fz_u8(&f);
		ev.aux = (b & 16) ? fz_u32(&f) : 0;
		if (ev.type == VMMUX_EV_IO && (b & 32) && ev.size != 8) {
			ev.flags |= VMMUX_EVF_STRING;
			ev.count = 1 + fz_u8(&f) % 16;
			for (unsigned i = 0; i < ev.count * ev.size; i++)
				buf[i] = fz_u8(&f);
			ev.data = buf;
		}
		if (ev.type == VMMUX_EV_EXCEPTION && (b & 64))
			ev.flags |= VMMUX_EVF_GUEST_REPORTED;
		if (ev.type == VMMUX_EV_MSR)
			ev.size = 8;
		if (ev.type == VMMUX_EV_IO)
			ev.key &= 0xffff;
		struct vmmux_reply rep = {0};
		switch (who % 6) {
		case 0:
		case 1: /* a vCPU's exit */
			ev.src_kind = VMMUX_SRC_VCPU;
			ev.vcpu = 0;
			vmm_route_deliver(&ev, &rep, 0);
			break;
		case 2: { /* raised by one of the VMMs, outside a request */
			uint16_t id = (uint16_t)(1 + (who >> 2) % (vmm_count() - 1));
			struct vmm *v = vmm_ref(id);
			if (v != NULL) {
				ev.src_kind = VMMUX_SRC_VMM;
				ev.src_id = id;
				ev.vcpu = VMMUX_NO_VCPU;
				ev.flags &= (uint16_t)~VMMUX_EVF_STRING;
				ev.data = NULL;
				ev.count = 1;
				vmm_dispatch_raised_from(v, &ev, 1);
				vmm_unref(v);
			}
			break;
		}
		case 3: /* the host's own: a timer, the control API */
			ev.src_kind = VMMUX_SRC_HOST;
			ev.vcpu = VMMUX_NO_VCPU;
			ev.flags &= (uint16_t)~VMMUX_EVF_STRING;
			ev.data = NULL;
			ev.count = 1;
			vmm_dispatch_raised(VMM_ID_NONE, &ev, 0);
			break;
		case 4: { /* a frame on the tap, then the host's poll says so */
			size_t len = ev.value % 1600;
			static uint8_t frame[1600];
			memset(frame, (int)ev.key, len);
			ssize_t w = send(tap[1], frame, len, MSG_DONTWAIT);
			(void)w;
			if (vmm_input_fd(net_id) >= 0)
				vmm_input(net_id);
			break;
		}
		}
	}
	return 0;
}
