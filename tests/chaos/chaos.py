#!/usr/bin/env python3
"""chaos: vmmux's control plane under a seeded random schedule of faults and
live changes, judged by what the VMMs themselves received.

One run starts the real vmmux with guest/tests/chaos.c on 2 vCPUs at CPL3
(numbered streams of synchronous OUTs, posted writes, doorbells, UART lines
and read-backs) and these VMMs:

  name            placement   role / program          ports, events
  uart            parallel    uart16550 (state: SCR)  io:0x3f8-0x3ff
  mon_s, mon_s2   parallel    monitor                 io:0x80-0x87 (sync), moved between them
  mon_p, mon_p2   parallel    monitor                 io:0x88-0x8b;posted, moved between them
  mon_d           parallel    monitor                 io:0x8c;doorbell (moved to mon_p2 and back)
  mon_f           in-process  monitor                 the fallback of the three routes above
  ext             parallel    tests/vmms/vmm_chaos    io:0x90-0x93 (a register file, read back),
                                                      io:0x9d;doorbell (its rings counted in its
                                                      state, the count read back)
  hostile         parallel    vmm_hostile delay=2ms smi=async
                                                      io:0x94-0x97, platform:smi (its own SMIs
                                                      come back to it, delivered by vmmux)
  deaf            parallel    vmm_hostile deaf=1      io:0x9c;doorbell (flipped: vmmux sends it a
                                                      descriptor it never reads)
  slow            parallel    vmm_hostile hello_delay=1000
                                                      io:0x98 (each restart's set-up takes 1 s)
  ctl, exit       in-process  uart16550, debug-exit   the end of the run and its report

and, from the seed, a schedule of: SIGKILL of a VMM process, SIGSTOP of one
(SIGCONT later), routes.replace (the sync, posted and doorbell routes
moved; the deaf VMM's doorbell flipped), vmm.swap (a new instance with a new
output file), vmm.restart, vmm.stop then vmm.start, platform.raise smi, and
live updates of vmmux itself (`update`: the parallel VMMs' processes are
handed over running; one not up at that moment refuses it, counted as
update-refused; the probe reconnects, since only the asking connection is
handed over). At
most 12 disruptions (kill, stop, restart) of one VMM per minute, under
vmmux's limit of 20 restarts a minute before it gives a VMM up.

Meanwhile a probe pings the control socket every 20 ms on its own
connection, and every killed VMM process is watched until vmmux reaps it
(vmmux handles no harmless signal, so the SIGCHLD of each kill is the
periodic signal probe). At the end the harness sends a byte to the guest's
control UART, the guest reports how many values each stream wrote, and
vmmux is sent SIGTERM.

Then it reads the VMMs' own logs (monitor JSON lines, the UART's output
files, vmm_chaos's lines) and prints, per run and in total: operations
done, events sent, lost, duplicated (built-in roles / external), reordered,
read-back mismatches, the control socket's longest unanswered time and p99,
the time SIGTERM took and the longest a killed VMM stayed unreaped, the
time vmmux took to detect a stopped VMM (it kills it), and the latencies of
route changes and restarts. The exit status is 1 unless: 0 lost, 0
duplicated for built-in roles, 0 reordered, 0 read-back mismatches, every
run's guest report present, control socket p99 <= 100 ms and SIGTERM
obeyed within 1 s in every run.

    python3 tests/chaos/chaos.py --build build --seed 1 --duration 20
    python3 tests/chaos/chaos.py --build build --seeds 1-10 --duration 60

The seed fixes the schedule (which operation when, on which VMM); the
timing of the machine does the rest, so a failure is reproduced by its
seed in most runs, not all.
"""
import argparse
import glob
import heapq
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PING_PERIOD = 0.02       # s between two control-socket probes
OP_TIMEOUT = 10.0        # s an operation may take before the socket is called frozen
REPORT_TIMEOUT = 30.0    # s for the guest's report after the stop byte
SIGTERM_LIMIT = 1.0      # s
PING_P99_LIMIT = 0.100   # s
DISRUPT_PER_MIN = 12     # kills + stops + restarts of one VMM in any 60 s
VMM_TIMEOUT = "300ms"    # the parallel VMMs' reply deadline

PARALLEL = ["uart", "mon_s", "mon_s2", "mon_p", "mon_p2", "mon_d", "ext", "hostile", "deaf",
            "slow"]
BUILTIN_LOGS = ["mon_s", "mon_s2", "mon_p", "mon_p2", "mon_d", "mon_f"]
STOPPABLE = ["mon_s", "mon_s2", "mon_p", "mon_p2", "mon_d"]  # their routes have a fallback
SWAPPABLE = ["uart", "mon_s", "mon_s2", "mon_p", "mon_p2", "mon_d", "ext"]

# (operation, weight)
OPS = [("kill", 40), ("stop", 6), ("replace", 14), ("doorbell-flip", 4), ("swap", 3),
       ("restart", 4), ("stop-start", 3), ("raise-smi", 6), ("update", 3)]

