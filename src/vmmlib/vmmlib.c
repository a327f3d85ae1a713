/*
 * vmmlib.c: a role served as a parallel VMM (vmmlib.h, include/vmmux/vmm.h).
 */
#include "vmmlib/vmmlib.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "transport/control.h"
#include "transport/handshake.h"
#include "transport/transport.h"
#include "util/log.h"
#include "vmm/ctx.h"
#include <vmmux/vmm.h>

#define SETUP_TIMEOUT_MS 5000
#define INPUT_RETRY_MS	 10

struct lib {
	const struct vmmux_role *role;
	struct hs_hello hello;
	struct tp_region region;
	struct vmmux_ctx ctx;
	struct vmm_arg args[HS_ARGS_MAX];
	struct gm_window windows[HS_PIECES_MAX];
	size_t nwindows;
	int in_fd, out_fd;
	unsigned nextra;
	int extra[HS_EXTRA_FDS_MAX]; /* vmmux_fd's descriptors */
	bool input_eof;
	unsigned nirqs;
	struct hs_irq irqs[HS_IRQS_MAX];
	int irqfd[HS_IRQS_MAX];
	int resamplefd[HS_IRQS_MAX];
	bool line_high[HS_IRQS_MAX];
	bool asserted[HS_IRQS_MAX]; /* a level line asserted through its irqfd, not yet EOI'd */
	/* doorbells (handshake.h, struct hs_doorbell): eventfds KVM signals */
	int dbfd[HS_DOORBELLS_MAX];
	struct hs_doorbell db[HS_DOORBELLS_MAX];
	/* the request being served: where raised events go */
	bool in_request;
	struct vmmux_event *raised;
	uint32_t *nraised;
	uint8_t state[TP_STATE_MAX];
};

