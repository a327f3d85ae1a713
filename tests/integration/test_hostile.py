"""Hostile parallel VMMs: programs that attack vmmux from a parallel VMM's
place (tests/vmms/, on the raw protocol of rawvmm.c), each of which must be
contained: the attempt fails or is the VMM's fault; the VMM is restarted or
given up; vmmux and the guest carry on (the guest's output is checked); the
control socket keeps answering (pinged throughout the attack). The list, and
where each item is tested (here unless another module is named):

  forge events through every grant kind   Grants (every kind, admitted and
                                          just outside; both placements where
                                          a built-in role can be narrowed),
                                          Forward (copies: every field off,
                                          late, async; the exit port; hvt
                                          block and net VMMs);
                                          Attacks.test_forge_under_pings;
                                          unit: vmm/test_grants,
                                          route/test_router
  raise events that route back to itself  Attacks.test_smi_back_to_itself_*,
                                          Forward.test_copies_never_loop;
                                          test_control_plane test_01 (a host
                                          event delivered to a VMM that waits
                                          for itself)
  flood raises                            Attacks.test_flood_*;
                                          test_isolation.BadVmms.
                                          test_garbage_raise_count
  corrupt every field of its region       Attacks.test_corrupt_every_field
  and rings                               (vmm_corrupt: header, saved state
                                          and record, slots' request and
                                          reply, posted and async rings);
                                          test_isolation.BadVmms.test_garbage_*
  never read its socket                   test_control_plane test_05;
                                          Attacks.test_deaf
  answer its set-up slowly                test_control_plane test_06;
                                          test_review test_ping_while_a_slow_
                                          vmm_starts
  terminal escapes on stderr              Attacks.test_terminal_escapes
                                          (stderr and the set-up answer);
                                          test_review test_vmm_flooding_its_
                                          stderr (volume)
  fork, exec, threads                     Attacks.test_fork, test_thread,
                                          test_exec
  sockets                                 Attacks.test_socket;
                                          test_isolation.BadVmms.
                                          test_forbidden_system_call
                                          (a library VMM, stage 2)

Also the copies a VMM hands on (grant forward) that reach the main VMM
(docs/routing.md, step 5): Copies. The /proc, ptrace, signal and open-file
attacks are tested with the sandbox's identity (test_isolation).

The attack programs are parallel VMMs whatever the suite's placement, so
this module runs once (suite kvm), and places its built-in roles itself.
"""
import json
import os
import re
import shutil
import subprocess
import time

from harness import (VMMUX, ApiClient, Result, VmmuxTest, exit_device_status, guest,
                     vmm_program, wait_for_socket)

IO_OUTPUT = "in 0x80: 5a 5a 5a\ninsb 0x81: %s\n" % " ".join(["5a"] * 8)  # io.elf, reads 0x5a
FAULT_RE = r"vmmux: info: vmmux: fault of VMM '%s': [a-z ]+ \(reason %d\): restarting it"
CRASH, TIMEOUT, PROTOCOL = 1, 2, 3  # enum vmmux_fault_reason
NOT_GRANTED = "parallel VMM raised an event it was not granted: "
PLACEMENTS = ("main", "parallel")  # in-process, and a process of its own


class HostileTest(VmmuxTest):
    def io_run(self, *args):
        """io.elf with ports 0x80-0x81 routed as ARGS say; the run must end
        by itself."""
        r = self.run_guest("io.elf", "--log-level", "info", *args, timeout=30)
        self.assertNoCrash(r)
        return r

    def forger(self, name="f", **args):
        opt = "%s=external,program=%s" % (name, vmm_program("vmm_forger"))
        for k, v in args.items():
            opt += ",%s=%s" % (k.rstrip("_"), v)
        return ["--vmm", opt]

    def faults(self, r, name, reason):
        return len(re.findall(FAULT_RE % (name, reason), r.err))


