/*
 * control.h: requests of the main VMM to a parallel VMM that are not
 * guest events. They travel through a request slot like an event (struct
 * vmmux_event, with a type outside enum vmmux_event_type), and the VMM
 * library answers them itself, without passing them to the role's handle.
 */
#ifndef VMMUX_TRANSPORT_CONTROL_H
#define VMMUX_TRANSPORT_CONTROL_H

/* The VM is being reset: call the role's reset; reply DONE. */
#define TP_CTL_RESET 0xff01u
/* The main VMM stored a state in the region (a swap): the role restores it
 * (tp_state_load, role->restore); reply DONE, or a failed result. */
#define TP_CTL_RESTORE 0xff02u
/* A round trip, nothing else: reply DONE. The library serves requests
 * between doorbell batches, never inside one, so once it answers, a batch
 * it had read before the request was made is applied and saved (a swap asks
 * this after taking the doorbells back and before taking the state). */
#define TP_CTL_SYNC 0xff03u

#endif
