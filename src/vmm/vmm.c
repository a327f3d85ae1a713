/*
 * vmm.c: the VMM registry and the delivery of events (vmm.h).
 */
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "event/event.h"
#include "route/router.h"
#include "stats/trace.h"
#include "util/clock.h"
#include "util/log.h"
#include "vm/guest_mem.h"
#include "vm/ioregion.h"
#include "vmm/machine.h"
#include "vmm/parallel.h"
#include "vmm/policy.h"

#define RAISE_DEPTH_MAX 8

static _Atomic(struct vmm *) registry[VMM_MAX]; /* a swap replaces an entry */
static _Atomic size_t nregistry;
static struct vmm *retired; /* replaced by a swap, freed at the end */

static struct termios saved_tty;
static bool tty_raw;
static const struct guest_mem *granted_mem;

/* The new program of a live update: in-process VMMs' descriptors. */
static struct vmm_io_handover *io_adopt;
static unsigned nio_adopt;

int vmm_io_adopt_set(const struct vmm_io_handover *h, unsigned n)
{
	io_adopt = calloc(n ? n : 1, sizeof(*h));
	if (io_adopt == NULL)
		return -1;
	memcpy(io_adopt, h, n * sizeof(*h));
	nio_adopt = n;
	/* (made close-on-exec again by snapshot_restore_claim_fds) */
	return 0;
}

/* The descriptors handed over for VMM NAME (false: none). */
static bool io_adopted(const struct vmm_config *c, int *in_fd, int *out_fd)
{
	if (c->placement == VMM_PARALLEL || c->program != NULL)
		return pvmm_adopted_fds(c->name, in_fd, out_fd);
	for (unsigned i = 0; i < nio_adopt; i++)
		if (strcmp(io_adopt[i].name, c->name) == 0) {
			*in_fd = io_adopt[i].in_fd;
			*out_fd = io_adopt[i].out_fd;
			io_adopt[i].name[0] = '\0'; /* taken once */
			return true;
		}
	return false;
}

void vmm_registry_set_memory(const struct guest_mem *m)
{
	granted_mem = m;
}

size_t vmm_count(void)
{
	return nregistry;
}

struct vmm *vmm_get(uint16_t id)
{
	return id < nregistry ? registry[id] : NULL;
}

uint16_t vmm_lookup(const char *name)
{
	for (size_t i = 0; i < nregistry; i++)
		if (strcmp(registry[i]->name, name) == 0)
			return (uint16_t)i;
	return VMM_ID_NONE;
}

uint16_t vmm_resolve(void *arg, const char *name)
{
	(void)arg;
	return vmm_lookup(name);
}

const char *vmm_stats_name(uint16_t id, char *where, size_t wlen)
{
	struct vmm *v = vmm_get(id);
	if (v == NULL)
		return NULL;
	if (v->placement == VMM_PARALLEL)
		pvmm_where(v, where, wlen);
	else
		snprintf(where, wlen, "in-process");
	return v->name;
}

static void tty_restore(void)
{
	if (tty_raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
		tty_raw = false;
	}
}

void vmm_tty_handover(bool back)
{
	static struct termios raw;
	static bool was_raw;
	if (!back) {
		was_raw = tty_raw && tcgetattr(STDIN_FILENO, &raw) == 0;
		tty_restore();
	} else if (was_raw && tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
		tty_raw = true;
	}
}

/*
 * Standard input serves as a VMM's input when it is a terminal or a pipe (or
 * a socket); a terminal is switched to non-canonical mode without echo, so
 * that the guest sees each key, but keeps its signals (Ctrl-C stops vmmux).
 */
static int open_stdin(const char *vmm)
{
	struct stat st;
	if (fstat(STDIN_FILENO, &st) < 0)
		return -1;
	if (isatty(STDIN_FILENO)) {
		if (!tty_raw && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
			struct termios raw = saved_tty;
			raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
			raw.c_iflag &= ~(tcflag_t)ICRNL;
			raw.c_cc[VMIN] = 1;
			raw.c_cc[VTIME] = 0;
			if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
				tty_raw = true;
				atexit(tty_restore);
			}
		}
		return STDIN_FILENO;
	}
	if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
		return STDIN_FILENO;
	log_debug("vmm '%s': standard input is neither a terminal nor a pipe: no input", vmm);
	return -1;
}

/*
 * "fd:N": descriptor N, which vmmux already holds (a command such as `vmmux
 * hvt` opened it for the VMM: a disk image read-write, a tap, an eventfd).
 * The VMM gets its own duplicate, close-on-exec, whatever N's mode; -2 with
 * a message when N is not an open descriptor. -1 when S is not of this form.
 * Internal only: the config loader refuses "fd:" in every input and output
 * a user gives (file, --vmm, control API), so only vmmux's own set-up code,
 * which builds struct vmm_config itself, can name a descriptor.
 */
