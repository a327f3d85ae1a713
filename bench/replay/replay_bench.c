/*
 * replay_bench: vmmux's own cost per exit, without KVM. The exits that
 * bench_io makes under KVM, recorded by rawkvm --record (port 0xe0 OUT and
 * IN, MMIO 0xff000000 writes and reads, as KVM reported them in kvm_run),
 * are replayed through the same code a vCPU thread runs after KVM_RUN
 * returns: the record is written into a kvm_run area as KVM would, then
 * exit_classify, router_resolve on the published table, delivery, and
 * exit_apply. Delivery is where the variants differ:
 *   in-process        the handler called through a function pointer (the
 *                     baseline: a VMM in the main VMM's process)
 *   sync spin x-CPU   tp_main_call to a parallel VMM process on the other
 *                     CPU (main on CPU 0, VMM on CPU 1), both sides spinning
 *                     up to 50 us before they sleep
 *   sync spin 1-CPU   the same with both on CPU 0 (the transport then does
 *                     not spin: the waker must run)
 *   sync block x-CPU  spin budget 0: futex and eventfd sleeps at once
 *   posted x-CPU      writes through the posted ring (tp_main_post), reads
 *                     synchronous and spinning
 * The VMM runs the transport's own serving loop (tp_vmm_wait,
 * tp_vmm_serve) with the same handler. Each replayed exit is timed alone
 * (two clock reads, the same in every variant); per round, the p50 and p99
 * per access kind; printed: the median over the rounds [min-max], and the
 * p50 against the in-process one of the same run (ratio and us added).
 *
 * Usage: replay_bench [-r ROUNDS] [-s SPIN_US] RECORD_FILE
 * Prints a markdown section on stdout.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../bench_util.h"
#include "../rawkvm/record.h"
#include "exit/classify.h"
#include "route/router.h"
#include "route/spec.h"
#include "route/table.h"
#include "transport/transport.h"

#define MAX_ROUNDS 16u
#define MAX_EXITS  1000000u
#define RUN_SIZE   (3u * 4096u) /* kvm_run, the PIO data page, and room */
#define PIO_OFFSET 4096u	/* KVM_PIO_PAGE_OFFSET * PAGE_SIZE */
#define KEY_QUIT   0xdeadu
#define VMM_S	   1u

static unsigned rounds = 5;
static uint64_t spin_ns = 50000;

enum acc { A_OUT, A_IN, A_MMIOW, A_MMIOR, A__COUNT };
static const char *const acc_name[A__COUNT] = {"out", "in", "mmiow", "mmior"};

static struct rec_exit *recs;
static unsigned nrecs;
static uint64_t *lat[A__COUNT];
static unsigned nlat[A__COUNT];

/* ---- the VMM: same handler in-process and in the parallel process ----- */

static int handler(void *arg, struct vmmux_event *ev, struct vmmux_reply *rep,
		   struct vmmux_event *raised, uint32_t *nraised)
{
	(void)arg, (void)raised, (void)nraised;
	rep->action = VMMUX_ACT_DONE;
	rep->value = 0;
	if (ev->type == VMMUX_EV_IO && ev->key == KEY_QUIT)
		_exit(0);
	return 0;
}

static int (*volatile handler_ptr)(void *, struct vmmux_event *, struct vmmux_reply *,
				   struct vmmux_event *, uint32_t *) = handler;

static int pin(int cpu)
{
	return bench_pin("replay_bench", cpu);
}

static pid_t start_vmm(const struct tp_region *r, int cpu)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent || pin(cpu) != 0)
		_exit(2);
	struct tp_region v;
	if (tp_region_attach(&v, r->memfd, r->vmm_efd, r->async_efd) != 0)
		_exit(2);
	for (;;) {
		tp_vmm_wait(&v, NULL, 0, 100);
		tp_vmm_serve(&v, handler, NULL, NULL);
	}
}

