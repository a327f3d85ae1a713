"""Supervision of parallel VMMs, seen from the guest: a VMM process killed at
any moment is restarted and the requests it left pending are re-delivered,
so the guest loses no byte and sees a repeated one only where vmmux says a
side effect may repeat; a stopped VMM is killed once its timeout passes and
replaced; its role's state carries over to the restarted instance; and while
a VMM is down, the events of a route with a fallback go to the fallback.

The kills and stalls come from outside (SIGKILL, SIGSTOP on the VMM process)
at pseudo-random moments; the seed is printed, and VMMUX_TEST_SEED=N repeats
a run's moments."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

from harness import (VMM_INHERITED_FILTERS, SRC, VmmuxTest, exit_device_status, guest, proc_cmdline, proc_status,
                     vmm_pids, vmm_program, wait_until)

# seq.elf prints "seq 00000\n" .. "seq NNNNN\n"; its count is a constant of
# its source.
with open(os.path.join(SRC, "guest", "tests", "seq.c")) as _f:
    SEQ_COUNT = int(re.search(r"#define SEQ_COUNT (\d+)", _f.read()).group(1))
SEQ_TEXT = b"".join(b"seq %05d\n" % i for i in range(SEQ_COUNT))

# SIGKILLs of the UART's VMM in the kill test, each a restart (fewer in the
# ThreadSanitizer run of scripts/check.sh, ten times slower: VMMUX_TEST_KILLS)
KILLS = int(os.environ.get("VMMUX_TEST_KILLS", "100"))
KILLS_PER_RUN = 5     # at most, in one run (their restarts' backoff adds up to 150 ms)
STALLS = 3            # SIGSTOPs of the UART's VMM in one run
STALL_TIMEOUT = 0.3   # the UART VMM's timeout in the stall test (s)
RUN_TIMEOUT = 60      # any one vmmux run (s)
FAULT_CRASH, FAULT_TIMEOUT = 1, 2  # enum vmmux_fault_reason

REDELIVERED_RE = re.compile(r"vmm 'uart': restarted; (\d+) pending request\(s\) re-delivered "
                            r"\((\d+) may repeat a side effect\)")

SEED = int(os.environ.get("VMMUX_TEST_SEED", str(random.SystemRandom().randrange(1 << 32))))


def seeded(test):
    """A random generator for TEST, from the module's seed (printed)."""
    print("\n%s: seed %d (VMMUX_TEST_SEED=%d repeats it)" % (test, SEED, SEED), file=sys.stderr)
    return random.Random("%d:%s" % (SEED, test))


def serving(pid):
    """True when parallel VMM PID has finished its set-up: the VMM library
    installs the stage-2 seccomp filter then (filters stack: 2 on those it inherits)."""
    try:
        return proc_status(pid).get("Seccomp_filters") == str(2 + VMM_INHERITED_FILTERS)
    except OSError:
        return False


def confinement(pid):
    """What confines process PID: uid and gid less its pid (each VMM
    process has its own, 0x70000000 + its pid), effective capabilities,
    no_new_privs, seccomp mode, seccomp filters."""
    st = proc_status(pid)
    return (int(st["Uid"].split()[0]) - pid, int(st["Gid"].split()[0]) - pid, st["CapEff"],
            st["NoNewPrivs"], st["Seccomp"], st["Seccomp_filters"])


def repeats(out, expected):
    """OUT must be EXPECTED with some of its bytes repeated right after
    themselves (a byte the guest wrote once, that the restarted VMM wrote
    again). Returns the positions in OUT of the repeated copies; raises
    AssertionError at the first byte that is neither the expected one nor a
    repeat of the one before."""
    extra = []
    i = j = 0
    while i < len(out):
        if j < len(expected) and out[i] == expected[j]:
            j += 1
        elif j > 0 and out[i] == expected[j - 1]:
            extra.append(i)
        else:
            raise AssertionError("output byte %d is %r where %r was expected (or a repeat "
                                 "of %r); around it: %r" % (
                                     i, out[i:i + 1], expected[j:j + 1], expected[j - 1:j],
                                     out[max(0, i - 30):i + 30]))
        i += 1
    if j != len(expected):
        raise AssertionError("output ends after %d of the %d expected bytes: %r" % (
            j, len(expected), out[-60:]))
    return extra


