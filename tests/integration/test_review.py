"""Who waits for whom, attacked (docs/architecture.md, "Threads and who
waits for whom"): ways left for a parallel VMM that stalls in one of its
control callbacks to freeze vmmux. Each test bounds every wait: an answer
that does not come within ANSWER seconds, or a SIGTERM not obeyed within
SIGTERM_WAIT seconds, is a failure, not a hang.

  - reset_stall_then_sigterm: the vCPU that performs a reset holds the
    machine's mutex while it delivers the reset to every VMM
    (machine.c perform_reset -> vmm_reset_all -> pvmm_reset). A VMM that
    stalls in its reset makes it wait, mutex held, for the VMM's deadline,
    then for the supervisor to reap the killed process (wait_replaced). A
    SIGTERM meanwhile sends the supervisor into machine_stop, which takes
    the same mutex: neither ever proceeds, and vmmux never ends.
  - swap_into_a_vmm_that_stalls_in_restore: vmm.swap gives the old
    instance's state to the new one (pvmm_state_restore) before the new
    one is in the registry. A new program that never answers is killed at
    its deadline, then the control thread waits (wait_replaced) for a reap
    that the supervisor never makes (it watches registered VMMs only): the
    control socket never answers again.
  - doorbell_change_during_a_restart_set_up: a route change that gives or
    takes a doorbell of a parallel VMM sends the message on its set-up
    socket at once (ioregion.c outbox_flush -> pvmm_send), also while a
    successor is being set up (state starting: pid and socket set). The
    message lands between the hello and the go; the successor reads it as
    its go message, fails and exits: a route change kills a healthy VMM
    and counts a restart.
  - posted_ring_full_keeps_order: a posted route whose VMM is slower than
    the guest: when the ring is full, a write goes synchronous
    (parallel.c pvmm_deliver). The VMM serves the slots whenever it stops
    reading the posted ring (transport.c tp_vmm_serve: after one lap, or at
    an entry another vCPU reserved but has not published yet), so the
    synchronous write can be applied before an older posted write of the
    same vCPU to the same port still in the ring.
  - vmm_restarted_by_the_api_ends_cleanly: a process that the control
    thread spawns (vmm.restart, vmm.start, vmm.add, vmm.swap) has that
    thread as its parent for PR_SET_PDEATHSIG (sandbox/spawn.c); the
    control thread is joined before the registry stops the VMMs
    (machine.c machine_run), so at the end of every run those processes
    are SIGKILLed instead of stopped: their role's fini never runs (output
    not flushed, last doorbell rings not read).
  - vmm_flooding_its_stderr: the supervisor printed every line of a VMM's
    stderr (blocking fprintf, no bound on lines): a VMM that writes without
    end held it. At most 64 lines / 8 KiB a VMM per round are printed, the
    rest counted ("N lines of its standard error dropped").
  - ping_while_a_slow_vmm_starts: the control thread executed live changes
    inline; vmm.start of a VMM whose set-up takes 3 s (allowed: 5 s) kept
    every other client of the socket (vmms.list, a ping) waiting as long.
    Live changes run on the live-change worker: a ping and a vmms.list on
    another connection are answered while the start is under way.
"""
import json
import os
import select
import signal
import time

from harness import VmmuxTest, guest, start_vmmux, vmm_program, wait_until, exit_device_status
from test_control_plane import Api, Frozen

ANSWER = 15.0       # s: a control-socket answer
SIGTERM_WAIT = 10.0  # s: vmmux ending after SIGTERM