LINE_RE = re.compile(rb'"key":"(0x[0-9a-f]+)".*?"value":"(0x[0-9a-f]+)".*?"gen":(\d+)')
UART_RE = re.compile(rb"u (\d{7})\n")
EXT_RE = re.compile(rb"w (\d+|-) 0x([0-9a-f]+) 0x([0-9a-f]+)\n")
REPORT_RE = re.compile(r"chaos ((?:\w+=\d+ ?)+)\n")


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def now():
    return time.monotonic()


class Frozen(Exception):
    """The control socket did not answer within OP_TIMEOUT."""


class Api:
    """One control-socket connection: a request, its reply, its latency."""

    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.rid = 0

    def call(self, cmd, args=None, timeout=OP_TIMEOUT):
        """(reply, seconds); Frozen when no reply within TIMEOUT."""
        self.rid += 1
        req = {"id": self.rid, "cmd": cmd}
        if args is not None:
            req["args"] = args
        t0 = now()
        try:
            self.sock.sendall(json.dumps(req).encode() + b"\n")
            while b"\n" not in self.buf:
                left = t0 + timeout - now()
                if left <= 0:
                    raise Frozen("%s: no answer within %gs" % (cmd, timeout))
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise Frozen("%s: the control socket closed" % cmd)
                self.buf += chunk
        except socket.timeout:
            raise Frozen("%s: no answer within %gs" % (cmd, timeout))
        except OSError as e:
            raise Frozen("%s: %s" % (cmd, e))
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line), now() - t0

    def close(self):
        self.sock.close()


