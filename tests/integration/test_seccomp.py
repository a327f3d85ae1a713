"""vmmux's own threads under seccomp (docs/security.md, "vmmux under
seccomp"): every thread of a running vmmux is in seccomp mode 2 with the
base layer and its role's filter (the exec thread, which is the main
thread: the base layer alone),
after live changes (a parallel VMM added, started, swapped and restarted by
the live-change worker, routes published), and the run still ends cleanly
under the filters (the supervisor's teardown, the statistics). Across 20
live updates in a row every thread keeps the same filters, and the new
program's check and the new program itself start under the base layer
alone. After live updates a forbidden call still ends vmmux with status 10
and the handler's line: one a role filter refuses (the control thread) and
one the base layer refuses (the exec thread), made on that thread of the
running process through gdb. The switch --no-seccomp, off by default,
leaves the threads unfiltered (no base layer either) and says so. That a
forbidden call is refused in each role is the unit test
tests/unit/sandbox/test_self_filter.c.
"""
import collections
import os
import signal
import stat
import subprocess
import unittest

import harness
from harness import (VMM_INHERITED_FILTERS, ApiClient, VmmuxTest, guest, proc_status,
                     run_ctl, vmm_pids, wait_for_socket, wait_until)

# Thread names (PR_SET_NAME) by role; the main thread, the exec thread
# (src/sandbox/self_exec.h), keeps the process's.
ROLES = {"vcpu", "dispatcher", "control", "live-worker", "rcu-reclaim", "supervisor"}

# The status and line of a forbidden call (src/sandbox/self_filter.h).
SELF_FILTER_EXIT = 10

# A --program for `vmmux ctl update` that records the seccomp filters it
# starts under (the check's, then the new program's) and runs vmmux.
RECORDER = r"""#!/bin/sh
grep '^Seccomp_filters:' /proc/self/status | cut -f2 >> %s.$2
exec %s "$@"
"""


def threads(pid):
    """{tid: (name, Seccomp, Seccomp_filters)} of process PID."""
    found = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue  # a thread that ended meanwhile (a set-up worker)
        if name.startswith("kvm-"):
            continue  # KVM's own worker task (kvm-nx-lpage-recovery): kernel code only
        found[int(t)] = (name, st["Seccomp"], st["Seccomp_filters"])
    return found


def tsan_runtime(pid):
    """Whether process PID runs ThreadSanitizer's runtime (a TSan build)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libtsan" in f.read()


def all_started(pid):
    """threads(PID) once every role's thread runs."""
    def every():
        ts = threads(pid)
        # (a thread names itself first thing: until then it is "vmmux")
        unnamed = [t for t, (n, _, _) in ts.items() if n == "vmmux" and t != pid]
        if len(unnamed) > (1 if tsan_runtime(pid) else 0):
            return None
        return ts if ROLES <= {n for n, _, _ in ts.values()} else None
    return wait_until("every thread of the run started", every, timeout=30)


def expected_filters(main, name):
    """How many filters the thread NAME (MAIN: the main thread) has."""
    if main:
        return 1  # the exec thread: the base layer alone
    if name in ("supervisor", "live-worker", "rcu-reclaim"):
        # the base layer and the supervisor's (the worker inherits it), or
        # liburcu's thread's own (it starts before the supervisor's)
        return 2
    return 3  # the base layer, the supervisor's, its role's


def drop_tsan_thread(pid, ts):
    """In a TSan build, leave out ThreadSanitizer's background thread: it
    starts before main and runs the runtime's code only, under the base layer
    alone (docs/security.md)."""
    if tsan_runtime(pid):
        bare = [t for t, (n, _, filters) in ts.items() if filters == "1" and n == "vmmux"
                and t != pid]
        assert len(bare) == 1, ts
        del ts[bare[0]]


def filter_counts(pid):
    """{thread name: sorted Seccomp_filters of the threads of that name}."""
    ts = threads(pid)
    drop_tsan_thread(pid, ts)
    by = collections.defaultdict(list)
    for tid, (name, mode, filters) in ts.items():
        by["main" if tid == pid else name].append((mode, filters))
    return {n: sorted(v) for n, v in by.items()}


