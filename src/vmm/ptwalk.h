/*
 * ptwalk.h: translate a guest-virtual (linear) address to a guest-physical
 * one through the guest's own page tables, as the CPU would in each paging
 * mode. Pure: the tables are read through a callback, so that unit tests
 * give it synthetic tables. Used by the debugger interface (vmm/debug.h).
 *
 * Access rights (U/S, R/W, NX) are not checked: a debugger reads and writes
 * what the guest maps, whatever its protection. Accessed and dirty bits are
 * never written.
 */
#ifndef VMMUX_VMM_PTWALK_H
#define VMMUX_VMM_PTWALK_H

#include <stddef.h>
#include <stdint.h>

enum pt_mode {
	PT_OFF = 0, /* CR0.PG clear: linear = physical (32 bits) */
	PT_32,	    /* 2-level 32-bit paging; 4 MiB pages with CR4.PSE (PSE-36) */
	PT_PAE,	    /* 3-level PAE paging (CR4.PAE, not long mode) */
	PT_4LEVEL,  /* long mode, 4-level paging (48-bit canonical) */
	PT_5LEVEL,  /* long mode with CR4.LA57 (57-bit canonical) */
};

/* The paging mode of a CPU with these CR0, CR4 and EFER. */
enum pt_mode pt_mode_of(uint64_t cr0, uint64_t cr4, uint64_t efer);
/* Its name for messages: "off", "32-bit", "PAE", "4-level", "5-level". */
const char *pt_mode_name(enum pt_mode m);

/* Read LEN bytes of guest-physical memory at GPA into BUF; 0 or -1. */
typedef int (*pt_read_fn)(void *arg, uint64_t gpa, void *buf, size_t len);

/* Why a translation failed. */
enum pt_fail {
	PT_OK = 0,
	PT_NOT_PRESENT,	 /* an entry on the way has P clear */
	PT_NONCANONICAL, /* long mode: the address is not canonical */
	PT_READ_FAILED,	 /* a table lies outside guest RAM */
};

/*
 * Translate VA in mode M with page-table root CR3 (and CR4.PSE = PSE for
 * 32-bit paging). On success stores the guest-physical address in *GPA and
 * returns PT_OK; otherwise returns why not (*GPA untouched). In PT_OFF and
 * the 32-bit modes VA is taken modulo 2^32.
 */
enum pt_fail pt_walk(enum pt_mode m, uint64_t cr3, int pse, uint64_t va, pt_read_fn rd, void *arg,
		     uint64_t *gpa);

#endif
