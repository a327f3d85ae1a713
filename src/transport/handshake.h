/*
 * handshake.h: setting up a parallel VMM over its setup socket.
 *
 * The socket (SOCK_SEQPACKET, one end inherited by the VMM as descriptor
 * HS_SOCKET_FD) carries exactly three messages and then only the teardown:
 *
 *   1. main -> VMM  hello: the protocol versions main speaks, features, the
 *      VMM's name, id, role (for built-in roles) and arguments, the number
 *      of request slots, the granted guest-memory windows, the IRQ lines the
 *      VMM may raise; with SCM_RIGHTS, in this order: the transport region
 *      memfd, the VMM doorbell eventfd, the async eventfd, one memfd per
 *      window piece, the input and output descriptors (when the config gives
 *      them), one irqfd per wired IRQ line (and its resample fd for level
 *      lines), then the nextra further descriptors (vmmux_fd).
 *   2. VMM -> main  ready: the version it chose (within main's range), the
 *      features it accepts, its role's name, and a status (0, or -errno with
 *      a message when its set-up failed: bad role, bad arguments, a window it
 *      could not map).
 *   3. main -> VMM  go (or the socket closes: the VMM exits).
 *
 * Every field is checked on receipt by both sides (sizes, counts, NUL
 * termination, descriptor count); a malformed message ends the set-up with
 * an error naming the field. The socket is for set-up and teardown only:
 * no event ever travels on it.
 */
#ifndef VMMUX_TRANSPORT_HANDSHAKE_H
#define VMMUX_TRANSPORT_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "util/err.h"
#include <vmmux/vmmux.h>

#define HS_MAGIC	 0x6f6c6568u /* "helo" */
#define HS_VERSION_MIN	 1u
#define HS_VERSION_MAX	 1u
#define HS_SOCKET_FD	 3 /* where the VMM finds the setup socket */
#define HS_NAME_MAX	 32
#define HS_ARGS_MAX	 16
#define HS_ARG_KEY_MAX	 32
#define HS_ARG_VALUE_MAX 256
#define HS_WINDOWS_MAX	 16
#define HS_PIECES_MAX	 64 /* window pieces (memfds) in all */
#define HS_IRQS_MAX	 8
#define HS_EXTRA_FDS_MAX 128 /* vmmux_fd's descriptors */
#define HS_FDS_MAX	 (3 + HS_PIECES_MAX + 2 + 2 * HS_IRQS_MAX + HS_EXTRA_FDS_MAX)
#define HS_MSG_MAX	 256

/* Feature bits. */
#define HS_F_POSTED 0x1u /* the VMM consumes the posted ring */
#define HS_F_STATE  0x2u /* the VMM saves its role's state after each event */
#define HS_F_IRQFD  0x4u /* the VMM writes irqfds itself */

#define HS_PIECE_RO 0x1u /* read-only: its descriptor is opened read-only */

struct hs_piece {
	uint64_t gpa;	/* guest-physical address of the piece */
	uint64_t size;	/* bytes; the piece's memfd is exactly this long */
	uint32_t flags; /* HS_PIECE_RO */
	uint32_t reserved;
};

struct hs_irq {
	uint32_t line;
	uint32_t level; /* 1: level-triggered (an irqfd with a resample fd) */
	uint32_t wired; /* 1: an irqfd (and resample fd) follows in the fds */
	uint32_t reserved;
};

struct hs_hello {
	uint32_t magic;
	uint32_t version_min, version_max;
	uint32_t features;
	char name[HS_NAME_MAX];
	char role[HS_NAME_MAX]; /* empty for an external program's own role */
	uint16_t id;
	uint16_t reserved;
	uint32_t nslots;
	uint32_t npieces; /* window pieces, ascending gpa, each one memfd */
	struct hs_piece pieces[HS_PIECES_MAX];
	uint32_t has_input, has_output;
	uint32_t nirqs;
	struct hs_irq irqs[HS_IRQS_MAX];
	uint32_t nargs;
	char arg_key[HS_ARGS_MAX][HS_ARG_KEY_MAX];
	char arg_value[HS_ARGS_MAX][HS_ARG_VALUE_MAX];
	uint64_t spin_ns;
	uint32_t log_level;
	uint32_t nextra; /* further descriptors (vmmux_fd), last in the fds */
};

struct hs_ready {
	uint32_t magic;
	uint32_t version;
	uint32_t features;
	int32_t status; /* 0, or -errno */
	char role[HS_NAME_MAX];
	char msg[HS_MSG_MAX]; /* why, when status < 0 */
};

struct hs_go {
	uint32_t magic;
	uint32_t go; /* 1 */
};

