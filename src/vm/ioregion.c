/*
 * ioregion.c: routes compiled into KVM (ioregion.h).
 *
 * State (under I.lock, main thread writes, the compiled-routes thread reads):
 * the coalesced zones registered with KVM, and the doorbells (an ioeventfd
 * each). A doorbell of an in-process VMM is owned by the thread once it is
 * registered: only the thread reads and closes its eventfd, so that a
 * deassigned one (retired) still delivers what it counted. A doorbell of a
 * parallel VMM is owned by the main thread; its process holds a copy of the
 * eventfd and reads it.
 *
 * The coalesced ring (one page, shared by every vCPU's kvm_run mapping at
 * KVM_CAP_COALESCED_MMIO's page offset): KVM writes entries and advances
 * `last`; vmmux reads entries and advances `first`. Drainers are serialised
 * by I.drain_lock and deliver inside it, so that entries reach their VMMs in
 * ring order.
 */
#include "vm/ioregion.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "route/router.h"
#include "stats/stats.h"
#include "util/log.h"
#include "vm/vm.h"
#include "vmm/machine.h"
#include "vmm/parallel.h"
#include "vmm/vmm.h"

#define DRAIN_MIN_MS 1	/* drain period while writes arrive */
#define DRAIN_MAX_MS 16 /* ... doubling up to this while none do */
#define RETIRED_MAX  64 /* rings reported on removed doorbells, per route text */

struct zone {
	uint64_t addr;
	uint32_t size;
	bool pio;
};

enum db_state { DB_FREE = 0, DB_ACTIVE, DB_RETIRED };

struct doorbell {
	enum db_state state;
	bool pio;
	uint8_t len;
	bool datamatch;
	uint64_t addr, value;
	uint16_t vmm;	 /* VMM id */
	struct vmm *v;	 /* that VMM instance (a swap replaces it) */
	bool parallel;	 /* its eventfd is in V's process */
	unsigned index;	 /* parallel: its number in V (< HS_DOORBELLS_MAX) */
	uint64_t base;	 /* parallel: V's count on that number when given */
	int fd;		 /* eventfd, non-blocking */
	bool deassigned; /* out of KVM already (a swap quiesced its VMM) */
	uint64_t held;	 /* rings read from fd while quiesced, delivered when retired */
	uint64_t generation;
	char spec[ROUTE_SPEC_TEXT_MAX];
};

static struct {
	bool probed;
	bool cap_ioeventfd, cap_coalesced, cap_coalesced_pio;
	unsigned ring_page; /* KVM_CAP_COALESCED_MMIO: page offset of the ring */
	bool on;
	struct kvm_coalesced_mmio_ring *ring; /* NULL until a zone is registered */
	uint32_t ring_max;
	pthread_mutex_t drain_lock;
	pthread_mutex_t lock;
	struct zone zones[IOREGION_ZONES_MAX];
	size_t nzones;
	struct doorbell db[IOREGION_DOORBELLS_MAX];
	struct {
		char spec[ROUTE_SPEC_TEXT_MAX];
		uint64_t n;
	} retired[RETIRED_MAX];
	size_t nretired;
	pthread_t thread;
	bool thread_started;
	int wake_fd;
	_Atomic bool quit;
	/* the thread holds rings it read and has not delivered yet
	 * (ioregion_quiet) */
	_Atomic unsigned busy;
	unsigned slot; /* the thread's request slot in parallel VMMs */
} I = {
    .drain_lock = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake_fd = -1,
};

static void probe(void)
{
	if (I.probed)
		return;
	int fd = machine_vm()->kvm_fd;
	int r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD);
	I.cap_ioeventfd = r > 0;
	r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
	I.cap_coalesced = r > 0;
	I.ring_page = r > 0 ? (unsigned)r : 0;
	r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO);
	I.cap_coalesced_pio = r > 0;
	I.probed = true;
}

/* ---------------------------------------------------------------------- */
/* Checks                                                                   */
/* ---------------------------------------------------------------------- */

static bool compiled(const struct route *r)
{
	return (r->flags & (ROUTE_OPT_COALESCED | ROUTE_OPT_DOORBELL)) &&
	       !(r->flags & ROUTE_FLAG_IMPLICIT) &&
	       (r->spec.kind == ROUTE_IO || r->spec.kind == ROUTE_MMIO);
}

