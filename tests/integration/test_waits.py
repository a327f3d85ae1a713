"""Who waits for whom (docs/architecture.md): the supervisor and the control
socket keep working whatever a parallel VMM does. A monitor stopped with
SIGSTOP under load does not freeze route changes; a platform event raised
through the control socket to a stopped VMM neither freezes the socket nor
keeps SIGTERM from ending the run."""
import json
import os
import signal
import time

from harness import (VmmuxTest, exit_device_status, start_vmmux, guest, wait_until,
                     vmm_program)
from test_live import connect


def pid_of(api, name, up=False):
    """The pid of VMM NAME (with UP: 0 unless it is up)."""
    for v in api.call("vmms.list")["vmms"]:
        if v["name"] == name:
            return v["pid"] if not up or v["state"] == "up" else 0
    raise AssertionError("no VMM %s" % name)


class Waits(VmmuxTest):
    def hammer(self, *extra):
        api_path = self.path("api.sock")
        self.logs = {m: self.path(m + ".jsonl") for m in ("mon1", "mon2")}
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "mon1=monitor,placement=parallel,output=%s" % self.logs["mon1"],
            "--vmm", "mon2=monitor,placement=parallel,output=%s" % self.logs["mon2"],
            "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--route", "io:0x90-0x91=mon1", "--route", "io:0x92=stop0", *extra)
        return vm, connect(api_path)

    def test_stopped_monitor_does_not_freeze_route_changes(self):
        # A vCPU waits for mon1, which is stopped with SIGSTOP: route
        # changes are answered meanwhile (nobody waits for that vCPU),
        # mon1 is killed at its deadline, restarted, and nothing is lost.
        vm, api = self.hammer()
        try:
            wait_until("events at mon1", lambda: os.path.exists(self.logs["mon1"]) and
                       os.path.getsize(self.logs["mon1"]) > 0, timeout=20)
            pid = pid_of(api, "mon1")
            os.kill(pid, signal.SIGSTOP)
            try:
                for i in range(20):
                    target = "mon2" if i % 2 == 0 else "mon1"
                    api.call("routes.replace", spec="io:0x90-0x91=%s" % target)
                    api.call("routes.list")
            finally:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            api.call("routes.replace", spec="io:0x92=stop1")
            api.sock.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertStatus(r, exit_device_status(0))
        self.assertTrue(r.out.startswith("hammer done "), r)
        written = [int(x) for x in r.out.split()[2:4]]
        seen = {0: set(), 1: set()}
        for path in self.logs.values():
            for e in self.read_log(path):
                seen[e["vcpu"]].add(int(e["value"], 16))
        for cpu in (0, 1):
            missing = set(range(written[cpu])) - seen[cpu]
            self.assertEqual(missing, set(), "vCPU %d lost %d of %d writes" %
                             (cpu, len(missing), written[cpu]))

    def test_raise_to_a_stopped_vmm_keeps_the_socket_and_sigterm(self):
        # The control socket's platform.raise goes to a parallel smm that
        # is stopped with SIGSTOP: the delivery waits (on the dispatcher,
        # not on the thread that reaps and restarts smm), smm is killed at
        # its deadline and restarted, the socket answers throughout, and
        # SIGTERM ends the run.
        vm, api = self.hammer("--vmm", "smm=smm,placement=parallel",
                              "--route", "platform:smi=smm")
        try:
            wait_until("events at mon1", lambda: os.path.exists(self.logs["mon1"]) and
                       os.path.getsize(self.logs["mon1"]) > 0, timeout=20)
            pid = pid_of(api, "smm")
            os.kill(pid, signal.SIGSTOP)
            api.call("platform.raise", event="smi", value=1)
            api.call("platform.raise", event="smi", value=2)
            for _ in range(10):
                api.call("routes.list")
            wait_until("smm restarted", lambda: pid_of(api, "smm") not in (0, pid),
                       timeout=30, interval=0.05)
            api.sock.close()
            vm.proc.send_signal(signal.SIGTERM)
            r = vm.finish(timeout=30)
        finally:
            vm.kill()
        self.assertIn(r.status, (-signal.SIGTERM, 128 + signal.SIGTERM), r)
        self.assertIn("vmm 'smm': parallel VMM did not answer within 1000 ms; killed", r.err)
        # the raised SMIs waited for smm's successor: none got the default
        self.assertNotIn("for vmmux: platform event smi", r.err)

    def test_quick_faults_lose_nothing(self):
        # mon1 is killed again as soon as each successor is up, a dozen
        # times: the restart backoff grows to 1 s, longer than mon1's reply
        # deadline. A write pending meanwhile waits for the successor (its
        # deadline starts when the successor is up): none gets the
        # built-in default, none is lost, no successor is killed as late.
        vm, api = self.hammer()
        try:
            wait_until("events at mon1", lambda: os.path.exists(self.logs["mon1"]) and
                       os.path.getsize(self.logs["mon1"]) > 0, timeout=20)
            pid = pid_of(api, "mon1")
            for _ in range(12):
                os.kill(pid, signal.SIGKILL)
                old = pid
                pid = wait_until("mon1's successor",
                                 lambda: (lambda p: p if p not in (0, old) else None)(
                                     pid_of(api, "mon1", up=True)), timeout=30,
                                 interval=0.01)
            api.call("routes.replace", spec="io:0x92=stop1")
            api.sock.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertStatus(r, exit_device_status(0))
        self.assertNotIn("no answer", r.err)
        self.assertNotIn("did not answer", r.err)
        self.assertEqual(r.err.count("vmm 'mon1': parallel VMM died of signal Killed"), 12, r)
        written = [int(x) for x in r.out.split()[2:4]]
        seen = {0: set(), 1: set()}
        for path in self.logs.values():
            for e in self.read_log(path):
                seen[e["vcpu"]].add(int(e["value"], 16))
        for cpu in (0, 1):
            missing = set(range(written[cpu])) - seen[cpu]
            self.assertEqual(missing, set(), "vCPU %d lost %d of %d writes" %
                             (cpu, len(missing), written[cpu]))

    def test_long_hvt_poll_holds_back_no_route_change(self):
        # An hvt guest blocks in a 30 s poll hypercall: its vCPU waits
        # offline for the router, so route changes and the control socket
        # answer meanwhile, and SIGTERM ends the poll and the run.
        doc = {"machine": {"mem": "16M"},
               "guest": {"kernel": guest("hvt/hvt_hello.hvt"), "format": "hvt",
                         "args": ["poll", "30000000000"]}}
        cfg = self.path("vm.json")
        with open(cfg, "w") as f:
            json.dump(doc, f)
        api_path = self.path("api.sock")
        vm = start_vmmux(self.tmp, "run", "--config", cfg, "--api-sock", api_path)
        try:
            api = connect(api_path)
            time.sleep(0.5)  # the guest reaches its poll (a test of nothing if not)
            for _ in range(5):
                api.call("routes.add", spec="io:0x80=main")
                api.call("routes.delete", spec="io:0x80")
            api.sock.close()
            vm.proc.send_signal(signal.SIGTERM)
            r = vm.finish(timeout=20)
        finally:
            vm.kill()
        self.assertIn(r.status, (-signal.SIGTERM, 128 + signal.SIGTERM), r)
        self.assertNotIn("poll ret", r.out)  # the poll did not run to its end

    def test_vmm_that_never_reads_its_socket(self):
        # deaf stops reading its set-up socket once set up; every doorbell
        # route change sends it a message. When its socket is full, that is
        # its protocol fault (killed, restarted): no thread of vmmux ever
        # blocks on the send, and the socket keeps answering.
        api_path = self.path("api.sock")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("hammer.elf"), "--cpus", "2",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "s=sink", "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--vmm", "deaf=external,program=%s" % vmm_program("vmm_deaf"),
            "--route", "io:0x90-0x91=s", "--route", "io:0x92=stop0")
        try:
            api = connect(api_path)
            for _ in range(300):
                api.call("routes.add", spec="io:0x510=deaf;doorbell")
                api.call("routes.delete", spec="io:0x510")
            api.call("routes.replace", spec="io:0x92=stop1")
            api.sock.close()
            r = vm.finish(timeout=60)
        finally:
            vm.kill()
        self.assertStatus(r, exit_device_status(0))
        self.assertIn("vmm 'deaf': parallel VMM does not read its set-up socket (full); killed",
                      r.err)

    def state_of(self, api, name):
        for v in api.call("vmms.list")["vmms"]:
            if v["name"] == name:
                return v["state"], v["pid"]
        raise AssertionError("no VMM %s" % name)

    def test_slow_setup_holds_no_other_restart(self):
        # slow answers its set-up after 3 s. While its successor is being
        # set up, mon1 is killed: the supervisor restarts mon1 at once (the
        # set-up runs on a worker), before slow is up.
        vm, api = self.hammer("--vmm", "slow=external,program=%s,delay_ms=3000" %
                              vmm_program("vmm_slow"))
        try:
            wait_until("events at mon1", lambda: os.path.exists(self.logs["mon1"]) and
                       os.path.getsize(self.logs["mon1"]) > 0, timeout=20)
            os.kill(self.state_of(api, "slow")[1], signal.SIGKILL)
            wait_until("slow's successor being set up",
                       lambda: self.state_of(api, "slow")[0] == "starting", timeout=10)
            mon1 = pid_of(api, "mon1")
            os.kill(mon1, signal.SIGKILL)
            wait_until("mon1's successor", lambda: pid_of(api, "mon1", up=True) not in (0, mon1),
                       timeout=30, interval=0.01)
            self.assertEqual(self.state_of(api, "slow")[0], "starting")
            wait_until("slow up", lambda: self.state_of(api, "slow")[0] == "up", timeout=30,
                       interval=0.05)
            api.call("routes.replace", spec="io:0x92=stop1")
            api.sock.close()
            r = vm.finish(timeout=60)
        finally:
            vm.kill()
        self.assertStatus(r, exit_device_status(0))

    def test_doorbells_of_a_stopped_vmm_go_to_the_fallback(self):
        # db takes the guest's doorbell rings in its own process (it reads
        # the eventfd); once it is stopped, no process reads them: vmmux's
        # compiled-routes thread does, and the rings go to the route's
        # fallback, counted, instead of piling up unseen.
        api_path = self.path("api.sock")
        logs = {m: self.path(m + ".jsonl") for m in ("db", "fb")}
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("compiled_loop.elf"), "--cpu-mode", "user",
            "--api-sock", api_path, "--watchdog", "120s",
            "--vmm", "db=monitor,placement=parallel,output=%s" % logs["db"],
            "--vmm", "fb=monitor,output=%s" % logs["fb"],
            "--vmm", "co=sink", "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--route", "io:0x520-0x527=co;coalesced",
            "--route", "io:0x510=db;doorbell;fallback=fb", "--route", "io:0x92=stop0")
        try:
            api = connect(api_path)

            def events(m):
                return os.path.exists(logs[m]) and os.path.getsize(logs[m]) > 0

            wait_until("rings at db", lambda: events("db"), timeout=30)
            api.call("vmm.stop", name="db")
            wait_until("rings at fb", lambda: events("fb"), timeout=30)
            api.call("routes.replace", spec="io:0x92=stop1")
            api.sock.close()
            r = vm.finish(timeout=120)
        finally:
            vm.kill()
        self.assertNoCrash(r)
        self.assertStatus(r, exit_device_status(0))
        fb = [e for e in self.read_log(logs["fb"]) if e["type"] == "io"]
        self.assertTrue(all(e["key"] == "0x510" and e["write"] for e in fb), fb[:3])