/*
 * Doorbells (routes compiled into KVM, src/vm/ioregion.h). After the go, the
 * socket carries one more kind of message, main -> VMM, any number of times:
 * a doorbell given to the VMM (HS_DB_ADD, with the eventfd that KVM signals
 * through KVM_IOEVENTFD, by SCM_RIGHTS) or taken back (HS_DB_DEL, no
 * descriptor: main has deassigned it from KVM; the VMM reads what the
 * eventfd still counts, delivers it, and closes it). The VMM library polls
 * the eventfds itself and turns each count of N into N write events for its
 * role (flags VMMUX_EVF_WRITE | VMMUX_EVF_DOORBELL; value: the datamatch
 * value, else 0 and meaningless), and adds N to the region's
 * doorbell_rings[index] (transport.h) for the main VMM's statistics.
 */
#define HS_DB_MAGIC	 0x6c6c6264u /* "dbll" */
#define HS_DB_ADD	 1u
#define HS_DB_DEL	 2u
#define HS_DOORBELLS_MAX 16 /* doorbells of one parallel VMM at a time */

struct hs_doorbell {
	uint32_t magic;
	uint32_t op;	     /* HS_DB_ADD or HS_DB_DEL */
	uint32_t index;	     /* < HS_DOORBELLS_MAX: main's number for it in this VMM */
	uint16_t type;	     /* VMMUX_EV_IO or VMMUX_EV_MMIO */
	uint8_t size;	     /* the access: 1, 2, 4 or 8 bytes */
	uint8_t datamatch;   /* 1: only writes of value signal */
	uint64_t key;	     /* port or guest-physical address */
	uint64_t value;	     /* the datamatch value */
	uint64_t generation; /* the table generation that compiled it */
};

/* VMMUX_EVF_DOORBELL and VMMUX_EVF_COALESCED: include/vmmux/vmmux.h. */

/*
 * *EV becomes one ring of a doorbell: a write of SIZE bytes of TYPE
 * (VMMUX_EV_IO or VMMUX_EV_MMIO) at KEY, flagged VMMUX_EVF_DOORBELL, with the
 * datamatch VALUE when DATAMATCH (else 0: KVM drops the written value), on
 * no vCPU's behalf. The same event whoever reads the eventfd (vmmux's
 * compiled-routes thread, or a parallel VMM's library).
 */
static inline void hs_doorbell_event(struct vmmux_event *ev, uint16_t type, uint8_t size,
				     uint64_t key, bool datamatch, uint64_t value)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->flags = VMMUX_EVF_WRITE | VMMUX_EVF_DOORBELL;
	ev->size = size;
	ev->count = 1;
	ev->key = key;
	ev->value = datamatch ? value : 0;
	ev->vcpu = VMMUX_NO_VCPU;
	ev->src_kind = VMMUX_SRC_VCPU;
	ev->src_id = VMMUX_NO_VCPU;
}

/* Send MSG (LEN bytes, LEN > 0) with NFDS descriptors (at most HS_FDS_MAX)
 * on SOCK, never raising SIGPIPE; 0 or -1 with errno. */
int hs_send(int sock, const void *msg, size_t len, const int *fds, unsigned nfds);

/*
 * Receive one message of exactly LEN bytes and up to MAXFDS descriptors
 * (*nfds gets the count; extra descriptors are closed and refused), waiting
 * at most TIMEOUT_MS (-1: no limit). 0, or -1 with a message in e and errno
 * (truncated message or wrong size EMSGSIZE, timeout ETIMEDOUT, peer closed
 * ECONNRESET, too many descriptors EPROTO). The received descriptors are
 * close-on-exec; on failure every one that arrived is closed, and MSG's
 * contents are undefined.
 */
int hs_recv(int sock, void *msg, size_t len, int *fds, unsigned maxfds, unsigned *nfds,
	    int timeout_ms, struct errbuf *e);

/*
 * Check a received hello (VMM side): magic; a version range that is one and
 * meets ours; name a valid name ([a-z0-9_-], 1 to 31 characters), role empty
 * or one; reserved fields zero; nslots 1..TP_SLOTS_MAX; pieces non-empty, not
 * wrapping, ascending and disjoint; has_input, has_output and each IRQ's
 * level and wired 0 or 1, no IRQ line twice; argument keys valid names, not
 * repeated, values terminated; spin_ns at most TP_SPIN_NS_MAX; log_level a
 * level; NFDS (the descriptors that came with it) == hs_hello_nfds(h).
 * 0, or -1 with a message in e naming the field.
 */
int hs_hello_check(const struct hs_hello *h, unsigned nfds, struct errbuf *e);

/*
 * Check a received ready (main side) against the hello H that was sent:
 * magic; version within H's range and ours; features a subset of H's; msg
 * terminated; status 0 or -1..-4095; role a valid name, the one H asked for
 * when H named one. A well-formed ready whose status is negative also
 * returns -1, with the VMM's message (non-printable bytes replaced) and the
 * status's text in e.
 */
int hs_ready_check(const struct hs_ready *r, const struct hs_hello *h, struct errbuf *e);

/* The number of descriptors a hello carries (counts beyond their maxima are
 * taken as the maxima, so an unchecked hello is safe to ask). */
unsigned hs_hello_nfds(const struct hs_hello *h);

#endif
