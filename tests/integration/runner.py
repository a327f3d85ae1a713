"""Run one integration test module: python3 runner.py MODULE.

Exit 0 when every test passed; 1 when a test failed, errored, or skipped for
a reason that is not a host limit; 77 (meson's skip) only when /dev/kvm is
missing and VMMUX_ALLOW_NO_KVM=1.
"""
import importlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class TimedResult(unittest.TextTestResult):
    """Records each test's wall time: the slowest are printed at the end,
    for keeping the suite within its time budget (scripts/check.sh)."""

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self.durations.append((time.monotonic() - self._t0, test.id()))

    durations = None


def main():
    if len(sys.argv) != 2:
        print("usage: runner.py MODULE", file=sys.stderr)
        return 2
    if not os.path.exists("/dev/kvm"):
        print("*** vmmux: /dev/kvm is missing: KVM integration test %s cannot run ***"
              % sys.argv[1], file=sys.stderr)
        return 77 if os.environ.get("VMMUX_ALLOW_NO_KVM") == "1" else 1
    module = importlib.import_module(sys.argv[1])
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    TimedResult.durations = []
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout,
                                     resultclass=TimedResult).run(suite)
    slow = sorted(result.durations, reverse=True)[:5]
    print("slowest: " + ", ".join("%s %.1f s" % (t.rsplit(".", 2)[-2] + "." + t.rsplit(".", 1)[-1], d)
                                  for d, t in slow))
    bad_skips = [(t, why) for t, why in result.skipped
                 if not why.startswith(harness.HOST_LIMIT_PREFIX)]
    for t, why in bad_skips:
        print("FAIL: %s skipped for a reason that is not a host limit: %s" % (t.id(), why))
    if not result.wasSuccessful() or bad_skips:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
