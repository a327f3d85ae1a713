"""Isolation of parallel VMMs, checked from outside, and VMM programs that
misbehave on purpose (tests/vmms/).

The processes: each runs under its own uid and gid (0x70000000 + its pid), with
no capabilities, no_new_privs, seccomp filtering (two stacked filters once
the VMM library has set up), no descriptor of KVM, and no guest RAM but the
pieces of its granted windows. The bad VMMs: one that bypasses the library
and reaches for its parent's memory, /dev/kvm and the bytes past its window;
one that makes a forbidden system call; one that writes replies out of the
protocol's domain; one of another protocol version; and raises that were not
granted. Each is stopped at the boundary, handled as a fault (logged,
restarted) or refused at start, and the guest sees no corruption."""
import json
import os
import re
import shutil
import signal
import subprocess

from harness import (VMM_INHERITED_FILTERS, EXIT_GUEST_CRASH, EXIT_USAGE, VMMUX, VmmuxTest, exit_device_status, guest,
                     proc_cmdline, proc_status, vmm_pids, vmm_program, wait_until)

UID_BASE = 0x70000000                  # a parallel VMM runs as uid/gid UID_BASE + its pid
RAM = 64 << 20                         # vmmux's default guest RAM
NO_CAPS = "0000000000000000"
RAM_MEMFD_RE = re.compile(r"^/memfd:vmmux-ram@(0x[0-9a-f]+)(?: \(deleted\))?$")
IO_OUTPUT = "in 0x80: 5a 5a 5a\ninsb 0x81: %s\n" % " ".join(["5a"] * 8)  # io.elf, reads 0x5a
BYPASS_FINDINGS = [
    "vmm-bypass: open parent mem: refused (EACCES)",
    "vmm-bypass: open parent maps: refused (EACCES)",
    "vmm-bypass: open parent fd: refused (EACCES)",
    "vmm-bypass: open /dev/kvm: refused (EACCES)",
    "vmm-bypass: window read: ok",
    "vmm-bypass: window touch past its end: SIGBUS",
    "vmm-bypass: window grow by write: refused (EPERM)",
]
FAULT_RESTART_RE = r"vmmux: info: vmmux: fault of VMM '[a-z0-9_-]+': [a-z ]+ \(reason %d\): restarting it"
FAULT_CRASH, FAULT_PROTOCOL = 1, 3     # enum vmmux_fault_reason
IO_TIMEOUT = 20                        # an io.elf run takes well under a second


def pieces(bounds):
    """The RAM pieces {gpa: size} that the window edges BOUNDS cut RAM into."""
    edges = sorted(set([0, RAM] + list(bounds)))
    return {a: b - a for a, b in zip(edges, edges[1:])}


def fd_links(pid):
    """Where the descriptors of process PID point (readlink of /proc/PID/fd/*)."""
    d = "/proc/%d/fd" % pid
    links = []
    for n in os.listdir(d):
        try:
            links.append(os.readlink(os.path.join(d, n)))
        except FileNotFoundError:
            pass  # closed meanwhile
    return links


def ram_mappings(pid):
    """The mappings of guest RAM memfds in process PID: a list of (gpa of the
    piece, file offset, length)."""
    found = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) < 6:
                continue
            m = RAM_MEMFD_RE.match(fields[5].strip())
            if m is None:
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            found.append((int(m.group(1), 16), int(fields[2], 16), hi - lo))
    return found


