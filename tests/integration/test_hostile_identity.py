"""Hostile parallel VMMs against the identity of the others: a VMM program
(tests/vmms/vmm_intruder.c, on the raw protocol: it never makes itself
non-dumpable) goes after another VMM's memory (/proc/PID/mem, /proc/PID/maps,
process_vm_readv), signals and traces other VMMs and vmmux, and opens host
files, at its first instruction (a constructor, before anything of the
protocol) or after its set-up; the victims are VMMs of another vmmux instance
with the same VMM id, of its own instance when vmmux does not run as root,
and vmmux itself. Each attempt must fail (refused, or the VMM killed by its
seccomp filter and restarted), while both instances, their guests and their
control sockets carry on (docs/security.md, "Identity and isolation of
parallel VMMs").

Each test fails on a tree where a parallel VMM's identity is its VMM id
(uid 61000 + id, the same in every instance) or its process may open any
world-readable file."""
import ctypes
import json
import os
import pwd
import re
import signal
import subprocess

from harness import (EXIT_POWEROFF, VMMUX, ApiClient, Background, VmmuxTest, guest, proc_status,
                     vmm_program, wait_for_socket, wait_until)

WINDOW = "0x200000+0x1000"       # the victim's granted guest memory
ATTEMPT_RE = re.compile(r"vmm-intruder: (early|late) (\w+) (\S+): (.*)$")
PTRACE_ATTACH = 16
NOBODY = pwd.getpwnam("nobody")


def attempts(err, vmm):
    """The intruder VMM's reports in stderr text ERR: [(when, action, target,
    result)]."""
    found = []
    prefix = "vmm '%s': " % vmm
    for line in err.splitlines():
        if line.startswith(prefix):
            m = ATTEMPT_RE.match(line[len(prefix):])
            if m:
                found.append(m.groups())
    return found


class Instance:
    """One vmmux run in the background, idle (hlt.elf halts in KVM), with a
    control socket; its VMMs from a config file."""

    def __init__(self, test, name, vmms, wrap=None, uid=None):
        self.test = test
        self.sock = test.path(name + ".sock")
        cfg = {"guest": {"kernel": guest("hlt.elf")}, "machine": {"irqchip": True},
               "vmms": vmms, "routes": ["io:0x%x=%s" % (0x80 + i, v["name"])
                                        for i, v in enumerate(vmms)]}
        path = test.path(name + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        args = ["run", "--config", path, "--watchdog", "120s", "--api-sock", self.sock]
        if wrap is None:
            self.bg = test.start(*args)
        else:
            self.bg = test.start_wrapped(wrap, args)
        wait_for_socket(self.sock, bg=self.bg)
        wait_until("the guest's first line of %s" % name,
                   lambda: self.bg.out() == "before hlt\n" or not self.bg.running())
        test.assertTrue(self.bg.running(), self.bg.err())
        # the socket answers its owner only: connect as UID (the peer's
        # credentials are taken at the connection)
        if uid is not None:
            os.seteuid(uid)
        try:
            self.api = ApiClient(self.sock)
        finally:
            if uid is not None:
                os.seteuid(0)
        test.addCleanup(self.api.close)

    def vmms(self):
        """vmms.list: {name: entry}; the control socket must answer."""
        return {v["name"]: v for v in self.api.call("vmms.list")["vmms"]}

    def pid_of(self, vmm):
        """The pid of VMM's process once it is up."""
        return wait_until("VMM %s up" % vmm, lambda: (
            lambda v: v["pid"] if v["state"] == "up" and v["pid"] else None)(self.vmms()[vmm]))

    def power_off(self):
        """End the run through the socket: the guest carried on to the end."""
        self.test.assertTrue(self.bg.running(), self.bg.err())
        self.api.call("platform.raise", {"event": "poweroff"})
        r = self.bg.finish(30)
        self.test.assertEqual(r.status, EXIT_POWEROFF, r)
        self.test.assertEqual(r.out, "before hlt\n", r)
        self.test.assertNotIn("Sanitizer", r.err, r)
        self.test.assertNotIn("runtime error:", r.err, r)
        return r


def victim(name="vic"):
    return {"name": name, "program": vmm_program("vmm_intruder"), "memory": [WINDOW]}


def intruder(name, when, action, *targets):
    return {"name": name, "program": vmm_program("vmm_intruder"), "memory": [WINDOW],
            "program_args": [when, action] + [str(t) for t in targets]}


def as_identity_of(pid, fn):
    """Run FN() in a child process that has taken the uid, gid and groups of
    process PID (nothing else of it); FN's result (a str) comes back."""
    st = proc_status(pid)
    uid, gid = int(st["Uid"].split()[0]), int(st["Gid"].split()[0])
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            out = fn()
        except BaseException as e:  # the child reports, never returns
            out = "error %r" % e
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(child, 0)
    return data.decode()


def reach(target):
    """What a process can do to process TARGET: signal 0, PTRACE_ATTACH, open
    its memory; "kill EPERM ptrace EPERM mem EACCES" when nothing."""
    res = []
    try:
        os.kill(target, 0)
        res.append("kill ALLOWED")
    except OSError as e:
        res.append("kill " + errno_name(e.errno))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_ATTACH, target, None, None) == 0:
        res.append("ptrace ALLOWED")
        os.kill(target, signal.SIGCONT)
    else:
        res.append("ptrace " + errno_name(ctypes.get_errno()))
    try:
        with open("/proc/%d/mem" % target, "rb"):
            res.append("mem ALLOWED")
    except OSError as e:
        res.append("mem " + errno_name(e.errno))
    return " ".join(res)