static const char *opt_name(const struct route *r)
{
	return (r->flags & ROUTE_OPT_COALESCED) ? "coalesced" : "doorbell";
}

int ioregion_check(const struct route_table *t, struct errbuf *e)
{
	static const struct {
		bool pio;
		uint64_t lo, hi;
		const char *what;
	} kernel_devs[] = {
	    {true, 0x20, 0x21, "the in-kernel PIC"},
	    {true, 0xa0, 0xa1, "the in-kernel PIC"},
	    {true, 0x4d0, 0x4d1, "the in-kernel PIC's ELCR"},
	    {true, 0x40, 0x43, "the in-kernel PIT"},
	    {true, 0x61, 0x61, "the in-kernel PIT's speaker port"},
	    {false, 0xfec00000, 0xfec00fff, "the in-kernel IOAPIC"},
	    {false, 0xfee00000, 0xfee00fff, "the in-kernel LAPIC"},
	};
	struct vm *vm = machine_vm();
	probe();
	size_t nzones = 0, ndb = 0;
	unsigned per_vmm[VMM_MAX] = {0};
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct route *r = &t->routes[i];
		if (!compiled(r))
			continue;
		const char *txt = r->spec.text, *opt = opt_name(r);
		bool pio = r->spec.kind == ROUTE_IO;
		if (r->flags & ROUTE_OPT_COALESCED) {
			if (!I.cap_coalesced)
				return err_set(e,
					       "route '%s': option 'coalesced' needs "
					       "KVM_CAP_COALESCED_MMIO, which this KVM lacks "
					       "(docs/host-limits.md)",
					       txt);
			if (pio && !I.cap_coalesced_pio)
				return err_set(e,
					       "route '%s': option 'coalesced' on ports needs "
					       "KVM_CAP_COALESCED_PIO, which this KVM lacks "
					       "(docs/host-limits.md)",
					       txt);
			if (++nzones > IOREGION_ZONES_MAX)
				return err_set(e, "route '%s': more than %d coalesced routes", txt,
					       IOREGION_ZONES_MAX);
		} else {
			if (!I.cap_ioeventfd)
				return err_set(
				    e,
				    "route '%s': option 'doorbell' needs KVM_CAP_IOEVENTFD, "
				    "which this KVM lacks (docs/host-limits.md)",
				    txt);
			if (++ndb > IOREGION_DOORBELLS_MAX)
				return err_set(e, "route '%s': more than %d doorbell routes", txt,
					       IOREGION_DOORBELLS_MAX);
			struct vmm *v = vmm_get(r->vmm);
			if (v != NULL && v->placement == VMM_PARALLEL && r->vmm < VMM_MAX &&
			    ++per_vmm[r->vmm] > HS_DOORBELLS_MAX)
				return err_set(
				    e,
				    "route '%s': vmm '%s' has more than %d doorbell "
				    "routes (a parallel VMM waits on at most %d eventfds)",
				    txt, v->name, HS_DOORBELLS_MAX, HS_DOORBELLS_MAX);
		}
		if (!pio && r->spec.lo < vm->mem.size)
			return err_set(e,
				       "route '%s': option '%s' on guest RAM (below 0x%llx): the "
				       "guest's accesses there never leave it",
				       txt, opt, (unsigned long long)vm->mem.size);
		for (size_t k = 0; vm->irqchip && k < sizeof(kernel_devs) / sizeof(kernel_devs[0]);
		     k++)
			if (kernel_devs[k].pio == pio && r->spec.lo <= kernel_devs[k].hi &&
			    r->spec.hi >= kernel_devs[k].lo)
				return err_set(e,
					       "route '%s': option '%s' covers %s (0x%llx-0x%llx), "
					       "which KVM handles itself with --irqchip",
					       txt, opt, kernel_devs[k].what,
					       (unsigned long long)kernel_devs[k].lo,
					       (unsigned long long)kernel_devs[k].hi);
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The coalesced ring                                                       */
/* ---------------------------------------------------------------------- */

/* Lock A, going offline for the router while it waits (the holder may be
 * delivering to a VMM for a while; a waiting reader must not hold up a
 * grace period). */
static void lock_offline(pthread_mutex_t *a)
{
	if (pthread_mutex_trylock(a) == 0)
		return;
	router_thread_offline();
	pthread_mutex_lock(a);
	router_thread_online();
}

static void deliver_entry(const struct kvm_coalesced_mmio *c)
{
	struct vmmux_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = c->pio ? VMMUX_EV_IO : VMMUX_EV_MMIO;
	ev.flags = VMMUX_EVF_WRITE | VMMUX_EVF_COALESCED;
	uint32_t len = c->len <= 8 ? c->len : 8;
	ev.size = (uint8_t)len;
	ev.count = 1;
	ev.key = c->phys_addr;
	for (uint32_t i = 0; i < len; i++) /* little-endian, as the guest wrote it */
		ev.value |= (uint64_t)c->data[i] << (8 * i);
	ev.vcpu = VMMUX_NO_VCPU;
	ev.src_kind = VMMUX_SRC_VCPU;
	ev.src_id = VMMUX_NO_VCPU;
	struct vmmux_reply rep;
	vmm_route_deliver(&ev, &rep, 0);
}

unsigned ioregion_drain(void)
{
	struct kvm_coalesced_mmio_ring *ring = __atomic_load_n(&I.ring, __ATOMIC_ACQUIRE);
	if (ring == NULL || __atomic_load_n(&ring->first, __ATOMIC_RELAXED) ==
				__atomic_load_n(&ring->last, __ATOMIC_ACQUIRE))
		return 0;
	lock_offline(&I.drain_lock);
	unsigned n = 0;
	for (;;) {
		uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_RELAXED);
		uint32_t last = __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
		if (first == last)
			break;
		if (first >= I.ring_max || last >= I.ring_max) {
			/* only KVM writes last and only vmmux first: never */
			log_error("KVM's coalesced ring is inconsistent (first %u, last %u of %u): "
				  "its entries are dropped",
				  first, last, I.ring_max);
			__atomic_store_n(&ring->first, last < I.ring_max ? last : 0,
					 __ATOMIC_RELEASE);
			break;
		}
		struct kvm_coalesced_mmio c = ring->coalesced_mmio[first];
		__atomic_store_n(&ring->first, (first + 1) % I.ring_max, __ATOMIC_RELEASE);
		deliver_entry(&c);
		n++;
	}
	pthread_mutex_unlock(&I.drain_lock);
	stats_count_compiled(STATS_COALESCED, n);
	return n;
}

