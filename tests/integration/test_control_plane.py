"""The control plane never blocks: regression tests of eleven ways in which
supervision and live changes froze vmmux, lost or duplicated an event, or
raced. One test per scenario, named after it:

  1. a synchronous delivery from the main thread to a parallel VMM that
     fails waits for a replacement that only the main thread makes
     (platform.raise smi to a stopped smm VMM)
  2. a route change waits for a grace period while a vCPU waits, online,
     for a stopped parallel VMM
  3. an hvt guest's long poll holds every route change (and the socket)
  4. quick successive faults: the service deadline, computed at reap, does
     not cover the restart backoff; pending writes are withdrawn (lost)
  5. a parallel VMM that never reads its set-up socket: sends to it block
     the main thread (doorbell route changes)
  6. a slow set-up (hello answered after 2.4 s) runs on the main loop
  7. swap while deliveries that hold no reference (fallback) reach the VMM
  8. a swap takes the old VMM's state before its doorbells are deassigned:
     rings in between are lost from the state
  9. stop/restart throw away a reply the VMM completed: the side effect
     happened and the fallback handles the event again
     (9b: a vmm.restart without a fallback: a request waiting through its
     stop got the built-in default; found by make chaos)
 10. a kick lost to the plain store that clears immediate_exit (under
     ThreadSanitizer a reported race; otherwise route changes while both
     vCPUs alternate exits and exit-free spins)
 11. a parallel VMM that only receives posted writes and doorbells is not
     checked: stopped, it is never detected until its ring fills

Each test drives the real vmmux with guest/tests/chaos.c on 2 vCPUs at
CPL3 (its streams: see that file) and bounds every wait: a control socket
that does not answer within ANSWER seconds, a SIGTERM not obeyed within
SIGTERM_WAIT seconds, a guest report that does not come, are failures, not
hangs. What reached a VMM is read from the VMM's own log. These tests are
in meson's suite 'control-plane', which scripts/check.sh runs only with
VMMUX_CHECK_CONTROL_PLANE=1 until the changes they check have landed.
"""
import json
import os
import re
import signal
import socket
import threading
import time
import unittest

from harness import VMM_INHERITED_FILTERS, VmmuxTest, guest, start_vmmux, vmm_pids, vmm_program, wait_until, proc_status

ANSWER = 10.0        # s: a control-socket answer (a frozen socket fails at this bound)
SIGTERM_WAIT = 5.0   # s: vmmux ending after SIGTERM
REPORT_WAIT = 60.0   # s: the guest's report after the stop byte
REPORT_RE = re.compile(r"chaos ((?:\w+=\d+ ?)+)\n")
MON_RE = re.compile(r'"write":true,"key":"(0x[0-9a-f]+)".*?"value":"(0x[0-9a-f]+)"')
EXT_RE = re.compile(r"w (\d+|-) 0x([0-9a-f]+) 0x([0-9a-f]+)\n")


class Frozen(AssertionError):
    pass


class Api:
    """A control-socket connection whose every answer is awaited ANSWER s."""

    def __init__(self, path, diag=lambda: ""):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(ANSWER)
        self.sock.connect(path)
        self.buf = b""
        self.rid = 0
        self.diag = diag  # what vmmux is doing, for failure messages

    def request(self, cmd, args=None, within=ANSWER):
        """The reply (a dict), or Frozen when none comes within WITHIN s."""
        self.rid += 1
        req = {"id": self.rid, "cmd": cmd}
        if args is not None:
            req["args"] = args
        t0 = time.monotonic()
        try:
            self.sock.sendall(json.dumps(req).encode() + b"\n")
        except OSError as e:
            time.sleep(0.2)
            raise Frozen("the control socket is gone (%s) at %s%s" % (e, cmd, self.diag()))
        return self.read_reply(within, cmd, args, t0)

    def read_reply(self, within=ANSWER, cmd="a request", args=None, t0=None):
        """The next reply line (a dict), or Frozen when none comes within
        WITHIN s of T0 (default: now)."""
        if t0 is None:
            t0 = time.monotonic()
        while b"\n" not in self.buf:
            left = t0 + within - time.monotonic()
            if left <= 0:
                raise Frozen("the control socket did not answer %s %s within %gs: vmmux's "
                             "main loop is blocked%s" % (cmd, json.dumps(args), within,
                                                         self.diag()))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                time.sleep(0.2)
                raise Frozen("the control socket closed during %s%s" % (cmd, self.diag()))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd, args=None, within=ANSWER):
        rep = self.request(cmd, args, within)
        if not rep.get("ok"):
            raise AssertionError("%s %s failed: %r" % (cmd, json.dumps(args), rep.get("error")))
        return rep.get("result")

    def close(self):
        self.sock.close()