def errno_name(n):
    import errno
    return errno.errorcode.get(n, str(n))


class Wrapped(Background):
    """Background, with vmmux started through a wrapper command."""

    def __init__(self, wrap, args, tmpdir):  # pylint: disable=super-init-not-called
        self.args = args
        self.out_path = os.path.join(tmpdir, "wrapped.out")
        self.err_path = os.path.join(tmpdir, "wrapped.err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(wrap + [os.path.abspath(VMMUX)] + args,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.pid = self.proc.pid


class HostileIdentity(VmmuxTest):

    def start_wrapped(self, wrap, args):
        """start() with vmmux run through WRAP (argv words that end by
        executing their arguments: vmmux keeps the pid WRAP started with)."""
        b = Wrapped(wrap, args, self.tmp)
        self.addCleanup(b.kill)
        return b

    def assert_contained(self, found, expect):
        """Every attempt of EXPECT ((when, action, target) triples) was
        reported and refused; none got anything."""
        got = {(w, a, t): res for w, a, t, res in found}
        for key in expect:
            self.assertIn(key, got, found)
            self.assertTrue(got[key].startswith("refused"), (key, got[key], found))
        for w, a, t, res in found:
            self.assertNotIn("ALLOWED", res, (w, a, t, res))

    def two_instances(self, when, action):
        """A victim in instance A; in instance B, an intruder with the same
        VMM id goes after it, A's vmmux and its own vmmux, ACTION at WHEN."""
        a = Instance(self, "a", [victim()])
        vic = a.pid_of("vic")
        b = Instance(self, "b", [intruder("intr", when, action, vic, a.bg.pid, "parent")])
        b.pid_of("intr")
        wait_until("the intruder's attempts", lambda: len(attempts(b.bg.err(), "intr")) >= 3)
        self.assert_contained(attempts(b.bg.err(), "intr"),
                              [(when, action, str(vic)), (when, action, str(a.bg.pid)),
                               (when, action, "parent")])
        # both carry on: the victim is the same process, both sockets answer
        self.assertEqual(a.pid_of("vic"), vic)
        self.assertEqual(a.vmms()["vic"]["restarts"], 0)
        a.power_off()
        b.power_off()

    def test_two_instances_memory_at_first_instruction(self):
        self.two_instances("early", "mem")

    def test_two_instances_memory_after_setup(self):
        self.two_instances("late", "mem")

    def test_two_instances_maps(self):
        self.two_instances("early", "maps")

    def test_identity_shared_with_no_other_process(self):
        # The VMMs of id 1 of two instances: nothing done under the identity
        # (uid, gid) of one reaches the other or either vmmux. And the
        # intruder's own attempts to signal, trace or read another process
        # kill it (seccomp); it is restarted, the others carry on.
        a = Instance(self, "a", [victim()])
        vic = a.pid_of("vic")
        b = Instance(self, "b", [victim("twin"),
                                 intruder("intr", "late", "kill", vic, a.bg.pid)])
        twin = b.pid_of("twin")
        self.assertNotEqual(proc_status(twin)["Uid"], proc_status(vic)["Uid"])
        self.assertNotEqual(proc_status(twin)["Gid"], proc_status(vic)["Gid"])
        for target in (vic, a.bg.pid, b.bg.pid):
            self.assertEqual(as_identity_of(twin, lambda: reach(target)),
                             "kill EPERM ptrace EPERM mem EACCES", target)
        for target in (twin, a.bg.pid, b.bg.pid):
            self.assertEqual(as_identity_of(vic, lambda: reach(target)),
                             "kill EPERM ptrace EPERM mem EACCES", target)
        # the same after set-up with ptrace and process_vm_readv, by VMMs
        # added live (their set-up passes; they die at their attempt)
        b.api.call("vmm.add", {"vmm": intruder("intr2", "late", "ptrace", vic, a.bg.pid)})
        b.api.call("vmm.add", {"vmm": intruder("intr3", "late", "vmread", vic, a.bg.pid)})
        # each reached its call, never survived it: SIGSYS, restarted
        for name in ("intr", "intr2", "intr3"):
            wait_until("the death of %s by SIGSYS" % name, lambda: (
                "vmm '%s': parallel VMM died of signal Bad system call" % name) in b.bg.err())
            self.assertTrue(attempts(b.bg.err(), name), name)
            for w, act, t, res in attempts(b.bg.err(), name):
                self.assertEqual(res, "reached", (name, w, act, t, res))
        self.assertEqual(a.pid_of("vic"), vic)
        self.assertEqual(a.vmms()["vic"]["restarts"], 0)
        self.assertEqual(b.pid_of("twin"), twin)
        # stopped before the end: a run does not end in the middle of a
        # restart (the intruders die at each start)
        for name in ("intr", "intr2", "intr3"):
            self.assertEqual(b.api.call("vmm.stop", {"name": name})["state"], "stopped")
        a.power_off()
        b.power_off()

    def test_signal_trace_and_read_at_first_instruction(self):
        # ptrace, process_vm_readv and kill of the other instance's VMM of
        # the same id (and of vmmux), at the first instruction of VMMs added
        # live: each is killed before it gets anything, so its set-up fails
        # and the addition is refused; the victim and both instances carry
        # on. The twin (B's VMM of id 1) cannot do any of it either under
        # its own identity.
        a = Instance(self, "a", [victim()])
        vic = a.pid_of("vic")
        b = Instance(self, "b", [victim("twin")])
        twin = b.pid_of("twin")
        for target in (vic, a.bg.pid):
            self.assertEqual(as_identity_of(twin, lambda: reach(target)),
                             "kill EPERM ptrace EPERM mem EACCES", target)
        for name, action in (("intr", "ptrace"), ("intr2", "vmread"), ("intr3", "kill")):
            rep = b.api.request("vmm.add", {"vmm": intruder(name, "early", action, vic,
                                                            a.bg.pid)})
            self.assertFalse(rep["ok"], rep)
            self.assertIn("died of signal 31 (Bad system call) before it answered its set-up",
                          rep["error"]["message"], rep)
            got = attempts(b.bg.err(), name)
            self.assertEqual(got, [("early", action, str(vic), "reached")], b.bg.err())
        self.assertEqual(a.pid_of("vic"), vic)
        self.assertEqual(a.vmms()["vic"]["restarts"], 0)
        self.assertEqual(b.pid_of("twin"), twin)
        a.power_off()
        b.power_off()

    def test_open_host_files(self):
        # /etc/passwd (world-readable), at the first instruction and after
        # the set-up: refused.
        inst = Instance(self, "a", [intruder("early", "early", "open"),
                                    intruder("late", "late", "open")])
        inst.pid_of("early")
        inst.pid_of("late")
        wait_until("both attempts", lambda: attempts(inst.bg.err(), "early") and
                   attempts(inst.bg.err(), "late"))
        self.assert_contained(attempts(inst.bg.err(), "early"),
                              [("early", "open", "/etc/passwd")])
        self.assert_contained(attempts(inst.bg.err(), "late"),
                              [("late", "open", "/etc/passwd")])
        self.assertEqual(inst.vmms()["late"]["restarts"], 0)
        inst.power_off()

    def test_unprivileged_vmmux(self):
        # vmmux as an ordinary user (nobody): its VMMs share its uid. An
        # intruder added live goes after another VMM of the same instance
        # and after vmmux, at its first instruction and after its set-up;
        # vmmux says at start what it cannot give.
        os.chmod(self.tmp, 0o777)
        dev = self.path("dev")
        os.mkdir(dev)
        kvm = os.stat("/dev/kvm")
        script = ("mount -t tmpfs -o mode=0755 vmmux-dev {d} && "
                  "mknod -m 0600 {d}/kvm c {maj} {min} && chown {uid} {d}/kvm && "
                  "mount --bind {d}/kvm /dev/kvm && "
                  "exec setpriv --reuid={uid} --regid={gid} --clear-groups "
                  "--inh-caps=-all \"$@\"").format(
                      d=dev, maj=os.major(kvm.st_rdev), min=os.minor(kvm.st_rdev),
                      uid=NOBODY.pw_uid, gid=NOBODY.pw_gid)
        wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
        inst = Instance(self, "a", [victim()], wrap=wrap, uid=NOBODY.pw_uid)
        vic = inst.pid_of("vic")
        self.assertEqual(int(proc_status(inst.bg.pid)["Uid"].split()[0]), NOBODY.pw_uid)
        for name, when, action in (("m1", "early", "mem"), ("m2", "late", "mem"),
                                   ("m3", "early", "maps")):
            inst.api.call("vmm.add", {"vmm": intruder(name, when, action, vic, inst.bg.pid,
                                                      "parent")})
            inst.pid_of(name)
            wait_until("the attempts of %s" % name,
                       lambda: len(attempts(inst.bg.err(), name)) >= 3)
            self.assert_contained(attempts(inst.bg.err(), name),
                                  [(when, action, str(vic)), (when, action, str(inst.bg.pid)),
                                   (when, action, "parent")])
        self.assertEqual(inst.pid_of("vic"), vic)
        self.assertEqual(inst.vmms()["vic"]["restarts"], 0)
        self.assertIn("vmmux does not run as root: its parallel VMMs run under its own uid",
                      inst.bg.err())
        inst.power_off()
