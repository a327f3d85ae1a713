"""Harness of the integration tests: they drive the real vmmux binary with
real guests under /dev/kvm.

Environment (set by tests/integration/meson.build):
  VMMUX            the vmmux binary under test
  VMMUX_GUEST_DIR  where the test guests were built
  VMMUX_SRC        the source tree (for configs/ and docs/host-limits.md)
  VMMUX_SKIP_LOG   file that collects host-limit skips (scripts/check.sh)
  VMMUX_TEST_VMM_DIR  where the test VMM programs were built (tests/vmms/)

Only host limits listed in docs/host-limits.md may skip (host_limit()); any
other skip fails the run (see runner.py).
"""
import json
import os
import subprocess
import tempfile
import time
import unittest

VMMUX = os.environ.get("VMMUX", "vmmux")
GUEST_DIR = os.environ.get("VMMUX_GUEST_DIR", ".")
SRC = os.environ.get("VMMUX_SRC", ".")
HOST_LIMIT_PREFIX = "host limit: "

# The PC-like default VMMs, in the order vmmux adds them
# (docs/routing.md#pc-like-defaults).
DEFAULT_VMMS = ("uart", "exit", "chipset", "smm", "fault")

# Exit statuses (src/vmm/machine.h)
EXIT_POWEROFF = 0
EXIT_USAGE = 2
EXIT_IMAGE = 4
EXIT_HOST = 6
EXIT_GUEST_CRASH = 8


def exit_device_status(v):
    """vmmux's status when the guest writes V to the exit device."""
    return ((v << 1) | 1) & 0xFF


def symbol(name, sym):
    """The address of symbol SYM in test guest NAME (nm); for a raw image NAME
    is the .bin and its symbols come from NAME.elf."""
    path = guest(name)
    if path.endswith(".bin"):
        path += ".elf"
    out = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[2] == sym:
            return int(f[0], 16)
    raise AssertionError("symbol %s not found in %s" % (sym, path))


def disassemble(name, *objdump_args):
    """The instructions of test guest NAME (objdump -d; a raw image's .bin.elf)
    as a list of (address, length, text), text being 'mnemonic operands'.
    OBJDUMP_ARGS are passed on (for example "-m", "i8086" for 16-bit code)."""
    path = guest(name)
    if path.endswith(".bin"):
        path += ".elf"
    out = subprocess.run(["objdump", "-d", "-w", "--insn-width=16"] + list(objdump_args) +
                         [path], capture_output=True, text=True, check=True).stdout
    insns = []
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 3 or not f[0].strip().endswith(":"):
            continue
        try:
            addr = int(f[0].strip()[:-1], 16)
        except ValueError:
            continue
        insns.append((addr, len(f[1].split()), " ".join(f[2].split())))
    return insns


def insn_after(name, fn, text):
    """The address of the first instruction of guest NAME at or after symbol FN
    whose text is TEXT or ends with it (a call's "<target>"), and the address
    of the next instruction."""
    start = symbol(name, fn)
    insns = [i for i in disassemble(name) if i[0] >= start]
    for a, n, t in insns:
        if t == text or t.endswith(text):
            return a, a + n
    raise AssertionError("no %r after %s in %s" % (text, fn, name))


class Result:
    def __init__(self, args, status, out, err):
        self.args, self.status, self.out, self.err = args, status, out, err

    def __repr__(self):
        return "vmmux %s -> status %s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.args), self.status, self.out, self.err)


def guest(name):
    path = os.path.join(GUEST_DIR, name)
    if not os.path.exists(path):
        raise AssertionError("test guest %s was not built (%s)" % (name, path))
    return path


# VMMUX_TEST_PARALLEL=1: the same tests, with every VMM whose placement a
# test does not give running as a parallel VMM process (vmmux run --parallel);
# VMMUX_TEST_SPIN=DURATION sets their transport's spin (--spin), so that the
# suite also runs with spinning off and does not depend on it.
PARALLEL = os.environ.get("VMMUX_TEST_PARALLEL") == "1"
SPIN = os.environ.get("VMMUX_TEST_SPIN")


def run_vmmux(*args, timeout=60, stdin=subprocess.DEVNULL, env=None, cwd=None):
    """Run vmmux with ARGS (in directory CWD when given); returns a Result.
    A timeout is a test failure."""
    args = list(args)
    if PARALLEL and args and args[0] == "run" and "--help" not in args:
        args.insert(1, "--parallel")
        if SPIN:
            args[2:2] = ["--spin", SPIN]
    e = dict(os.environ)
    if env:
        e.update(env)
    try:
        exe = os.path.abspath(VMMUX) if cwd and os.sep in VMMUX else VMMUX
        p = subprocess.run([exe] + list(args),
                           stdin=stdin, capture_output=True, timeout=timeout, env=e, cwd=cwd)
    except subprocess.TimeoutExpired as t:
        raise AssertionError("vmmux %s did not finish within %ds\nstdout: %r\nstderr: %r" % (
            " ".join(args), timeout, t.stdout, t.stderr))
    return Result(list(args), p.returncode, p.stdout.decode(errors="replace"),
                  p.stderr.decode(errors="replace"))