class Grants(HostileTest):
    """Every grant kind, for a parallel VMM that raises with its reply an
    event the grant admits and one just outside it (the first instance
    only: once=1). The admitted one reaches the monitor that a from= route
    names; the other is refused as the VMM's fault: it is killed once and
    restarted, and the guest completes."""

    ROWS = [
        # grant, admitted, just outside, route of the admitted one
        ("irq:5", "irq:5:1", "irq:6:1", "type:irq=mon;from=f"),
        ("irq:5:edge", "irq:5:1", "irq:4:1", "type:irq=mon;from=f"),
        ("irq:255:level", "irq:255:1", "irq:256:1", "type:irq=mon;from=f"),
        ("platform:reset", "platform:1", "platform:2", "type:platform=mon;from=f"),
        ("platform:watchdog", "platform:4", "platform:5", "type:platform=mon;from=f"),
        ("request:exit", "request:0:7", "request:1:7", "type:request=mon;from=f"),
        ("exception", "exception:6:0:0:8", "exception:256:0:0:8",
         "type:exception=mon;from=f"),
    ]

    def test_every_grant_kind_parallel(self):
        for grant, good, bad, route in self.ROWS:
            with self.subTest(grant=grant):
                mon = self.path("mon-%s.jsonl" % grant.replace(":", "_"))
                r = self.io_run(*self.forger(raise_=grant, once=1, forge=good + "/" + bad,
                                             on="write"),
                                "--vmm", "mon=monitor,placement=main,output=" + mon,
                                "--route", "io:0x80-0x81=f", "--route", route)
                self.assertStatus(r, exit_device_status(0))
                self.assertEqual(r.out, IO_OUTPUT)
                got = [(e["type"], e["src"]) for e in self.read_log(mon)]
                self.assertEqual(got, [(good.split(":")[0], "vmm")], r)
                self.assertEqual(r.err.count(NOT_GRANTED), 1, r)
                self.assertEqual(self.faults(r, "f", PROTOCOL), 1, r)

    def test_built_in_roles_narrowed(self):
        # The same check in both placements, with built-in roles whose
        # grants are narrowed: the chipset powers off only with the grant,
        # a reported exception ends the run only with the grant, the exit
        # device ends the run only with its grant (irq lines, both
        # placements: test_irq.NoInterrupt.test_not_granted*; forward in
        # process: Forward.test_copies_never_loop, test_events.
        # RaisedBySource).
        for placement in PLACEMENTS:
            with self.subTest(placement=placement, grant="platform"):
                r = self.run_guest("poweroff.elf", "--vmm",
                                   "chipset=chipset,placement=%s,raise=platform:reset" %
                                   placement, timeout=30)
                self.assertNoCrash(r)
                # no power-off: the guest is still running afterwards
                self.assertStatus(r, exit_device_status(0x7e))
                self.assertEqual(r.out, "poweroff\n")
                self.assertIn("not granted", r.err)
                r = self.run_guest("poweroff.elf", "--vmm",
                                   "chipset=chipset,placement=%s,raise=platform:poweroff" %
                                   placement, timeout=30)
                self.assertStatus(r, 0)
                self.assertNotIn("not granted", r.err)
            with self.subTest(placement=placement, grant="exception"):
                # the guest's #UD report: a crash only with the grant
                for grant, status in (("platform:smi", exit_device_status(0x46)),
                                      ("exception", 8)):
                    r = self.run_guest("ud.elf", "--vmm", "fault=fault-report,placement=%s,"
                                       "memory=all,raise=%s" % (placement, grant), timeout=30)
                    self.assertNoCrash(r)
                    self.assertStatus(r, status)
                    self.assertEqual("not granted" in r.err, grant != "exception", r)
            with self.subTest(placement=placement, grant="request"):
                r = self.run_guest("hello.elf", "--vmm",
                                   "exit=debug-exit,placement=%s,raise=platform:smi" %
                                   placement, timeout=30)
                self.assertNoCrash(r)
                self.assertStatus(r, 8)
                self.assertEqual(r.out, "hello from vmmux\n")
                self.assertIn("not granted", r.err)


