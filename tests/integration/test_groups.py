"""Routes to a group of VMMs (io:0x90=group(POLICY:...)), seen from the
guest and the statistics: least-loaded keeps a slow member (a sink with a
delay) under 10% of the requests, whichever member it is, and sends nothing
to a member that has a request in flight while the others are free;
round-robin spreads exactly evenly, slow member or not; weighted gives the
exact proportions; sticky keeps each vCPU on its member; a stopped member
(the control API's vmm stop) or a failed one (killed, not restarted) gets
nothing until it is back, and a started one gets its share again.

The members are parallel VMMs (sinks, or monitors where the test needs to
see which vCPU each event came from); the guest is group.elf or
group_wait.elf at CPL3 with 2 vCPUs, so that requests are in flight at once
(guest/README.md)."""
import json
import os
import re
import signal
import subprocess

from harness import (SRC, VmmuxTest, child_pids, guest, run_ctl, vmm_program,
                     wait_for_socket, wait_until)

with open(os.path.join(SRC, "guest", "tests", "group.c")) as _f:
    GROUP_N = int(re.search(r"#define GROUP_N (\d+)u", _f.read()).group(1))
CPUS = 2
PHASES, PHASES_WAIT = 2, 3  # group.elf, group_wait.elf
TOTAL = PHASES * GROUP_N * CPUS  # writes to 0x90 in a group.elf run
SLOW = "delay_us=2000"  # the slow member's delay
MEMBERS = ("w1", "w2", "w3")