/* ---------------------------------------------------------------------- */
/* Registrations                                                            */
/* ---------------------------------------------------------------------- */

static int zone_ioctl(unsigned long req, const struct zone *z)
{
	struct kvm_coalesced_mmio_zone kz = {
	    .addr = z->addr,
	    .size = z->size,
	    .pio = z->pio ? 1 : 0,
	};
	return ioctl(machine_vm()->vm_fd, req, &kz);
}

static int ioeventfd(const struct doorbell *d, bool deassign)
{
	struct kvm_ioeventfd io = {
	    .datamatch = d->datamatch ? d->value : 0,
	    .addr = d->addr,
	    .len = d->len,
	    .fd = d->fd,
	    .flags = (d->pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
		     (d->datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
		     (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0),
	};
	return ioctl(machine_vm()->vm_fd, KVM_IOEVENTFD, &io);
}

static void db_message(const struct doorbell *d, uint32_t op, struct hs_doorbell *m)
{
	memset(m, 0, sizeof(*m));
	m->magic = HS_DB_MAGIC;
	m->op = op;
	m->index = d->index;
	m->type = d->pio ? VMMUX_EV_IO : VMMUX_EV_MMIO;
	m->size = d->len;
	m->datamatch = d->datamatch ? 1 : 0;
	m->key = d->addr;
	m->value = d->datamatch ? d->value : 0;
	m->generation = d->generation;
}

static void wake_thread(void)
{
	if (I.wake_fd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(I.wake_fd, &one, sizeof(one));
		(void)w;
	}
}

/* The rings a parallel VMM reported on D so far. */
static uint64_t reported(const struct doorbell *d)
{
	uint64_t now = pvmm_doorbell_rings(d->v, d->index);
	return now >= d->base ? now - d->base : 0;
}

static void keep_retired_count(const char *spec, uint64_t n)
{
	if (n == 0)
		return;
	for (size_t i = 0; i < I.nretired; i++)
		if (strcmp(I.retired[i].spec, spec) == 0) {
			I.retired[i].n += n;
			return;
		}
	if (I.nretired < RETIRED_MAX) {
		snprintf(I.retired[I.nretired].spec, sizeof(I.retired[0].spec), "%s", spec);
		I.retired[I.nretired++].n = n;
	}
}

/*
 * Messages for parallel VMMs' set-up sockets, queued while I.lock is held
 * and sent once it is released (outbox_flush): no send under the lock.
 * Sends never block anyway (pvmm_send: a full socket is the VMM's fault).
 * A descriptor to pass is a duplicate, closed after the send.
 */
struct outmsg {
	struct vmm *v;
	struct hs_doorbell m;
	int fd;
	bool warn; /* log when it cannot be sent */
};
struct outbox {
	struct outmsg q[2 * IOREGION_DOORBELLS_MAX];
	size_t n;
};

static void outbox_add(struct outbox *o, struct vmm *v, const struct hs_doorbell *m, int fd,
		       bool warn)
{
	if (o->n == sizeof(o->q) / sizeof(o->q[0]))
		return; /* cannot happen: at most one removal and one addition each */
	struct outmsg *x = &o->q[o->n++];
	x->v = v;
	x->m = *m;
	x->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
	x->warn = warn;
}

static void outbox_flush(struct outbox *o)
{
	for (size_t i = 0; i < o->n; i++) {
		struct outmsg *x = &o->q[i];
		if (pvmm_send(x->v, &x->m, sizeof(x->m), x->fd) < 0 && x->warn)
			log_debug("vmm '%s' has no process now (or does not read its socket); it "
				  "gets its doorbell %u when it starts",
				  x->v->name, x->m.index);
		if (x->fd >= 0)
			close(x->fd);
	}
	o->n = 0;
}

/* Take D out of KVM (I.lock held). It is retired: the thread delivers what
 * its eventfd still counts by the current table (the route's new VMM, its
 * fallback, or the default) and closes it; a parallel VMM's process is told
 * to drop its copy, so each ring is read once, by it or by the thread. */
static void db_remove(struct doorbell *d, struct outbox *o)
{
	if (!d->deassigned && ioeventfd(d, true) < 0)
		log_error("KVM_IOEVENTFD deassign of the doorbell of route '%s': %s", d->spec,
			  strerror(errno));
	if (!d->parallel) {
		d->state = DB_RETIRED;
		return;
	}
	struct hs_doorbell m;
	db_message(d, HS_DB_DEL, &m);
	outbox_add(o, d->v, &m, -1, false); /* a VMM without a process has nothing to drop */
	keep_retired_count(d->spec, reported(d));
	d->state = DB_RETIRED;
}

/* A free number for a new doorbell of parallel VMM V (I.lock held). */
static int free_index(const struct vmm *v)
{
	for (unsigned i = 0; i < HS_DOORBELLS_MAX; i++) {
		bool used = false;
		for (size_t k = 0; k < IOREGION_DOORBELLS_MAX && !used; k++)
			used = I.db[k].state == DB_ACTIVE && I.db[k].parallel && I.db[k].v == v &&
			       I.db[k].index == i;
		if (!used)
			return (int)i;
	}
	return -1;
}

/* Register route R's doorbell (I.lock held). */
static void db_add(const struct route *r, uint64_t generation, struct outbox *o)
{
	struct doorbell *d = NULL;
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX && d == NULL; k++)
		if (I.db[k].state == DB_FREE)
			d = &I.db[k];
	if (d == NULL) {
		log_error("route '%s': no room for one more doorbell; its writes exit",
			  r->spec.text);
		return;
	}
	struct vmm *v = vmm_get(r->vmm);
	memset(d, 0, sizeof(*d));
	d->pio = r->spec.kind == ROUTE_IO;
	d->addr = r->spec.lo;
	d->len = (uint8_t)(r->spec.hi - r->spec.lo + 1);
	d->datamatch = (r->flags & ROUTE_OPT_DATAMATCH) != 0;
	d->value = r->spec.doorbell_value;
	d->vmm = r->vmm;
	d->v = v;
	d->parallel = v != NULL && v->placement == VMM_PARALLEL;
	d->generation = generation;
	snprintf(d->spec, sizeof(d->spec), "%s", r->spec.text);
	d->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->fd < 0) {
		log_error("route '%s': eventfd: %s; its writes exit", d->spec, strerror(errno));
		return;
	}
	if (d->parallel) {
		int idx = free_index(v);
		if (idx < 0) {
			log_error("route '%s': vmm '%s' has %d doorbells already; its writes exit",
				  d->spec, v->name, HS_DOORBELLS_MAX);
			close(d->fd);
			return;
		}
		d->index = (unsigned)idx;
		d->base = pvmm_doorbell_rings(v, d->index);
		/* The process gets the eventfd before KVM signals it: a ring that
		 * comes before the process reads it waits in the counter. */
		struct hs_doorbell m;
		db_message(d, HS_DB_ADD, &m);
		outbox_add(o, v, &m, d->fd, true);
	}
	if (ioeventfd(d, false) < 0) {
		log_error("route '%s': KVM_IOEVENTFD: %s; its writes exit", d->spec,
			  strerror(errno));
		if (d->parallel) {
			struct hs_doorbell m;
			db_message(d, HS_DB_DEL, &m);
			outbox_add(o, v, &m, -1, false);
		}
		close(d->fd);
		return;
	}
	d->state = DB_ACTIVE;
}