static int dup_held_fd(const struct vmm_config *c, const char *what, const char *s,
		       struct errbuf *e)
{
	if (strncmp(s, "fd:", 3) != 0)
		return -1;
	char *end;
	errno = 0;
	long n = strtol(s + 3, &end, 10);
	int fd = -1;
	if (errno == 0 && end != s + 3 && *end == '\0' && n >= 0 && n <= 0x7fffffffL)
		fd = fcntl((int)n, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return err_set(e, "vmm '%s': %s '%s': not an open descriptor of vmmux", c->name,
			       what, s),
		       -2;
	return fd;
}

static int open_input(const struct vmm_config *c, struct errbuf *e)
{
	if (c->input == NULL || strcmp(c->input, "none") == 0)
		return -1;
	if (strcmp(c->input, "stdin") == 0)
		return open_stdin(c->name);
	int held = dup_held_fd(c, "input", c->input, e);
	if (held != -1)
		return held;
	int fd = open(c->input, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(e, "vmm '%s': input '%s': %s", c->name, c->input, strerror(errno)),
		       -2;
	return fd;
}

/*
 * vmmux's STDFD as a VMM's output. Several VMMs may share it, so a regular
 * file gets a description of the VMM's own opened with O_APPEND: the roles
 * write a regular file without O_APPEND at an offset of their own (pwrite,
 * vmms/role_util.h, role_out), which would overwrite each other's lines in a
 * shared file; appending keeps each write whole at the end. Anything else
 * (a terminal, a pipe), or a failed reopen, is STDFD itself.
 */
static int open_shared_output(int stdfd)
{
	struct stat st;
	char path[32];

	if (fstat(stdfd, &st) < 0 || !S_ISREG(st.st_mode))
		return stdfd;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", stdfd);
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
	return fd < 0 ? stdfd : fd;
}

static int open_output(const struct vmm_config *c, struct errbuf *e)
{
	if (c->output == NULL || strcmp(c->output, "none") == 0)
		return -1;
	if (strcmp(c->output, "stdout") == 0)
		return open_shared_output(STDOUT_FILENO);
	if (strcmp(c->output, "stderr") == 0)
		return open_shared_output(STDERR_FILENO);
	int held = dup_held_fd(c, "output", c->output, e);
	if (held != -1)
		return held;
	int fd = open(c->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0)
		return err_set(e, "vmm '%s': output '%s': %s", c->name, c->output, strerror(errno)),
		       -2;
	return fd;
}

static void close_own_fd(int fd)
{
	if (fd > STDERR_FILENO)
		close(fd);
}

/* Queue an event a role raised during a callback (ctx->raise, in-process). */
static int inproc_raise(struct vmmux_ctx *ctx, const struct vmmux_event *ev)
{
	struct vmm *v = ctx->host;
	if (v->nraised >= VMM_RAISE_MAX) {
		if (v->raise_overflow++ == 0)
			log_warn("vmm '%s': more than %d events raised in one call; the rest are "
				 "dropped",
				 v->name, VMM_RAISE_MAX);
		return -1;
	}
	struct vmmux_event *q = &v->raised[v->nraised++];
	*q = *ev;
	q->count = q->count ? q->count : 1;
	return 0;
}

static struct vmm *vmm_alloc(uint16_t id, const char *name)
{
	struct vmm *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	v->id = id;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->in_fd = v->out_fd = -1;
	v->ctx.host = v;
	v->ctx.raise = inproc_raise;
	atomic_store(&v->load.healthy, 1);
	v->ctx.id = id;
	snprintf(v->ctx.name, sizeof(v->ctx.name), "%s", name);
	v->ctx.in_fd = v->ctx.out_fd = -1;
	pthread_mutex_init(&v->lock, NULL);
	return v;
}

static void vmm_free(struct vmm *v)
{
	if (v == NULL)
		return;
	if (v->p)
		pvmm_stop(v);
	close_own_fd(v->in_fd);
	close_own_fd(v->out_fd);
	for (size_t i = 0; i < v->nfds; i++)
		close_own_fd(v->fds[i]);
	pthread_mutex_destroy(&v->lock);
	free(v->priv);
	free(v);
}

/* Append NAME to the comma-separated list in BUF (truncated when full). */
static void list_add(char *buf, size_t len, size_t *used, const char *name)
{
	int n = snprintf(buf + *used, len - *used, "%s%s", *used ? ", " : "", name);
	if (n > 0 && (size_t)n < len - *used)
		*used += (size_t)n;
}

int vmm_config_check(const struct vmm_config *c, struct errbuf *e)
{
	char list[256] = "";
	size_t used = 0;
	struct raise_grants g;
	memset(&g, 0, sizeof(g));
	for (size_t i = 0; i < c->ngrants; i++)
		if (grant_parse(c->grants[i], &g, e) < 0)
			return err_prefix(e, "vmm '%s'", c->name);
	if (c->program != NULL)
		return 0; /* an external program: its role and arguments are its own */
	const struct vmmux_role *role = role_find(c->role);
	if (role == NULL) {
		for (size_t i = 0; role_at(i) != NULL; i++)
			list_add(list, sizeof(list), &used, role_at(i)->name);
		return err_set(e, "vmm '%s': unknown role '%s' (roles: %s)", c->name, c->role,
			       list);
	}
	if (role->abi_version != VMMUX_ROLE_ABI_VERSION)
		return err_set(e, "vmm '%s': role '%s' is built for role ABI %u, vmmux speaks %u",
			       c->name, c->role, role->abi_version, VMMUX_ROLE_ABI_VERSION);
	for (size_t i = 0; i < c->nargs; i++) {
		bool known = false;
		for (const char *const *a = role->args; a && *a && !known; a++)
			known = strcmp(*a, c->args[i].key) == 0;
		if (known)
			continue;
		for (const char *const *a = role->args; a && *a; a++)
			list_add(list, sizeof(list), &used, *a);
		return err_set(e, "vmm '%s': role '%s' takes no argument '%s' (%s%s)", c->name,
			       c->role, c->args[i].key, used ? "arguments: " : "it takes none",
			       list);
	}
	if (grant_parse_list(role->raises, &g, e) < 0)
		return err_prefix(e, "vmm '%s': role '%s' declares a bad grant", c->name, c->role);
	return 0;
}

/* The windows of guest RAM granted to V, in the main VMM's mapping. */
static int vmm_map_windows(struct vmm *v, struct errbuf *e)
{
	const struct vmm_config *c = &v->cfg;
	if (c->memory_all && granted_mem != NULL) {
		v->windows[0] = (struct gm_window){0, granted_mem->size, granted_mem->host, false};
		v->nwindows = 1;
	}
	for (size_t i = 0; i < c->nwindows && !c->memory_all; i++) {
		const struct vmm_window *w = &c->windows[i];
		if (granted_mem == NULL || !gm_range_ok(granted_mem, w->gpa, w->size))
			return err_set(
			    e, "vmm '%s': memory window 0x%llx+0x%llx lies outside guest RAM",
			    c->name, (unsigned long long)w->gpa, (unsigned long long)w->size);
		v->windows[v->nwindows++] =
		    (struct gm_window){w->gpa, w->size, granted_mem->host + w->gpa, w->ro};
	}
	v->ctx.windows = v->windows;
	v->ctx.nwindows = v->nwindows;
	return 0;
}

struct vmm *vmm_create(const struct vmm_config *c, uint16_t id, struct errbuf *e)
{
	if (vmm_config_check(c, e) < 0)
		return NULL;
	const struct vmmux_role *role = c->program ? NULL : role_find(c->role);
	struct vmm *v = vmm_alloc(id, c->name);
	if (v == NULL) {
		err_set(e, "out of memory");
		return NULL;
	}
	v->role = role;
	v->placement = c->program ? VMM_PARALLEL : c->placement;
	v->cfg = *c;
	v->ctx.args = v->cfg.args;
	v->ctx.nargs = v->cfg.nargs;
	for (size_t i = 0; i < c->ngrants; i++)
		grant_parse(c->grants[i], &v->grants, NULL);
	if (!c->raise_set && role != NULL)
		grant_parse_list(role->raises, &v->grants, NULL);
	int rc = vmm_map_windows(v, e);
	if (rc == 0 && v->placement == VMM_IN_PROCESS) {
		v->priv = calloc(1, role->priv_size ? role->priv_size : 1);
		if (v->priv == NULL)
			rc = err_set(e, "out of memory");
	}
	v->ctx.priv = v->priv;
	int ho_in, ho_out;
	if (rc == 0 && io_adopted(c, &ho_in, &ho_out)) {
		/* a live update's new program: the descriptors the VMM had (an
		 * output file is not opened, and truncated, again) */
		v->in_fd = ho_in;
		v->out_fd = ho_out;
		/* a terminal on standard input: raw again, the user's settings
		 * (given back by the old program before its execve) saved for
		 * the end of the run */
		if (ho_in == STDIN_FILENO)
			(void)open_stdin(c->name);
	} else {
		if (rc == 0 && (v->in_fd = open_input(c, e)) == -2)
			rc = -1;
		if (rc == 0 && (v->out_fd = open_output(c, e)) == -2)
			rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < c->nfds && i < VMM_FDS_MAX; i++) {
		int fd = fcntl(c->fds[i], F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			rc = err_set(e, "vmm '%s': descriptor %zu (%d): %s", c->name, i, c->fds[i],
				     strerror(errno));
		else
			v->fds[v->nfds++] = fd;
	}
	if (rc < 0) {
		v->in_fd = v->in_fd < 0 ? -1 : v->in_fd;
		v->out_fd = v->out_fd < 0 ? -1 : v->out_fd;
		vmm_free(v);
		return NULL;
	}
	v->ctx.in_fd = v->in_fd;
	v->ctx.out_fd = v->out_fd;
	v->ctx.fds = v->fds;
	v->ctx.nfds = v->nfds;
	if (v->placement == VMM_PARALLEL)
		rc = pvmm_start(v, e);
	else if (role->init && role->init(&v->ctx) < 0)
		rc = err_set(e, "vmm '%s' (role %s) failed to start; see the message above",
			     c->name, c->role);
	if (rc < 0) {
		vmm_free(v);
		return NULL;
	}
	return v;
}

void vmm_destroy(struct vmm *v)
{
	if (v == NULL)
		return;
	if (v->placement == VMM_IN_PROCESS && v->role && v->role->fini) {
		pthread_mutex_lock(&v->lock);
		v->role->fini(&v->ctx);
		pthread_mutex_unlock(&v->lock);
	}
	vmm_free(v);
}

int vmm_registry_add(const struct vmm_config *c, uint16_t *id, struct errbuf *e)
{
	size_t n = atomic_load(&nregistry);
	if (n >= VMM_MAX)
		return err_set(e, "too many VMMs (at most %d)", VMM_MAX - 1);
	if (vmm_lookup(c->name) != VMM_ID_NONE)
		return err_set(e, "vmm '%s' exists already", c->name);
	struct vmm *v = vmm_create(c, (uint16_t)n, e);
	if (v == NULL)
		return -1;
	registry[n] = v;
	atomic_store(&nregistry, n + 1); /* readers see the pointer first */
	if (id)
		*id = (uint16_t)n;
	return 0;
}

static int vmm_add_role(const struct vmm_config *c, struct errbuf *e)
{
	return vmm_registry_add(c, NULL, e);
}

struct vmm *vmm_replace(uint16_t id, struct vmm *nw)
{
	struct vmm *old = registry[id];
	atomic_store(&registry[id], nw);
	/* Retired: threads may still hold it; freed at the registry's end. */
	old->retired_next = retired;
	retired = old;
	return old;
}

int vmm_registry_init(const struct vmm_config *cfgs, size_t n, struct errbuf *e)
{
	struct vmm *main_vmm = vmm_alloc(VMM_ID_MAIN, "main");
	if (main_vmm == NULL)
		return err_set(e, "out of memory");
	registry[0] = main_vmm;
	nregistry = 1;
	for (size_t i = 0; i < n; i++) {
		if (vmm_add_role(&cfgs[i], e) < 0) {
			vmm_registry_fini();
			return -1;
		}
	}
	/* Routes compiled into KVM, now that their VMMs exist. */
	if (ioregion_init(e) < 0) {
		vmm_registry_fini();
		return -1;
	}
	return 0;
}

void vmm_registry_fini(void)
{
	ioregion_fini();		       /* first: its thread delivers to the VMMs */
	for (size_t i = 0; i < nregistry; i++) /* every process told first: they end together */
		if (registry[i] != NULL && registry[i]->placement == VMM_PARALLEL)
			pvmm_stop_announce(registry[i]);
	for (size_t i = nregistry; i-- > 0;) {
		vmm_destroy(registry[i]);
		registry[i] = NULL;
	}
	nregistry = 0;
	while (retired) {
		struct vmm *v = retired;
		retired = v->retired_next;
		vmm_free(v); /* its role's fini ran when it was stopped */
	}
	tty_restore();
}

/* Actions a VMM may reply, per event type (bit i = enum vmmux_action i). */
#define ACT(a) (1u << (a))
static const uint32_t allowed_actions[VMMUX_EV__COUNT] = {
    [VMMUX_EV_IO] = ACT(VMMUX_ACT_DONE),
    [VMMUX_EV_MMIO] = ACT(VMMUX_ACT_DONE),
    [VMMUX_EV_MSR] = ACT(VMMUX_ACT_DONE) | ACT(VMMUX_ACT_GP),
    [VMMUX_EV_HLT] = ACT(VMMUX_ACT_DONE),
    [VMMUX_EV_HYPERCALL] = ACT(VMMUX_ACT_DONE),
    [VMMUX_EV_EXCEPTION] = ACT(VMMUX_ACT_DONE) | ACT(VMMUX_ACT_REINJECT) | ACT(VMMUX_ACT_END),
    [VMMUX_EV_SHUTDOWN] = ACT(VMMUX_ACT_RESET) | ACT(VMMUX_ACT_END),
    [VMMUX_EV_PLATFORM] = ACT(VMMUX_ACT_DONE),
    [VMMUX_EV_IRQ] = ACT(VMMUX_ACT_DONE),
    [VMMUX_EV_REQUEST] = ACT(VMMUX_ACT_DONE),
    [VMMUX_EV_FAULT] = ACT(VMMUX_ACT_DONE),
};

static bool reply_valid(const struct vmmux_event *ev, const struct vmmux_reply *rep)
{
	if (ev->type >= VMMUX_EV__COUNT || rep->action >= VMMUX_ACT__COUNT)
		return false;
	if (!(allowed_actions[ev->type] & ACT(rep->action)))
		return false;
	/* Only an exception that KVM caught can be handed back to the guest. */
	if (rep->action == VMMUX_ACT_REINJECT && !(ev->flags & VMMUX_EVF_HOSTDEBUG))
		return false;
	return true;
}

/* Log a VMM's failure once per (VMM, event type). */
static void report_failure(struct vmm *v, const struct vmmux_event *ev, const char *what)
{
	static _Atomic uint32_t logged[VMM_MAX];
	uint32_t bit = 1u << (ev->type % 32);
	if (atomic_fetch_or(&logged[v->id % VMM_MAX], bit) & bit)
		return;
	char desc[256];
	log_warn("vmm '%s': %s for %s; the built-in default applies (logged once per event "
		 "type)",
		 v->name, what, event_describe(ev, desc, sizeof(desc)));
}

/* A device event a VMM handed on (grant forward): the guest has its answer. */
static bool event_is_copy(const struct vmmux_event *ev)
{
	return ev->src_kind == VMMUX_SRC_VMM && event_is_device(ev->type);
}

/* Carry out what only the machine can do: reset, or end as a guest crash. */
static void apply_machine_action(const char *who, const struct vmmux_event *ev,
				 const struct vmmux_reply *rep)
{
	char desc[256];
	if (rep->action == VMMUX_ACT_RESET) {
		char why[320];
		snprintf(why, sizeof(why), "%s, answered 'reset' by %s",
			 event_describe(ev, desc, sizeof(desc)), who);
		machine_reset(why);
	} else if (rep->action == VMMUX_ACT_END) {
		machine_stop(EXIT_GUEST_CRASH, "guest crashed: %s (%s ended the run)",
			     event_describe(ev, desc, sizeof(desc)), who);
	}
}

/* Call V's role in this process, under its mutex; collect what it raised. */
static int deliver_in_process(struct vmm *v, struct vmmux_event *ev, struct vmmux_reply *rep,
			      struct vmmux_event *raised, unsigned *nraised)
{
	pthread_mutex_lock(&v->lock);
	v->cur_vcpu = ev->vcpu;
	int r = v->role->handle(&v->ctx, ev, rep);
	*nraised = v->nraised;
	memcpy(raised, v->raised, v->nraised * sizeof(raised[0]));
	v->nraised = 0;
	pthread_mutex_unlock(&v->lock);
	return r;
}

static void dispatch_raised_list(struct vmm *v, struct vmmux_event *raised, unsigned n,
				 unsigned depth, const struct vmmux_event *served);

void vmm_dispatch_raised_from(struct vmm *v, struct vmmux_event *raised, unsigned n)
{
	dispatch_raised_list(v, raised, n, 0, NULL); /* outside any request */
}

/*
 * Route what V raised, each checked against V's grants (grant_allows):
 * SERVED is the request whose reply (or in-process handle call) carried
 * them, NULL outside a request. Whatever the VMM wrote in the fields that
 * only vmmux gives (source, data, generation) is replaced.
 */
static void dispatch_raised_list(struct vmm *v, struct vmmux_event *raised, unsigned n,
				 unsigned depth, const struct vmmux_event *served)
{
	for (unsigned i = 0; i < n; i++) {
		raised[i].src_kind = VMMUX_SRC_VMM; /* for messages; routing sets it too */
		raised[i].src_id = v->id;
		raised[i].data = NULL;
		raised[i].reserved = 0;
		raised[i].generation = 0;
		if (!grant_allows(&v->grants, &raised[i], served)) {
			char desc[256], why[320];
			event_describe(&raised[i], desc, sizeof(desc));
			snprintf(why, sizeof(why), "raised an event it was not granted: %s", desc);
			if (v->placement == VMM_PARALLEL) {
				pvmm_fault(v, why);
			} else {
				static _Atomic uint32_t logged[VMM_MAX];
				uint32_t bit = 1u << (raised[i].type % 32);
				if (!(atomic_fetch_or(&logged[v->id % VMM_MAX], bit) & bit))
					log_warn(
					    "vmm '%s' %s; dropped (logged once per event type)",
					    v->name, why);
			}
			continue;
		}
		vmm_dispatch_raised(v->id, &raised[i], depth + 1);
	}
}

static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t swap_cond = PTHREAD_COND_INITIALIZER;

/* A delivering thread met a VMM being swapped: wait (offline for the router:
 * the swap may take a while) until the swap is over. */
static void swap_wait(struct vmm *v)
{
	bool on = router_wait_begin();
	pthread_mutex_lock(&swap_lock);
	pthread_cond_broadcast(&swap_cond); /* the swapper may wait for inflight */
	while (atomic_load(&v->swapping))
		pthread_cond_wait(&swap_cond, &swap_lock);
	pthread_mutex_unlock(&swap_lock);
	router_wait_end(on);
}

struct vmm *vmm_ref(uint16_t id)
{
	for (;;) {
		struct vmm *v = vmm_get(id);
		if (v == NULL)
			return NULL;
		atomic_fetch_add(&v->load.inflight, 1);
		/* Dekker with vmm_swap_begin, as in vmm_route_deliver */
		if (!atomic_load(&v->swapping) && vmm_get(id) == v)
			return v;
		vmm_unref(v);
		if (atomic_load(&v->swapping))
			swap_wait(v);
	}
}

void vmm_unref(struct vmm *v)
{
	if (v && atomic_fetch_sub(&v->load.inflight, 1) == 1 && atomic_load(&v->swapping)) {
		pthread_mutex_lock(&swap_lock); /* the swapper waits for this */
		pthread_cond_broadcast(&swap_cond);
		pthread_mutex_unlock(&swap_lock);
	}
}

/* Deliver to a route's fallback FB, holding a reference to it. */
static int deliver_fallback(uint16_t fb, struct vmmux_event *ev, struct vmmux_reply *rep,
			    unsigned depth, uint16_t *handled_by)
{
	struct vmm *f = vmm_ref(fb);
	int r = vmm_deliver_route(fb, NULL, ev, rep, depth, handled_by);
	vmm_unref(f);
	return r;
}

int vmm_deliver_route(uint16_t id, const struct route *route, struct vmmux_event *ev,
		      struct vmmux_reply *rep, unsigned depth, uint16_t *handled_by)
{
	if (handled_by)
		*handled_by = id;
	memset(rep, 0, sizeof(*rep));
	struct vmm *v = vmm_get(id);
	if (v == NULL) {
		main_vmm_default(ev, rep);
		return -1;
	}
	if (atomic_load(&v->stopped)) {
		/* stopped through the control API: its route's fallback, else the
		 * built-in default */
		if (route && route->fallback != VMM_ID_NONE)
			return deliver_fallback(route->fallback, ev, rep, depth + 1, handled_by);
		main_vmm_default(ev, rep);
		if (!event_is_copy(ev)) /* a copy's default acts on nothing */
			apply_machine_action("the built-in default (its VMM is stopped)", ev, rep);
		return -1;
	}
	if (v->role == NULL && v->placement == VMM_IN_PROCESS) {
		int r = main_vmm_handle(ev, rep);
		apply_machine_action("the main VMM", ev, rep);
		return r;
	}
	struct vmmux_event raised[VMM_RAISE_MAX];
	unsigned nraised = 0;
	int r;
	if (v->placement == VMM_PARALLEL) {
		uint16_t fallback = VMM_ID_NONE;
		r = pvmm_deliver(v, pvmm_thread_slot, route, ev, rep, raised, &nraised, &fallback);
		if (r == 1) /* the VMM is down: its route names a fallback */
			return deliver_fallback(fallback, ev, rep, depth + 1, handled_by);
		if (r == -2)
			report_failure(v, ev, "an event the transport cannot carry");
		else if (r < 0)
			report_failure(v, ev, "no answer (it failed or timed out)");
	} else {
		r = deliver_in_process(v, ev, rep, raised, &nraised);
		if (r < 0)
			report_failure(v, ev, "handler failed");
	}
	if (r >= 0 && !reply_valid(ev, rep)) {
		report_failure(v, ev, "invalid reply");
		if (v->placement == VMM_PARALLEL)
			pvmm_fault(v, "invalid reply");
		r = -1;
	}
	if (r < 0) {
		memset(rep, 0, sizeof(*rep));
		main_vmm_default(ev, rep);
	}
	char who[VMMUX_NAME_MAX + 48];
	snprintf(who, sizeof(who),
		 r < 0 ? "the built-in default, after vmm '%s' failed" : "vmm '%s'", v->name);
	if (r >= 0 || !event_is_copy(ev)) /* a copy's default acts on nothing */
		apply_machine_action(who, ev, rep);
	/* what came with the reply to EV: copies of EV may be handed on */
	dispatch_raised_list(v, raised, nraised, depth, ev);
	return r < 0 ? -1 : 0;
}

int vmm_deliver(uint16_t id, struct vmmux_event *ev, struct vmmux_reply *rep, unsigned depth)
{
	return vmm_deliver_route(id, NULL, ev, rep, depth, NULL);
}

int vmm_swap_begin(struct vmm *v, uint64_t timeout_ns)
{
	atomic_store(&v->swapping, true);
	uint64_t deadline = stats_now_ns() + timeout_ns;
	bool on = router_wait_begin(); /* bounded, but never online */
	pthread_mutex_lock(&swap_lock);
	int rc = 0;
	/* Dekker with vmm_route_deliver: it raises inflight, then looks at
	 * swapping; here swapping is set, then inflight read. */
	while (atomic_load(&v->load.inflight) != 0 ||
	       (v->placement == VMM_PARALLEL && !pvmm_drained(v))) {
		if (stats_now_ns() >= deadline || machine_stopping()) {
			rc = -1;
			break;
		}
		struct timespec ts = clock_deadline_in(1000000ull);
		pthread_cond_timedwait(&swap_cond, &swap_lock, &ts);
	}
	pthread_mutex_unlock(&swap_lock);
	router_wait_end(on);
	return rc;
}

void vmm_swap_end(struct vmm *v)
{
	pthread_mutex_lock(&swap_lock);
	atomic_store(&v->swapping, false);
	pthread_cond_broadcast(&swap_cond);
	pthread_mutex_unlock(&swap_lock);
}

/* policy_load_fn over the registry, for a group's policy. */
static const struct vmm_load *member_load(void *arg, uint16_t id)
{
	(void)arg;
	struct vmm *v = vmm_get(id);
	return v ? &v->load : NULL;
}

static int route_deliver(struct vmmux_event *ev, struct vmmux_reply *rep, unsigned depth,
			 bool main_only);

int vmm_route_deliver(struct vmmux_event *ev, struct vmmux_reply *rep, unsigned depth)
{
	return route_deliver(ev, rep, depth, false);
}

int vmm_host_deliver_main(struct vmmux_event *ev)
{
	struct vmmux_reply rep;
	ev->src_kind = VMMUX_SRC_HOST;
	ev->src_id = 0;
	return route_deliver(ev, &rep, 0, true);
}

/*
 * A write that a doorbell route would have signalled, but that exited: its
 * doorbell was out of KVM for a moment (a live change or a swap moves it
 * between steps 3 and 5, docs/routing.md) or not yet in. The VMM gets what
 * the signal would have given it (VMMUX_EVF_DOORBELL, the doorbell's value,
 * not the written one), so that a doorbell route means the same event
 * however the write travelled. Other accesses to the route (reads, other
 * sizes, other values of a datamatch doorbell) stay ordinary events.
 */
static void doorbell_exited(const struct route *r, struct vmmux_event *ev)
{
	if (!(r->flags & ROUTE_OPT_DOORBELL) || !(ev->flags & VMMUX_EVF_WRITE) ||
	    (ev->flags & (VMMUX_EVF_STRING | VMMUX_EVF_DOORBELL | VMMUX_EVF_COALESCED)) ||
	    (ev->type != VMMUX_EV_IO && ev->type != VMMUX_EV_MMIO) || ev->key != r->spec.lo ||
	    ev->size != r->spec.hi - r->spec.lo + 1)
		return;
	bool dm = (r->flags & ROUTE_OPT_DATAMATCH) != 0;
	if (dm && ev->value != r->spec.doorbell_value)
		return;
	ev->flags |= VMMUX_EVF_DOORBELL;
	ev->value = dm ? r->spec.doorbell_value : 0;
}

static int route_deliver(struct vmmux_event *ev, struct vmmux_reply *rep, unsigned depth,
			 bool main_only)
{
	uint64_t t0 = stats_now_ns();
	struct route_target tg;
	struct vmm *v;
	for (;;) {
		ev->flags &= (uint16_t)~VMMUX_EVF_UNROUTED;
		tg = router_resolve(router_current(), ev);
		if (main_only && tg.vmm != VMM_ID_MAIN)
			return 1;	    /* not the main VMM's: the caller hands it on */
		if (tg.vmm == VMM_ID_GROUP) /* a group: its policy picks the member now */
			tg.vmm = policy_pick(tg.r, ev, tg.exclude, member_load, NULL);
		v = vmm_get(tg.vmm);
		if (v == NULL)
			break;
		atomic_fetch_add(&v->load.inflight, 1);
		/* not being swapped, and still the VMM of that id (a swap may have
		 * completed between vmm_get and here): deliver */
		if (!atomic_load(&v->swapping) && vmm_get(tg.vmm) == v)
			break;
		/* held back while V is replaced; then routed again */
		atomic_fetch_sub(&v->load.inflight, 1);
		swap_wait(v);
	}
	struct route_stats *rs = tg.r->stats;
	uint16_t handled = tg.vmm; /* a fallback, when the route's VMM was down */
	ev->generation = tg.generation;
	bool exited = !(ev->flags & (VMMUX_EVF_COALESCED | VMMUX_EVF_DOORBELL));
	if (depth == 0 && ev->src_kind == VMMUX_SRC_VCPU)
		doorbell_exited(tg.r, ev);
	int r = vmm_deliver_route(tg.vmm, tg.r, ev, rep, depth, &handled);
	uint64_t dt = stats_now_ns() - t0;
	if (v) {
		vmm_unref(v);
		atomic_fetch_add_explicit(&v->load.served, 1, memory_order_relaxed);
		/* EWMA, weight 1/8; a racing update loses one sample at worst */
		uint64_t old = atomic_load_explicit(&v->load.ewma_ns, memory_order_relaxed);
		uint64_t next = old ? old - old / 8 + dt / 8 : dt;
		atomic_store_explicit(&v->load.ewma_ns, next, memory_order_relaxed);
	}
	stats_record(ev->type, handled, rs, dt);
	if (depth == 0 && ev->src_kind == VMMUX_SRC_VCPU) /* from an exit, or KVM without one */
		stats_route_origin(rs, exited);
	trace_record(pvmm_thread_slot, ev, rep, handled, rs, t0, dt, r, depth); /* --trace */
	return r;
}

int vmm_dispatch_raised(uint16_t src, struct vmmux_event *ev, unsigned depth)
{
	if (depth > RAISE_DEPTH_MAX) {
		char desc[256];
		log_error("dropped %s: events raised in a chain deeper than %d (a routing loop?)",
			  event_describe(ev, desc, sizeof(desc)), RAISE_DEPTH_MAX);
		return -1;
	}
	if (src == VMM_ID_NONE) {
		ev->src_kind = VMMUX_SRC_HOST;
		ev->src_id = 0;
	} else {
		ev->src_kind = VMMUX_SRC_VMM;
		ev->src_id = src;
	}
	struct vmmux_reply rep;
	return vmm_route_deliver(ev, &rep, depth);
}

int vmm_input_fd(uint16_t id)
{
	struct vmm *v = vmm_get(id);
	/* A parallel VMM polls its own input. */
	if (v == NULL || v->placement != VMM_IN_PROCESS || v->role == NULL ||
	    v->role->input == NULL || v->input_eof)
		return -1;
	return v->in_fd;
}

int vmm_input(uint16_t id)
{
	/* A reference, like any delivery: a swap does not finalise the role
	 * (nor a stop take it) while its input callback runs. */
	struct vmm *v = vmm_ref(id);
	if (v == NULL)
		return -1;
	if (v->placement != VMM_IN_PROCESS || v->role == NULL || v->role->input == NULL ||
	    v->input_eof) {
		vmm_unref(v);
		return -1;
	}
	struct vmmux_event raised[VMM_RAISE_MAX];
	pthread_mutex_lock(&v->lock);
	v->cur_vcpu = VMMUX_NO_VCPU;
	int r = v->role->input(&v->ctx);
	unsigned nraised = v->nraised;
	memcpy(raised, v->raised, nraised * sizeof(raised[0]));
	v->nraised = 0;
	if (r < 0)
		v->input_eof = true;
	pthread_mutex_unlock(&v->lock);
	dispatch_raised_list(v, raised, nraised, 0, NULL);
	vmm_unref(v);
	return r;
}

void vmm_reset_all(void)
{
	for (size_t i = 1; i < vmm_count(); i++) {
		/* a reference, like any delivery: a swap or stop frees nothing
		 * meanwhile */
		struct vmm *v = vmm_ref((uint16_t)i);
		if (v == NULL)
			continue;
		if (v->placement == VMM_PARALLEL) {
			pvmm_reset(v, pvmm_thread_slot);
		} else if (v->role->reset != NULL) {
			pthread_mutex_lock(&v->lock);
			v->role->reset(&v->ctx);
			v->nraised = 0; /* nothing raised by the old machine survives */
			pthread_mutex_unlock(&v->lock);
		}
		vmm_unref(v);
	}
}