class VmmuxTest(unittest.TestCase):
    """Base class: temporary directory, monitor logs, stats files."""

    maxDiff = None

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="vmmux-test-")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def vmmux(self, *args, **kw):
        return run_vmmux(*args, **kw)

    def run_guest(self, name, *args, **kw):
        return run_vmmux("run", "--kernel", guest(name), *args, **kw)

    def start(self, *args, **kw):
        """start_vmmux in this test's directory; killed at the end of the
        test if it still runs."""
        b = start_vmmux(self.tmp, *args, **kw)
        self.addCleanup(b.kill)
        return b

    def monitor(self, name="mon", **args):
        """A --vmm option for a monitor VMM logging to a file, and the file."""
        log = self.path(name + ".jsonl")
        opt = "%s=monitor,output=%s" % (name, log)
        for k, v in args.items():  # raise_= stands for raise= (a Python keyword)
            opt += ",%s=%s" % (k.rstrip("_"), v)
        return ["--vmm", opt], log

    @staticmethod
    def read_log(path):
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def run_with_stats(self, name, *args, **kw):
        """Run a guest with --stats-json; returns (Result, stats dict)."""
        sj = self.path("stats.json")
        r = self.run_guest(name, "--stats-json", sj, *args, **kw)
        stats = None
        if os.path.exists(sj):
            with open(sj) as f:
                stats = json.load(f)
        return r, stats

    @staticmethod
    def vmm_count(stats, vmm):
        for v in stats.get("vmms", []):
            if v["name"] == vmm:
                return v["count"]
        return 0

    @staticmethod
    def route_count(stats, spec):
        """Events counted on the route whose canonical text is SPEC (0 if none)."""
        for r in stats.get("routes", []):
            if r["spec"] == spec:
                return r["count"]
        return 0

    @staticmethod
    def config_id(vmm, own):
        """VMM's id as the config gives it, independently of vmmux's
        statistics: ids 1..n in config order (docs/architecture.md), the
        run's own VMMs OWN (names, in the order given) first, then the
        PC-like default VMMs in the order config_finish adds them
        (docs/routing.md#pc-like-defaults, all of them present)."""
        order = list(own) + [d for d in DEFAULT_VMMS if d not in own]
        return 1 + order.index(vmm)

    @staticmethod
    def vmm_id(stats, vmm):
        """The id of VMM in the statistics (None when it handled nothing)."""
        for v in stats.get("vmms", []):
            if v["name"] == vmm:
                return v["id"]
        return None

    def assertStatus(self, r, status):
        self.assertEqual(r.status, status, "unexpected exit status\n%r" % r)

    def assertNoCrash(self, r):
        """vmmux ended by itself (no signal) and no sanitizer reported anything
        (the same tests run in the ASan+UBSan build)."""
        self.assertGreaterEqual(r.status, 0, "vmmux was killed by a signal\n%r" % r)
        for marker in ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                       "runtime error:"):
            self.assertNotIn(marker, r.err, "sanitizer report\n%r" % r)

    def host_limit(self, key, reason):
        """Skip because this host cannot deliver KEY (listed in
        docs/host-limits.md); counted by scripts/check.sh."""
        doc = os.path.join(SRC, "docs", "host-limits.md")
        with open(doc) as f:
            if key not in f.read():
                raise AssertionError("host limit %r is not listed in docs/host-limits.md" % key)
        log = os.environ.get("VMMUX_SKIP_LOG")
        if log:
            with open(log, "a") as f:
                f.write("%s: %s (%s)\n" % (self.id(), key, reason))
        self.skipTest(HOST_LIMIT_PREFIX + key + ": " + reason)


# ---- vmmux in the background, and its parallel VMM processes -----------------

TEST_VMM_DIR = os.environ.get("VMMUX_TEST_VMM_DIR", ".")


def vmm_program(name):
    """The path of test VMM program NAME (tests/vmms/), which must be built."""
    path = os.path.join(TEST_VMM_DIR, name)
    if not os.access(path, os.X_OK):
        raise AssertionError("test VMM %s was not built (%s)" % (name, path))
    return os.path.abspath(path)


class Background:
    """vmmux running in the background (start_vmmux). Its stdout and stderr go
    to files, which a test may read while it runs."""

    def __init__(self, args, tmpdir, stdin, env):
        self.args = args
        n = len([f for f in os.listdir(tmpdir) if f.startswith("bg-")]) // 2
        self.out_path = os.path.join(tmpdir, "bg-%d.out" % n)
        self.err_path = os.path.join(tmpdir, "bg-%d.err" % n)
        e = dict(os.environ)
        if env:
            e.update(env)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([VMMUX] + args, stdin=stdin, stdout=out, stderr=err,
                                         env=e)
        self.pid = self.proc.pid

    def _read(self, path):
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")

    def out(self):
        """What vmmux wrote to stdout so far."""
        return self._read(self.out_path)

    def err(self):
        """What vmmux wrote to stderr so far."""
        return self._read(self.err_path)

    def running(self):
        return self.proc.poll() is None

    def finish(self, timeout=60):
        """Wait for the end of the run (closing its stdin pipe, if any); a
        Result. Not ending within TIMEOUT seconds is a test failure."""
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("vmmux %s did not finish within %ds\nstdout: %r\nstderr: %r" % (
                " ".join(self.args), timeout, self.out(), self.err()))
        return Result(self.args, status, self.out(), self.err())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdin:
            self.proc.stdin.close()