/* D is what route R of a table compiles to, for the same VMM instance. */
static bool db_same(const struct doorbell *d, const struct route *r)
{
	struct vmm *v = vmm_get(r->vmm);
	return d->state == DB_ACTIVE && d->pio == (r->spec.kind == ROUTE_IO) &&
	       d->addr == r->spec.lo && d->len == r->spec.hi - r->spec.lo + 1 &&
	       d->datamatch == ((r->flags & ROUTE_OPT_DATAMATCH) != 0) &&
	       (!d->datamatch || d->value == r->spec.doorbell_value) && d->vmm == r->vmm &&
	       d->v == v && d->parallel == (v != NULL && v->placement == VMM_PARALLEL);
}

static bool zone_of(const struct route *r, struct zone *z)
{
	if (!compiled(r) || !(r->flags & ROUTE_OPT_COALESCED))
		return false;
	z->addr = r->spec.lo;
	z->size = (uint32_t)(r->spec.hi - r->spec.lo + 1);
	z->pio = r->spec.kind == ROUTE_IO;
	return true;
}

static bool table_has_zone(const struct route_table *t, const struct zone *z)
{
	for (size_t i = 0; i < t->nroutes; i++) {
		struct zone y;
		if (zone_of(&t->routes[i], &y) && y.addr == z->addr && y.size == z->size &&
		    y.pio == z->pio)
			return true;
	}
	return false;
}