def proc_state(pid):
    """The state letter of process PID, None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    return st[st.rindex(")") + 2:].split()[0]


def children(pid):
    """{name: pid} of vmmux PID's live VMM processes: a built-in role's
    ("vmmux vmm NAME") by NAME, an external program's by the base name of
    its path (the harness runs each through a link named after its VMM)."""
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            if int(fields[1]) != pid or fields[0] == "Z":
                continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
        except (OSError, ValueError):
            continue
        if len(argv) == 3 and argv[1] == "vmm":
            found[argv[2]] = int(d)
        elif argv:
            found[os.path.basename(argv[0])] = int(d)
    return found


class Run:
    def __init__(self, opts, seed, workdir):
        self.o = opts
        self.seed = seed
        self.rng = random.Random(seed)
        self.dir = workdir
        self.api_path = os.path.join(workdir, "api.sock")
        self.ops = {}             # op name -> count done
        self.op_lat = {}          # op name -> [seconds]
        self.pings = []           # seconds
        self.ping_worst = 0.0     # the longest a ping waited (answered or not)
        self.reap = []            # seconds from SIGKILL to vmmux reaping
        self.unreaped = 0         # killed processes never reaped
        self.detect = []          # seconds from SIGSTOP to vmmux killing the process
        self.undetected = 0       # stops that ended by our SIGCONT first
        self.frozen = None        # why the control socket was given up
        self.slow_dumped = False  # --dump-slow: one dump per run
        self.sigterm = None       # seconds to exit after SIGTERM (None: never)
        self.exit_status = None
        self.report = None
        self.notes = []
        self.swap_n = 0
        self.where = {"sync": "mon_s", "posted": "mon_p", "doorbell": "mon_d"}
        self.deaf_match = False
        self.disrupt = {n: [] for n in PARALLEL}
        self.stopped_by_api = set()
        self.ending = False
        self.lock = threading.Lock()
        self.watch = {}           # pid -> (kind, t0): "kill" or "stop"
        self.updating = False     # a live update under way (the probe reconnects)
        self.updates = 0

    # ---- vmmux ---------------------------------------------------------

    def program(self, name, prog):
        """A link named NAME to test VMM PROG, so that its process is found
        by name."""
        link = os.path.join(self.dir, "bin", name)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.exists(link):
            os.symlink(os.path.join(self.o.vmm_dir, prog), link)
        return link

    def out(self, name, ext="jsonl"):
        return os.path.join(self.dir, "%s.%d.%s" % (name, self.swap_n, ext))

    def vmm_spec(self, name):
        """The --vmm text of parallel VMM NAME (a fresh output file)."""
        self.swap_n += 1
        if name == "uart":
            return "uart=uart16550,placement=parallel,timeout=%s,output=%s" % (
                VMM_TIMEOUT, self.out("uart", "out"))
        if name.startswith("mon_"):
            return "%s=monitor,placement=parallel,timeout=%s,output=%s" % (
                name, VMM_TIMEOUT, self.out(name))
        if name == "ext":
            return "ext=external,program=%s,timeout=%s,output=%s" % (
                self.program("ext", "vmm_chaos"), VMM_TIMEOUT, self.out("ext", "log"))
        raise ValueError(name)

    def command(self):
        c = [self.o.vmmux, "run", "--kernel", os.path.join(self.o.guest_dir, "chaos.elf"),
             "--cpus", "2", "--cpu-mode", "user", "--no-defaults", "--api-sock", self.api_path,
             "--stats-json", os.path.join(self.dir, "stats.json"),
             "--vmm", "exit=debug-exit", "--route", "io:0xf4-0xf7=exit",
             "--vmm", "ctl=uart16550,placement=main,input=stdin,output=%s" %
             os.path.join(self.dir, "ctl.out"),
             "--route", "io:0x2f8-0x2ff=ctl",
             "--vmm", "mon_f=monitor,placement=main,output=%s" %
             os.path.join(self.dir, "mon_f.0.jsonl")]
        for n in ["uart", "mon_s", "mon_s2", "mon_p", "mon_p2", "mon_d", "ext"]:
            c += ["--vmm", self.vmm_spec(n)]
        c += ["--vmm", "hostile=external,program=%s,delay=2000,smi=async,raise=platform:smi" %
              self.program("hostile", "vmm_hostile"),
              "--vmm", "deaf=external,program=%s,deaf=1,timeout=%s" % (
                  self.program("deaf", "vmm_hostile"), VMM_TIMEOUT),
              "--vmm", "slow=external,program=%s,hello_delay=1000,timeout=%s" % (
                  self.program("slow", "vmm_hostile"), VMM_TIMEOUT),
              "--route", "io:0x3f8-0x3ff=uart",
              "--route", "io:0x80-0x87=mon_s;fallback=mon_f",
              "--route", "io:0x88-0x8b=mon_p;posted;fallback=mon_f",
              "--route", "io:0x8c=mon_d;doorbell;fallback=mon_f",
              "--route", "io:0x90-0x93=ext", "--route", "io:0x9d=ext;doorbell",
              "--route", "io:0x94-0x97=hostile", "--route", "platform:smi=hostile",
              "--route", "io:0x98=slow",
              "--route", "io:0x9c=deaf;doorbell"]
        return c

    def start(self):
        self.out_f = open(os.path.join(self.dir, "vmmux.out"), "wb")
        self.err_f = open(os.path.join(self.dir, "vmmux.err"), "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=self.out_f,
                                     stderr=self.err_f)
        end = now() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("vmmux ended at start (status %s): %s" % (
                    self.proc.returncode, self.err_text()[-2000:]))
            try:
                self.api = Api(self.api_path, OP_TIMEOUT)
                self.probe_api = Api(self.api_path, OP_TIMEOUT)
                break
            except OSError:
                if now() > end:
                    raise RuntimeError("vmmux's control socket did not come up")
                time.sleep(0.02)

    def err_text(self):
        if not self.err_f.closed:
            self.err_f.flush()
        with open(os.path.join(self.dir, "vmmux.err"), "rb") as f:
            return f.read().decode(errors="replace")

    # ---- background watchers -------------------------------------------

    def prober(self):
        """Ping every PING_PERIOD; a ping unanswered at the end counts with
        the time it waited."""
        updates = self.updates  # the updates before this connection was last used
        while not self.ending and self.frozen is None:
            t0 = now()
            pre = (self.updating, self.updates)
            try:
                _, dt = self.probe_api.call("ping", timeout=3600)
            except Frozen:
                if self.updating or self.updates != updates:
                    # a live update: the program that had this connection
                    # is gone (only the asking client's is handed over);
                    # the same socket path answers from the new program
                    updates = self.updates
                    self.probe_api = self.reconnect()
                    continue
                # never answered: it counts with the time it waited
                dt = now() - t0
                self.pings.append(dt)
                self.ping_worst = max(self.ping_worst, dt)
                return
            self.pings.append(dt)
            self.ping_worst = max(self.ping_worst, dt)
            if not pre[0]:
                updates = pre[1]  # this connection's program came after those
            time.sleep(max(0.0, PING_PERIOD - dt))

    def watcher(self):
        """Follow killed and stopped processes: a killed one until vmmux
        reaps it, a stopped one until vmmux kills it (or we continue it)."""
        while True:
            with self.lock:
                items = list(self.watch.items())
                if not items and self.ending:
                    return
            t = now()
            for pid, (kind, t0) in items:
                st = proc_state(pid)
                with self.lock:
                    if self.watch.get(pid) != (kind, t0):
                        continue  # continued or replaced meanwhile
                    if kind == "kill" and st is None:
                        self.reap.append(t - t0)
                        del self.watch[pid]
                    elif kind == "stop" and st in (None, "Z"):
                        # vmmux killed it: detected; then follow it to its reaping
                        self.detect.append(t - t0)
                        self.watch[pid] = ("kill", t)
            if self.ending and now() > self.end_watch:
                with self.lock:
                    self.unreaped += sum(1 for k, _ in self.watch.values() if k == "kill")
                    self.watch.clear()
                return
            time.sleep(0.002)

    # ---- operations ----------------------------------------------------

    def may_disrupt(self, name):
        t = now()
        h = [x for x in self.disrupt[name] if x > t - 60]
        self.disrupt[name] = h
        return len(h) < DISRUPT_PER_MIN

    def count(self, op):
        self.ops[op] = self.ops.get(op, 0) + 1

    def call(self, op, cmd, args):
        timer = None
        if self.o.dump_slow and not self.slow_dumped and (
                not self.o.dump_ops or op in self.o.dump_ops.split(",")):
            def dump():
                self.slow_dumped = True
                self.dump_threads("slow-%s" % op)
            timer = threading.Timer(self.o.dump_slow, dump)
            timer.start()
        try:
            rep, dt = self.api.call(cmd, args)
        finally:
            if timer is not None:
                timer.cancel()
        self.op_lat.setdefault(op, []).append(dt)
        if not rep.get("ok"):
            self.notes.append("%s %s: %s" % (cmd, json.dumps(args), rep.get("error")))
        return rep

    def op_kill(self, sched):
        names = [n for n in PARALLEL if self.may_disrupt(n)]
        if not names:
            return
        name = self.rng.choice(names)
        pid = children(self.proc.pid).get(name)
        if pid is None:
            return
        with self.lock:
            if pid in self.watch:
                return
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.watch[pid] = ("kill", now())
        self.disrupt[name].append(now())
        self.count("kill")

    def op_stop(self, sched):
        names = [n for n in PARALLEL if self.may_disrupt(n)]
        if not names:
            return
        name = self.rng.choice(names)
        hold = self.rng.uniform(0.1, 2.0)
        pid = children(self.proc.pid).get(name)
        if pid is None:
            return
        with self.lock:
            if pid in self.watch:
                return
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                return
            self.watch[pid] = ("stop", now())
        self.disrupt[name].append(now())
        self.count("stop")
        sched(hold, "cont", pid)

    def cont(self, pid):
        with self.lock:
            w = self.watch.get(pid)
            if w is not None and w[0] == "stop":
                del self.watch[pid]
                self.undetected += 1
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def op_replace(self, sched):
        what = self.rng.choice(["sync", "posted", "doorbell"])
        if what == "sync":
            to = "mon_s2" if self.where["sync"] == "mon_s" else "mon_s"
            spec = "io:0x80-0x87=%s;fallback=mon_f" % to
        elif what == "posted":
            to = "mon_p2" if self.where["posted"] == "mon_p" else "mon_p"
            spec = "io:0x88-0x8b=%s;posted;fallback=mon_f" % to
        else:
            to = "mon_p2" if self.where["doorbell"] == "mon_d" else "mon_d"
            spec = "io:0x8c=%s;doorbell;fallback=mon_f" % to
        rep = self.call("replace", "routes.replace", {"spec": spec})
        if rep.get("ok"):
            self.where[what] = to
        self.count("replace")

    def op_doorbell_flip(self, sched):
        self.deaf_match = not self.deaf_match
        spec = "io:0x9c=deaf;doorbell=1" if self.deaf_match else "io:0x9c=deaf;doorbell"
        self.call("doorbell-flip", "routes.replace", {"spec": spec})
        self.count("doorbell-flip")

    def op_swap(self, sched):
        name = self.rng.choice(SWAPPABLE)
        self.call("swap", "vmm.swap", {"name": name, "spec": self.vmm_spec(name)})
        self.count("swap")

    def op_restart(self, sched):
        names = [n for n in PARALLEL if self.may_disrupt(n)]
        if not names:
            return
        name = self.rng.choice(names)
        self.disrupt[name].append(now())
        self.call("restart", "vmm.restart", {"name": name})
        self.count("restart")

    def op_stop_start(self, sched):
        names = [n for n in STOPPABLE if n not in self.stopped_by_api]
        if not names:
            return
        name = self.rng.choice(names)
        rep = self.call("vmm.stop", "vmm.stop", {"name": name})
        if rep.get("ok"):
            self.stopped_by_api.add(name)
            sched(self.rng.uniform(0.05, 0.5), "start", name)
        self.count("stop-start")

    def start_vmm(self, name):
        self.call("vmm.start", "vmm.start", {"name": name})
        self.stopped_by_api.discard(name)

    def reconnect(self):
        end = now() + OP_TIMEOUT
        while True:
            try:
                return Api(self.api_path, OP_TIMEOUT)
            except OSError:
                if now() > end:
                    raise Frozen("no new connection within %gs after an update" % OP_TIMEOUT)
                time.sleep(0.005)

    def op_update(self, sched):
        """A live update of vmmux itself (the same program): the VMMs'
        processes are handed over running; one that is not up (stopped,
        restarting) refuses it, said in the reply (a note)."""
        self.updating = True
        try:
            rep = self.call("update", "update", {})
        finally:
            self.updates += 1
            self.updating = False
        if rep.get("ok"):
            # the new program answered, then closed the connection
            self.api.close()
            self.api = self.reconnect()
            self.count("update")
        else:
            self.count("update-refused")

    def op_raise_smi(self, sched):
        self.call("raise-smi", "platform.raise", {"event": "smi",
                                                  "value": self.rng.randrange(256)})
        self.count("raise-smi")

    # ---- the run -------------------------------------------------------

    def run(self):
        self.start()
        t_start = now()
        self.end_watch = float("inf")
        threads = [threading.Thread(target=self.prober, daemon=True),
                   threading.Thread(target=self.watcher, daemon=True)]
        for t in threads:
            t.start()
        later = []  # heap of (time, n, what, arg)
        n = [0]

        def sched(delay, what, arg):
            n[0] += 1
            heapq.heappush(later, (now() + delay, n[0], what, arg))

        ops = [(o, w) for o, w in OPS if self.o.ops is None or o in self.o.ops]
        names = [o for o, _ in ops]
        weights = [w for _, w in ops]
        deadline = t_start + self.o.duration
        next_op = now() + self.rng.expovariate(1.0 / self.o.interval)
        try:
            while now() < deadline and self.proc.poll() is None:
                while later and later[0][0] <= now():
                    _, _, what, arg = heapq.heappop(later)
                    if what == "cont":
                        self.cont(arg)
                    else:
                        self.start_vmm(arg)
                if now() >= next_op:
                    op = self.rng.choices(names, weights)[0]
                    getattr(self, "op_" + op.replace("-", "_"))(sched)
                    next_op = now() + self.rng.expovariate(1.0 / self.o.interval)
                time.sleep(0.001)
            # what was scheduled is still done: continue, start
            for _, _, what, arg in sorted(later):
                if what == "cont":
                    self.cont(arg)
                else:
                    self.start_vmm(arg)
        except Frozen as e:
            self.frozen = str(e)
            self.dump_threads()
            for _, _, what, arg in sorted(later):
                if what == "cont":
                    self.cont(arg)
        self.finish()
        self.elapsed = now() - t_start

    def dump_threads(self, what="frozen"):
        """Every thread's stack of a vmmux that stopped answering (or, with
        --dump-slow, whose operation is slow), for the diagnosis (gdb, when
        installed): DIR/WHAT-threads.txt."""
        path = os.path.join(self.dir, "%s-threads.txt" % what)
        try:
            with open(path, "wb") as f:
                # the kernel's side first (where a system call waits), then gdb's
                for tid in sorted(os.listdir("/proc/%d/task" % self.proc.pid), key=int):
                    try:
                        with open("/proc/%d/task/%s/comm" % (self.proc.pid, tid), "rb") as c:
                            name = c.read().strip()
                        with open("/proc/%d/task/%s/stack" % (self.proc.pid, tid), "rb") as k:
                            stack = k.read()
                    except OSError:
                        continue
                    f.write(b"== kernel stack of thread %s (%s)\n%s" % (tid.encode(), name, stack))
                    if b"kvm_deassign_ioeventfd" in stack and what == "frozen":
                        self.frozen += (" (a live change inside KVM_IOEVENTFD's deassign: the "
                                        "kernel's SRCU grace period)")
                f.flush()
                subprocess.run(["gdb", "-batch", "-nx", "-p", str(self.proc.pid),
                                "-ex", "thread apply all bt"], stdout=f,
                               stderr=subprocess.STDOUT, timeout=60)
            if what == "frozen":
                self.frozen += " (threads: %s)" % path
        except (OSError, subprocess.SubprocessError) as e:
            if what == "frozen":
                self.frozen += " (no thread dump: %s)" % e

    def finish(self):
        """Stop the guest, read its report, then SIGTERM."""
        ctl = os.path.join(self.dir, "ctl.out")
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"x")
                self.proc.stdin.flush()
            except OSError:
                pass
            end = now() + REPORT_TIMEOUT
            while now() < end and self.proc.poll() is None:
                with open(ctl, "rb") as f:
                    m = REPORT_RE.search(f.read().decode(errors="replace"))
                if m:
                    break
                time.sleep(0.05)
        if self.proc.poll() is None:
            time.sleep(0.5)  # posted writes and doorbells still on their way
            t0 = now()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
                self.sigterm = now() - t0
            except subprocess.TimeoutExpired:
                self.notes.append("vmmux ignored SIGTERM for 10 s: killed")
                self.proc.kill()
                self.proc.wait()
        self.exit_status = self.proc.returncode
        self.ending = True
        self.end_watch = now() + 1.0
        try:
            self.api.close()
            self.probe_api.close()
        except OSError:
            pass
        # whatever vmmux left behind (a frozen vmmux's VMMs) goes too
        for name, pid in children(self.proc.pid).items():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.out_f.close()
        self.err_f.close()
        time.sleep(1.1)
        with open(ctl, "rb") as f:
            m = REPORT_RE.search(f.read().decode(errors="replace"))
        if m:
            self.report = {k: int(v) for k, v in
                           (x.split("=") for x in m.group(1).split())}

    # ---- what the VMMs received ----------------------------------------

    def files(self, prefix, ext):
        return sorted(glob.glob(os.path.join(self.dir, "%s.*.%s" % (prefix, ext))),
                      key=lambda p: int(p.rsplit(".", 2)[-2]))

    def analyze(self):
        streams = {k: [] for k in ("s0", "s1", "p0", "p1")}  # [(file, gen, value)]
        doorbells = 0
        for i, name in enumerate(BUILTIN_LOGS):
            for path in self.files(name, "jsonl"):
                with open(path, "rb") as f:
                    data = f.read()
                for m in LINE_RE.finditer(data):
                    key, value, gen = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3))
                    if 0x80 <= key <= 0x83:
                        streams["s0"].append((path, gen, value))
                    elif 0x84 <= key <= 0x87:
                        streams["s1"].append((path, gen, value))
                    elif key == 0x88:
                        streams["p0"].append((path, gen, value))
                    elif key == 0x89:
                        streams["p1"].append((path, gen, value))
                    elif key == 0x8c:
                        doorbells += 1
        # the UART's output files in the order of the swaps that made them:
        # a line may begin in one instance's file and end in the next one's
        uart, data = [], b""
        for path in self.files("uart", "out"):
            with open(path, "rb") as f:
                data += f.read()
        # a line cut short at the end is the one being written when the run
        # ended (a frozen run's), not garbage
        data = data[:data.rfind(b"\n") + 1]
        covered = 0
        for m in UART_RE.finditer(data):
            uart.append(("uart", 0, int(m.group(1))))
            covered += len(m.group(0))
        garbage = len(data) - covered
        ext = []
        for path in self.files("ext", "log"):
            with open(path, "rb") as f:
                for m in EXT_RE.finditer(f.read()):
                    if int(m.group(2), 16) == 0x90:
                        ext.append((path, 0, int(m.group(3), 16)))
        rep = self.report or {}
        res = {"streams": {}}

        def check(name, entries, n, builtin):
            """lost, duplicated, reordered of one stream of N values."""
            if n is None:  # no report: what was written is unknown
                n = max((v for _, _, v in entries), default=-1) + 1
            seen = {}
            reordered = 0
            maxv = {}
            for path, gen, v in entries:
                if v in seen:
                    seen[v] += 1
                    continue
                seen[v] = 1
                if v < maxv.get(path, -1):
                    reordered += 1
                maxv[path] = max(maxv.get(path, -1), v)
            # across files: the generation that routed a value never
            # decreases along the stream
            first = {}
            for path, gen, v in entries:
                first.setdefault(v, gen)
            g = -1
            for v in sorted(first):
                if first[v] < g:
                    reordered += 1
                g = max(g, first[v])
            lost = sum(1 for v in range(n) if v not in seen)
            dup = sum(c - 1 for c in seen.values())
            beyond = sum(1 for v in seen if v >= n)
            res["streams"][name] = {"sent": n, "received": len(entries), "lost": lost,
                                    "duplicated": dup, "reordered": reordered,
                                    "beyond": beyond, "builtin": builtin}

        for k in ("s0", "s1", "p0", "p1"):
            check(k, streams[k], rep.get(k), True)
        check("uart", uart, rep.get("u"), True)
        check("ext", ext, rep.get("e"), False)
        res["streams"]["uart"]["garbage_bytes"] = garbage
        # doorbells carry no value: only their number can be checked (and
        # only against the guest's report)
        db = rep.get("db", doorbells)
        res["streams"]["doorbell"] = {
            "sent": db, "received": doorbells, "lost": max(0, db - doorbells),
            "duplicated": max(0, doorbells - db), "reordered": 0, "beyond": 0,
            "builtin": True}
        s = res["streams"].values()
        res["sent"] = sum(x["sent"] for x in s)
        res["lost"] = sum(x["lost"] for x in s) + garbage
        res["dup_builtin"] = sum(x["duplicated"] + x["beyond"] for x in s if x["builtin"])
        res["dup_external"] = sum(x["duplicated"] + x["beyond"] for x in s if not x["builtin"])
        res["reordered"] = sum(x["reordered"] for x in s)
        res["bad_readback"] = rep.get("bad_scr", 0) + rep.get("bad_e", 0) + \
            abs(rep.get("x", 0) - rep.get("xr", 0))
        res["rings"] = (rep.get("x"), rep.get("xr"))
        res["hostile_writes"] = rep.get("h", 0)
        self.res = res
        return res

    def summary(self):
        r = self.res
        fails = []
        if self.report is None:
            fails.append("no guest report")
        if r["lost"]:
            fails.append("%d lost" % r["lost"])
        if r["dup_builtin"]:
            fails.append("%d duplicated (built-in roles)" % r["dup_builtin"])
        if r["reordered"]:
            fails.append("%d reordered" % r["reordered"])
        if r["bad_readback"]:
            fails.append("%d read-back mismatches" % r["bad_readback"])
        if self.frozen:
            fails.append("control socket frozen (%s)" % self.frozen)
        p99 = pct(self.pings, 99)
        if p99 > PING_P99_LIMIT:
            fails.append("control socket p99 %.0f ms (at most %.0f)" % (p99 * 1e3,
                                                                       PING_P99_LIMIT * 1e3))
        if self.sigterm is None or self.sigterm > SIGTERM_LIMIT:
            fails.append("SIGTERM %s" % ("ignored" if self.sigterm is None
                                         else "took %.0f ms" % (self.sigterm * 1e3)))
        if self.sigterm is not None and self.exit_status != -signal.SIGTERM:
            fails.append("vmmux ended with status %s, not by SIGTERM" % self.exit_status)
        return {
            "seed": self.seed, "seconds": round(self.elapsed, 1), "ops": self.ops,
            "events_sent": r["sent"], "lost": r["lost"], "dup_builtin": r["dup_builtin"],
            "dup_external": r["dup_external"], "reordered": r["reordered"],
            "bad_readback": r["bad_readback"], "streams": r["streams"],
            "report": self.report, "frozen": self.frozen,
            "ping_max_ms": round(self.ping_worst * 1e3, 1), "ping_p99_ms": round(p99 * 1e3, 1),
            "pings": len(self.pings),
            "sigterm_ms": None if self.sigterm is None else round(self.sigterm * 1e3, 1),
            "exit_status": self.exit_status,
            "reap_max_ms": round(max(self.reap, default=0) * 1e3, 1), "unreaped": self.unreaped,
            "detect_max_ms": round(max(self.detect, default=0) * 1e3, 1),
            "detect_p50_ms": round(pct(self.detect, 50) * 1e3, 1),
            "detected": len(self.detect), "undetected": self.undetected,
            "op_latency_ms": {k: {"p50": round(pct(v, 50) * 1e3, 1),
                                  "p99": round(pct(v, 99) * 1e3, 1), "n": len(v)}
                              for k, v in self.op_lat.items()},
            "notes": self.notes[:20], "failures": fails,
        }


def print_run(s, out):
    ops = " ".join("%s %d" % (k, v) for k, v in sorted(s["ops"].items()))
    print("seed %d: %.1f s, ops: %s" % (s["seed"], s["seconds"], ops or "none"), file=out)
    st = s["streams"]
    print("  events sent %d: %s" % (s["events_sent"], ", ".join(
        "%s %d" % (k, v["sent"]) for k, v in st.items())), file=out)
    print("  lost %d, duplicated %d built-in / %d external, reordered %d, read-back "
          "mismatches %d" % (s["lost"], s["dup_builtin"], s["dup_external"], s["reordered"],
                             s["bad_readback"]), file=out)
    if s["report"]:
        r = s["report"]
        print("  guest: bad_scr %d, bad_e %d, doorbell rings %d, counted in ext's state %d" % (
            r.get("bad_scr", 0), r.get("bad_e", 0), r.get("x", 0), r.get("xr", 0)), file=out)
    for k, v in st.items():
        if v["lost"] or v["duplicated"] or v["reordered"] or v["beyond"] or \
                v.get("garbage_bytes"):
            print("    %s: %s" % (k, json.dumps(v)), file=out)
    print("  control socket: longest unanswered %.1f ms, p99 %.1f ms (%d pings)%s" % (
        s["ping_max_ms"], s["ping_p99_ms"], s["pings"],
        ", FROZEN: " + s["frozen"] if s["frozen"] else ""), file=out)
    print("  signals: SIGTERM obeyed in %s; killed VMMs reaped within %.1f ms (%d never)" % (
        "never" if s["sigterm_ms"] is None else "%.1f ms" % s["sigterm_ms"],
        s["reap_max_ms"], s["unreaped"]), file=out)
    print("  stopped VMMs: detected %d (p50 %.1f ms, max %.1f ms), undetected %d" % (
        s["detected"], s["detect_p50_ms"], s["detect_max_ms"], s["undetected"]), file=out)
    lat = ", ".join("%s p50 %.1f p99 %.1f ms" % (k, v["p50"], v["p99"])
                    for k, v in sorted(s["op_latency_ms"].items()))
    print("  operation latency: %s" % (lat or "none"), file=out)
    for n in s["notes"][:5]:
        print("  note: %s" % n, file=out)
    print("  %s" % ("PASS" if not s["failures"] else "FAIL: " + "; ".join(s["failures"])),
          file=out)


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            seeds += list(range(int(a), int(b) + 1))
        else:
            seeds.append(int(part))
    return seeds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("VMMUX_BUILD", "build"),
                    help="the build directory (vmmux, guest/, tests/vmms/)")
    ap.add_argument("--vmmux", help="the vmmux binary (default BUILD/vmmux, or $VMMUX)")
    ap.add_argument("--seed", type=int, help="one run with this seed")
    ap.add_argument("--seeds", help="runs with these seeds: 1-10 or 1,5,9")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of chaos per run")
    ap.add_argument("--interval", type=float, default=0.05,
                    help="mean seconds between two operations")
    ap.add_argument("--ops", help="only these operations (comma-separated, of: %s)" %
                    ", ".join(o for o, _ in OPS))
    ap.add_argument("--json", help="write every run's figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep each run's directory")
    ap.add_argument("--dump-slow", type=float, default=0.0, metavar="SECONDS",
                    help="dump vmmux's threads (gdb) once per run when an operation has "
                    "not been answered after SECONDS (diagnosis; the dump pauses vmmux)")
    ap.add_argument("--dump-ops", help="--dump-slow only for these operations (comma-separated)")
    o = ap.parse_args()
    o.vmmux = os.path.abspath(o.vmmux or os.environ.get("VMMUX") or
                              os.path.join(o.build, "vmmux"))
    o.guest_dir = os.path.abspath(os.environ.get("VMMUX_GUEST_DIR") or
                                  os.path.join(o.build, "guest"))
    o.vmm_dir = os.path.abspath(os.environ.get("VMMUX_TEST_VMM_DIR") or
                                os.path.join(o.build, "tests", "vmms"))
    if not os.path.exists("/dev/kvm"):
        print("chaos: /dev/kvm is missing", file=sys.stderr)
        return 77 if os.environ.get("VMMUX_ALLOW_NO_KVM") == "1" else 1
    seeds = parse_seeds(o.seeds) if o.seeds else [o.seed if o.seed is not None else 1]
    if o.ops is not None:
        o.ops = o.ops.split(",")
        bad = [x for x in o.ops if x not in dict(OPS)]
        if bad or not o.ops:
            ap.error("--ops: unknown operation(s) %s" % ", ".join(bad))

    def terminated(signum, frame):
        raise SystemExit("chaos: ended by signal %d" % signum)
    # a harness ended by a signal (meson's timeout) still ends its vmmux
    signal.signal(signal.SIGTERM, terminated)
    runs = []
    t0 = now()
    for seed in seeds:
        d = tempfile.mkdtemp(prefix="vmmux-chaos-%d-" % seed)
        r = Run(o, seed, d)
        try:
            r.run()
            r.analyze()
            s = r.summary()
        finally:
            if getattr(r, "proc", None) is not None and r.proc.poll() is None:
                r.proc.kill()
        keep = o.keep or bool(s["failures"])  # a failed run's files stay for the diagnosis
        s["dir"] = d if keep else None
        if s["failures"]:
            s["stderr_tail"] = r.err_text()[-3000:]
        print_run(s, sys.stdout)
        if s["failures"]:
            tail = s["stderr_tail"].strip().splitlines()[-8:]
            for line in tail:
                print("    vmmux: %s" % line)
        sys.stdout.flush()
        runs.append(s)
        if keep:
            print("    files: %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    total = {"runs": len(runs), "seconds": round(now() - t0, 1), "ops": {}}
    for s in runs:
        for k, v in s["ops"].items():
            total["ops"][k] = total["ops"].get(k, 0) + v
    for k in ("events_sent", "lost", "dup_builtin", "dup_external", "reordered",
              "bad_readback", "detected", "undetected", "unreaped"):
        total[k] = sum(s[k] for s in runs)
    for k in ("ping_max_ms", "ping_p99_ms", "reap_max_ms", "detect_max_ms"):
        total[k] = max(s[k] for s in runs)
    terms = [s["sigterm_ms"] for s in runs]
    total["sigterm_max_ms"] = None if None in terms else max(terms)
    total["failed_runs"] = [s["seed"] for s in runs if s["failures"]]
    ops = " ".join("%s %d" % (k, v) for k, v in sorted(total["ops"].items()))
    print("total: %d run(s), %.1f s; ops: %s" % (total["runs"], total["seconds"], ops))
    print("  events sent %d, lost %d, duplicated %d built-in / %d external, reordered %d, "
          "read-back mismatches %d" % (total["events_sent"], total["lost"],
                                       total["dup_builtin"], total["dup_external"],
                                       total["reordered"], total["bad_readback"]))
    print("  control socket: longest unanswered %.1f ms, worst run's p99 %.1f ms" % (
        total["ping_max_ms"], total["ping_p99_ms"]))
    print("  SIGTERM: %s; killed VMMs reaped within %.1f ms (%d never); stopped VMMs "
          "detected within %.1f ms (%d detected, %d undetected)" % (
              "ignored in a run" if total["sigterm_max_ms"] is None
              else "obeyed within %.1f ms" % total["sigterm_max_ms"],
              total["reap_max_ms"], total["unreaped"], total["detect_max_ms"],
              total["detected"], total["undetected"]))
    print("  %s" % ("PASS" if not total["failed_runs"] else
                    "FAIL: seed(s) %s" % ",".join(map(str, total["failed_runs"]))))
    if o.json:
        with open(o.json, "w") as f:
            json.dump({"total": total, "runs": runs}, f, indent=1)
    return 0 if not total["failed_runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
