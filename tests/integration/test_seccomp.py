"""vmmux's own threads under seccomp (docs/security.md, "vmmux under
seccomp"): every thread of a running vmmux is in seccomp mode 2 with its
role's filter, after live changes (a parallel VMM added, started, swapped and
restarted by the live-change worker, routes published), and the run still
ends cleanly under the filters (the supervisor's teardown, the statistics).
The switch --no-seccomp, off by default, leaves the threads unfiltered and
says so. That a forbidden call is refused in each role is the unit test
tests/unit/sandbox/test_self_filter.c.
"""
import os
import signal
import unittest

from harness import (VMM_INHERITED_FILTERS, ApiClient, VmmuxTest, guest, proc_status,
                     vmm_pids, wait_for_socket, wait_until)

# Thread names (PR_SET_NAME) by role; the main thread keeps the process's.
ROLES = {"vcpu", "dispatcher", "control", "live-worker", "rcu-reclaim"}


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
        return ts if ROLES <= {n for n, _, _ in ts.values()} else None
    return wait_until("every thread of the run started", every, timeout=30)


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
        if tsan_runtime(self.bg.pid):
            # ThreadSanitizer's background thread starts before main and
            # runs the runtime's code only: the one thread left unfiltered
            # in a TSan build (docs/security.md).
            bare = [t for t, (n, mode, _) in ts.items() if mode == "0" and n == "vmmux"
                    and t != self.bg.pid]
            self.assertEqual(len(bare), 1, ts)
            del ts[bare[0]]
        names = [n for n, _, _ in ts.values()]
        for tid, (name, mode, filters) in ts.items():
            self.assertEqual(mode, "2", (tid, name, ts))
            if tid == self.bg.pid or name == "live-worker":
                # the supervisor's, which is the worker's too (inherited)
                self.assertEqual(filters, "1", (tid, name, ts))
            elif name == "rcu-reclaim":
                # liburcu's thread starts before the supervisor's filter
                self.assertEqual(filters, "1", (name, ts))
            else:
                # its role's, on the supervisor's it inherits
                self.assertEqual(filters, "2", (tid, name, ts))
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
        self.bg.proc.send_signal(signal.SIGTERM)
        r = self.bg.finish(timeout=60)
        self.assertEqual(r.status, -signal.SIGTERM, r)
        self.assertIn("--no-seccomp", r.err, r)


if __name__ == "__main__":
    unittest.main()