def proc_cpu_ns(pid):
    """The CPU time (user + system) of process PID, in ns, as the kernel
    accounts it (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * 1000000000 // os.sysconf("SC_CLK_TCK")


class Groups(VmmuxTest):

    def members(self, role="worker", **extra):
        """--vmm options for parallel VMMs w1, w2, w3 of ROLE: by default
        tests/vmms/vmm_worker, which records each event it handles in
        wN.txt (member_counts); EXTRA maps a member's name to more of its
        options ("delay_us=2000")."""
        args = []
        for m in MEMBERS:
            if role == "worker":
                opt = "%s=external,program=%s,output=%s" % (m, vmm_program("vmm_worker"),
                                                            self.path(m + ".txt"))
            else:
                opt = "%s=%s,placement=parallel" % (m, role)
            if role == "monitor":
                opt += ",output=" + self.path(m + ".jsonl")
            if m in extra:
                opt += "," + extra[m]
            args += ["--vmm", opt]
        return args

    def run_group(self, route, *args, cpus=CPUS, members=None):
        """group.elf at CPL3 on CPUS vCPUs with the members and ROUTE; checks
        that every write reached the group; returns {member: count}."""
        r, st = self.run_with_stats("group.elf", "--cpu-mode", "user", "--cpus", str(cpus),
                                    *(members if members is not None else self.members()),
                                    "--route", route, *args)
        total = PHASES * GROUP_N * cpus
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertIn("group done %d\n" % total, r.out, r)
        self.assertEqual(self.route_count(st, route), total, r)
        counts = self.member_counts()
        self.assertEqual(sum(counts.values()), total, "%r\n%r" % (counts, r))
        # vmmux's statistics agree with what the members saw
        self.assertEqual({m: self.vmm_count(st, m) for m in MEMBERS}, counts)
        print("%s, %d vCPU(s): %r" % (route, cpus, counts))
        return counts

    def member_counts(self):
        """The writes to 0x90 each member has recorded so far: the lines of
        its wN.txt (vmm_worker) or wN.jsonl (monitor), counted at the member,
        not taken from vmmux's statistics."""
        counts = {}
        for m in MEMBERS:
            if os.path.exists(self.path(m + ".txt")):
                with open(self.path(m + ".txt")) as f:
                    counts[m] = sum(1 for line in f if line.startswith("w ") and
                                    line.split()[2] == "90")
            else:
                counts[m] = sum(1 for e in self.read_log(self.path(m + ".jsonl"))
                                if e["key"] == "0x90")
        return counts

    # ---- group_wait.elf, driven from the test between its phases ----------

    def start_wait(self, route, *args, members=None, api=False):
        """group_wait.elf in the background, its input a pipe; with API a
        control socket (self.sock)."""
        self.sj = self.path("stats.json")
        extra = []
        if api:
            self.sock = self.path("api.sock")
            extra = ["--api-sock", self.sock]
        b = self.start("run", "--kernel", guest("group_wait.elf"), "--cpu-mode", "user",
                       "--cpus", str(CPUS), *(members if members is not None else self.members()),
                       "--route", route, "--stats-json", self.sj, *extra, *args,
                       stdin=subprocess.PIPE)
        if api:
            wait_for_socket(self.sock, b)
        return b

    @staticmethod
    def wait_out(b, text, timeout=20):
        """Wait until the guest printed TEXT; vmmux ending first fails."""
        def seen():
            if text in b.out():
                return True
            if not b.running():
                raise AssertionError("vmmux ended before the guest printed %r\nstdout: %r\n"
                                     "stderr: %r" % (text, b.out(), b.err()))
            return False
        wait_until("the guest printing %r" % text, seen, timeout=timeout)

    @staticmethod
    def send(b, n=1):
        b.proc.stdin.write(b"g" * n)
        b.proc.stdin.flush()

    def next_phase(self, b, phase):
        """Let the guest start PHASE (2: two bytes, not holding it before)."""
        self.send(b, 2 if phase == 2 else 1)

    def finish_wait(self, b):
        r = b.finish()
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertIn("group done %d\n" % (PHASES_WAIT * GROUP_N * CPUS), r.out, r)
        with open(self.sj) as f:
            return r, json.load(f)

    def vmms(self):
        """The members as the control API's vmms shows them: state, requests
        in flight and completed, service time... (the main VMM's own
        measurements)."""
        r = run_ctl(self.sock, "--json", "vmms")
        self.assertEqual(r.status, 0, r)
        j = json.loads(r.out)
        return {v["name"]: v for v in (j["vmms"] if isinstance(j, dict) else j)
                if v["name"] in MEMBERS}

    def served(self):
        """Requests each member has completed so far, and its state."""
        v = self.vmms()
        return ({m: v[m]["requests_total"] for m in v}, {m: v[m]["state"] for m in v})

    # ---- least-loaded ------------------------------------------------------

    def test_least_loaded_slow_member_gets_little(self):
        # service time alone differs: one member sleeps 2 ms per event; it
        # gets under 10% (in fact about its probes: 1 pick in 64, taken in
        # turn by the idle members), wherever it stands in the group
        for slow in MEMBERS:
            with self.subTest(slow=slow):
                counts = self.run_group("io:0x90=group(least-loaded:w1,w2,w3)",
                                        members=self.members(**{slow: SLOW}))
                self.assertLess(counts[slow], TOTAL // 10, counts)
                # the probes: about TOTAL / 64 / 3 (21), never none
                self.assertGreater(counts[slow], 0, counts)

    def test_least_loaded_avoids_member_with_request_in_flight(self):
        # every member takes 3 ms per event, so service times match (long
        # enough for the host's noise to stay well under the factor of 2
        # that one request in flight makes); w1 is
        # stopped (SIGSTOP: it stays up and healthy) and vCPU 1 writes to
        # 0x94, routed to w1 alone: w1 then has one request in flight, and
        # (stopped) uses no CPU. vCPU 0's phase 2 must go around it: it
        # completes while w1 is still stopped. A policy that sent any of
        # vCPU 0's writes to w1 would hold vCPU 0 there as well.
        route = "io:0x90=group(least-loaded:w1,w2,w3);timeout=60s"
        b = self.start_wait(route, "--route", "io:0x94=w1;timeout=60s", api=True,
                            members=self.members(w1="delay_us=3000", w2="delay_us=3000",
                                                 w3="delay_us=3000"))
        self.wait_out(b, "group: waiting before phase 2")
        pid = self.vmms()["w1"]["pid"]
        self.assertIn(pid, child_pids(b.pid))
        os.kill(pid, signal.SIGSTOP)
        try:
            self.send(b)
            self.wait_out(b, "group: waiting again before phase 2")
            wait_until("vCPU 1's write to 0x94 in flight at w1",
                       lambda: self.vmms()["w1"]["requests_inflight"] == 1)
            before = self.vmms()
            print("before phase 2: %r" % {m: (v["requests_inflight"], v["requests_total"],
                                              v["service_time_ewma_ns"], v["cpu_permille"])
                                          for m, v in before.items()})
            self.send(b)
            self.wait_out(b, "group: vcpu 0 phase 2 done", timeout=45)
            # vCPU 1 is still held in w1: the phase cannot end
            self.assertNotIn("group: waiting before phase 3", b.out())
            after = self.vmms()
            self.assertEqual(after["w1"]["requests_total"], before["w1"]["requests_total"])
            self.assertEqual(after["w1"]["requests_inflight"], 1)
            self.assertEqual(sum(after[m]["requests_total"] - before[m]["requests_total"]
                                 for m in ("w2", "w3")), GROUP_N)
            self.assertEqual(self.vmms()["w1"]["pid"], pid, "w1 was replaced meanwhile")
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass  # killed meanwhile (its request's timeout): the test failed
        self.wait_out(b, "group: waiting before phase 3")
        self.next_phase(b, 3)
        r, st = self.finish_wait(b)
        self.assertEqual(self.route_count(st, "io:0x94=w1;timeout=60s"), 1, r)
        self.assertEqual(self.route_count(st, route), PHASES_WAIT * GROUP_N * CPUS, r)
        self.assertNotIn("did not answer", r.err, r)

    def test_least_loaded_busy_member_avoided(self):
        # CPU share alone decides: w1 is CPU-bound in its own process
        # (vmm_worker busy=1 spins whenever it has no request), w2 and w3
        # idle, and none has served an event yet, so that their service
        # times (none yet: the score's 1 us floor) and requests in flight
        # (one vCPU) are equal. The main VMM samples each parallel VMM's CPU
        # time from /proc/PID/stat; once that shows w1 busy and the others
        # idle, 0x90 is routed to the group: its first event must go to w2,
        # then w3, and w1 (first in the group, and first on a tie) must
        # get nothing before both have had one.
        members = self.members(w1="busy=1,input=/dev/zero")
        self.sj = self.path("stats.json")
        self.sock = self.path("api.sock")
        b = self.start("run", "--kernel", guest("group_wait.elf"), "--cpu-mode", "user",
                       "--cpus", "1", *members, "--vmm", "pre=sink", "--route", "io:0x90=pre",
                       "--stats-json", self.sj, "--api-sock", self.sock, stdin=subprocess.PIPE)
        wait_for_socket(self.sock, b)
        self.wait_out(b, "group: waiting before phase 2")

        def sampled():
            v = self.vmms()
            return v if (v["w1"]["cpu_permille"] >= 50 and v["w2"]["cpu_permille"] == 0 and
                         v["w3"]["cpu_permille"] == 0) else None

        v = wait_until("w1 busy and w2, w3 idle in the CPU samples", sampled, timeout=20)
        print("CPU samples: %r" % {m: (x["pid"], x["cpu_time_ns"], x["cpu_permille"])
                                   for m, x in v.items()})
        # the measurements are the members' own processes' (/proc/PID/stat)
        kids = child_pids(b.pid)
        for m in MEMBERS:
            self.assertIn(v[m]["pid"], kids, v)
            self.assertEqual(v[m]["requests_total"], 0, v)
        self.assertGreater(v["w1"]["cpu_time_ns"], 0, v)
        self.assertGreaterEqual(proc_cpu_ns(v["w1"]["pid"]), v["w1"]["cpu_time_ns"], v)
        self.assertEqual(self.member_counts(), {"w1": 0, "w2": 0, "w3": 0})
        r = run_ctl(self.sock, "routes", "replace", "io:0x90=group(least-loaded:w1,w2,w3)")
        self.assertEqual(r.status, 0, r)
        self.next_phase(b, 2)
        self.wait_out(b, "group: waiting before phase 3")
        self.next_phase(b, 3)
        r = b.finish()
        self.assertStatus(r, 1)
        self.assertIn("group done %d\n" % (PHASES_WAIT * GROUP_N), r.out, r)
        # the group's events in the order the members began to handle them
        # (one vCPU: one at a time)
        order = []
        for m in MEMBERS:
            with open(self.path(m + ".txt")) as f:
                order += [(int(line.split()[4]), m) for line in f if line.startswith("w ")]
        order = [m for _, m in sorted(order)]
        self.assertEqual(len(order), (PHASES_WAIT - 1) * GROUP_N)
        first_w1 = order.index("w1") if "w1" in order else len(order)
        self.assertEqual(order[:2], ["w2", "w3"], order[:10])
        self.assertGreaterEqual(first_w1, 2, order[:10])

    # ---- round-robin, weighted, sticky ---------------------------------------

    def test_round_robin_exactly_even(self):
        # every pick takes the route's next position, whatever the vCPU: the
        # counts differ by at most 1 in all (4000 = 1334 + 1333 + 1333),
        # the slow member included (round-robin ignores load)
        for extra in ({}, {"w3": "delay_us=1000"}):
            with self.subTest(slow=extra):
                counts = self.run_group("io:0x90=group(round-robin:w1,w2,w3)",
                                        members=self.members(**extra))
                self.assertEqual(sorted(counts.values()), [1333, 1333, 1334], counts)

    def test_weighted_proportions(self):
        # weights 5:2:1, a period of 8: exact with one vCPU (2000 writes) and,
        # since every pick claims its own turn, with two (4000)
        route = "io:0x90=group(weighted:w1*5,w2*2,w3)"
        for cpus in (1, 2):
            with self.subTest(cpus=cpus):
                counts = self.run_group(route, cpus=cpus)
                n = PHASES * GROUP_N * cpus // 8
                self.assertEqual(counts, {"w1": 5 * n, "w2": 2 * n, "w3": n})

    def test_sticky_keeps_each_vcpu_on_its_member(self):
        # vCPU i on member i mod 3: the monitors log each event's vCPU
        counts = self.run_group("io:0x90=group(sticky:w1,w2,w3)",
                                members=self.members(role="monitor"))
        per = PHASES * GROUP_N
        self.assertEqual(counts, {"w1": per, "w2": per, "w3": 0})
        for m, vcpu in (("w1", 0), ("w2", 1)):
            self.assertEqual({e["vcpu"] for e in self.read_log(self.path(m + ".jsonl"))},
                             {vcpu}, m)
        self.assertEqual(self.read_log(self.path("w3.jsonl")), [])

    def test_sticky_moves_only_while_its_member_is_stopped(self):
        # w1 (vCPU 0's) stopped for phase 2: vCPU 0 goes to the next member,
        # w2, and vCPU 1 stays there; w1 started again: vCPU 0 is back
        b = self.start_wait("io:0x90=group(sticky:w1,w2,w3)",
                            members=self.members(role="monitor"), api=True)
        logs = {m: self.path(m + ".jsonl") for m in MEMBERS}

        def vcpus(m, start):
            return [e["vcpu"] for e in self.read_log(logs[m])[start:]]

        self.wait_out(b, "group: waiting before phase 2")
        self.assertEqual(self.member_counts(), {"w1": GROUP_N, "w2": GROUP_N, "w3": 0})
        self.assertEqual(run_ctl(self.sock, "vmm", "stop", "w1").status, 0)
        self.next_phase(b, 2)
        self.wait_out(b, "group: waiting before phase 3")
        self.assertEqual(self.member_counts(), {"w1": GROUP_N, "w2": 3 * GROUP_N, "w3": 0})
        self.assertEqual(sorted(vcpus("w2", GROUP_N)), [0] * GROUP_N + [1] * GROUP_N)
        self.assertEqual(run_ctl(self.sock, "vmm", "start", "w1").status, 0)
        wait_until("w1 up again", lambda: self.served()[1]["w1"] == "up")
        self.next_phase(b, 3)
        r, st = self.finish_wait(b)
        self.assertEqual(vcpus("w1", 0), [0] * (2 * GROUP_N))
        self.assertEqual(vcpus("w2", 3 * GROUP_N), [1] * GROUP_N)
        self.assertEqual(self.read_log(logs["w3"]), [])

    # ---- members that stop or fail ----------------------------------------

    def test_stopped_member_skipped_then_back(self):
        # round-robin, w2 stopped through the control API for phase 2 (no
        # event reaches it: w1 and w3 share the phase), started for phase 3
        # (its third again)
        b = self.start_wait("io:0x90=group(round-robin:w1,w2,w3)", api=True)
        self.wait_out(b, "group: waiting before phase 2")
        c1 = self.member_counts()
        self.assertEqual(sorted(c1.values()), [666, 667, 667], c1)
        r = run_ctl(self.sock, "vmm", "stop", "w2")
        self.assertEqual(r.status, 0, r)
        self.assertEqual(self.served()[1]["w2"], "stopped")
        self.next_phase(b, 2)
        self.wait_out(b, "group: waiting before phase 3")
        c2 = self.member_counts()
        self.assertEqual(c2["w2"], c1["w2"], "a stopped member got events: %r %r" % (c1, c2))
        got = {m: c2[m] - c1[m] for m in ("w1", "w3")}
        self.assertEqual(sum(got.values()), GROUP_N * CPUS, got)
        # two vCPUs skipping w2's turns at once may both land on the same
        # member now and then: close to even, not exact
        self.assertLess(abs(got["w1"] - got["w3"]), GROUP_N // 10, got)
        r = run_ctl(self.sock, "vmm", "start", "w2")
        self.assertEqual(r.status, 0, r)
        wait_until("w2 up again", lambda: self.served()[1]["w2"] == "up")
        self.next_phase(b, 3)
        r, st = self.finish_wait(b)
        phase3 = self.member_counts()["w2"] - c2["w2"]
        self.assertIn(phase3, (666, 667), r)

    def test_failed_member_skipped(self):
        # round-robin, w2 killed after phase 1; with type:fault routed to a
        # monitor, a failed VMM is not restarted: it gets nothing after,
        # and the two others take every event of phases 2 and 3
        mon = ["--vmm", "mon=monitor,output=" + self.path("faults.jsonl"),
               "--route", "type:fault=mon"]
        b = self.start_wait("io:0x90=group(round-robin:w1,w2,w3)", *mon, api=True)
        self.wait_out(b, "group: waiting before phase 2")
        pid = self.vmms()["w2"]["pid"]
        self.assertIn(pid, child_pids(b.pid))
        os.kill(pid, signal.SIGKILL)
        wait_until("the fault of w2 reported",
                   lambda: any(e.get("type") == "fault"
                               for e in self.read_log(self.path("faults.jsonl"))))
        self.next_phase(b, 2)
        self.wait_out(b, "group: waiting before phase 3")
        self.next_phase(b, 3)
        r, st = self.finish_wait(b)
        counts = self.member_counts()
        # phase 1: positions 0..1999 in turn, w2 has those = 1 mod 3
        self.assertEqual(counts["w2"], 667, counts)
        self.assertEqual(sum(counts.values()), PHASES_WAIT * GROUP_N * CPUS, counts)
        self.assertGreater(min(counts["w1"], counts["w3"]), 2 * GROUP_N, counts)