class Confinement(VmmuxTest):
    """A running guest's parallel VMM processes, inspected through /proc."""

    def test_vmm_processes_are_confined(self):
        # hlt.elf with the in-kernel irqchip halts inside KVM for good: the
        # VMMs stay up while /proc is read. type:fault goes to fmon (in
        # vmmux's process), which logs each fault event with the id of the
        # failed VMM: killing the VMMs one by one at the end maps names to
        # ids, without restarts.
        windows = {"mon": (0x200000, 0x2000), "ext": (0x300000, 0x1000),
                   "byp": (0x400000, 0x1000)}
        every = pieces([a for w in windows.values() for a in (w[0], w[0] + w[1])])
        fmon, flog = self.monitor("fmon", placement="main")
        ext, byp = vmm_program("vmm_syscall"), vmm_program("vmm_bypass")
        b = self.start("run", "--parallel", "--kernel", guest("hlt.elf"), "--irqchip",
                       "--watchdog", "60s", *fmon,
                       "--vmm", "mon=monitor,placement=parallel,memory=0x200000+0x2000",
                       "--vmm", "ext=external,program=%s,memory=0x300000+0x1000" % ext,
                       "--vmm", "byp=external,program=%s,memory=0x400000+0x1000" % byp,
                       "--route", "io:0x80=mon", "--route", "io:0x81=ext",
                       "--route", "io:0x82=byp", "--route", "type:fault=fmon")
        wait_until("the guest's first line", lambda: b.out() == "before hlt\n" or
                   not b.running())
        self.assertTrue(b.running(), b.err())
        names = ["uart", "exit", "chipset", "smm", "fault", "mon", "ext", "byp"]
        procs = vmm_pids(b.pid)
        self.assertEqual(sorted(procs), sorted(["uart", "exit", "chipset", "smm", "fault", "mon",
                                                ext, byp]), procs)
        pid = {n: procs[{"ext": ext, "byp": byp}.get(n, n)] for n in names}
        # what each may hold of guest RAM: the pieces of its windows
        granted = {n: {w[0]: w[1]} for n, w in windows.items()}
        granted["fault"] = every  # the default fault-report VMM: memory=all

        # The control: vmmux itself holds KVM and all of guest RAM.
        main_fds = fd_links(b.pid)
        self.assertIn("/dev/kvm", main_fds)
        self.assertIn("anon_inode:kvm-vm", main_fds)
        self.assertIn("anon_inode:kvm-vcpu:0", main_fds)
        self.assertEqual(sorted(g for g, _, _ in ram_mappings(b.pid)), sorted(every))

        uids = {}
        for n in names:
            st = proc_status(pid[n])
            uid = int(st["Uid"].split()[0])
            self.assertEqual(st["Uid"].split(), [str(uid)] * 4, (n, st["Uid"]))
            self.assertEqual(st["Gid"].split(), [str(uid)] * 4, (n, st["Gid"]))
            self.assertEqual(st["Groups"].strip(), "", n)
            for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                self.assertEqual(st[cap], NO_CAPS, (n, cap))
            self.assertEqual(st["NoNewPrivs"], "1", n)
            self.assertEqual(st["Seccomp"], "2", n)
            # vmmux's forking thread's, stage 1 from vmmux, stage 2 from the
            # library once set up; the bypass program never installs stage 2
            self.assertEqual(st["Seccomp_filters"],
                             str(VMM_INHERITED_FILTERS + (1 if n == "byp" else 2)), n)
            uids[n] = uid

            links = fd_links(pid[n])
            for link in links:
                self.assertNotEqual(link, "/dev/kvm", n)
                self.assertFalse(link.startswith("anon_inode:kvm"), (n, link))
                if link.startswith("/memfd:"):
                    m = RAM_MEMFD_RE.match(link)
                    self.assertTrue(m is not None or link.startswith("/memfd:vmmux-transport"),
                                    (n, link))
                    if m:
                        self.assertIn(int(m.group(1), 16), granted.get(n, {}), (n, link))
            mapped = {}
            for gpa, off, length in ram_mappings(pid[n]):
                self.assertIn(gpa, granted.get(n, {}), (n, hex(gpa)))
                self.assertLessEqual(off + length, granted[n][gpa], (n, hex(gpa)))
                mapped[gpa] = mapped.get(gpa, 0) + length
            # the library maps every granted piece, whole; the bypass
            # program maps none (it unmapped its probe)
            self.assertEqual(mapped, {} if n == "byp" else granted.get(n, {}), n)
        self.assertEqual(len(set(uids.values())), len(names), uids)

        # Kill each VMM; fmon's fault events give their ids.
        ids = {}
        for i, n in enumerate(names):
            os.kill(pid[n], signal.SIGKILL)
            log = wait_until("the fault event of %s" % n, lambda: (
                lambda lg: lg if len(lg) == i + 1 else None)(self.read_log(flog)))
            e = log[-1]
            self.assertEqual((e["type"], e["value"], e["src"]), ("fault", hex(FAULT_CRASH),
                                                                "host"), e)
            ids[n] = e["key"]
        for n in names:
            self.assertEqual(uids[n], UID_BASE + pid[n], (n, uids, pid))
        self.assertTrue(b.running())
        self.assertEqual(vmm_pids(b.pid), {})  # no restarts: type:fault is fmon's
        b.proc.send_signal(signal.SIGTERM)
        r = b.finish(30)
        self.assertEqual(r.status, -signal.SIGTERM, r)
        self.assertNotIn("Sanitizer", r.err, r)
        self.assertNotIn("runtime error:", r.err, r)
        self.assertNotIn("ALLOWED", r.err, r)

    def test_program_in_a_private_directory(self):
        # vmmux in a directory only root may enter (a build under /root,
        # mode 0700): its VMM processes, which run under their own uids,
        # are still executed (the program is opened before the uid drop)
        d = os.path.join(self.tmp, "private")
        os.mkdir(d, 0o700)
        exe = os.path.join(d, "vmmux")
        shutil.copy(os.path.abspath(VMMUX), exe)
        p = subprocess.run([exe, "run", "--parallel", "--kernel", guest("hello.elf")],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, exit_device_status(0), err)
        self.assertEqual(p.stdout.decode(), "hello from vmmux\n", err)
        self.assertNotIn("Permission denied", err)

    def test_vmms_die_with_vmmux(self):
        # PR_SET_PDEATHSIG: vmmux killed outright (no chance to stop its
        # VMMs) takes every parallel VMM process with it.
        b = self.start("run", "--parallel", "--kernel", guest("hlt.elf"), "--irqchip",
                       "--watchdog", "60s", "--vmm", "ext=external,program=%s" %
                       vmm_program("vmm_syscall"), "--route", "io:0x80=ext")
        wait_until("the guest's first line", lambda: b.out() == "before hlt\n" or
                   not b.running())
        procs = vmm_pids(b.pid)
        self.assertEqual(len(procs), 6, procs)  # uart exit chipset smm fault ext
        b.proc.kill()
        b.proc.wait(30)
        for name, pid in procs.items():
            wait_until("the end of VMM %s (pid %d)" % (name, pid),
                       lambda: proc_cmdline(pid) == [])