class Forward(HostileTest):
    """The grant forward admits only a copy of the request the VMM serves,
    with that request's reply, and the copy travels only by from= routes."""

    def test_forged_exit_write(self):
        # A VMM granted only forward, serving port 0x80, makes up a write of
        # 21 to the exit port: refused (it is killed and restarted); vmmux
        # does not exit with the guest's status 43.
        r = self.io_run(*self.forger(raise_="forward", once=1, forge="io:0xf4:21:1:1"),
                        "--route", "io:0x80-0x81=f")
        self.assertNotEqual(r.status, exit_device_status(21), r)
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, IO_OUTPUT)
        self.assertIn(NOT_GRANTED + "VMM 'f' (for vCPU 0): io write port 0xf4 size 1 value 0x15",
                      r.err)
        self.assertEqual(self.faults(r, "f", PROTOCOL), 1, r)

    def test_exact_copy_of_exit_write_stays_off_the_exit_device(self):
        # Even the exact copy of a write it serves does not take a route
        # without from=: the forger serving port 0xf4 (in the exit device's
        # place) hands the guest's exit write on; the copy reaches the main
        # VMM (dropped), not the exit device of io:0xf4=exit;from=... there
        # is none, so the run ends by the forger's own answer: none.
        r = self.io_run(*self.forger(raise_="forward", copy="exact"),
                        "--route", "io:0x80-0x81=f", "--route", "io:0xf4-0xf7=f")
        # the guest's exit write went to f, which ended nothing: the guest
        # halts after it
        self.assertStatus(r, 8)
        self.assertEqual(r.out, IO_OUTPUT)
        self.assertNotIn("not granted", r.err)
        self.assertIn("a copy handed on by a VMM with no from= route for it: dropped", r.err)

    def test_copies_outside_the_request(self):
        # Each way of handing on something that is not the request served
        # (one field off, the previous request after its reply, the async
        # ring) is refused and the VMM's fault; the exact copy passes, by
        # its from= route, to the monitor.
        for how in ("key", "value", "size", "flags", "type", "vcpu", "count", "aux", "late",
                    "async"):
            with self.subTest(copy=how):
                mon = self.path("mon-%s.jsonl" % how)
                r = self.io_run(*self.forger(raise_="forward", once=1, copy=how),
                                "--vmm", "mon=monitor,placement=main,output=" + mon,
                                "--route", "io:0x80-0x81=f",
                                "--route", "type:io=mon;from=f", "--route", "type:mmio=mon;from=f")
                self.assertStatus(r, exit_device_status(0))
                self.assertEqual(r.out, IO_OUTPUT)
                if how == "async" and NOT_GRANTED not in r.err:
                    # the guest's exit overtook the dispatcher's read of the
                    # async ring (tests/unit/vmm/test_grants.c refuses async
                    # copies whenever they are read): the forger tried
                    self.assertIn("vmm-forger: raised", r.err)
                else:
                    self.assertIn(NOT_GRANTED, r.err)
                # killed once: restarted (each instance forges once; an
                # async copy is refused when the dispatcher reads it, which
                # the run's end may overtake, before or after the
                # supervisor reaps the VMM it killed: at most one fault per
                # refusal, and a successor may forge again before the end)
                faults = self.faults(r, "f", PROTOCOL)
                if how != "async":
                    self.assertEqual(faults, 1, r)
                else:
                    self.assertLessEqual(faults, r.err.count(NOT_GRANTED), r)
                    self.assertNotIn("given up", r.err)
                # what reached the monitor: exact copies only, from f
                for e in self.read_log(mon):
                    self.assertEqual((e["type"], e["src"]), ("io", "vmm"), e)
                    self.assertIn(e["key"], ("0x80", "0x81"), e)

    def test_exact_copies_pass(self):
        mon = self.path("mon.jsonl")
        r = self.io_run(*self.forger(raise_="forward", copy="exact"),
                        "--vmm", "mon=monitor,placement=main,output=" + mon,
                        "--route", "io:0x80-0x81=f", "--route", "io:0x80-0x81=mon;from=f")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, IO_OUTPUT)
        self.assertNotIn("not granted", r.err)
        got = [(e["key"], e["write"], e["size"], e["src"]) for e in self.read_log(mon)]
        # io.elf's accesses to 0x80: three writes, three reads; then what
        # reached the forger of its string I/O to 0x81 one element a time
        self.assertEqual(got[:6], [("0x80", w, n, "vmm") for w in (True, False)
                                   for n in (1, 2, 4)], r)
        self.assertEqual(set(got[6:]) - {("0x81", True, 1, "vmm"), ("0x81", False, 1, "vmm")},
                         set())
        self.assertEqual([e["value"] for e in self.read_log(mon)][:3],
                         ["0x12", "0x1234", "0x12345678"])

    def test_posted_writes_are_not_handed_on(self):
        # A parallel monitor serves the writes of a posted route outside any
        # request: its library refuses to hand them on (logged once), it is
        # not killed, and its reads (synchronous) are handed on. In process
        # it is called for each write, which it hands on.
        for placement in PLACEMENTS:
            with self.subTest(placement=placement):
                log1, log2 = self.path("p1-%s.jsonl" % placement), self.path(
                    "p2-%s.jsonl" % placement)
                r = self.io_run(
                    "--vmm", "mon=monitor,placement=%s,read=0x5a,forward=yes,raise=forward,"
                    "output=%s" % (placement, log1),
                    "--vmm", "mon2=monitor,placement=main,output=%s" % log2,
                    "--route", "io:0x80-0x81=mon;posted",
                    "--route", "io:0x80-0x81=mon2;from=mon")
                self.assertStatus(r, exit_device_status(0))
                self.assertEqual(r.out, IO_OUTPUT)
                self.assertNotIn("not granted", r.err)
                copies = [(e["key"], e["write"], e["size"]) for e in self.read_log(log2)]
                reads = [("0x80", False, n) for n in (1, 2, 4)]
                if placement == "parallel":
                    self.assertEqual(r.err.count("could not hand an event on (raise refused; "
                                                 "logged once)"), 1, r)
                    self.assertEqual([c for c in copies if c[1]], [], r)
                    self.assertEqual(copies[:3], reads, r)
                else:
                    self.assertEqual(copies[:6], [("0x80", True, n) for n in (1, 2, 4)] + reads)

    def test_copies_never_loop(self):
        # mon hands on to mon2 (from=mon); mon2 hands on too, with no route
        # of its own: its copies go to the main VMM (dropped), never back to
        # mon by the plain route io:0x80-0x81=mon (a loop to the raise
        # depth limit before).
        for placement in PLACEMENTS:
            with self.subTest(placement=placement):
                log1, log2 = self.path("m1-%s.jsonl" % placement), self.path(
                    "m2-%s.jsonl" % placement)
                r = self.io_run(
                    "--vmm", "mon=monitor,placement=%s,read=0x5a,forward=yes,raise=forward,"
                    "output=%s" % (placement, log1),
                    "--vmm", "mon2=monitor,placement=%s,forward=yes,raise=forward,output=%s" %
                    (placement, log2),
                    "--route", "io:0x80-0x81=mon", "--route", "io:0x80-0x81=mon2;from=mon")
                self.assertStatus(r, exit_device_status(0))
                self.assertEqual(r.out, IO_OUTPUT)
                self.assertNotIn("deeper than", r.err)
                first, second = self.read_log(log1), self.read_log(log2)
                self.assertEqual([e["src"] for e in first if e["src"] != "vcpu"], [])
                seen = [(e["key"], e["write"], e["size"]) for e in first
                        if "string" not in e["flags"]]
                self.assertEqual([(e["key"], e["write"], e["size"]) for e in second], seen)
                self.assertIn("a copy handed on by a VMM with no from= route for it: dropped",
                              r.err)

    def test_hvt_device_vmm_cannot_be_reached_by_forgery(self):
        # An hvt guest's VMM holding what block0 holds in a chain (request:exit
        # and forward), in the console's place, makes up a block write with
        # an argument outside guest memory: before, block0 took it as the
        # guest's and ended the run (status 1); now it is refused, and the
        # console's copies (its from= route) still print the guest's lines.
        disk = self.path("disk.img")
        with open(disk, "wb") as f:
            f.truncate(1 << 20)
        doc = {"machine": {"mem": "16M"},
               "guest": {"kernel": os.path.abspath(guest("hvt/hvt_blk.hvt")), "format": "hvt",
                         "args": []},
               "hvt": {"block": {"storage": {"path": disk}}},
               "vmms": [{"name": "evil", "role": "external", "placement": "parallel",
                         "program": vmm_program("vmm_forger"),
                         "raise": ["request:exit", "forward"],
                         "args": {"once": "1", "copy": "exact",
                                  "forge": "hypercall:4:0x10:4:1/hypercall:6:0x10:4:1"}}],
               "routes": ["hypercall:2=evil", "hypercall:2=console;from=evil"]}
        cfg = self.path("vm.json")
        with open(cfg, "w") as f:
            json.dump(doc, f)
        r = self.vmmux("run", "--config", cfg, "--log-level", "info", timeout=30)
        self.assertNoCrash(r)
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "storage: handle 1 capacity 1048576 block_size 512\n")
        self.assertIn(NOT_GRANTED + "VMM 'evil' (for vCPU 0): hypercall 4 argument 0x10; killed",
                      r.err)


    def test_hvt_net_vmm_cannot_be_reached_by_forgery(self):
        # The same with a net device (a tap in a private network namespace):
        # a made-up net write with an argument outside guest memory; before,
        # the net VMM took it as the guest's and ended the run (status 1).
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise AssertionError("this test needs root and iproute2 (ip), as test_hvt.Net")
        if not os.path.exists("/dev/net/tun"):
            os.makedirs("/dev/net", exist_ok=True)
            subprocess.run(["mknod", "/dev/net/tun", "c", "10", "200"], check=True)
        ns = "vmmux-hostile-%d" % os.getpid()
        nsenter = ["nsenter", "--net=/run/netns/" + ns]
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", ns])
        for cmd in (["ip", "tuntap", "add", "tap0", "mode", "tap"],
                    ["ip", "link", "set", "tap0", "up"]):
            subprocess.run(nsenter + cmd, check=True)
        doc = {"machine": {"mem": "16M"},
               "guest": {"kernel": os.path.abspath(guest("hvt/hvt_net.hvt")), "format": "hvt",
                         "args": ["info"]},
               "hvt": {"net": {"service0": {"tap": "tap0", "mac": "02:00:5e:10:00:01"}}},
               "vmms": [{"name": "evil", "role": "external", "placement": "parallel",
                         "program": vmm_program("vmm_forger"),
                         "raise": ["request:exit", "forward"],
                         "args": {"once": "1", "copy": "exact", "forge": "hypercall:6:0x10:4:1"}}],
               "routes": ["hypercall:2=evil", "hypercall:2=console;from=evil"]}
        cfg = self.path("vm.json")
        with open(cfg, "w") as f:
            json.dump(doc, f)
        p = subprocess.run(nsenter + [os.path.abspath(VMMUX), "run", "--config", cfg,
                                      "--log-level", "info"],
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        r = Result([cfg], p.returncode, p.stdout.decode(errors="replace"),
                   p.stderr.decode(errors="replace"))
        self.assertNoCrash(r)
        self.assertStatus(r, 0)
        self.assertEqual(r.out, "service0: handle 1 mac 02:00:5e:10:00:01 mtu 1500\n")
        self.assertIn(NOT_GRANTED + "VMM 'evil' (for vCPU 0): hypercall 6 argument 0x10; killed",
                      r.err)


class Copies(HostileTest):
    """What the main VMM does with a copy (docs/routing.md, step 5): a HLT
    copy that a from= route gives it stops the vCPU; one that no from= route
    takes is dropped: the VMM that answered the HLT decided."""

    def hlt_run(self, placement, *routes):
        log = self.path("mon-%s.jsonl" % placement)
        r = self.run_guest("hlt.elf", "--vmm", "mon=monitor,placement=%s,forward=yes,"
                           "raise=forward,output=%s" % (placement, log),
                           "--route", "type:hlt=mon", *routes, timeout=30)
        self.assertNoCrash(r)
        self.assertEqual([e["type"] for e in self.read_log(log)], ["hlt"])
        return r

    def test_hlt_copy_without_route_is_dropped(self):
        for placement in PLACEMENTS:
            with self.subTest(placement=placement):
                r = self.hlt_run(placement)
                self.assertStatus(r, exit_device_status(0x11))
                self.assertEqual(r.out, "before hlt\nafter hlt\n")
                self.assertIn("unrouted VMM 'mon' (for vCPU 0): hlt key 0x0 value 0x0: a copy "
                              "handed on by a VMM with no from= route for it: dropped", r.err)

    def test_hlt_copy_routed_to_main_stops_the_vcpu(self):
        for placement in PLACEMENTS:
            with self.subTest(placement=placement):
                r = self.hlt_run(placement, "--route", "type:hlt=main;from=mon")
                self.assertStatus(r, 8)
                self.assertEqual(r.out, "before hlt\n")
                self.assertIn("every vCPU executed HLT", r.err)


class Attacks(HostileTest):
    """Attacks on a running guest (portseq.elf: numbered port writes to the
    attacker on 0x80-0x87 until the gate 0x88 opens), the control socket
    pinged from the start of the run to after the attack."""

    def attack(self, vmm, *more, until, routes=("io:0x80-0x87=x",), after=5):
        sock = self.path("api.sock")
        bg = self.start("run", "--kernel", guest("portseq.elf"), "--watchdog", "60s",
                        "--log-level", "info", "--api-sock", sock, "--vmm", vmm,
                        "--vmm", "gate=sink,placement=main",
                        *[a for rt in routes for a in ("--route", rt)],
                        "--route", "io:0x88=gate", *more)
        wait_for_socket(sock, bg)
        api = ApiClient(sock)
        pings = 0
        end = time.monotonic() + 40
        while until not in bg.err():
            if not bg.running():
                raise AssertionError("vmmux ended during the attack\n%s" % bg.err())
            if time.monotonic() > end:
                raise AssertionError("the attack did not happen (%r)\n%s" % (until, bg.err()))
            self.assertTrue(api.request("ping")["ok"])
            pings += 1
            time.sleep(0.02)
        for _ in range(after):  # and after it
            self.assertTrue(api.request("ping")["ok"])
            pings += 1
            time.sleep(0.02)
        api.call("routes.replace", {"spec": "io:0x88=main"})
        api.close()
        r = bg.finish(timeout=60)
        self.assertNoCrash(r)
        self.assertStatus(r, exit_device_status(0))
        self.assertRegex(r.out, r"^portseq \d+\n$")
        self.assertGreaterEqual(pings, after)
        return r

    def tries(self, what, **more):
        opt = "x=external,program=%s,try=%s" % (vmm_program("vmm_tries"), what)
        return self.attack(opt, until="vmm 'x': vmm-tries: trying %s" % what, **more)

    def test_fork(self):
        r = self.tries("fork")
        self.assertIn("vmm 'x': parallel VMM died of signal Bad system call", r.err)
        self.assertEqual(self.faults(r, "x", CRASH), 1, r)

    def test_thread(self):
        r = self.tries("thread")
        self.assertIn("vmm 'x': parallel VMM died of signal Bad system call", r.err)

    def test_exec(self):
        # stage 1 of the sandbox (no library, so no stage 2) admits execve,
        # but the VMM's Landlock domain lets it execute only its own program
        # and the loader's files: /bin/true is refused (EACCES) and the VMM
        # goes on serving. Where the kernel has no Landlock, the program it
        # runs is still sandboxed, and not a VMM: it ends, which is a crash,
        # and the successor serves.
        r = self.tries("exec")
        if "vmm-tries: exec returned -1 (errno 13)" in r.err:
            self.assertEqual(self.faults(r, "x", CRASH), 0, r)
        else:
            self.assertIn("vmm 'x': parallel VMM exited with status 0", r.err)
            self.assertEqual(self.faults(r, "x", CRASH), 1, r)

    def test_socket(self):
        r = self.tries("socket")
        self.assertIn("vmm 'x': parallel VMM died of signal Bad system call", r.err)

    def test_terminal_escapes(self):
        r = self.tries("escape")
        self.assertNotIn("\x1b", r.err)
        self.assertNotIn("\x9b", r.err)
        self.assertIn("vmm 'x': \\x1b]0;pwned\\x07\\x1b[2J", r.err)
        self.assertEqual(self.faults(r, "x", CRASH), 0, r)
        # in its set-up answer (the role name): refused, shown escaped
        r = self.run_guest("io.elf", "--vmm", "x=external,program=%s,try=role" %
                           vmm_program("vmm_tries"), "--route", "io:0x80-0x81=x", timeout=30)
        self.assertStatus(r, 2)
        self.assertNotIn("\x1b", r.err)
        self.assertIn("vmm 'x': ready: role '?]0;pwned??[2J' has a character outside", r.err)

    def test_deaf(self):
        # never reads its set-up socket (the teardown included): killed at
        # the end of the run
        self.attack("x=external,program=%s,deaf=1" % vmm_program("vmm_hostile"),
                    until="vmm 'x': parallel VMM started")

    def forger_opt(self, **args):
        opt = "x=external,program=%s" % vmm_program("vmm_forger")
        for k, v in args.items():
            opt += ",%s=%s" % (k.rstrip("_"), v)
        return opt

    def test_forge_under_pings(self):
        # the forgeries of Forward, while the socket is pinged: a made-up
        # exit write with the reply, then a copy on the async ring, each
        # from a first instance (killed) and never again
        for forge in ({"forge": "io:0xf4:21:1:1"}, {"copy": "async"}):
            with self.subTest(**forge):
                r = self.attack(self.forger_opt(raise_="forward", once=1, **forge),
                                until="vmm-forger: raised")
                self.assertIn(NOT_GRANTED, r.err)
                self.assertEqual(self.faults(r, "x", PROTOCOL), 1, r)

    def test_smi_back_to_itself_with_the_reply(self):
        # every write raises an SMI routed back to the raiser (its reply
        # carries it; delivered on the vCPU's thread), which answers it
        r = self.attack(self.forger_opt(raise_="platform:smi", forge="platform:0:0x42", on="write"),
                        "--route", "platform:smi=x", until="vmm-forger: raised")
        self.assertNotIn("not granted", r.err)

    def test_smi_back_to_itself_for_ever(self):
        # every event it gets, the SMIs included, raises another SMI back to
        # itself on its async ring: an endless chain through vmmux's main
        # loop, which goes on answering
        self.attack(self.forger_opt(raise_="platform:smi", forge="platform:0:0x42", via="async"),
                    "--route", "platform:smi=x", until="vmm-forger: raised", after=20)

    def test_smi_back_to_itself_in_a_chain(self):
        # the same with the reply: the chain ends at the raise depth limit
        r = self.attack(self.forger_opt(raise_="platform:smi", forge="platform:0:0x42"),
                        "--route", "platform:smi=x", until="deeper than")
        self.assertIn("events raised in a chain deeper than 8 (a routing loop?)", r.err)

    def test_flood_with_the_reply(self):
        # 1000 raised events in one reply (the slot holds 16): malformed
        r = self.attack(self.forger_opt(raise_="platform:smi", flood=1000, once=1),
                        "--vmm", "s=sink,placement=main",
                        "--route", "platform:smi=s;from=x", until="vmm-forger: raised")
        self.assertEqual(self.faults(r, "x", PROTOCOL), 1, r)
        self.assertIn("vmm 'x': parallel VMM wrote a malformed reply; killed", r.err)

    def test_flood_on_the_async_ring(self):
        # 100 SMIs after every request, as fast as the ring takes them
        self.attack(self.forger_opt(raise_="platform:smi", flood=100, via="async"),
                    "--vmm", "s=sink,placement=main",
                    "--route", "platform:smi=s;from=x", until="vmm-forger: raised", after=20)

    def test_corrupt_every_field(self):
        # vmm_corrupt: one field a request, every field it can write; a
        # posted route so that the posted ring is in use; 1 s for a reply
        r = self.attack("x=external,program=%s,timeout=1s,raise=platform:smi" %
                        vmm_program("vmm_corrupt"),
                        "--vmm", "s=sink,placement=main",
                        "--route", "platform:smi=s;from=x",
                        routes=("io:0x80-0x86=x", "io:0x87=x;posted"),
                        until="vmm-corrupt: done")
        # every corruption was made, in order (a restarted instance goes on
        # from the next one), and the VMM was never given up
        done = [x.split()[-2:] for x in r.err.splitlines()
                if re.match(r"vmm 'x': vmm-corrupt: \d+ ", x)]
        self.assertEqual([int(k) for k, _ in done], list(range(1, len(done) + 1)), r)
        self.assertEqual(done[-1][1], "saved_state_seq")
        self.assertNotIn("given up", r.err)
        self.assertIn("raised an event it was not granted: VMM 'x'", r.err)
        # killed for: raises not granted (its async entries, two replies),
        # two invalid actions, five malformed replies; and no answer
        self.assertEqual([self.faults(r, "x", k) for k in (CRASH, TIMEOUT, PROTOCOL)],
                         [0, 1, 10], r)
        self.assertEqual(done[0][1], "async_entries")