static bool have_zone(const struct zone *z)
{
	for (size_t i = 0; i < I.nzones; i++)
		if (I.zones[i].addr == z->addr && I.zones[i].size == z->size &&
		    I.zones[i].pio == z->pio)
			return true;
	return false;
}

/* Map the ring (the first zone needs it). */
static void map_ring(void)
{
	if (I.ring != NULL || I.ring_page == 0)
		return;
	struct vm *vm = machine_vm();
	long page = sysconf(_SC_PAGESIZE);
	if (page <= 0 || (size_t)(I.ring_page + 1) * (size_t)page > vm->run_size ||
	    vm->ncpus == 0) {
		log_error("KVM's coalesced ring lies beyond the vCPU mapping (page %u)",
			  I.ring_page);
		return;
	}
	I.ring_max = (uint32_t)(((size_t)page - sizeof(struct kvm_coalesced_mmio_ring)) /
				sizeof(struct kvm_coalesced_mmio));
	__atomic_store_n(&I.ring,
			 (struct kvm_coalesced_mmio_ring *)((char *)vm->vcpus[0].run +
							    (size_t)I.ring_page * (size_t)page),
			 __ATOMIC_RELEASE);
}

void ioregion_sync(const struct route_table *t)
{
	if (!I.on)
		return;
	static struct outbox o; /* callers are serialised (the control thread) */
	pthread_mutex_lock(&I.lock);
	/* 1. What the new table no longer has leaves KVM: zones first, then
	 * doorbells (KVM refuses a second ioeventfd on the same access, and a
	 * zone's removal takes every zone inside the range it names). */
	size_t kept = 0;
	for (size_t i = 0; i < I.nzones; i++) {
		if (table_has_zone(t, &I.zones[i])) {
			I.zones[kept++] = I.zones[i];
			continue;
		}
		if (zone_ioctl(KVM_UNREGISTER_COALESCED_MMIO, &I.zones[i]) < 0)
			log_error("KVM_UNREGISTER_COALESCED_MMIO 0x%llx+0x%x: %s",
				  (unsigned long long)I.zones[i].addr, I.zones[i].size,
				  strerror(errno));
	}
	I.nzones = kept;
	bool wanted[IOREGION_DOORBELLS_MAX] = {false};
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX; k++) {
		struct doorbell *d = &I.db[k];
		if (d->state != DB_ACTIVE)
			continue;
		for (size_t i = 0; i < t->nroutes && !wanted[k]; i++) {
			const struct route *r = &t->routes[i];
			if (compiled(r) && (r->flags & ROUTE_OPT_DOORBELL) && db_same(d, r)) {
				wanted[k] = true;
				snprintf(d->spec, sizeof(d->spec), "%s", r->spec.text);
			}
		}
		if (!wanted[k])
			db_remove(d, &o);
	}
	/* 2. What is new enters KVM. */
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct route *r = &t->routes[i];
		struct zone z;
		if (zone_of(r, &z) && !have_zone(&z)) {
			if (I.nzones == IOREGION_ZONES_MAX ||
			    zone_ioctl(KVM_REGISTER_COALESCED_MMIO, &z) < 0) {
				log_error("route '%s': KVM_REGISTER_COALESCED_MMIO: %s; its writes "
					  "exit",
					  r->spec.text,
					  I.nzones == IOREGION_ZONES_MAX ? "too many zones"
									 : strerror(errno));
				continue;
			}
			I.zones[I.nzones++] = z;
			map_ring();
			continue;
		}
		if (!compiled(r) || !(r->flags & ROUTE_OPT_DOORBELL))
			continue;
		bool have = false;
		for (size_t k = 0; k < IOREGION_DOORBELLS_MAX && !have; k++)
			have = I.db[k].state == DB_ACTIVE && db_same(&I.db[k], r);
		if (!have)
			db_add(r, t->generation, &o);
	}
	pthread_mutex_unlock(&I.lock);
	outbox_flush(&o);
	/* 3. What the ring holds goes out by the new table: the compiled
	 * routes' thread drains it (and the vCPUs at their next exit); the
	 * control thread that changed the table delivers nothing itself. */
	wake_thread();
}

