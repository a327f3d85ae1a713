/*
 * event.h: describing events for people (log lines, error messages).
 * The event value itself is struct vmmux_event (include/vmmux/vmmux.h).
 */
#ifndef VMMUX_EVENT_EVENT_H
#define VMMUX_EVENT_EVENT_H

#include <stddef.h>

#include <vmmux/vmmux.h>

/* Mnemonic of an exception vector ("#UD"), or "#?" when it has none. */
const char *exception_mnemonic(unsigned vector);

/*
 * One line describing EV: "vCPU 0: io write port 0x80 size 1 value 0x12",
 * "vCPU 0: exception #UD (vector 6) at rip 0x100234, error code 0 (reported
 * by the guest)". Always NUL-terminated; returns buf.
 */
char *event_describe(const struct vmmux_event *ev, char *buf, size_t len);

#endif