class Review(VmmuxTest):
    def test_reset_stall_then_sigterm(self):
        prog = vmm_program("vmm_stall")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("reset.elf"), "--watchdog", "120s",
            "--log-level", "info",
            "--vmm", "st=external,program=%s,stall=reset,timeout=3s" % prog)
        try:
            wait_until("the reset delivered to st", lambda: "stalling in reset" in vm.err(),
                       timeout=30)
            os.kill(vm.pid, signal.SIGTERM)
            try:
                vm.proc.wait(timeout=SIGTERM_WAIT)
            except Exception:
                self.fail("vmmux did not end within %gs of SIGTERM while a reset waited "
                          "for a stalled VMM (the supervisor is blocked on the machine's "
                          "mutex, which the resetting vCPU holds)\nstderr: %s" %
                          (SIGTERM_WAIT, vm.err()[-2000:]))
        finally:
            vm.kill()

    def test_swap_into_a_vmm_that_stalls_in_restore(self):
        prog = vmm_program("vmm_stall")
        api_path = self.path("api.sock")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("swapseq.elf"), "--api-sock", api_path,
            "--watchdog", "120s", "--no-defaults",
            "--vmm", "uart=uart16550,output=stdout",
            "--vmm", "exit=debug-exit", "--route", "io:0x3f8-0x3ff=uart",
            "--route", "io:0xf4-0xf7=exit")
        try:
            wait_until("the guest printing", lambda: vm.out().count("\n") > 20, timeout=30)
            api = Api(api_path, lambda: "\nstderr: %s" % vm.err()[-2000:])
            spec = "uart=external,program=%s,stall=restore,timeout=1s,output=stdout" % prog
            try:
                rep = api.request("vmm.swap", {"name": "uart", "spec": spec}, within=ANSWER)
            except Frozen as e:
                self.fail("vmm.swap to a VMM that never takes the state froze the control "
                          "socket: %s" % e)
            self.assertFalse(rep.get("ok"), rep)  # refused: the state was not taken
            self.assertIn("did not take the state within", rep["error"]["message"])
            # the old instance stays in place, up
            self.assertEqual(self.vmm(api, "uart")["state"], "in-process")
            api.call("ping", within=ANSWER)
            api.close()
            r = vm.finish(timeout=120)
            self.assertStatus(r, exit_device_status(0))
        finally:
            vm.kill()

    def vmm(self, api, name):
        for v in api.call("vmms.list", within=ANSWER)["vmms"]:
            if v["name"] == name:
                return v
        raise AssertionError("no VMM %s" % name)

    def test_doorbell_change_during_a_restart_set_up(self):
        prog = vmm_program("vmm_hostile")
        api_path = self.path("api.sock")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "mon=monitor", "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--vmm", "slow=external,program=%s,hello_delay=1500" % prog,
            "--route", "io:0x90-0x91=mon", "--route", "io:0x92=stop0",
            "--route", "io:0x9c=slow;doorbell")
        try:
            api = Api(wait_until("the control socket", lambda: os.path.exists(api_path) and
                                 api_path, timeout=20),
                      lambda: "\nstderr: %s" % vm.err()[-2000:])
            wait_until("slow up", lambda: self.vmm(api, "slow")["state"] == "up", timeout=30)
            os.kill(self.vmm(api, "slow")["pid"], signal.SIGKILL)
            wait_until("slow's successor being set up",
                       lambda: self.vmm(api, "slow")["state"] == "starting", timeout=10)
            # within the successor's 1.5 s set-up: a doorbell taken, another given
            api.call("routes.replace", {"spec": "io:0x9c=slow;doorbell=1"}, within=ANSWER)
            wait_until("slow up again", lambda: self.vmm(api, "slow")["state"] == "up",
                       timeout=30)
            time.sleep(2.0)  # a successor that failed its go is reaped meanwhile
            v = self.vmm(api, "slow")
            api.call("routes.replace", {"spec": "io:0x92=stop1"}, within=ANSWER)
            api.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertNotIn("malformed go", r.err)
        self.assertEqual(v["restarts"], 1, "one SIGKILL, %d restarts; stderr: %s" %
                         (v["restarts"], r.err[-2000:]))

    def test_ping_while_a_slow_vmm_starts(self):
        prog = vmm_program("vmm_hostile")
        api_path = self.path("api.sock")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "mon=monitor", "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--vmm", "slow=external,program=%s,hello_delay=3000" % prog,
            "--route", "io:0x90-0x91=mon", "--route", "io:0x92=stop0",
            "--route", "io:0x9d=slow")
        try:
            api = Api(wait_until("the control socket", lambda: os.path.exists(api_path) and
                                 api_path, timeout=20))
            wait_until("slow up", lambda: self.vmm(api, "slow")["state"] == "up", timeout=30)
            api.call("vmm.stop", {"name": "slow"})
            other = Api(api_path)
            # vmm.start on one connection, its reply not read yet: its set-up
            # takes 3 s
            api.sock.sendall(json.dumps({"id": "start", "cmd": "vmm.start",
                                         "args": {"name": "slow"}}).encode() + b"\n")
            # another connection sees it under way (read-only requests are
            # answered while a live change runs), then pings
            wait_until("vmms.list answered while slow is starting",
                       lambda: self.vmm(other, "slow")["state"] == "starting", timeout=30)
            other.call("ping", within=ANSWER)
            r, _, _ = select.select([api.sock], [], [], 0)
            start_pending = not r  # the ping came before vmm.start's reply
            rep = api.read_reply(within=ANSWER)
            other.call("routes.replace", {"spec": "io:0x92=stop1"})
            other.close()
            api.close()
            vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertTrue(rep.get("ok"), rep)
        self.assertEqual(rep.get("id"), "start")
        self.assertTrue(start_pending, "the ping was answered only after another client's "
                        "vmm.start had ended")

    def test_vmm_flooding_its_stderr(self):
        prog = vmm_program("vmm_hostile")
        api_path = self.path("api.sock")
        lines = 20000
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "mon=monitor", "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--vmm", "loud=external,program=%s,spew=%d" % (prog, lines),
            "--route", "io:0x90-0x91=mon", "--route", "io:0x92=stop0")
        try:
            api = Api(wait_until("the control socket", lambda: os.path.exists(api_path) and
                                 api_path, timeout=20))
            wait_until("loud's flood read", lambda: "spew %d of %d" % (lines, lines) in
                       vm.err() or "lines of its standard error dropped" in vm.err(),
                       timeout=60)
            api.call("ping", within=ANSWER)
            self.assertEqual(self.vmm(api, "loud")["state"], "up")
            api.call("routes.replace", {"spec": "io:0x92=stop1"}, within=ANSWER)
            api.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        printed = r.err.count("vmm_hostile: spew ")
        self.assertIn("vmm 'loud': ", r.err)
        self.assertIn("lines of its standard error dropped", r.err)
        self.assertLess(printed, lines, "every line of a flood was printed")

    def test_vmms_list_while_a_vmm_restarts(self):
        """vmms.list and stats.get (control thread) while the supervisor and
        set-up workers restart a VMM again and again: its pid, restart count
        and counters are read without its lock. With VMMUX_TSAN (the vmmux
        of a ThreadSanitizer build) that vmmux runs and must report no race;
        without it, every answer must still be consistent."""
        prog = vmm_program("vmm_hostile")
        api_path = self.path("api.sock")
        tsan = os.environ.get("VMMUX_TSAN")
        env = None
        if tsan:
            supp = os.path.join(os.environ.get("VMMUX_SRC", "."), "tests", "tsan.supp")
            env = {"TSAN_OPTIONS": "suppressions=%s:history_size=4" % supp}
        import harness
        saved = harness.VMMUX
        harness.VMMUX = tsan or saved
        try:
            vm = start_vmmux(
                self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
                "--api-sock", api_path, "--watchdog", "120s",
                "--vmm", "mon=monitor", "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
                "--vmm", "victim=external,program=%s" % prog,
                "--route", "io:0x90-0x91=mon", "--route", "io:0x92=stop0",
                "--route", "io:0x9d=victim", env=env)
        finally:
            harness.VMMUX = saved
        kills = 0
        try:
            api = Api(wait_until("the control socket", lambda: os.path.exists(api_path) and
                                 api_path, timeout=60))
            last = 0
            for _ in range(6):
                v = wait_until("victim up (a new process)",
                               lambda: (lambda v: v if v["state"] == "up" and
                                        v["pid"] not in (0, last) else None)(
                                            self.vmm(api, "victim")), timeout=60)
                last = v["pid"]
                os.kill(last, signal.SIGKILL)
                kills += 1
                for _ in range(20):  # while it is reaped and restarted
                    w = self.vmm(api, "victim")
                    self.assertGreaterEqual(w["restarts"], kills - 1)
                    api.call("stats.get", within=ANSWER)
            wait_until("victim up (a new process)",
                       lambda: (lambda v: v["state"] == "up" and v["pid"] not in (0, last))(
                           self.vmm(api, "victim")), timeout=60)
            restarts = self.vmm(api, "victim")["restarts"]
            api.close()
            vm.proc.send_signal(signal.SIGTERM)
            vm.proc.wait(timeout=SIGTERM_WAIT * (6 if tsan else 1))
            err = vm.err()
        finally:
            vm.kill()
        self.assertEqual(restarts, kills)
        if "ThreadSanitizer" in err:
            i = err.index("WARNING: ThreadSanitizer")
            self.fail("ThreadSanitizer reports a race:\n%s" % err[i:i + 4000])

    def posted_ring_full_run(self, n):
        import re
        prog = vmm_program("vmm_chaos")
        api_path = self.path("api%d.sock" % n)
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "a=external,program=%s,delay=2000,output=stdout" % prog,
            "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--route", "io:0x90-0x91=a;posted", "--route", "io:0x92=stop0")
        try:
            api = Api(wait_until("the control socket", lambda: os.path.exists(api_path) and
                                 api_path, timeout=20))
            wait_until("writes at a", lambda: vm.out().count("\n") > 50, timeout=30)
            time.sleep(4.0)  # seconds of a full ring
            api.call("routes.replace", {"spec": "io:0x92=stop1"})
            api.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        last = {}
        bad = []
        for m in re.finditer(r"w (?:\d+|-) 0x(9[01]) 0x([0-9a-f]+)\n", r.out):
            port, val = int(m.group(1), 16), int(m.group(2), 16)
            if port in last and val <= last[port]:
                bad.append((hex(port), last[port], val))
            last[port] = val
        return bad

    def test_posted_ring_full_keeps_order(self):
        # an inversion needs an unlucky moment: up to three runs
        for n in range(3):
            bad = self.posted_ring_full_run(n)
            if bad:
                break
        self.assertEqual(bad, [], "writes applied out of order (port, before, after)")

    def test_vmm_restarted_by_the_api_ends_cleanly(self):
        prog = vmm_program("vmm_worker")
        api_path = self.path("api.sock")
        out = self.path("w.txt")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "w=external,program=%s,output=%s" % (prog, out),
            "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--route", "io:0x90-0x91=w", "--route", "io:0x92=stop0")
        try:
            api = Api(wait_until("the control socket", lambda: os.path.exists(api_path) and
                                 api_path, timeout=20))
            wait_until("events at w", lambda: os.path.exists(out) and
                       os.path.getsize(out) > 4096, timeout=30)
            api.call("vmm.restart", {"name": "w"})
            time.sleep(0.5)
            api.call("routes.replace", {"spec": "io:0x92=stop1"})
            api.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        with open(out) as f:
            lines = f.read().splitlines()
        self.assertTrue(lines and lines[-1].startswith("done "),
                        "w's output does not end with its fini's line: %r\nstderr: %s" %
                        (lines[-2:], r.err[-1500:]))