void ioregion_vmm_started(struct vmm *v)
{
	if (!I.on)
		return;
	struct outbox *o = calloc(1, sizeof(*o)); /* set-up workers may run at once */
	if (o == NULL) {
		log_error("vmm '%s': out of memory for its doorbells", v->name);
		return;
	}
	pthread_mutex_lock(&I.lock);
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX; k++) {
		struct doorbell *d = &I.db[k];
		if (d->state != DB_ACTIVE || !d->parallel || d->v != v)
			continue;
		/* a new process starts counting afresh in the region it inherits */
		keep_retired_count(d->spec, reported(d));
		d->base = pvmm_doorbell_rings(v, d->index);
		struct hs_doorbell m;
		db_message(d, HS_DB_ADD, &m);
		outbox_add(o, v, &m, d->fd, true);
	}
	pthread_mutex_unlock(&I.lock);
	outbox_flush(o);
	free(o);
}

bool ioregion_doorbells_waiting(struct vmm *v)
{
	if (!I.on || pthread_mutex_trylock(&I.lock) != 0)
		return false;
	struct pollfd p[HS_DOORBELLS_MAX];
	unsigned n = 0;
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX && n < HS_DOORBELLS_MAX; k++) {
		const struct doorbell *d = &I.db[k];
		if (d->state == DB_ACTIVE && d->parallel && d->v == v)
			p[n++] = (struct pollfd){.fd = d->fd, .events = POLLIN};
	}
	bool waiting = n != 0 && poll(p, n, 0) > 0; /* the descriptors stay open under the lock */
	pthread_mutex_unlock(&I.lock);
	return waiting;
}

static uint64_t read_count(int fd);
static bool vmm_down_for_good(const struct vmm *v);

bool ioregion_quiet(void)
{
	if (!I.on)
		return true;
	/* the descriptors first, then the thread's count: a count the thread
	 * reads after the look at its descriptor is read with busy raised */
	struct pollfd p[IOREGION_DOORBELLS_MAX];
	unsigned n = 0;
	bool retired = false;
	pthread_mutex_lock(&I.lock);
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX; k++) {
		const struct doorbell *d = &I.db[k];
		retired |= d->state == DB_RETIRED;
		if (d->state == DB_ACTIVE && (!d->parallel || vmm_down_for_good(d->v)))
			p[n++] = (struct pollfd){.fd = d->fd, .events = POLLIN};
	}
	bool waiting = n != 0 && poll(p, n, 0) > 0;
	pthread_mutex_unlock(&I.lock);
	if (retired || waiting) {
		wake_thread();
		return false;
	}
	return atomic_load(&I.busy) == 0;
}