/* ---- replay ------------------------------------------------------------ */

enum mode { M_INPROC, M_SYNC, M_POSTED };

static uint16_t resolve_s(void *arg, const char *name)
{
	(void)arg;
	return strcmp(name, "s") == 0 ? VMM_S : VMM_ID_NONE;
}

static int publish_table(bool posted)
{
	const char *texts[2] = {posted ? "io:0xe0-0xe3=s;posted" : "io:0xe0-0xe3=s",
				posted ? "mmio:0xff000000+0x1000=s;posted"
				       : "mmio:0xff000000+0x1000=s"};
	struct route_spec specs[2];
	struct errbuf e = {0};
	for (unsigned i = 0; i < 2; i++)
		if (route_spec_parse(texts[i], &specs[i], &e) != 0) {
			fprintf(stderr, "replay_bench: %s\n", e.msg);
			return -1;
		}
	struct route_table *t = route_table_build(specs, 2, resolve_s, NULL, &e);
	if (t == NULL) {
		fprintf(stderr, "replay_bench: %s\n", e.msg);
		return -1;
	}
	router_publish(t);
	return 0;
}

/* What KVM writes into kvm_run for exit R. */
static void kvm_writes(struct kvm_run *run, const struct rec_exit *r)
{
	run->exit_reason = r->exit_reason;
	if (r->exit_reason == KVM_EXIT_IO) {
		run->io.direction = r->io_direction;
		run->io.size = r->io_size;
		run->io.port = r->io_port;
		run->io.count = r->io_count;
		run->io.data_offset = PIO_OFFSET;
		if (r->io_direction == KVM_EXIT_IO_OUT)
			memcpy((uint8_t *)run + PIO_OFFSET, r->data, r->io_size);
	} else {
		run->mmio.phys_addr = r->mmio_addr;
		run->mmio.len = r->mmio_len;
		run->mmio.is_write = r->mmio_is_write;
		memcpy(run->mmio.data, r->data, sizeof(run->mmio.data));
	}
}

static enum acc acc_of(const struct rec_exit *r)
{
	if (r->exit_reason == KVM_EXIT_IO)
		return r->io_direction == KVM_EXIT_IO_OUT ? A_OUT : A_IN;
	return r->mmio_is_write ? A_MMIOW : A_MMIOR;
}

