/*
 * guest_mem.h: guest RAM and checked access to it.
 *
 * Guest RAM starts at guest-physical address 0 and is made of memfd pieces
 * (struct gm_piece below), mapped back to back in the vmmux process, each
 * piece its own KVM memory slot. Every access vmmux makes on the guest's behalf
 * goes through gm_ptr, which checks [gpa, gpa+len) against the RAM size with
 * overflow checks, in the spirit of Solo5's HVT_CHECKED_GPA_P.
 */
#ifndef VMMUX_VM_GUEST_MEM_H
#define VMMUX_VM_GUEST_MEM_H

#include <stdbool.h>
#include <stdint.h>

#define GM_PIECES_MAX 64

/*
 * RAM is split into pieces at the edges of the windows granted to parallel
 * VMMs, each piece its own memfd (sealed against growing and shrinking) and
 * its own KVM memory slot, so that a parallel VMM receives exactly the
 * memfds of its windows and holds no descriptor of any other guest memory.
 * The pieces are mapped back to back: host + gpa addresses any byte.
 */
struct gm_piece {
	uint64_t gpa, size;
	int memfd;
};

struct guest_mem {
	uint8_t *host; /* mapping of the whole RAM */
	uint64_t size; /* bytes, a multiple of 4 KiB */
	int memfd;     /* the memfd when RAM is one piece; -1 otherwise or in tests */
	unsigned npieces;
	struct gm_piece pieces[GM_PIECES_MAX];
};

/* True when [gpa, gpa+len) lies inside RAM; len 0 is inside when gpa <= size. */
static inline bool gm_range_ok(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	return gpa <= m->size && len <= m->size - gpa;
}

/* Host pointer for [gpa, gpa+len), or NULL when the range leaves RAM. */
static inline void *gm_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	return gm_range_ok(m, gpa, len) ? m->host + gpa : (void *)0;
}

#endif