class Supervision(VmmuxTest):

    def uart(self, *opts, out="seq.out"):
        """A --vmm option for the UART as a parallel VMM writing to file OUT."""
        opt = "uart=uart16550,placement=parallel,output=%s" % self.path(out)
        for o in opts:
            opt += "," + o
        return ["--vmm", opt]

    def read(self, name):
        """The contents of file NAME in the test directory (b"" before vmmux
        created it)."""
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def uart_pid(self, b, old=None):
        """The pid of the UART's VMM process once it serves, not OLD; None
        when vmmux ended."""
        def find():
            if not b.running():
                return -1
            pid = vmm_pids(b.pid).get("uart")
            return pid if pid and pid != old and serving(pid) else None
        pid = wait_until("the UART's VMM serving", find, timeout=10)
        return None if pid == -1 else pid

    @staticmethod
    def uart_stats(stats):
        for v in stats["vmms"]:
            if v["name"] == "uart":
                return v
        raise AssertionError("no statistics of the uart VMM: %r" % stats["vmms"])

    def check_seq_run(self, r, out_name, restarts, killed_how, stats_name):
        """A seq.elf run whose UART VMM was replaced RESTARTS times: its exit,
        vmmux's account of each replacement, and the exact output. Returns
        the number of repeated bytes."""
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.err.count("vmm 'uart': parallel VMM %s" % killed_how), restarts, r)
        failures = [x for x in r.err.splitlines()
                    if "vmm 'uart': parallel VMM " in x and "parallel VMM started" not in x]
        self.assertEqual(len(failures), restarts, r)
        # every replacement re-delivers what was pending; M of them may repeat
        # a side effect (a THR write that reached the output already)
        logged = [(int(p), int(m)) for p, m in REDELIVERED_RE.findall(r.err)]
        may_repeat = sum(m for _, m in logged)
        with open(self.path(stats_name)) as f:
            st = self.uart_stats(json.load(f))
        self.assertEqual((st["restarts"], st["redelivered"], st["maybe_duplicated"]),
                         (restarts, sum(p for p, _ in logged), may_repeat), r)
        extra = repeats(self.read(out_name), SEQ_TEXT)
        self.assertLessEqual(len(extra), may_repeat,
                             "%d repeated bytes at %r, vmmux logged %d that may repeat\n%r" % (
                                 len(extra), extra, may_repeat, r))
        return len(extra)

    def test_killed_uart_loses_nothing(self):
        # A VMM is given up after 20 restarts within a minute, and its
        # restarts back off (10 ms doubling to 1 s): the kills are spread over
        # runs of at most KILLS_PER_RUN each, until KILLS restarts. Each kill
        # waits for the restarted process to serve before the next.
        rng = seeded("test_killed_uart_loses_nothing")
        kills = repeated = runs = 0
        while kills < KILLS:
            runs += 1
            self.assertLessEqual(runs, 3 * KILLS // KILLS_PER_RUN, "most runs ended before "
                                 "their kills: %d restarts in %d runs" % (kills, runs - 1))
            out, sj = "seq-%d.out" % runs, "stats-%d.json" % runs
            b = self.start("run", "--kernel", guest("seq.elf"), *self.uart(out=out),
                           "--log-level", "info", "--watchdog", "%ds" % RUN_TIMEOUT,
                           "--stats-json", self.path(sj))
            pid = self.uart_pid(b)
            first = confinement(pid)
            self.assertNotEqual(first[0], "0")
            sent = 0
            while pid is not None and sent < min(KILLS_PER_RUN, KILLS - kills):
                time.sleep(rng.uniform(0, 0.02))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    break  # the run ended and vmmux reaped it
                sent += 1
                pid = self.uart_pid(b, old=pid)
                if pid is not None:  # a restarted process is confined as the first
                    self.assertEqual(confinement(pid), first)
            r = b.finish(RUN_TIMEOUT)
            with open(self.path(sj)) as f:
                restarts = self.uart_stats(json.load(f))["restarts"]
            # only a kill that landed as the run ended is not a restart (vmmux
            # neither logs nor replaces a VMM that dies while it stops)
            self.assertIn(sent - restarts, (0, 1) if pid is None else (0,),
                          "%d kills, %d restarts\n%r" % (sent, restarts, r))
            repeated += self.check_seq_run(r, out, restarts, "died of signal Killed", sj)
            kills += restarts
        print("%d kills in %d runs, %d bytes repeated" % (kills, runs, repeated),
              file=sys.stderr)

    def test_stopped_uart_times_out(self):
        rng = seeded("test_stopped_uart_times_out")
        b = self.start("run", "--kernel", guest("seq.elf"),
                       *self.uart("timeout=%dms" % (STALL_TIMEOUT * 1000)),
                       "--log-level", "info", "--watchdog", "%ds" % RUN_TIMEOUT,
                       "--stats-json", self.path("stats.json"))
        pid = self.uart_pid(b)
        costs = []
        for _ in range(STALLS):
            self.assertIsNotNone(pid, "the guest ended before the stalls")
            time.sleep(rng.uniform(0, 0.02))
            t0 = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            stopped, pid = pid, self.uart_pid(b, old=pid)
            costs.append(time.monotonic() - t0)
            self.assertEqual(proc_cmdline(stopped), [], "the stopped VMM was not killed")
        r = b.finish(RUN_TIMEOUT)
        for c in costs:
            self.assertGreaterEqual(c, STALL_TIMEOUT, costs)
            self.assertLess(c, STALL_TIMEOUT + 3.0, costs)  # not much later (ASan, TSan, load)
        self.check_seq_run(r, "seq.out", STALLS,
                           "did not answer within %d ms; killed" % (STALL_TIMEOUT * 1000),
                           "stats.json")
        self.assertEqual(len(re.findall(r"fault of VMM 'uart': did not answer in time \(reason %d\): restarting it" %
                                        FAULT_TIMEOUT, r.err)), STALLS, r)

    def test_state_carried_over(self):
        rng = seeded("test_state_carried_over")
        b = self.start("run", "--kernel", guest("uartstate.elf"),
                       *self.uart("input=stdin", out="state.out"),
                       "--log-level", "info", "--watchdog", "%ds" % RUN_TIMEOUT,
                       stdin=subprocess.PIPE)
        wait_until("the guest's ready", lambda: self.read("state.out") == b"ready\n" or
                   not b.running())
        pid = self.uart_pid(b)
        for _ in range(3):
            self.assertIsNotNone(pid)
            time.sleep(rng.uniform(0, 0.02))
            os.kill(pid, signal.SIGKILL)
            pid = self.uart_pid(b, old=pid)
        # the guest is still polling: nothing printed since "ready"
        self.assertEqual(self.read("state.out"), b"ready\n")
        b.proc.stdin.write(b"g")
        b.proc.stdin.flush()
        r = b.finish(RUN_TIMEOUT)
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.err.count("vmm 'uart': parallel VMM died of signal Killed"), 3, r)
        self.assertEqual(self.read("state.out"),
                         b"ready\n"
                         b"input 67 scr-misreads 0\n"
                         b"lcr 1b ier 0c mcr 0b scr a5 iir c1 dll 34 dlm 12\n")

    def test_fallback_while_down(self):
        # sc dies of SIGSYS during its second event. type:fault goes to a
        # monitor instead of the main VMM, whose default would restart it: sc
        # stays down, and the rest of io.elf's port 0x80-0x81 events go to the
        # route's fallback, mon2, the one in flight included.
        fmon, flog = self.monitor("fmon", placement="main")
        mon2, log2 = self.monitor("mon2", read="0x77")
        sj = self.path("stats.json")
        r = self.run_guest("io.elf", *fmon, *mon2, "--log-level", "info", "--stats-json", sj,
                           "--vmm", "sc=external,program=%s" % vmm_program("vmm_syscall"),
                           "--route", "io:0x80-0x81=sc;fallback=mon2",
                           "--route", "type:fault=fmon")
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.out, "in 0x80: 77 77 77\n"
                                "insb 0x81: %s\n" % " ".join(["77"] * 8))
        prefix = "vmmux: warn: vmm 'sc': "
        sc = [x[len(prefix):] for x in r.err.splitlines() if x.startswith(prefix)]
        self.assertEqual(sc, ["event 1: io write port 0x80 size 1 value 0x12",
                              "event 2: io write port 0x80 size 2 value 0x1234",
                              "calling socket()",
                              "parallel VMM died of signal Bad system call"], r)
        self.assertNotIn("restart", r.err)
        with open(sj) as f:
            st = json.load(f)
        # one fault event: key sc's id, value VMMUX_FAULT_CRASH
        self.assertEqual([(e["type"], e["key"], e["value"], e["src"])
                          for e in self.read_log(flog)],
                         [("fault", self.config_id("sc", ["fmon", "mon2", "sc"]),
                           hex(FAULT_CRASH), "host")])
        got = [(e["key"], e["write"], e["size"], e["count"], e.get("value"), e.get("reply"),
                e.get("data")) for e in self.read_log(log2)]
        outs = [g for g in got if g[0] == "0x81" and g[1]]
        self.assertEqual(got[:5], [("0x80", True, 2, 1, "0x1234", None, None),
                                   ("0x80", True, 4, 1, "0x12345678", None, None),
                                   ("0x80", False, 1, 1, "0x0", "0x77", None),
                                   ("0x80", False, 2, 1, "0x0", "0x77", None),
                                   ("0x80", False, 4, 1, "0x0", "0x77", None)])
        self.assertEqual(got[5:], outs + [("0x81", False, 1, 8, "0x0", "0x77", "77" * 8)])
        self.assertEqual(b"".join(int(g[4], 16).to_bytes(1, "little") if g[6] is None else
                                  bytes.fromhex(g[6]) for g in outs), b"0123456789abcdef")