/* Replay every record once; per-exit times into lat[]. */
static int replay(enum mode m, struct tp_region *tp)
{
	static _Alignas(4096) uint8_t area[RUN_SIZE];
	struct kvm_run *run = (struct kvm_run *)area;
	struct errbuf e = {0};
	memset(nlat, 0, sizeof(nlat));
	for (unsigned i = 0; i < nrecs; i++) {
		uint64_t t0 = tp_now_ns();
		kvm_writes(run, &recs[i]);
		struct vmmux_event ev;
		if (exit_classify(run, RUN_SIZE, 0, &ev, &e) != CLASSIFY_EVENT) {
			fprintf(stderr, "replay_bench: exit %u does not classify: %s\n", i, e.msg);
			return -1;
		}
		struct route_target tg = router_resolve(router_current(), &ev);
		struct vmmux_reply rep = {0};
		if (tg.vmm != VMM_S) {
			fprintf(stderr, "replay_bench: exit %u routed to VMM %u, not s\n", i,
				tg.vmm);
			return -1;
		}
		if (m == M_INPROC) {
			struct vmmux_event raised[TP_RAISE_MAX];
			uint32_t nr = 0;
			handler_ptr(NULL, &ev, &rep, raised, &nr);
		} else if (m == M_POSTED && (ev.flags & VMMUX_EVF_WRITE) &&
			   (tg.r->flags & ROUTE_OPT_POSTED) && tp_main_post(tp, &ev) == TP_OK) {
			rep.action = VMMUX_ACT_DONE;
		} else {
			int32_t res;
			enum tp_result t = tp_main_call(tp, 0, &ev, &rep, &res, NULL, NULL,
							tp_now_ns() + 2000000000ull, NULL);
			if (t != TP_OK) {
				fprintf(stderr, "replay_bench: transport call failed (%d)\n", t);
				return -1;
			}
		}
		exit_apply(run, &ev, &rep);
		uint64_t t1 = tp_now_ns();
		enum acc a = acc_of(&recs[i]);
		lat[a][nlat[a]++] = t1 - t0;
		if ((i & 63) == 63)
			router_quiescent();
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct summary {
	double p50[A__COUNT][MAX_ROUNDS], p99[A__COUNT][MAX_ROUNDS];
};

static double stat(const double *v, int which) /* 0 median, 1 min, 2 max */
{
	double c[MAX_ROUNDS];
	memcpy(c, v, rounds * sizeof(double));
	qsort(c, rounds, sizeof(double), cmp_double);
	if (which == 1)
		return c[0];
	if (which == 2)
		return c[rounds - 1];
	return rounds % 2 ? c[rounds / 2] : (c[rounds / 2 - 1] + c[rounds / 2]) / 2;
}

struct variant {
	const char *name;
	enum mode mode;
	int vmm_cpu; /* -1: in-process */
	uint64_t spin;
};

static int run_variant(const struct variant *v, struct summary *s)
{
	struct tp_region r;
	pid_t pid = -1;
	if (v->mode != M_INPROC) {
		if (tp_region_create(&r, 1, v->spin) != 0) {
			fprintf(stderr, "replay_bench: transport region: %s\n", strerror(errno));
			return -1;
		}
		pid = start_vmm(&r, v->vmm_cpu);
		if (pid < 0)
			return -1;
	}
	if (publish_table(v->mode == M_POSTED) != 0)
		return -1;
	int rc = 0;
	for (unsigned round = 0; round < rounds && rc == 0; round++) {
		rc = replay(v->mode, &r);
		for (int a = 0; a < A__COUNT && rc == 0; a++) {
			if (nlat[a] == 0)
				continue;
			qsort(lat[a], nlat[a], sizeof(uint64_t), cmp_u64);
			s->p50[a][round] = (double)lat[a][nlat[a] / 2] / 1000.0;
			s->p99[a][round] = (double)lat[a][(size_t)nlat[a] * 99 / 100] / 1000.0;
		}
	}
	if (pid > 0) {
		struct vmmux_event q = {
		    .type = VMMUX_EV_IO, .size = 1, .count = 1, .key = KEY_QUIT};
		struct vmmux_reply rep;
		int32_t res;
		(void)tp_main_call(&r, 0, &q, &rep, &res, NULL, NULL, tp_now_ns() + 100000000ull,
				   NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		tp_region_destroy(&r);
	}
	return rc;
}

static int load(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		fprintf(stderr, "replay_bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	recs = calloc(MAX_EXITS, sizeof(*recs));
	if (recs == NULL) {
		fclose(f);
		return -1;
	}
	nrecs = (unsigned)fread(recs, sizeof(*recs), MAX_EXITS, f);
	fclose(f);
	for (unsigned i = 0; i < nrecs; i++) {
		const struct rec_exit *r = &recs[i];
		bool ok =
		    r->magic == REC_MAGIC &&
		    ((r->exit_reason == KVM_EXIT_IO && r->io_count == 1 &&
		      (r->io_size == 1 || r->io_size == 2 || r->io_size == 4) &&
		      r->io_direction <= 1) ||
		     (r->exit_reason == KVM_EXIT_MMIO && r->mmio_len >= 1 && r->mmio_len <= 8));
		if (!ok) {
			fprintf(stderr, "replay_bench: %s: record %u is not a port or MMIO exit\n",
				path, i);
			return -1;
		}
	}
	if (nrecs == 0) {
		fprintf(stderr, "replay_bench: %s: no exits recorded\n", path);
		return -1;
	}
	for (int a = 0; a < A__COUNT; a++) {
		lat[a] = calloc(nrecs, sizeof(uint64_t));
		if (lat[a] == NULL)
			return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: replay_bench [-r ROUNDS (1-16)] [-s SPIN_US (0-1000)] RECORD_FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "r:s:h")) != -1) {
		long v = optarg ? strtol(optarg, NULL, 0) : 0;
		switch (c) {
		case 'r':
			if (v < 1 || v > (long)MAX_ROUNDS)
				usage();
			rounds = (unsigned)v;
			break;
		case 's':
			if (v < 0 || v > 1000)
				usage();
			spin_ns = (uint64_t)v * 1000;
			break;
		default:
			usage();
		}
	}
	if (optind + 1 != argc)
		usage();
	if (load(argv[optind]) != 0)
		return 1;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		fprintf(stderr, "replay_bench: needs 2 CPUs\n");
		return 1;
	}
	if (pin(0) != 0)
		return 1;
	router_thread_register();
	if (publish_table(false) != 0) /* router_init's table, replaced per variant */
		return 1;

	const struct variant vs[] = {
	    {"in-process handler (baseline)", M_INPROC, -1, 0},
	    {"parallel VMM, sync, spin, other CPU (0/1)", M_SYNC, 1, spin_ns},
	    {"parallel VMM, sync, spin, same CPU (0/0)", M_SYNC, 0, spin_ns},
	    {"parallel VMM, sync, block, other CPU (0/1)", M_SYNC, 1, 0},
	    {"parallel VMM, posted writes, spin, other CPU (0/1)", M_POSTED, 1, spin_ns},
	};
	enum { NV = sizeof(vs) / sizeof(vs[0]) };
	static struct summary sum[NV];
	for (unsigned i = 0; i < NV; i++)
		if (run_variant(&vs[i], &sum[i]) != 0)
			return 1;

	printf("## Transition cost without KVM\n\n");
	printf("%u recorded exits of `bench_io` (rawkvm --record: OUT and IN on port 0xe0, "
	       "32-bit MMIO writes and reads at 0xff000000) replayed through "
	       "`exit_classify`, `router_resolve`, the delivery and `exit_apply`, each timed "
	       "alone; %u rounds; spin budget %llu us; p50/p99 per access: median over the "
	       "rounds [min-max]; ratio and added: p50 against the in-process handler of this "
	       "run. The handler does nothing, so the figures are vmmux's own cost.\n\n",
	       nrecs, rounds, (unsigned long long)(spin_ns / 1000));
	printf("| variant | access | p50 us | p99 us | ratio | added us |\n"
	       "|---|---|---|---|---|---|\n");
	double added_sync_x = 0;
	for (unsigned i = 0; i < NV; i++) {
		for (int a = 0; a < A__COUNT; a++) {
			double m50 = stat(sum[i].p50[a], 0), b50 = stat(sum[0].p50[a], 0);
			printf("| %s | %s | %.3f [%.3f-%.3f] | %.3f [%.3f-%.3f] | %.1fx | %.3f |\n",
			       vs[i].name, acc_name[a], m50, stat(sum[i].p50[a], 1),
			       stat(sum[i].p50[a], 2), stat(sum[i].p99[a], 0),
			       stat(sum[i].p99[a], 1), stat(sum[i].p99[a], 2), m50 / b50,
			       m50 - b50);
			if (i == 1 && m50 - b50 > added_sync_x)
				added_sync_x = m50 - b50;
		}
	}
	printf("\nTarget: a synchronous transition to a parallel VMM on another CPU, spinning, "
	       "adds at most 0.5 us median to the in-process call: worst access %.3f us added, "
	       "%s.\n\n",
	       added_sync_x, added_sync_x <= 0.5 ? "**met**" : "**missed**");
	return 0;
}