static void set_up_error(struct errbuf *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_up_error(struct errbuf *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* The wired irqfd slot of LINE, or -1. */
static int irq_index(const struct lib *L, uint64_t line)
{
	for (unsigned i = 0; i < L->nirqs; i++)
		if (L->irqs[i].line == line && L->irqfd[i] >= 0)
			return (int)i;
	return -1;
}

static void irqfd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t w = write(fd, &one, sizeof(one));
	(void)w;
}

/*
 * ctx->raise: an interrupt on a wired line goes straight to KVM through its
 * irqfd (an edge line: a pulse for every raise; a level line: asserted when
 * it goes high, until the guest's EOI, and asserted again after it while it
 * stays high). A level line that goes low while still asserted cannot be
 * lowered through the irqfd: that raise goes to the main VMM, which
 * withdraws it. Anything else rides on the reply of the request being
 * served, or, outside a request, on the async ring.
 */
static int lib_raise(struct vmmux_ctx *ctx, const struct vmmux_event *ev)
{
	struct lib *L = ctx->host;
	if (ev->type == VMMUX_EV_IRQ) {
		int i = irq_index(L, ev->key);
		if (i >= 0) {
			bool high = ev->value != 0, level = L->irqs[i].level;
			bool was_high = L->line_high[i];
			L->line_high[i] = high;
			if (high && (!level || !was_high)) {
				irqfd_signal(L->irqfd[i]);
				L->asserted[i] = level;
			}
			if (high || !level || !L->asserted[i])
				return 0;
			L->asserted[i] = false; /* withdrawn by the main VMM */
		}
	}
	/* A copy handed on (a device event) rides only on the reply of the
	 * synchronous request it copies (src/vmm/grants.h); vmmux would take
	 * one on the async ring, or with a posted entry's, as a fault. */
	bool device = ev->type == VMMUX_EV_IO || ev->type == VMMUX_EV_MMIO ||
		      ev->type == VMMUX_EV_MSR || ev->type == VMMUX_EV_HLT ||
		      ev->type == VMMUX_EV_HYPERCALL || ev->type == VMMUX_EV_SHUTDOWN;
	if (device && (!L->in_request || (tp_vmm_seq(&L->region) & TP_SEQ_POSTED)))
		return -1;
	if (L->in_request) {
		if (*L->nraised >= TP_RAISE_MAX)
			return -1;
		L->raised[(*L->nraised)++] = *ev;
		return 0;
	}
	return tp_vmm_async_push(&L->region, ev) < 0 ? -1 : 0; /* it wakes the main loop */
}

static int lib_handle(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
		      struct vmmux_event *raised, uint32_t *nraised)
{
	struct lib *L = arg;
	*nraised = 0;
	L->raised = raised;
	L->nraised = nraised;
	L->in_request = true;
	int r;
	if (ev->type == TP_CTL_RESET) {
		if (L->role->reset)
			L->role->reset(&L->ctx);
		rep->action = VMMUX_ACT_DONE;
		r = 0;
	} else if (ev->type == TP_CTL_SYNC) {
		rep->action = VMMUX_ACT_DONE;
		r = 0;
	} else if (ev->type == TP_CTL_RESTORE) {
		/* a swap: the state of the instance this one replaces */
		long len = tp_state_load(&L->region, L->state, sizeof(L->state));
		r = len > 0 && L->role->restore ? L->role->restore(&L->ctx, L->state, (size_t)len)
						: (len == 0 ? 0 : -EINVAL);
		rep->action = VMMUX_ACT_DONE;
	} else if (ev->type >= VMMUX_EV__COUNT) {
		r = -EINVAL;
	} else {
		r = L->role->handle(&L->ctx, ev, rep);
	}
	L->in_request = false;
	return r;
}

static void lib_save(void *arg)
{
	struct lib *L = arg;
	if (L->role->save == NULL)
		return;
	long len = L->role->save(&L->ctx, L->state, sizeof(L->state));
	if (len >= 0)
		tp_state_store(&L->region, L->state, (size_t)len);
}

/* Map the granted pieces: consecutive ones become one contiguous window. */
static int map_windows(struct lib *L, const int *fds, struct errbuf *e)
{
	const struct hs_hello *h = &L->hello;
	for (uint32_t i = 0; i < h->npieces;) {
		uint32_t j = i;
		uint64_t size = h->pieces[i].size;
		bool ro = (h->pieces[i].flags & HS_PIECE_RO) != 0;
		while (j + 1 < h->npieces &&
		       h->pieces[j + 1].gpa == h->pieces[j].gpa + h->pieces[j].size &&
		       ((h->pieces[j + 1].flags & HS_PIECE_RO) != 0) == ro) {
			j++;
			size += h->pieces[j].size;
		}
		uint8_t *base = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (base == MAP_FAILED) {
			set_up_error(e, "reserving a %llu-byte window: %s",
				     (unsigned long long)size, strerror(errno));
			return -1;
		}
		for (uint32_t k = i; k <= j; k++) {
			uint64_t off = h->pieces[k].gpa - h->pieces[i].gpa;
			if (mmap(base + off, h->pieces[k].size,
				 ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
				 fds[k], 0) == MAP_FAILED) {
				set_up_error(e, "mapping guest memory at 0x%llx: %s",
					     (unsigned long long)h->pieces[k].gpa, strerror(errno));
				return -1;
			}
			close(fds[k]);
		}
		L->windows[L->nwindows++] = (struct gm_window){h->pieces[i].gpa, size, base, ro};
		i = j + 1;
	}
	L->ctx.windows = L->windows;
	L->ctx.nwindows = L->nwindows;
	return 0;
}

static void reply_ready(int version, int status, const char *role, const char *msg)
{
	struct hs_ready r;
	memset(&r, 0, sizeof(r));
	r.magic = HS_MAGIC;
	r.version = (uint32_t)version;
	r.features = HS_F_POSTED | HS_F_STATE | HS_F_IRQFD;
	r.status = status;
	snprintf(r.role, sizeof(r.role), "%s", role ? role : "");
	snprintf(r.msg, sizeof(r.msg), "%s", msg ? msg : "");
	hs_send(HS_SOCKET_FD, &r, sizeof(r), NULL, 0);
}

/* Everything before serving; on failure the main VMM gets the reason. */
static int set_up(struct lib *L, const struct vmmux_role *own, vmmlib_find_fn find,
		  struct errbuf *e)
{
	int fds[HS_FDS_MAX];
	unsigned nfds = 0;
	if (fcntl(HS_SOCKET_FD, F_GETFD) < 0) {
		set_up_error(e,
			     "no set-up descriptor %d: a parallel VMM is started by vmmux, "
			     "not by hand",
			     HS_SOCKET_FD);
		return -2;
	}
	if (hs_recv(HS_SOCKET_FD, &L->hello, sizeof(L->hello), fds, HS_FDS_MAX, &nfds,
		    SETUP_TIMEOUT_MS, e) < 0)
		return -2;
	if (hs_hello_check(&L->hello, nfds, e) < 0)
		return -1;
	const struct hs_hello *h = &L->hello;
	if (h->version_max < HS_VERSION_MIN || h->version_min > HS_VERSION_MAX) {
		set_up_error(e, "this VMM speaks vmmux protocol %u-%u, the main VMM %u-%u",
			     HS_VERSION_MIN, HS_VERSION_MAX, h->version_min, h->version_max);
		return -1;
	}
	log_level = (int)h->log_level;
	L->role = own ? own : (find ? find(h->role) : NULL);
	if (L->role == NULL) {
		set_up_error(e, "no role '%s' in this program", h->role);
		return -1;
	}
	if (L->role->abi_version != VMMUX_ROLE_ABI_VERSION) {
		set_up_error(e, "role '%s' speaks role ABI %u, this library %u", L->role->name,
			     L->role->abi_version, VMMUX_ROLE_ABI_VERSION);
		return -1;
	}
	if (L->role->handle == NULL) {
		set_up_error(e, "role '%s' has no handle callback", L->role->name);
		return -1;
	}
	/* The role's arguments are checked here, where the role is known (a
	 * third party's program carries its own). */
	for (uint32_t i = 0; i < h->nargs; i++) {
		bool known = false;
		for (const char *const *a = L->role->args; a && *a && !known; a++)
			known = strcmp(*a, h->arg_key[i]) == 0;
		if (!known) {
			set_up_error(e, "role '%s' takes no argument '%s'", L->role->name,
				     h->arg_key[i]);
			return -1;
		}
	}
	unsigned k = 0;
	int memfd = fds[k++], vmm_efd = fds[k++], async_efd = fds[k++];
	if (tp_region_attach(&L->region, memfd, vmm_efd, async_efd) < 0) {
		set_up_error(e, "the transport region is not valid: %s", strerror(errno));
		return -1;
	}
	if (map_windows(L, fds + k, e) < 0)
		return -1;
	k += h->npieces;
	L->in_fd = h->has_input ? fds[k++] : -1;
	L->out_fd = h->has_output ? fds[k++] : -1;
	L->nirqs = h->nirqs;
	for (unsigned i = 0; i < h->nirqs; i++) {
		L->irqs[i] = h->irqs[i];
		L->irqfd[i] = L->resamplefd[i] = -1;
		if (h->irqs[i].wired) {
			L->irqfd[i] = fds[k++];
			if (h->irqs[i].level)
				L->resamplefd[i] = fds[k++];
		}
	}
	L->nextra = h->nextra;
	for (uint32_t i = 0; i < h->nextra; i++)
		L->extra[i] = fds[k++];

	struct vmmux_ctx *c = &L->ctx;
	snprintf(c->name, sizeof(c->name), "%s", h->name);
	c->id = h->id;
	for (uint32_t i = 0; i < h->nargs; i++)
		L->args[i] = (struct vmm_arg){(char *)h->arg_key[i], (char *)h->arg_value[i]};
	c->args = L->args;
	c->nargs = h->nargs;
	c->in_fd = L->in_fd;
	c->out_fd = L->out_fd;
	c->fds = L->extra;
	c->nfds = L->nextra;
	c->raise = lib_raise;
	c->host = L;
	c->priv = calloc(1, L->role->priv_size ? L->role->priv_size : 1);
	if (c->priv == NULL) {
		set_up_error(e, "out of memory");
		return -1;
	}
	if (L->role->init && L->role->init(c) < 0) {
		set_up_error(e, "role '%s' failed to start (see its message above)", L->role->name);
		return -1;
	}
	/* A restarted VMM carries its predecessor's state forward. */
	long len = tp_state_load(&L->region, L->state, sizeof(L->state));
	if (len > 0 && L->role->restore && L->role->restore(c, L->state, (size_t)len) < 0)
		vmmux_log(c, VMMUX_LOG_WARN, "could not restore the saved state: starting afresh");
	return 0;
}

static bool wait_go(struct errbuf *e)
{
	struct hs_go go;
	unsigned n = 0;
	if (hs_recv(HS_SOCKET_FD, &go, sizeof(go), NULL, 0, &n, SETUP_TIMEOUT_MS, e) < 0)
		return false;
	return go.magic == HS_MAGIC && go.go == 1;
}

static int lock_down(struct errbuf *e)
{
	struct sandbox_filter f;
	if (sandbox_filter_stage2(&f, e) < 0)
		return -1;
	int r = sandbox_filter_install(&f);
	sandbox_filter_free(&f);
	if (r < 0) {
		set_up_error(e, "installing the seccomp filter: %s", strerror(errno));
		return -1;
	}
	return 0;
}

_Static_assert(sizeof(struct hs_doorbell) <= TP_DB_DESC_MAX, "a doorbell fits its note");

/* N rings of doorbell D: N write events to the role, as for a posted write:
 * outside a request (what it raises goes on the async ring), its state
 * saved after them, with the batch noted applied (tp_vmm_db_begin). */
static void doorbell_apply(struct lib *L, const struct hs_doorbell *d, uint64_t n, uint16_t flags)
{
	for (uint64_t k = 0; k < n; k++) {
		struct vmmux_event ev;
		hs_doorbell_event(&ev, d->type, d->size, d->key, d->datamatch, d->value);
		ev.generation = d->generation;
		ev.flags |= flags;
		struct vmmux_reply rep;
		memset(&rep, 0, sizeof(rep));
		L->in_request = false;
		L->role->handle(&L->ctx, &ev, &rep);
		tp_vmm_progress(&L->region); /* the heartbeat vmmux watches */
	}
	lib_save(L);
	tp_vmm_db_end(&L->region);
}

/* Doorbell I: read what its eventfd counts (N rings since the last read),
 * note the batch in the region, and apply it. */
static void doorbell_rings(struct lib *L, unsigned i)
{
	uint64_t n = 0;
	if (L->dbfd[i] < 0 || read(L->dbfd[i], &n, sizeof(n)) != (ssize_t)sizeof(n) || n == 0)
		return;
	tp_vmm_db_begin(&L->region, &L->db[i], sizeof(L->db[i]), n);
	atomic_fetch_add_explicit(&L->region.hdr->doorbell_rings[i], n, memory_order_relaxed);
	doorbell_apply(L, &L->db[i], n, 0);
}

/* A batch of rings that a predecessor read and died before applying: the
 * successor applies it before anything else, flagged (the dead handler may
 * have had effects outside the state). */
static void doorbell_resume(struct lib *L)
{
	struct hs_doorbell d;
	uint64_t n = 0;
	if (!tp_vmm_db_pending(&L->region, &d, sizeof(d), &n))
		return;
	if ((d.type != VMMUX_EV_IO && d.type != VMMUX_EV_MMIO) || n > (1ull << 32)) {
		tp_vmm_db_end(&L->region); /* not a note this library wrote */
		return;
	}
	vmmux_log(&L->ctx, VMMUX_LOG_INFO,
		  "%llu doorbell ring(s) of 0x%llx that the previous instance read and did not "
		  "apply: applied now",
		  (unsigned long long)n, (unsigned long long)d.key);
	doorbell_apply(L, &d, n, VMMUX_EVF_REDELIVERED);
}

static void doorbell_close(struct lib *L, unsigned i)
{
	doorbell_rings(L, i); /* what it counted before main took it back */
	if (L->dbfd[i] >= 0)
		close(L->dbfd[i]);
	L->dbfd[i] = -1;
}

/* A message on the set-up socket: a doorbell given or taken back. Returns
 * false when the main VMM closed the socket (or broke the protocol). */
static bool socket_message(struct lib *L)
{
	struct hs_doorbell m;
	int fd = -1;
	unsigned nfds = 0;
	struct errbuf e;
	if (hs_recv(HS_SOCKET_FD, &m, sizeof(m), &fd, 1, &nfds, 0, &e) < 0)
		return errno == EAGAIN || errno == EINTR || errno == ETIMEDOUT;
	bool add = m.op == HS_DB_ADD;
	if (m.magic != HS_DB_MAGIC || m.index >= HS_DOORBELLS_MAX || (add && nfds != 1) ||
	    (!add && (m.op != HS_DB_DEL || nfds != 0)) ||
	    (m.type != VMMUX_EV_IO && m.type != VMMUX_EV_MMIO)) {
		if (nfds)
			close(fd);
		vmmux_log(&L->ctx, VMMUX_LOG_ERROR, "malformed doorbell message from the main VMM");
		return false;
	}
	doorbell_close(L, m.index);
	if (add) {
		L->db[m.index] = m;
		L->dbfd[m.index] = fd;
	}
	return true;
}

/* Serve until the main VMM closes the set-up socket. */
static void serve(struct lib *L)
{
	uint64_t input_resume_ns = 0;
	for (unsigned i = 0; i < HS_DOORBELLS_MAX; i++)
		L->dbfd[i] = -1;
	doorbell_resume(L);
	for (;;) {
		tp_vmm_serve(&L->region, lib_handle, L, lib_save);
		int extra[2 + HS_IRQS_MAX + HS_DOORBELLS_MAX];
		unsigned n = 0, input_at = ~0u, resample_at = 0;
		extra[n++] = HS_SOCKET_FD;
		bool input_wanted = L->in_fd >= 0 && L->role->input && !L->input_eof;
		bool paused = input_wanted && tp_now_ns() < input_resume_ns;
		if (input_wanted && !paused) {
			input_at = n;
			extra[n++] = L->in_fd;
		}
		resample_at = n;
		for (unsigned i = 0; i < L->nirqs; i++)
			if (L->resamplefd[i] >= 0)
				extra[n++] = L->resamplefd[i];
		unsigned db_at = n, db_index[HS_DOORBELLS_MAX];
		for (unsigned i = 0; i < HS_DOORBELLS_MAX; i++)
			if (L->dbfd[i] >= 0) {
				db_index[n - db_at] = i;
				extra[n++] = L->dbfd[i];
			}
		unsigned ready = tp_vmm_wait(&L->region, extra, n, paused ? INPUT_RETRY_MS : -1);
		for (unsigned j = db_at; j < n; j++)
			if (ready & (1u << (j + 1)))
				doorbell_rings(L, db_index[j - db_at]);
		if ((ready & (1u << 1)) && !socket_message(L)) {
			/* the main VMM is done with us: the doorbells' last rings first
			 * (the guest made them before the run ended) */
			for (unsigned i = 0; i < HS_DOORBELLS_MAX; i++)
				doorbell_close(L, i);
			return;
		}
		if (input_at != ~0u && (ready & (1u << (input_at + 1)))) {
			int r = L->role->input(&L->ctx);
			if (r == 0)
				input_resume_ns = tp_now_ns() + INPUT_RETRY_MS * 1000000ull;
			else if (r < 0)
				L->input_eof = true;
		}
		for (unsigned i = 0, j = resample_at; i < L->nirqs; i++) {
			if (L->resamplefd[i] < 0)
				continue;
			if (ready & (1u << (j + 1))) {
				uint64_t v;
				ssize_t rd = read(L->resamplefd[i], &v, sizeof(v));
				(void)rd;
				/* The guest acknowledged a level interrupt: assert it again
				 * while the device still holds its line high. */
				L->asserted[i] = L->line_high[i];
				if (L->line_high[i])
					irqfd_signal(L->irqfd[i]);
			}
			j++;
		}
	}
}

int vmmlib_run(const struct vmmux_role *own, vmmlib_find_fn find)
{
	static struct lib L;
	struct errbuf e = {{0}};
	/* Before any guest memory is mapped: a non-dumpable process's /proc
	 * files belong to root. A further layer only: from its execve, what
	 * keeps the other VMMs out is vmmux's doing (a uid of its own, its own
	 * Landlock domain: docs/security.md), since a program that bypasses
	 * this library never gets here. */
	prctl(PR_SET_DUMPABLE, 0);
	int rc = set_up(&L, own, find, &e);
	if (rc == -2) {
		fprintf(stderr, "vmmux-vmm: %s\n", e.msg);
		return 2;
	}
	const char *role = L.role ? L.role->name : NULL;
	if (rc < 0) {
		fprintf(stderr, "vmmux-vmm: %s: %s\n", L.hello.name, e.msg);
		reply_ready(HS_VERSION_MAX, -EINVAL, role, e.msg);
		return 1;
	}
	reply_ready(HS_VERSION_MAX, 0, role, NULL);
	if (!wait_go(&e)) {
		fprintf(stderr, "vmmux-vmm: %s: not started: %s\n", L.hello.name, e.msg);
		return 1;
	}
	if (lock_down(&e) < 0) {
		fprintf(stderr, "vmmux-vmm: %s: %s\n", L.hello.name, e.msg);
		return 1;
	}
	serve(&L);
	if (L.role->fini)
		L.role->fini(&L.ctx);
	return 0;
}

uint64_t vmmux_event_seq(struct vmmux_ctx *ctx)
{
	if (ctx == NULL || ctx->raise != lib_raise)
		return 0; /* not a parallel VMM's context (an in-process VMM) */
	struct lib *L = ctx->host;
	return tp_vmm_seq(&L->region);
}

int vmmux_vmm_main(const struct vmmux_role *role)
{
	return vmmlib_run(role, NULL);
}