class Pinger:
    """Pings on its own connection every 20 ms; the longest wait."""

    def __init__(self, path):
        self.api = Api(path)
        self.worst = 0.0
        self.n = 0
        self.done = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.done:
            t0 = time.monotonic()
            try:
                self.api.request("ping", within=60)
            except (Frozen, OSError):
                self.worst = max(self.worst, time.monotonic() - t0)
                return
            self.worst = max(self.worst, time.monotonic() - t0)
            self.n += 1
            time.sleep(0.02)

    def stop(self):
        self.done = True
        self.t.join(timeout=70)
        self.api.close()


def serving(pid):
    try:
        return proc_status(pid).get("Seccomp_filters") == str(2 + VMM_INHERITED_FILTERS)
    except OSError:
        return False


def gone_or_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return True
    return st[st.rindex(")") + 2:].split()[0] == "Z"


def gone(pid):
    return not os.path.exists("/proc/%d" % pid)


class ControlPlane(VmmuxTest):
    """chaos.elf under vmmux with a control socket, and bounded ways to
    drive and end it."""

    def launch(self, *args, kernel="chaos.elf", exe=None, env=None):
        """chaos.elf under vmmux (EXE: another vmmux binary) with ARGS."""
        self.sock = self.path("api.sock")
        self.ctl_out = self.path("ctl.out")
        import subprocess
        import harness
        saved = harness.VMMUX
        if exe is not None:
            harness.VMMUX = exe
        try:
            self.vm = self._start(args, kernel, env)
        finally:
            harness.VMMUX = saved
        self.addCleanup(self.cleanup)
        wait_until("vmmux's control socket", lambda: self.connect(), timeout=30)
        return self.vm

    def _start(self, args, kernel, env):
        import subprocess
        return start_vmmux(
            self.tmp, "run", "--kernel", guest(kernel), "--cpus", "2", "--cpu-mode", "user",
            "--no-defaults", "--api-sock", self.sock, "--watchdog", "300s",
            "--vmm", "exit=debug-exit", "--route", "io:0xf4-0xf7=exit",
            "--vmm", "ctl=uart16550,placement=main,input=stdin,output=%s" % self.ctl_out,
            "--route", "io:0x2f8-0x2ff=ctl", *args, stdin=subprocess.PIPE, env=env)

    def connect(self):
        if not self.vm.running():
            raise AssertionError("vmmux ended at start-up\n%s" % self.vm.err())
        try:
            self.api = Api(self.sock, self.diag)
            return True
        except OSError:
            return False

    def diag(self):
        """vmmux's state and the end of its standard error."""
        st = "running" if self.vm.running() else "ended with status %s" % self.vm.proc.returncode
        return "\n--- vmmux %s; its standard error ends with ---\n%s" % (st, self.vm.err()[-2000:])

    def cleanup(self):
        # whatever is stopped goes on, and a frozen vmmux and its VMMs go
        if self.vm.running():
            for pid in vmm_pids(self.vm.pid).values():
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.vm.kill()

    def vmm_pid(self, name, old=None, timeout=10):
        """The pid of VMM NAME's process once it serves (not OLD)."""
        def find():
            if not self.vm.running():
                raise AssertionError("vmmux ended\n%s" % self.vm.err())
            pids = vmm_pids(self.vm.pid)
            pid = pids.get(name, pids.get(self.path(name)))  # built-in role, or program link
            return pid if pid and pid != old and serving(pid) else None
        return wait_until("VMM %s serving" % name, find, timeout=timeout)

    def program(self, name, prog):
        """A link NAME to test VMM PROG, so that its process is found by
        NAME (vmm_pids keys external programs by their path)."""
        link = self.path(name)
        if not os.path.exists(link):
            os.symlink(vmm_program(prog), link)
        return link

    def wait_log(self, path, size=4096, timeout=30):
        wait_until("events in %s" % os.path.basename(path),
                   lambda: os.path.exists(path) and os.path.getsize(path) > size, timeout=timeout)

    def report(self):
        """Stop the guest's streams (a byte to its control UART) and return
        its report."""
        self.vm.proc.stdin.write(b"x")
        self.vm.proc.stdin.flush()

        def rep():
            if not self.vm.running():
                raise AssertionError("vmmux ended before the guest's report\n%s" % self.vm.err())
            with open(self.ctl_out) as f:
                m = REPORT_RE.search(f.read())
            return m and {k: int(v) for k, v in (x.split("=") for x in m.group(1).split())}
        return wait_until("the guest's report (vmmux frozen?)", rep, timeout=REPORT_WAIT)

    def sigterm(self):
        """SIGTERM must end vmmux within SIGTERM_WAIT s."""
        time.sleep(0.5)  # posted writes and doorbells on their way
        self.vm.proc.send_signal(signal.SIGTERM)
        try:
            status = self.vm.proc.wait(timeout=SIGTERM_WAIT)
        except Exception:
            raise Frozen("vmmux did not obey SIGTERM within %gs\n%s" % (SIGTERM_WAIT,
                                                                       self.vm.err()[-3000:]))
        self.assertEqual(status, -signal.SIGTERM, self.vm.err()[-3000:])
        err = self.vm.err()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer"):
            if marker in err:
                i = err.index(marker)
                self.fail("sanitizer report:\n%s" % err[max(0, i - 100):i + 4000])
        return status

    # ---- what the VMMs logged -------------------------------------------

    def monitor_values(self, paths, keys):
        """The values the monitors logged on ports KEYS, in log order."""
        vals = []
        for p in paths:
            if not os.path.exists(p):
                continue
            with open(p) as f:
                for m in MON_RE.finditer(f.read()):
                    if int(m.group(1), 16) in keys:
                        vals.append(int(m.group(2), 16))
        return vals

    def ext_values(self, paths, port=0x90):
        vals = []
        for p in paths:
            if not os.path.exists(p):
                continue
            with open(p) as f:
                for m in EXT_RE.finditer(f.read()):
                    if int(m.group(2), 16) == port:
                        vals.append(int(m.group(3), 16))
        return vals

    def assertExactlyOnce(self, values, n, what):
        """VALUES holds 0 .. N-1, each once."""
        seen = {}
        for v in values:
            seen[v] = seen.get(v, 0) + 1
        lost = [v for v in range(n) if v not in seen]
        dup = sorted(v for v, c in seen.items() if c > 1)
        beyond = sorted(v for v in seen if v >= n)
        self.assertEqual((len(lost), len(dup), len(beyond)), (0, 0, 0),
                         "%s: %d written, %d lost (first %r), %d duplicated (first %r), %d "
                         "beyond the last written" % (what, n, len(lost), lost[:10], len(dup),
                                                      dup[:10], len(beyond)))

    # ---- the scenarios --------------------------------------------------

    def test_01_main_thread_waits_for_itself(self):
        """platform.raise smi, delivered by the main thread to a parallel smm
        VMM that is stopped: its timeout kills it, and the main thread must
        not wait for the replacement that only it would make."""
        self.launch("--vmm", "smm=smm,placement=parallel,timeout=200ms",
                    "--route", "platform:smi=smm", "--route", "io:0xb2-0xb3=smm")
        pid = self.vmm_pid("smm")
        os.kill(pid, signal.SIGSTOP)
        try:
            self.api.call("platform.raise", {"event": "smi", "value": 0x42})
            self.api.call("ping")
            wait_until("the stopped smm VMM killed and reaped", lambda: gone(pid), timeout=10)
            self.vmm_pid("smm", old=pid)
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.report()
        self.sigterm()

    def test_02_route_change_while_a_vcpu_waits_for_a_stopped_vmm(self):
        """A monitor under the guest's synchronous writes is stopped, then a
        route changes: the change must not wait for the vCPU that waits for
        the monitor, the monitor is replaced, and no write is lost."""
        log = self.path("mon.jsonl")
        self.launch("--vmm", "mon=monitor,placement=parallel,timeout=1s,output=%s" % log,
                    "--vmm", "other=sink", "--route", "io:0x80-0x87=mon",
                    "--route", "io:0x88-0x8b=other")
        self.wait_log(log)
        pid = self.vmm_pid("mon")
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(0.1)  # both vCPUs are waiting for it now
            for i in range(3):
                self.api.call("routes.replace",
                              {"spec": "io:0x88-0x8b=%s" % ("main" if i % 2 == 0 else "other")})
            self.api.call("ping")
            wait_until("the stopped monitor killed and reaped", lambda: gone(pid), timeout=10)
            self.vmm_pid("mon", old=pid)
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        rep = self.report()
        self.sigterm()
        vals = self.monitor_values([log], range(0x80, 0x84))
        self.assertExactlyOnce(vals, rep["s0"], "vCPU 0's synchronous writes at the monitor")
        vals = self.monitor_values([log], range(0x84, 0x88))
        self.assertExactlyOnce(vals, rep["s1"], "vCPU 1's synchronous writes at the monitor")

    def test_03_hvt_long_poll_does_not_block_route_changes(self):
        """An hvt guest polls for 30 s: route changes and the socket answer
        meanwhile, and SIGTERM ends the run."""
        sock = self.path("api.sock")
        doc = {"machine": {"mem": "16M"},
               "guest": {"kernel": guest("hvt/hvt_hello.hvt"), "format": "hvt",
                         "args": ["poll", "30000000000"]},
               "api_sock": sock}
        cfg = self.path("vm.json")
        with open(cfg, "w") as f:
            json.dump(doc, f)
        self.vm = start_vmmux(self.tmp, "run", "--config", cfg)
        self.addCleanup(self.vm.kill)
        self.sock = sock
        wait_until("vmmux's control socket", lambda: self.connect(), timeout=30)
        time.sleep(1.0)  # the guest is in its poll
        self.assertTrue(self.vm.running(), self.vm.err())
        gen = self.api.call("routes.add", {"spec": "io:0x1234=main"})["generation"]
        self.assertGreater(gen, 1)
        self.api.call("routes.delete", {"spec": "io:0x1234"})
        self.api.call("ping")
        self.assertTrue(self.vm.running(), "the guest's 30 s poll ended early\n%s" % self.vm.err())
        self.vm.proc.send_signal(signal.SIGTERM)
        try:
            self.vm.proc.wait(timeout=SIGTERM_WAIT)
        except Exception:
            raise Frozen("vmmux did not obey SIGTERM within %gs" % SIGTERM_WAIT)

    def test_04_quick_faults_lose_nothing(self):
        """A monitor killed 12 times, each time as soon as its successor
        serves (the restart backoff grows past the VMM's 500 ms deadline):
        no pending write is withdrawn, no late successor is killed as not
        answering."""
        log = self.path("mon.jsonl")
        self.launch("--vmm", "mon=monitor,placement=parallel,timeout=500ms,output=%s" % log,
                    "--route", "io:0x80-0x87=mon")
        self.wait_log(log)
        pid = None
        for _ in range(12):
            pid = self.vmm_pid("mon", old=pid, timeout=15)
            time.sleep(0.02)
            os.kill(pid, signal.SIGKILL)
        self.vmm_pid("mon", old=pid, timeout=15)
        state = [v for v in self.api.call("vmms.list")["vmms"] if v["name"] == "mon"][0]
        self.assertEqual(state["state"], "up", state)
        rep = self.report()
        self.sigterm()
        late = [x for x in self.vm.err().splitlines() if "did not answer" in x]
        self.assertEqual(late, [], "successors killed as not answering")
        for k, keys in (("s0", range(0x80, 0x84)), ("s1", range(0x84, 0x88))):
            self.assertExactlyOnce(self.monitor_values([log], keys), rep[k],
                                   "%s's synchronous writes at the monitor" % k)

    def test_05_vmm_that_never_reads_its_socket(self):
        """A VMM that never reads its set-up socket, and 400 changes of its
        doorbell route (each sends it a descriptor there): every change is
        answered, and the socket keeps answering."""
        self.launch("--vmm", "deaf=external,program=%s,deaf=1" %
                    self.program("deaf", "vmm_hostile"),
                    "--route", "io:0x9c=deaf;doorbell")
        for i in range(400):
            spec = "io:0x9c=deaf;doorbell=1" if i % 2 == 0 else "io:0x9c=deaf;doorbell"
            rep = self.api.request("routes.replace", {"spec": spec})
            self.assertIn("ok", rep)  # answered (refused or not)
        self.api.call("ping")
        self.report()
        self.sigterm()

    def test_06_slow_setup_does_not_hold_the_main_loop(self):
        """A VMM whose set-up takes 2.4 s is killed three times: its
        restarts' set-ups must not hold the control socket (a main loop
        that ran them would hold a ping for up to 2.4 s)."""
        self.launch("--vmm", "slow=external,program=%s,hello_delay=2400" %
                    self.program("slow", "vmm_hostile"), "--route", "io:0x98=slow")
        # a program on the raw protocol keeps stage 1 of the sandbox only: it
        # is found by its process, and its set-up takes 2.4 s
        def new_pid(old):
            def find():
                if not self.vm.running():
                    raise AssertionError("vmmux ended%s" % self.diag())
                pid = vmm_pids(self.vm.pid).get(self.path("slow"))
                return pid if pid and pid != old else None
            return wait_until("a new slow VMM process", find, timeout=30)
        pid = new_pid(None)
        time.sleep(2.9)
        pinger = Pinger(self.sock)
        try:
            for _ in range(3):
                os.kill(pid, signal.SIGKILL)
                pid = new_pid(pid)
                time.sleep(2.9)
        finally:
            pinger.stop()
        self.assertLess(pinger.worst, 2.0,
                        "a ping waited %.1f s while the slow VMM was set up again" % pinger.worst)
        self.report()
        self.sigterm()

    def test_07_swap_while_fallback_deliveries_run(self):
        """The route's VMM is stopped (vmm.stop), so every write goes to its
        fallback, a parallel monitor swapped 30 times meanwhile: no crash,
        and every write logged once."""
        mon = self.path("mon.jsonl")
        fbs = [self.path("fb.%d.jsonl" % i) for i in range(31)]
        self.launch("--vmm", "mon=monitor,placement=parallel,output=%s" % mon,
                    "--vmm", "fb=monitor,placement=parallel,output=%s" % fbs[0],
                    "--route", "io:0x80-0x87=mon;fallback=fb")
        self.wait_log(mon)
        self.api.call("vmm.stop", {"name": "mon"})
        self.wait_log(fbs[0])
        for i in range(1, 31):
            self.api.call("vmm.swap", {"name": "fb", "spec": "fb=monitor,placement=parallel,"
                                       "output=%s" % fbs[i]}, within=ANSWER)
            time.sleep(0.05)
        rep = self.report()
        self.sigterm()
        for k, keys in (("s0", range(0x80, 0x84)), ("s1", range(0x84, 0x88))):
            self.assertExactlyOnce(self.monitor_values([mon] + fbs, keys), rep[k],
                                   "%s's writes at the monitor and its fallback" % k)

    def test_08_swap_keeps_what_arrives_meanwhile(self):
        """A VMM that counts the guest's doorbell rings in its state is
        swapped 30 times while the guest rings: the state that ends up in
        the last instance counts every ring, and every write reached one
        instance once. A ring the guest makes while a swap has the doorbell
        out of KVM exits: it must reach the VMM as a ring (flagged
        VMMUX_EVF_DOORBELL), not as a plain write of the guest's value,
        which this VMM would store over the count."""
        logs = [self.path("ext.%d.log" % i) for i in range(31)]
        prog = self.program("ext", "vmm_chaos")
        self.launch("--vmm", "ext=external,program=%s,output=%s" % (prog, logs[0]),
                    "--route", "io:0x90-0x93=ext", "--route", "io:0x9d=ext;doorbell")
        self.wait_log(logs[0], size=1024)
        for i in range(1, 31):
            self.api.call("vmm.swap", {"name": "ext", "spec": "ext=external,program=%s,"
                                       "output=%s" % (prog, logs[i])})
            time.sleep(0.05)
        rep = self.report()
        self.sigterm()
        self.assertEqual(rep["bad_e"], 0, "reads that did not return the value written: %r" % rep)
        self.assertEqual(rep["xr"], rep["x"], "rings counted in the VMM's state: %r" % rep)
        self.assertExactlyOnce(self.ext_values(logs), rep["e"], "writes at the swapped VMM")

    def test_09_completed_reply_is_taken(self):
        """A VMM that logs each write, then waits 20 ms before its reply, is
        restarted and stopped/started again and again, its route falling
        back to an in-process monitor meanwhile: a write it logged is never
        handled again by the fallback or a successor, none is lost."""
        logs = [self.path("ext.log")]
        fb = self.path("fb.jsonl")
        self.launch("--vmm", "ext=external,program=%s,delay=20000,output=%s" % (
            self.program("ext", "vmm_chaos"), logs[0]),
            "--vmm", "fb=monitor,output=%s" % fb,
            "--route", "io:0x90-0x93=ext;fallback=fb")
        self.wait_log(logs[0], size=256)
        for i in range(20):
            if i % 2 == 0:
                self.api.call("vmm.restart", {"name": "ext"})
            else:
                self.api.call("vmm.stop", {"name": "ext"})
                time.sleep(0.05)
                self.api.call("vmm.start", {"name": "ext"})
            time.sleep(0.1)
        rep = self.report()
        self.sigterm()
        vals = self.ext_values(logs) + self.monitor_values([fb], [0x90])
        self.assertExactlyOnce(vals, rep["e"], "writes at the VMM and its fallback")

    def test_09b_restart_keeps_waiting_requests(self):
        """A VMM with no fallback that waits 20 ms before each reply is
        restarted 20 times through the control API while the guest writes
        to it: a request that waits for it during the restart (between the
        old process's stop and the new one's start) stays pending and
        reaches the new process; none gets the built-in default (lost),
        none is applied twice."""
        logs = [self.path("ext.log")]
        self.launch("--vmm", "ext=external,program=%s,delay=20000,output=%s" % (
            self.program("ext", "vmm_chaos"), logs[0]),
            "--route", "io:0x90-0x93=ext")
        self.wait_log(logs[0], size=256)
        for i in range(20):
            self.api.call("vmm.restart", {"name": "ext"})
            time.sleep(0.05)
        rep = self.report()
        self.sigterm()
        self.assertEqual(rep["bad_e"], 0, "reads that did not return the value written: %r" % rep)
        self.assertExactlyOnce(self.ext_values(logs), rep["e"], "writes at the restarted VMM")
        self.assertNotIn("the built-in default applies", self.vm.err())

    def test_10_kick_is_never_lost(self):
        """1000 route changes while both vCPUs write (each change kicks
        them once out of KVM_RUN to wait for its grace period): every change
        is answered, then SIGTERM (the stop kicks them again) ends the run,
        and no race on the kick. With VMMUX_TSAN (the vmmux of a
        ThreadSanitizer build; scripts/check.sh sets it) that vmmux runs,
        and ThreadSanitizer sees the race itself however rarely it loses a
        kick; without it, only a kick lost for good shows (a change that is
        never answered, a SIGTERM not obeyed)."""
        log = self.path("mon.jsonl")
        tsan = os.environ.get("VMMUX_TSAN")
        env = None
        if tsan:
            supp = os.path.join(os.environ.get("VMMUX_SRC", "."), "tests", "tsan.supp")
            env = {"TSAN_OPTIONS": "suppressions=%s:history_size=4" % supp}
        self.launch("--vmm", "mon=monitor,output=%s" % log, "--vmm", "mon2=monitor",
                    "--route", "io:0x80-0x87=mon", "--route", "io:0x88-0x8b=mon2;posted",
                    exe=tsan, env=env)
        if tsan:
            self.assertEqual(os.path.realpath("/proc/%d/exe" % self.vm.pid),
                             os.path.realpath(tsan))
        self.wait_log(log)
        for i in range(1000):
            self.api.call("routes.replace",
                          {"spec": "io:0x88-0x8b=%s;posted" % ("mon" if i % 2 == 0 else "mon2")})
        # SIGTERM while both vCPUs exit to the monitors: the main thread's
        # stop kicks them while they clear immediate_exit after their exits
        self.vm.proc.send_signal(signal.SIGTERM)
        try:
            self.vm.proc.wait(timeout=SIGTERM_WAIT * (6 if tsan else 1))
        except Exception:
            raise Frozen("vmmux did not obey SIGTERM%s" % self.diag())
        err = self.vm.err()
        if "ThreadSanitizer" in err:
            i = err.index("WARNING: ThreadSanitizer")
            self.fail("ThreadSanitizer reports a race:\n%s" % err[i:i + 4000])

    def test_11_posted_only_vmm_is_checked(self):
        """A VMM that only receives posted writes and doorbells (a few a
        second: its ring would take half a minute to fill) is stopped: vmmux
        must find out within 5 s (and replace it), and every posted write and
        ring reaches it, its successor or the fallback."""
        mon = self.path("mon_p.jsonl")
        fb = self.path("fb.jsonl")
        self.launch("--vmm", "mon_p=monitor,placement=parallel,timeout=300ms,output=%s" % mon,
                    "--vmm", "fb=monitor,output=%s" % fb,
                    "--vmm", "slowsink=sink,delay=50ms",
                    "--route", "io:0x80-0x87=slowsink",
                    "--route", "io:0x88-0x8b=mon_p;posted;fallback=fb",
                    "--route", "io:0x8c=mon_p;doorbell;fallback=fb")
        self.wait_log(mon, size=1024)
        pid = self.vmm_pid("mon_p")
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until("vmmux noticing the stopped VMM (it kills it)",
                       lambda: gone_or_zombie(pid), timeout=5)
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        rep = self.report()
        self.sigterm()
        self.assertExactlyOnce(self.monitor_values([mon, fb], [0x88]), rep["p0"],
                               "vCPU 0's posted writes")
        self.assertExactlyOnce(self.monitor_values([mon, fb], [0x89]), rep["p1"],
                               "vCPU 1's posted writes")
        rings = len(self.monitor_values([mon, fb], [0x8c]))
        self.assertEqual(rings, rep["db"], "doorbell rings delivered, of %d" % rep["db"])