void ioregion_vmm_quiesce(struct vmm *v)
{
	if (!I.on)
		return;
	pthread_mutex_lock(&I.lock);
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX; k++) {
		struct doorbell *d = &I.db[k];
		if (d->state != DB_ACTIVE || d->v != v || d->deassigned)
			continue;
		if (ioeventfd(d, true) < 0) {
			log_error("KVM_IOEVENTFD deassign of the doorbell of route '%s': %s",
				  d->spec, strerror(errno));
			continue;
		}
		d->deassigned = true;
		/* what V's process has not read: taken now, it goes to the
		 * instance that replaces V when the doorbell is retired */
		if (d->parallel)
			d->held += read_count(d->fd);
	}
	pthread_mutex_unlock(&I.lock);
}

void ioregion_vmm_unquiesce(struct vmm *v)
{
	if (!I.on)
		return;
	pthread_mutex_lock(&I.lock);
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX; k++) {
		struct doorbell *d = &I.db[k];
		if (d->state != DB_ACTIVE || d->v != v || !d->deassigned)
			continue;
		if (d->held) { /* back where V's process reads them */
			ssize_t w = write(d->fd, &d->held, sizeof(d->held));
			(void)w;
			d->held = 0;
		}
		if (ioeventfd(d, false) < 0)
			log_error("route '%s': KVM_IOEVENTFD: %s; its writes exit", d->spec,
				  strerror(errno));
		d->deassigned = false;
	}
	pthread_mutex_unlock(&I.lock);
}

uint64_t ioregion_route_reported(const char *spec)
{
	uint64_t n = 0;
	pthread_mutex_lock(&I.lock);
	for (size_t i = 0; i < I.nretired; i++)
		if (spec == NULL || strcmp(I.retired[i].spec, spec) == 0)
			n += I.retired[i].n;
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX; k++)
		if (I.db[k].state == DB_ACTIVE && I.db[k].parallel &&
		    (spec == NULL || strcmp(I.db[k].spec, spec) == 0))
			n += reported(&I.db[k]);
	pthread_mutex_unlock(&I.lock);
	return n;
}

/* ---------------------------------------------------------------------- */
/* The compiled-routes thread                                               */
/* ---------------------------------------------------------------------- */

/* Deliver N rings of a doorbell (a copy of it) by the current table. */
static void deliver_rings(const struct doorbell *d, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		struct vmmux_event ev;
		hs_doorbell_event(&ev, d->pio ? VMMUX_EV_IO : VMMUX_EV_MMIO, d->len, d->addr,
				  d->datamatch, d->value);
		struct vmmux_reply rep;
		vmm_route_deliver(&ev, &rep, 0);
	}
	stats_count_compiled(STATS_DOORBELL, n);
}

static uint64_t read_count(int fd)
{
	uint64_t n = 0;
	if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return 0;
	return n;
}

/* V's process will not read its doorbells: it is given up, or stopped. */
static bool vmm_down_for_good(const struct vmm *v)
{
	const char *st = pvmm_state_name(v);
	return strcmp(st, "failed") == 0 || strcmp(st, "stopped") == 0;
}