def start_vmmux(tmpdir, *args, stdin=subprocess.DEVNULL, env=None):
    """Start vmmux with ARGS in the background (with --parallel and --spin
    added as run_vmmux adds them); its output goes to files in TMPDIR. STDIN
    may be subprocess.PIPE (then write to .proc.stdin)."""
    args = list(args)
    if PARALLEL and args and args[0] == "run":
        args.insert(1, "--parallel")
        if SPIN:
            args[2:2] = ["--spin", SPIN]
    return Background(args, tmpdir, stdin, env)


def child_pids(pid, zombies=False):
    """The live (not zombie, unless ZOMBIES) processes whose parent is PID,
    sorted."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == pid and (zombies or fields[0] != "Z"):
            kids.append(int(d))
    return sorted(kids)


def proc_cmdline(pid):
    """The arguments of process PID ([] when it is gone or a zombie)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


# The seccomp filters a parallel VMM inherits from the vmmux thread that
# forks it, the exec thread (the base layer alone): its own stages come on
# top (docs/security.md).
VMM_INHERITED_FILTERS = 1


def proc_status(pid):
    """/proc/PID/status as a dict of field name to text."""
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def vmm_pids(pid):
    """The parallel VMM processes of the vmmux process PID, as a dict: a
    built-in role's process (vmmux vmm NAME) under its VMM's NAME, an
    external program's under the program's path."""
    found = {}
    for kid in child_pids(pid):
        argv = proc_cmdline(kid)
        if len(argv) == 3 and argv[1] == "vmm":
            found[argv[2]] = kid
        elif argv:
            found[argv[0]] = kid
    return found


def wait_until(what, fn, timeout=10.0, interval=0.002):
    """Call FN until it returns a true value, and return that value; after
    TIMEOUT seconds, an AssertionError saying that WHAT did not happen."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("%s: not within %gs" % (what, timeout))
        time.sleep(interval)



# ---- The control socket (vmmux run --api-sock PATH; docs/control-api.md) -----

def wait_for_socket(path, bg=None, timeout=10.0):
    """Wait until a process accepts connections on the Unix socket PATH (the
    control socket of a vmmux started in the background). BG (a Background)
    ending first is a test failure that shows its output."""
    import socket as _socket
    end = time.monotonic() + timeout
    while True:
        if bg is not None and not bg.running():
            raise AssertionError("vmmux ended before its control socket %s was up\n"
                                 "stdout: %r\nstderr: %r" % (path, bg.out(), bg.err()))
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.connect(path)
            return
        except OSError:
            pass
        finally:
            s.close()
        if time.monotonic() > end:
            raise AssertionError("control socket %s: not accepting within %gs" % (path, timeout))
        time.sleep(0.005)


class ApiClient:
    """One raw connection to a control socket: requests out, reply lines in.
    Every read has a timeout (a test failure when it passes)."""

    def __init__(self, path, timeout=10.0):
        import socket as _socket
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.connect(path)  # blocking: waits while the backlog is full
        self.sock.settimeout(timeout)
        self.buf = b""
        self.next_id = 1

    def send(self, data):
        """Send DATA (bytes or str) as it is: no newline is added."""
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def read_line(self):
        """The next line (bytes, without its newline), or None at the end of
        the connection (end of file, or reset by the server)."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read_reply(self):
        """The next reply, parsed; a test failure at the end of the
        connection."""
        line = self.read_line()
        if line is None:
            raise AssertionError("the control socket closed the connection instead of replying")
        return json.loads(line)

    AUTO = object()

    def request(self, cmd, args=None, rid=AUTO):
        """Send {"id": RID, "cmd", "args"} (RID: by default a new number)
        and return the reply, which must carry the same id."""
        if rid is ApiClient.AUTO:
            rid = self.next_id
            self.next_id += 1
        req = {"id": rid, "cmd": cmd}
        if args is not None:
            req["args"] = args
        self.send(json.dumps(req) + "\n")
        reply = self.read_reply()
        if reply.get("id") != rid:
            raise AssertionError("reply to %.300r carries id %r: %.300r" % (
                req, reply.get("id"), reply))
        return reply

    def call(self, cmd, args=None):
        """request(), and its result; a test failure when the reply is an
        error."""
        r = self.request(cmd, args)
        if not r.get("ok"):
            raise AssertionError("%s %.300r failed: %.300r" % (cmd, args, r))
        return r["result"]

    def closed(self):
        """True when the server has closed the connection (whatever it sent
        before is discarded)."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            if not chunk:
                return True

    def close(self):
        self.sock.close()


def run_ctl(path, *args, **kw):
    """vmmux ctl --api-sock PATH ARGS...; a Result."""
    return run_vmmux("ctl", "--api-sock", path, *args, **kw)
