#!/usr/bin/env python3
"""make mutate: break the code on purpose, one mutation at a time, and check
that the tests named for it catch it.

The mutations are listed in tests/mutations.txt (its header gives the
format): each names a file, a piece of text that must occur exactly once in
it, the text that replaces it, the claim or behaviour it breaks and the
tests expected to catch it. For each mutation, in a scratch copy of the
tree (BUILD_MUTATE/tree, default build-mutate/, with its own Meson build
directory BUILD_MUTATE/build reused across mutations and runs, so that each
build is incremental):

  1. the mutation is applied to the copy (the source tree is never touched);
  2. the copy is built (ninja; warnings are not errors there, a mutation
     may leave a variable unused);
  3. the named tests run, each with a timeout: unit:AREA/NAME runs the
     cmocka program tests/unit/AREA/test_NAME... as built, kvm:MODULE.Class.test
     and kvm-parallel:MODULE.Class.test one integration test (the second as
     suite kvm-parallel runs it: parallel VMMs, --spin 0s);
  4. the file is restored.

Every mutation must be named in docs/claims.md (a "- Mutations:" item of the
claim it breaks), and every name there must be a mutation of the list.

A mutation is caught when at least one of its tests fails (or times out)
twice in a row (a test that fails once and then passes does not count),
survived when all pass, stale when its text is not found exactly once (the
code moved: update the entry), and unbuilt when the mutated copy does not
build. Before the mutations, every named test runs once on the unmutated
copy (the baseline; --no-baseline skips it): a test that fails there three
times in a row would catch everything and show nothing, so the run stops (one
that fails and then passes is reported as flaky).

Prints one line per mutation, then a table per area and the running time.
Exits 0 only when every mutation was caught.

Usage: scripts/mutate.py [--list FILE] [--scratch DIR] [--only ID|AREA ...]
                         [--no-baseline] [--timeout S]
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("area", "file", "find", "replace", "breaks", "tests")
UNIT_TIMEOUT = 180
KVM_TIMEOUT = 300


class Mutation:
    def __init__(self, mid, lineno):
        self.id, self.lineno = mid, lineno
        self.area = self.file = self.find = self.replace = self.breaks = None
        self.tests = []


def unescape(s):
    """A field's text: \\n a newline, \\t a tab, \\\\ a backslash; nothing
    else is special (C's own escapes stay as they are)."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_list(path):
    """The mutations of PATH; a malformed entry is an error naming its line."""
    muts, cur, ids = [], None, set()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                cur = Mutation(line[1:-1].strip(), n)
                if not cur.id or cur.id in ids:
                    sys.exit("%s:%d: empty or repeated mutation id %r" % (path, n, cur.id))
                ids.add(cur.id)
                muts.append(cur)
                continue
            if cur is None or ":" not in line:
                sys.exit("%s:%d: expected [id] or 'field: value'" % (path, n))
            key, val = line.split(":", 1)
            key, val = key.strip(), val[1:] if val.startswith(" ") else val
            if key not in FIELDS:
                sys.exit("%s:%d: unknown field %r (fields: %s)" % (path, n, key, ", ".join(FIELDS)))
            if key == "tests":
                cur.tests += val.split()
            elif getattr(cur, key) is not None:
                sys.exit("%s:%d: field %r given twice in [%s]" % (path, n, key, cur.id))
            else:
                setattr(cur, key, unescape(val) if key in ("find", "replace") else val.strip())
    for m in muts:
        missing = [k for k in FIELDS if k != "tests" and getattr(m, k) is None]
        if missing or not m.tests:
            sys.exit("%s:%d: [%s] lacks %s" % (path, m.lineno, m.id,
                                                ", ".join(missing + ([] if m.tests else ["tests"]))))
        if m.find == m.replace:
            sys.exit("%s:%d: [%s] replaces its text with itself" % (path, m.lineno, m.id))
        for t in m.tests:
            kind = t.split(":", 1)[0]
            if kind not in ("unit", "kvm", "kvm-parallel") or ":" not in t:
                sys.exit("%s:%d: [%s] test %r: expected unit:AREA/test_NAME, "
                         "kvm:MODULE.Class.test or kvm-parallel:MODULE.Class.test"
                         % (path, m.lineno, m.id, t))
    return muts


def check_claims(muts, path):
    """Problems between the mutations and docs/claims.md: every mutation is
    named in some section's "Mutations:" item, and every name there is a
    mutation of the list."""
    import re
    with open(path) as f:
        text = f.read()
    named = set()
    for item in re.findall(r"^- Mutations:(.*?)(?=^\S|^- |\Z)", text, re.M | re.S):
        named.update(re.findall(r"`([a-z0-9-]+)`", item))
    ids = {m.id for m in muts}
    return (["mutation %s is named in no claim's Mutations in %s" % (i, os.path.relpath(path, ROOT))
             for i in sorted(ids - named)] +
            ["%s names %s, which is not in the list" % (os.path.relpath(path, ROOT), i)
             for i in sorted(named - ids)])


def sync_tree(tree):
    """Copy the source tree's files (tracked, and untracked ones git does
    not ignore) into TREE, only those whose content differs, so that the
    scratch build stays incremental."""
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "-co", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    copied = 0
    for rel in filter(None, files):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue  # deleted in the working tree
        dst = os.path.join(tree, rel)
        with open(src, "rb") as f:
            data = f.read()
        try:
            with open(dst, "rb") as f:
                same = f.read() == data
        except OSError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
            copied += 1
    return copied


def build(tree, bdir, log):
    if not os.path.exists(os.path.join(bdir, "build.ninja")):
        r = subprocess.run(["meson", "setup", bdir, tree, "--buildtype=debugoptimized",
                            "-Dwerror=false"], stdout=log, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            return False
    r = subprocess.run(["ninja", "-C", bdir], stdout=log, stderr=subprocess.STDOUT)
    return r.returncode == 0


def test_env(tree, bdir, parallel):
    e = dict(os.environ)
    e.update({"VMMUX": os.path.join(bdir, "vmmux"), "VMMUX_GUEST_DIR": os.path.join(bdir, "guest"),
              "VMMUX_SRC": tree, "VMMUX_TEST_VMM_DIR": os.path.join(bdir, "tests", "vmms"),
              "PYTHONDONTWRITEBYTECODE": "1"})
    e.pop("VMMUX_TEST_PARALLEL", None)
    e.pop("VMMUX_TEST_SPIN", None)
    e.pop("VMMUX_SKIP_LOG", None)
    if parallel:
        e.update({"VMMUX_TEST_PARALLEL": "1", "VMMUX_TEST_SPIN": "0s"})
    return e


def run_test(test, tree, bdir, timeout, log):
    """'pass', 'fail' or 'timeout'."""
    kind, name = test.split(":", 1)
    if kind == "unit":
        area, prog = name.split("/", 1)
        cmd = [os.path.join(bdir, "tests", "unit", area, prog)]
        cwd, env = bdir, dict(os.environ)
        limit = min(timeout, UNIT_TIMEOUT) if timeout else UNIT_TIMEOUT
    else:
        cmd = [sys.executable, "-m", "unittest", name]
        cwd = os.path.join(tree, "tests", "integration")
        env = test_env(tree, bdir, kind == "kvm-parallel")
        limit = min(timeout, KVM_TIMEOUT) if timeout else KVM_TIMEOUT
    log.write(("\n--- %s\n" % test).encode())
    log.flush()
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=limit)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "pass" if r.returncode == 0 else "fail"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", default=os.path.join(ROOT, "tests", "mutations.txt"))
    ap.add_argument("--scratch", default=os.environ.get("BUILD_MUTATE",
                                                       os.path.join(ROOT, "build-mutate")))
    ap.add_argument("--only", nargs="*", default=[],
                    help="mutation ids or areas (an area's spaces may be written as -)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--timeout", type=int, default=0, help="per test, in seconds")
    a = ap.parse_args()
    t_start = time.monotonic()
    muts = parse_list(a.list)
    problems = check_claims(muts, os.path.join(ROOT, "docs", "claims.md"))
    if problems:
        sys.exit("mutate: " + "\nmutate: ".join(problems))
    if a.only:
        muts = [m for m in muts if m.id in a.only or m.area in a.only or
                m.area.replace(" ", "-") in a.only]
        if not muts:
            sys.exit("mutate: no mutation matches %s" % " ".join(a.only))
    scratch = os.path.abspath(a.scratch)
    tree, bdir = os.path.join(scratch, "tree"), os.path.join(scratch, "build")
    os.makedirs(tree, exist_ok=True)
    logpath = os.path.join(scratch, "mutate.log")
    log = open(logpath, "wb")
    print("mutate: %d mutation(s) from %s; scratch copy %s; log %s" % (
        len(muts), os.path.relpath(a.list, ROOT), scratch, logpath), flush=True)
    print("mutate: %d file(s) copied into the scratch tree" % sync_tree(tree), flush=True)
    if not build(tree, bdir, log):
        sys.exit("mutate: the unmutated scratch copy does not build (see %s)" % logpath)

    if not a.no_baseline:
        tests = sorted({t for m in muts for t in m.tests})
        bad = []
        for t in tests:
            v = run_test(t, tree, bdir, a.timeout, log)
            if v != "pass":
                # a test that fails now and then (a timing assertion under
                # load) is reported, and its failures below are confirmed
                again = [run_test(t, tree, bdir, a.timeout, log) for _ in range(2)]
                if "pass" in again:
                    print("mutate: baseline: %s failed (%s) once, then passed: flaky" % (t, v),
                          flush=True)
                else:
                    bad.append("%s (%s)" % (t, v))
        print("mutate: baseline: %d test(s) on the unmutated copy, %d failed" % (
            len(tests), len(bad)), flush=True)
        if bad:
            for b in bad:
                print("  fails without a mutation: " + b)
            sys.exit("mutate: the baseline fails: these tests cannot show anything (see %s)"
                     % logpath)

    results = []
    for m in muts:
        t0 = time.monotonic()
        path = os.path.join(tree, m.file)
        verdict, detail = None, ""
        try:
            with open(path) as f:
                original = f.read()
        except OSError as e:
            verdict, detail = "stale", "file %s: %s" % (m.file, e.strerror)
        if verdict is None:
            n = original.count(m.find)
            if n != 1:
                verdict = "stale"
                detail = "its text occurs %d times in %s (not once)" % (n, m.file)
        if verdict is None:
            log.write(("\n===== [%s] %s\n" % (m.id, m.file)).encode())
            with open(path, "w") as f:
                f.write(original.replace(m.find, m.replace))
            try:
                if not build(tree, bdir, log):
                    verdict, detail = "unbuilt", "the mutated copy does not build"
                else:
                    caught_by, flaky = [], []
                    for t in m.tests:
                        v = run_test(t, tree, bdir, a.timeout, log)
                        if v == "pass":
                            continue
                        # a failure counts when it happens again
                        if run_test(t, tree, bdir, a.timeout, log) == "pass":
                            flaky.append(t)
                            continue
                        caught_by.append(t + ("" if v == "fail" else " (" + v + ")"))
                    verdict = "caught" if caught_by else "survived"
                    detail = ("by " + ", ".join(caught_by)) if caught_by else \
                        "every test passed: " + " ".join(m.tests)
                    if flaky:
                        detail += "; failed once, then passed: " + ", ".join(flaky)
            finally:
                with open(path, "w") as f:
                    f.write(original)
        dt = time.monotonic() - t0
        results.append((m, verdict, detail, dt))
        print("%-9s %-34s %-16s %5.0fs  %s" % (verdict, m.id, m.area, dt, detail), flush=True)
    # leave the copy built as the source tree is, for the next run
    build(tree, bdir, log)
    log.close()

    per = collections.OrderedDict()
    for m, v, _, _ in results:
        per.setdefault(m.area, collections.Counter())[v] += 1
    cols = ("caught", "survived", "stale", "unbuilt")
    print("\n%-20s %7s %9s %6s %8s" % (("area",) + cols))
    total = collections.Counter()
    for area, c in per.items():
        total.update(c)
        print("%-20s %7d %9d %6d %8d" % ((area,) + tuple(c[k] for k in cols)))
    print("%-20s %7d %9d %6d %8d" % (("total",) + tuple(total[k] for k in cols)))
    elapsed = time.monotonic() - t_start
    print("mutate: %d mutation(s) in %dm%02ds" % (len(results), elapsed // 60, elapsed % 60))
    bad = total["survived"] + total["stale"] + total["unbuilt"]
    if bad:
        print("mutate: FAILED: %d mutation(s) not caught (see above; log %s)" % (bad, logpath))
        return 1
    print("mutate: every mutation was caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