static void *thread_main(void *arg)
{
	(void)arg;
	machine_thread_enter(SELF_IOREGION);
	router_thread_register();
	pvmm_thread_slot = I.slot;
	int period = DRAIN_MIN_MS;
	struct pollfd pf[1 + IOREGION_DOORBELLS_MAX];
	struct doorbell copy[1 + IOREGION_DOORBELLS_MAX];
	for (;;) {
		bool quit = atomic_load(&I.quit);
		bool any_parallel = false;
		nfds_t n = 0;
		pf[n++] = (struct pollfd){.fd = I.wake_fd, .events = POLLIN};
		pthread_mutex_lock(&I.lock);
		for (size_t k = 0; k < IOREGION_DOORBELLS_MAX; k++) {
			struct doorbell *d = &I.db[k];
			if (d->state == DB_RETIRED) {
				/* deassigned: what it still counts goes out, then it is closed */
				struct doorbell c = *d;
				atomic_fetch_add(&I.busy, 1); /* before it leaves the table */
				d->state = DB_FREE;
				d->fd = -1;
				d->held = 0;
				pthread_mutex_unlock(&I.lock);
				deliver_rings(&c, read_count(c.fd) + c.held);
				close(c.fd);
				pthread_mutex_lock(&I.lock);
				atomic_fetch_sub(&I.busy, 1);
				continue;
			}
			if (d->state != DB_ACTIVE)
				continue;
			if (quit) {
				/* the run ends: what it counted goes out (ioregion_fini
				 * deassigns and closes it); a parallel VMM's too, whose
				 * own reading may not have caught up: through the
				 * transport while the VMM is still up */
				struct doorbell c = *d;
				pthread_mutex_unlock(&I.lock);
				deliver_rings(&c, read_count(c.fd));
				pthread_mutex_lock(&I.lock);
				continue;
			}
			/* a parallel VMM's doorbell is read by its process; while
			 * the VMM is given up or stopped, no process will: the
			 * thread reads it, and the rings go by the table (the
			 * route's fallback, or the default), counted */
			if (d->parallel) {
				any_parallel = true;
				if (!vmm_down_for_good(d->v))
					continue;
			}
			copy[n] = *d;
			pf[n++] = (struct pollfd){.fd = d->fd, .events = POLLIN};
		}
		bool ring = I.ring != NULL;
		pthread_mutex_unlock(&I.lock);
		if (quit)
			break;
		router_thread_offline();
		/* a parallel VMM that is given up is noticed within 100 ms */
		int timeout = ring ? period : any_parallel ? 100 : -1;
		int r = poll(pf, n, timeout);
		router_thread_online();
		if (r < 0 && errno != EINTR) {
			log_error("compiled routes: poll: %s", strerror(errno));
			break;
		}
		if (r > 0 && (pf[0].revents & POLLIN))
			read_count(I.wake_fd);
		atomic_fetch_add(&I.busy, 1); /* before a count is read */
		for (nfds_t i = 1; r > 0 && i < n; i++)
			if (pf[i].revents & POLLIN)
				deliver_rings(&copy[i], read_count(copy[i].fd));
		atomic_fetch_sub(&I.busy, 1);
		period = ioregion_drain() ? DRAIN_MIN_MS
					  : (period * 2 > DRAIN_MAX_MS ? DRAIN_MAX_MS : period * 2);
	}
	ioregion_drain();
	router_thread_unregister();
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Life                                                                     */
/* ---------------------------------------------------------------------- */

int ioregion_init(struct errbuf *e)
{
	struct vm *vm = machine_vm();
	const struct route_table *t = router_current();
	if (ioregion_check(t, e) < 0)
		return -1;
	I.slot = vm->ncpus + 1;
	I.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (I.wake_fd < 0)
		return err_set(e, "compiled routes: eventfd: %s", strerror(errno));
	atomic_store(&I.quit, false);
	I.on = true;
	stats_set_route_extra(ioregion_route_reported);
	ioregion_sync(t);
	/* The thread takes no signal: the ones that end the run are read by the
	 * main loop (a signalfd), and it starts before they are blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&I.thread, NULL, thread_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		ioregion_fini();
		return err_set(e, "compiled routes: cannot start their thread");
	}
	I.thread_started = true;
	return 0;
}

void ioregion_fini(void)
{
	if (!I.on)
		return;
	if (I.thread_started) {
		atomic_store(&I.quit, true);
		wake_thread();
		pthread_join(I.thread, NULL);
		I.thread_started = false;
	}
	pthread_mutex_lock(&I.lock);
	for (size_t i = 0; i < I.nzones; i++)
		zone_ioctl(KVM_UNREGISTER_COALESCED_MMIO, &I.zones[i]);
	I.nzones = 0;
	for (size_t k = 0; k < IOREGION_DOORBELLS_MAX; k++) {
		struct doorbell *d = &I.db[k];
		if (d->state == DB_FREE)
			continue;
		if (d->state == DB_ACTIVE)
			ioeventfd(d, true);
		if (d->fd >= 0)
			close(d->fd);
		d->fd = -1;
		d->state = DB_FREE;
	}
	I.nretired = 0;
	pthread_mutex_unlock(&I.lock);
	stats_set_route_extra(NULL);
	__atomic_store_n(&I.ring, NULL, __ATOMIC_RELEASE);
	if (I.wake_fd >= 0)
		close(I.wake_fd);
	I.wake_fd = -1;
	I.on = false;
	I.probed = false;
}