class Seccomp(VmmuxTest):

    def start_idle(self, *extra):
        self.sock = self.path("api.sock")
        self.bg = self.start("run", "--kernel", guest("hlt.elf"), "--irqchip", "--cpus", "2",
                             "--watchdog", "60s", "--api-sock", self.sock,
                             "--stats-json", self.path("stats.json"), *extra)
        wait_for_socket(self.sock, self.bg)
        return ApiClient(self.sock)

    def test_every_thread_filtered(self):
        c = self.start_idle()
        # The worker forks and sets up a parallel VMM, swaps and restarts it,
        # publishes routes; the control thread answers meanwhile.
        c.call("vmm.add", {"spec": "mon=monitor,placement=parallel,output=" +
                           self.path("mon.jsonl")})
        self.assertEqual(c.call("vmm.stop", {"name": "mon"})["state"], "stopped")
        self.assertEqual(c.call("vmm.start", {"name": "mon"})["state"], "up")
        c.call("routes.add", {"spec": "io:0x80=mon"})
        c.call("vmm.swap", {"name": "mon", "spec": "mon=monitor,placement=parallel,output=" +
                            self.path("mon2.jsonl")})
        self.assertEqual(c.call("vmm.restart", {"name": "mon"})["state"], "up")
        c.call("stats.get")

        ts = all_started(self.bg.pid)
        drop_tsan_thread(self.bg.pid, ts)
        names = [n for n, _, _ in ts.values()]
        for tid, (name, mode, filters) in ts.items():
            self.assertEqual(mode, "2", (tid, name, ts))
            self.assertEqual(filters, str(expected_filters(tid == self.bg.pid, name)),
                             (tid, name, ts))
        self.assertEqual(names.count("vcpu"), 2, ts)
        self.assertLessEqual(ROLES, set(names), ts)
        # Its VMM: what it inherits, then its own two stages.
        mon = vmm_pids(self.bg.pid)["mon"]
        wait_until("the VMM set up", lambda: proc_status(mon)["Seccomp_filters"] ==
                   str(VMM_INHERITED_FILTERS + 2))

        self.bg.proc.send_signal(signal.SIGTERM)
        r = self.bg.finish(timeout=60)
        self.assertEqual(r.status, -signal.SIGTERM, r)
        self.assertNotIn("seccomp", r.err, r)
        self.assertIn('"vmms"', open(self.path("stats.json")).read())

    def test_no_seccomp_switch(self):
        self.start_idle("--no-seccomp")
        ts = all_started(self.bg.pid)
        for tid, (name, mode, filters) in ts.items():
            self.assertEqual(mode, "0", (tid, name, ts))
        # and the same after a live update
        self.assertStatus(run_ctl(self.sock, "update"), 0)
        ts = all_started(self.bg.pid)
        for tid, (name, mode, filters) in ts.items():
            self.assertEqual(mode, "0", (tid, name, ts))
        self.bg.proc.send_signal(signal.SIGTERM)
        r = self.bg.finish(timeout=60)
        self.assertEqual(r.status, -signal.SIGTERM, r)
        self.assertIn("--no-seccomp", r.err, r)


class AcrossUpdates(VmmuxTest):

    def start_guest(self):
        self.sock = self.path("api.sock")
        self.bg = self.start("run", "--kernel", guest("hlt.elf"), "--irqchip", "--cpus", "2",
                             "--watchdog", "120s", "--api-sock", self.sock,
                             "--log-level", "info")
        wait_for_socket(self.sock, self.bg)
        all_started(self.bg.pid)

    def update(self, *args):
        c = run_ctl(self.sock, "update", *args)
        self.assertStatus(c, 0)
        self.assertIn("pid: %d" % self.bg.pid, c.out)
        all_started(self.bg.pid)

    def test_twenty_updates_same_filters(self):
        self.start_guest()
        # every thread named (a thread names itself first thing: until then
        # it is "vmmux")
        first = wait_until("every thread named", lambda: (lambda fc: fc if len(
            fc.get("vcpu", [])) == 2 and "vmmux" not in fc else None)(
                filter_counts(self.bg.pid)), timeout=30)
        self.assertEqual(first["main"], [("2", "1")], first)
        self.assertEqual(first["supervisor"], [("2", "2")], first)
        self.assertEqual(first["vcpu"], [("2", "3"), ("2", "3")], first)
        # the check and the new program, as they start: the base layer alone
        rec = self.path("recorded")
        prog = self.path("vmmux-recorder")
        with open(prog, "w") as f:
            f.write(RECORDER % (rec, os.path.abspath(harness.VMMUX)))
        os.chmod(prog, stat.S_IRWXU)
        for k in range(20):
            self.update(*(["--program", prog] if k % 5 == 4 else []))
            # (a thread names itself first thing: until then it is "vmmux")
            seen = []
            try:
                wait_until("every thread started after update %d" % (k + 1), lambda: (
                    seen.append(filter_counts(self.bg.pid)) or seen[-1] == first), timeout=30)
            except AssertionError:
                self.assertEqual(seen[-1], first, "after update %d" % (k + 1))
        for opt in ("--update-check-fd", "--resume-from-fd"):
            with open("%s.%s" % (rec, opt)) as f:
                self.assertEqual(f.read().split(), ["1"] * 4, opt)
        self.assertEqual(self.bg.err().count("control socket %s taken over" % self.sock), 20)
        self.bg.proc.send_signal(signal.SIGTERM)
        r = self.bg.finish(timeout=60)
        self.assertEqual(r.status, -signal.SIGTERM, r)
        self.assertNotIn("seccomp", r.err, r)

    def forbidden_call(self, thread, nr):
        """Make the thread named THREAD of the running vmmux call system call
        NR (gdb, an inferior call of syscall(3)); the run's Result."""
        tid = self.bg.pid if thread == "main" else [
            t for t, (n, _, _) in threads(self.bg.pid).items() if n == thread][0]
        g = subprocess.run(["gdb", "-p", str(tid), "-batch", "-nx",
                            "-ex", "handle SIGSYS nostop noprint pass",
                            "-ex", "call (long)syscall(%dL, 0L, 0L, 0L, 0L)" % nr],
                           capture_output=True, text=True, timeout=120)
        r = self.bg.finish(timeout=60)
        self.assertIn("exited while in a function called from GDB", g.stdout + g.stderr)
        return r

    def test_role_filter_traps_after_updates(self):
        self.start_guest()
        self.update()
        self.update()
        r = self.forbidden_call("control", 63)  # uname: the forking roles' only
        self.assertEqual(r.status, SELF_FILTER_EXIT, r)
        self.assertIn("vmmux: seccomp: the control thread made a forbidden system call: "
                      "uname (63); exiting with status 10", r.err)

    def test_base_layer_traps_after_updates(self):
        self.start_guest()
        self.update()
        self.update()
        r = self.forbidden_call("main", 321)  # bpf (ptrace: not in sanitized builds)
        self.assertEqual(r.status, SELF_FILTER_EXIT, r)
        self.assertIn("vmmux: seccomp: the exec thread made a forbidden system call: "
                      "bpf (321); exiting with status 10", r.err)


if __name__ == "__main__":
    unittest.main()