class BadVmms(VmmuxTest):
    """Programs that misbehave: each is stopped at the sandbox or the
    protocol, handled as a fault, and the guest completes unharmed."""

    def io_run(self, vmm, *more, stats=None):
        """io.elf with its ports 0x80-0x81 routed to VMM (options MORE)."""
        args = ["--log-level", "info", "--vmm", vmm, "--route",
                "io:0x80-0x81=%s" % vmm.split("=")[0]] + list(more)
        if stats:
            args += ["--stats-json", self.path(stats)]
        r = self.run_guest("io.elf", *args, timeout=IO_TIMEOUT)
        self.assertNoCrash(r)
        return r

    def stats_of(self, name, vmm):
        with open(self.path(name)) as f:
            for v in json.load(f)["vmms"]:
                if v["name"] == vmm:
                    return v
        raise AssertionError("no statistics of %s" % vmm)

    def vmm_lines(self, r, name):
        """What VMM NAME logged itself, in order (vmmux's warn lines)."""
        prefix = "vmmux: warn: vmm '%s': " % name
        return [x[len(prefix):] for x in r.err.splitlines() if x.startswith(prefix)]

    def test_bypass_is_stopped_at_the_sandbox(self):
        # (a) The library bypassed: every reach beyond its grants fails, its
        # SIGBUS is a crash that vmmux logs and restarts, and the restarted
        # instance answers the re-delivered request.
        r = self.io_run("byp=external,program=%s,memory=0x800000+0x1000" %
                        vmm_program("vmm_bypass"), stats="stats.json")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, IO_OUTPUT)
        # what the program writes to its stderr reaches vmmux's, line by
        # line, prefixed with its VMM's name
        # (its "parent pid: unknown" line, where Landlock keeps it from
        # /proc/self/status, is left out)
        findings = [x[len("vmm 'byp': "):] for x in r.err.splitlines()
                    if x.startswith("vmm 'byp': vmm-bypass: ") and
                    not x.startswith("vmm 'byp': vmm-bypass: parent pid: ")]
        self.assertEqual(findings, BYPASS_FINDINGS + [
            "vmm-bypass: touching the page past the window, without a handler"] +
            BYPASS_FINDINGS, r)
        self.assertEqual(r.err.count("vmm 'byp': parallel VMM died of signal Bus error"), 1, r)
        self.assertEqual(len(re.findall(FAULT_RESTART_RE % FAULT_CRASH, r.err)), 1, r)
        self.assertIn("vmm 'byp': restarted; 1 pending request(s) re-delivered (1 may repeat "
                      "a side effect)", r.err)
        st = self.stats_of("stats.json", "byp")
        self.assertEqual((st["restarts"], st["redelivered"], st["maybe_duplicated"]), (1, 1, 1))

    def test_forbidden_system_call(self):
        # (b) socket() while handling its second event: SIGSYS, logged,
        # restarted; the successor (given the saved state) handles that event
        # again and the rest.
        r = self.io_run("sc=external,program=%s" % vmm_program("vmm_syscall"),
                        stats="stats.json")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, IO_OUTPUT)
        self.assertEqual(r.err.count("vmm 'sc': parallel VMM died of signal Bad system call"), 1,
                         r)
        self.assertEqual(len(re.findall(FAULT_RESTART_RE % FAULT_CRASH, r.err)), 1, r)
        lines = self.vmm_lines(r, "sc")
        first = lines.index("parallel VMM died of signal Bad system call")
        self.assertEqual(lines[:first], ["event 1: io write port 0x80 size 1 value 0x12",
                                         "event 2: io write port 0x80 size 2 value 0x1234",
                                         "calling socket()"])
        rest = lines[first + 1:]
        self.assertEqual(rest[:4], ["restored after event 1",
                                    "event 2: io write port 0x80 size 2 value 0x1234",
                                    "event 3: io write port 0x80 size 4 value 0x12345678",
                                    "event 4: io read port 0x80 size 1"])
        self.assertEqual(rest[-1], "event 23: io read port 0x81 size 1 count 8")
        self.assertEqual(len(rest), 1 + 22)
        st = self.stats_of("stats.json", "sc")
        self.assertEqual((st["restarts"], st["redelivered"], st["maybe_duplicated"]), (1, 1, 1))

    def garbage(self, mode):
        r = self.io_run("g=external,program=%s,garbage=%s" % (vmm_program("vmm_garbage"),
                                                              mode), stats="stats.json")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.err.count("vmm-garbage: wrote garbage %s" % mode), 1, r)
        self.assertEqual(len(re.findall(FAULT_RESTART_RE % FAULT_PROTOCOL, r.err)), 1, r)
        self.assertEqual(self.stats_of("stats.json", "g")["restarts"], 1)
        return r

    def test_garbage_action(self):
        # (c) Reply action 99 to the first IN: collected, refused by the reply
        # check; that IN gets the built-in default (all ones), the VMM is
        # killed and restarted, and answers the rest.
        r = self.garbage("action")
        self.assertEqual(r.out, "in 0x80: ff 5a 5a\ninsb 0x81: %s\n" % " ".join(["5a"] * 8))
        self.assertIn("vmm 'g': invalid reply for vCPU 0: io read port 0x80 size 1", r.err)
        self.assertIn("vmm 'g': parallel VMM invalid reply; killed", r.err)

    def check_malformed(self, mode):
        # (c) A malformed reply to the first IN: the VMM is killed, the
        # request stays pending and the restarted VMM answers it.
        r = self.garbage(mode)
        self.assertEqual(r.out, IO_OUTPUT)
        self.assertIn("vmm 'g': parallel VMM wrote a malformed reply; killed", r.err)
        self.assertIn("vmm 'g': restarted; 1 pending request(s) re-delivered (1 may repeat a "
                      "side effect)", r.err)

    def test_garbage_raise_count(self):
        self.check_malformed("nraised")

    def test_garbage_sequence_number(self):
        self.check_malformed("seq")

    def test_garbage_slot_state(self):
        self.check_malformed("state")

    def test_incompatible_protocol_version(self):
        # (e) Refused at start: vmmux names the VMM and the versions, runs no
        # guest, and exits with the usage/config status.
        r = self.io_run("v=external,program=%s" % vmm_program("vmm_version"))
        self.assertStatus(r, EXIT_USAGE)
        self.assertEqual(r.out, "")
        self.assertIn("vmm-version: offered versions 1-1, answering 99", r.err)
        self.assertIn("vmmux: error: vmm 'v': ready: version 99 is outside the offered 1-1",
                      r.err)
        self.assertNotIn("started as pid", r.err)

    def test_raise_not_granted(self):
        # A VMM without the platform:reset grant raises a reset: refused (the
        # VMM is killed, restarted, and raises no more), no reset happens, the
        # guest completes.
        r = self.io_run("r=external,program=%s" % vmm_program("vmm_raiser"),
                        stats="stats.json")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, IO_OUTPUT)
        self.assertIn("vmm 'r': parallel VMM raised an event it was not granted: VMM 'r' (for "
                      "vCPU 0): platform event reset value 0x0; killed", r.err)
        self.assertEqual(len(re.findall(FAULT_RESTART_RE % FAULT_PROTOCOL, r.err)), 1, r)
        self.assertNotIn("resetting the VM", r.err)
        lines = self.vmm_lines(r, "r")
        self.assertEqual(lines.count("raised platform reset: 0"), 1, r)
        self.assertNotIn("role reset", lines)
        self.assertEqual(len([x for x in lines if x.startswith("event ")]), 23, r)

    def test_raise_granted(self):
        # The control: with the grant, the same raise resets the VM once.
        r = self.io_run("r=external,program=%s,raise=platform:reset" %
                        vmm_program("vmm_raiser"))
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, IO_OUTPUT)
        self.assertEqual(r.err.count("resetting the VM (reset 1)"), 1, r)
        self.assertNotIn("not granted", r.err)
        lines = self.vmm_lines(r, "r")
        self.assertEqual(lines.count("role reset"), 1, r)
        # boot 1 ended at its first write; boot 2 ran whole
        self.assertEqual(len([x for x in lines if x.startswith("event ")]), 1 + 23, r)

    def test_exit_device_without_its_grant(self):
        # The debug-exit role whose grants do not include request:exit: its
        # exit request is refused, the guest halts after its exit write, and
        # the run ends as a dead halt instead of with the guest's status.
        r = self.run_guest("hello.elf", "--log-level", "info",
                           "--vmm", "exit=debug-exit,placement=parallel,raise=platform:smi")
        self.assertNoCrash(r)
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertEqual(r.out, "hello from vmmux\n")
        self.assertNotIn("exit requested", r.err)
        self.assertIn("every vCPU executed HLT", r.err)
        r = self.run_guest("hello.elf", "--vmm",
                           "exit=debug-exit,placement=parallel,raise=request:exit")
        self.assertStatus(r, exit_device_status(0))
