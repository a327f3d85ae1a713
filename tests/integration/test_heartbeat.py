"""The heartbeat of parallel VMMs (docs/parallel-vmm.md, "What happens to the
requests"): a VMM that receives only doorbell rings (writes that KVM signals
on an eventfd, with no exit and no deadline) and stops taking them is found
hung after its timeout, killed as timed out and replaced; its successor takes
the rings that waited. A VMM that keeps taking them is left alone.

The guest (compiled_loop.elf, at CPL3) rings the doorbell on port 0x510 and
writes a coalesced port on every round, until a read of port 0x92 gives
non-zero: the test ends it by moving that port's route to a sink that
answers 1."""
import os
import re
import signal
import time

from harness import (VMM_INHERITED_FILTERS, ApiClient, VmmuxTest, exit_device_status, guest, proc_cmdline, proc_status,
                     start_vmmux, vmm_pids, wait_for_socket, wait_until)

TIMEOUT_MS = 1000  # the doorbell VMM's timeout
HUNG = ("vmm 'db': parallel VMM took none of its waiting posted writes or doorbell rings "
        "for %d ms; killed" % TIMEOUT_MS)


def serving(pid):
    """True when parallel VMM PID has finished its set-up (the library's
    stage-2 seccomp filter is installed: filters stack: 2 on those it inherits)."""
    try:
        return proc_status(pid).get("Seccomp_filters") == str(2 + VMM_INHERITED_FILTERS)
    except OSError:
        return False


class Heartbeat(VmmuxTest):

    def start_loop(self):
        """vmmux running compiled_loop.elf with its doorbell routed to the
        parallel monitor 'db'; the API socket's path and the monitor's log."""
        api_path = self.path("api.sock")
        log = self.path("db.jsonl")
        vm = start_vmmux(
            self.tmp, "run", "--kernel", guest("compiled_loop.elf"), "--cpu-mode", "user",
            "--api-sock", api_path, "--watchdog", "120s", "--log-level", "info",
            "--stats-json", self.path("stats.json"),
            "--vmm", "db=monitor,placement=parallel,timeout=%dms,output=%s" % (TIMEOUT_MS, log),
            "--vmm", "co=sink", "--vmm", "stop0=sink", "--vmm", "stop1=sink,read=1",
            "--route", "io:0x520-0x527=co;coalesced", "--route", "io:0x510=db;doorbell",
            "--route", "io:0x92=stop0")
        wait_for_socket(api_path, vm)
        return vm, api_path, log

    def db_pid(self, vm, old=None):
        """The pid of db's process once it serves, not OLD."""
        def find():
            pid = vmm_pids(vm.pid).get("db")
            return pid if pid and pid != old and serving(pid) else None
        return wait_until("db serving", find, timeout=20)

    def rings(self, log):
        return [e for e in self.read_log(log) if e["key"] == "0x510"]

    def finish(self, vm, api_path):
        api = ApiClient(api_path)
        api.call("routes.replace", {"spec": "io:0x92=stop1"})
        api.close()
        r = vm.finish(timeout=120)
        self.assertNoCrash(r)
        self.assertStatus(r, exit_device_status(0))
        self.assertTrue(r.out.startswith("compiled loop "), r)
        return r, int(r.out.split()[2])

    def test_stopped_doorbell_vmm_is_replaced(self):
        vm, api_path, log = self.start_loop()
        try:
            pid = self.db_pid(vm)
            wait_until("rings at db", lambda: len(self.rings(log)) > 100, timeout=30)
            os.kill(pid, signal.SIGSTOP)
            # nothing but the heartbeat can find it: the guest makes no exit
            # for the doorbell, so no request of it waits on a deadline
            wait_until("the stopped VMM killed", lambda: proc_cmdline(pid) == [], timeout=30)
            self.db_pid(vm, old=pid)
            before = len(self.rings(log))
            wait_until("rings at db's successor", lambda: len(self.rings(log)) > before + 100,
                       timeout=30)
            r, rounds = self.finish(vm, api_path)
        finally:
            vm.kill()
        self.assertEqual(r.err.count(HUNG), 1, r)
        # the fault event of a timeout (VMMUX_FAULT_TIMEOUT), then the restart
        self.assertEqual(len(re.findall(r"fault of VMM .db.: did not answer in time \(reason 2\): restarting it", r.err)),
                         1, r)
        self.assertEqual(r.err.count("vmm 'db': parallel VMM started as pid"), 2, r)
        # the rings that waited in the eventfd reached the successor: at most
        # those the stopped process had read and not handled are missing
        self.assertLessEqual(len(self.rings(log)), rounds)

    def test_serving_doorbell_vmm_is_left_alone(self):
        vm, api_path, log = self.start_loop()
        try:
            self.db_pid(vm)
            wait_until("rings at db", lambda: len(self.rings(log)) > 100, timeout=30)
            # several timeouts' worth of rings, taken as they come
            time.sleep(4 * TIMEOUT_MS / 1000)
            r, rounds = self.finish(vm, api_path)
        finally:
            vm.kill()
        self.assertNotIn("took none of its waiting", r.err)
        self.assertEqual(r.err.count("vmm 'db': parallel VMM started as pid"), 1, r)
        self.assertGreater(len(self.rings(log)), 1000)
