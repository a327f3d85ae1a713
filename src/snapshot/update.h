/*
 * update.h: live update, replacing the running vmmux program under the
 * running guest (the control command `update`, docs/control-api.md;
 * docs/snapshot.md "Live update").
 *
 * On the live-change worker of the old program, update_run:
 *   1. refuses, with nothing changed, what it cannot hand over: a parallel
 *      VMM whose process is not up (pvmm_handover_refusal), an hvt net
 *      device (its tap cannot be opened twice), a program that is missing;
 *   2. pauses the machine at an event boundary (machine_pause) and writes
 *      its state in the snapshot format to a memfd, with a HANDOVER section
 *      (format.h) naming the descriptors the new program inherits: guest
 *      RAM's memfds (guest memory is not copied), the control socket's
 *      listening socket, the connection of the client that asked, each
 *      parallel VMM's (taken from the supervisor's watch for the pause:
 *      pvmm_handover_take; its process runs on) and the in-process VMMs'
 *      input and output;
 *   3. resumes the guest and, on the exec thread (self_exec.h: the
 *      process's main thread, under the base seccomp layer only, so that
 *      neither the check nor the new program inherits a role filter), runs
 *      `PROGRAM run --update-check-fd 3` with
 *      the state on descriptor 3: the new program decodes the state, parses
 *      its command line and checks it against the state and that the
 *      guest image and modules it names can be read, and must print
 *      `vmmux update-check: ok` (else its reason) within UPDATE_CHECK_NS;
 *      anything else refuses the update, the reason in the reply;
 *   4. pauses again and writes the state again (live changes, which run on
 *      this same worker, cannot come in between), clears FD_CLOEXEC on the
 *      inherited descriptors and execve's `PROGRAM run --resume-from-fd N`
 *      on the exec thread (with this thread's signal mask; the parent of
 *      every parallel VMM for PR_SET_PDEATHSIG, and the one thread an
 *      execve keeps):
 *      the process id stays; every other
 *      descriptor (the KVM VM and vCPUs among them) closes. An execve that
 *      fails leaves everything as it was and the guest resumes.
 * The new program restores the state (snapshot.h) into a new VM, maps guest
 * RAM from the inherited memfds (MAP_SHARED), adopts the listening socket
 * (api_adopt) and the parallel VMMs (pvmm_adopt_set: not restarted, no
 * state restore), and when its vCPUs are about to start answers the client
 * (update_resumed) and logs how long the vCPUs were paused.
 *
 * System calls on the old program's path besides the pause and the
 * snapshot writer's: on the worker, memfd_create, ftruncate, pwrite,
 * readlink, access, fcntl(F_SETFD), futex (the exec thread's call); on the
 * exec thread, fcntl(F_DUPFD_CLOEXEC), pipe2, posix_spawn (clone/vfork,
 * dup2, execve in the child), poll, read, kill, wait4, execve.
 */
#ifndef VMMUX_SNAPSHOT_UPDATE_H
#define VMMUX_SNAPSHOT_UPDATE_H

#include <sys/types.h>

#include "util/err.h"

struct snap_view;

#define UPDATE_CHECK_NS 10000000000ull /* the new program's check of the state */

/*
 * Replace this program by PROGRAM (NULL: the running one, /proc/self/exe)
 * under the running guest. CLIENT_FD: the connection of the client that
 * asked (answered by the new program), or -1; REPLY_ID: its request's id as
 * JSON text. Returns only on refusal: -1 with the reason, the guest running
 * on as before.
 */
int update_run(const char *program, int client_fd, const char *reply_id, struct errbuf *e);

/* In the new program, the vCPUs about to start: log the pause, answer the
 * client that asked. */
void update_resumed(const struct snap_view *v);

/* New program, single-threaded (vmmux run --resume-from-fd, first thing):
 * the pids of the old program's address-space holders (children that exit
 * once the execve is done, update.c), at most MAX into PIDS, taken from
 * the environment and removed from it; the number. The caller has them
 * reaped (machine_reap_later). */
unsigned update_reap_take(pid_t *pids, unsigned max);

/* `vmmux run --update-check-fd FD`: print to stdout whether this vmmux takes
 * the state on FD (the first check of update_run). ARGC/ARGV are the
 * command line it holds, to be parsed by the caller. 0 or -1 with a
 * message. */
int update_check_open(int fd, int *argc, char ***argv, struct errbuf *e);

#endif
