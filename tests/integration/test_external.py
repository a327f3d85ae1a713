"""A parallel VMM written by a third party, built the way a third party builds
one: vmmux is installed into a temporary staging directory (meson install
--destdir), and examples/echo-vmm is copied out of the source tree and built
there with the system compiler and its Makefile against the installed header
and static library only, found through pkg-config. vmmux then runs it as a
parallel VMM (role external, program=PATH), from the command line and from a
JSON config with program arguments. A program that is not a vmmux VMM is
refused at start with a clear error.

The build directory is the directory of $VMMUX (the vmmux under test); in a
sanitized build the installed vmmux-vmm.pc carries -fsanitize, so the example
links the sanitizer runtimes its library needs."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import (EXIT_USAGE, SRC, VMMUX, VmmuxTest, exit_device_status, guest, run_vmmux,
                     symbol)

BUILD = os.path.dirname(os.path.abspath(VMMUX))
EXAMPLE = os.path.join(SRC, "examples", "echo-vmm")
IO_OUTS = b"0123456789abcdef"  # io.elf's rep outsb to 0x81
INSB_LEN = 8                   # io.elf's rep insb from 0x81
WRITE_RE = re.compile(r"write (\d+): port (0x[0-9a-f]+) size (\d) "
                      r"(?:value (0x[0-9a-f]+)|count (\d+) data ([0-9a-f]*))$")
SUMMARY_RE = re.compile(r"(\S+): (\d+) reads answered, (\d+) writes counted \((\d+) bytes\), "
                        r"(\d+) dumps$")


def run(cmd, cwd=None, env=None, timeout=300):
    """Run CMD; its output, or a failure that shows it."""
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("%s: status %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p.stdout + p.stderr


class Installed:
    """vmmux installed into a staging directory, and the example built
    against it (once for the module)."""
    stage = None

    @classmethod
    def set_up(cls):
        if cls.stage is not None:
            return
        meson, ninja = shutil.which("meson"), shutil.which("ninja")
        if meson is None or ninja is None:
            raise AssertionError("meson and ninja must be on PATH to install vmmux")
        # 0755: the VMM runs under its own uid, which must reach the program.
        stage = tempfile.mkdtemp(prefix="vmmux-external-")
        os.chmod(stage, 0o755)
        cls.stage = stage
        # meson test builds what the tests depend on, not the library: bring
        # it up to date, then install what the build holds.
        run([ninja, "-C", BUILD, "libvmmux-vmm.a"])
        run([meson, "install", "-C", BUILD, "--destdir", stage, "--no-rebuild", "--quiet"])
        pcs = glob.glob(os.path.join(stage, "**", "pkgconfig", "vmmux-vmm.pc"), recursive=True)
        if len(pcs) != 1:
            raise AssertionError("meson install put %d vmmux-vmm.pc under %s" % (len(pcs), stage))
        cls.pc_dir = os.path.dirname(pcs[0])
        cls.headers = sorted(glob.glob(os.path.join(stage, "**", "include", "vmmux", "*.h"),
                                       recursive=True))
        cls.libs = glob.glob(os.path.join(stage, "**", "libvmmux-vmm.a"), recursive=True)

        # The example as a third party has it: the two files, outside the tree.
        cls.work = os.path.join(stage, "echo-vmm")
        os.mkdir(cls.work)
        for f in ("echo_vmm.c", "Makefile"):
            shutil.copy(os.path.join(EXAMPLE, f), cls.work)
        env = dict(os.environ)
        env.update(PKG_CONFIG_PATH=cls.pc_dir, PKG_CONFIG_SYSROOT_DIR=stage)
        cls.deps = os.path.join(cls.work, "echo-vmm.d")
        cls.make_output = run(["make", "-C", cls.work,
                               "CFLAGS=-O2 -g -Wall -Wextra -Werror -MMD -MF " + cls.deps],
                              env=env)
        cls.program = os.path.join(cls.work, "echo-vmm")

    @classmethod
    def tear_down(cls):
        if cls.stage is not None:
            shutil.rmtree(cls.stage, ignore_errors=True)
            cls.stage = None


def setUpModule():
    Installed.set_up()


def tearDownModule():
    Installed.tear_down()


def parse_writes(lines):
    """The write lines of echo-vmm's output: [(n, port, size, bytes)]."""
    out = []
    for ln in lines:
        m = WRITE_RE.match(ln)
        if not m:
            continue
        n, port, size = int(m.group(1)), int(m.group(2), 16), int(m.group(3))
        if m.group(4) is not None:
            data = int(m.group(4), 16).to_bytes(size, "little")
        else:
            data = bytes.fromhex(m.group(6))
            if len(data) != size * int(m.group(5)):
                raise AssertionError("string write with %d bytes: %r" % (len(data), ln))
        out.append((n, port, size, data))
    return out


class Build(VmmuxTest):
    """The library and headers are installed, and the example builds against
    them alone."""

    def test_library_exports_only_its_api(self):
        # A third party's names cannot clash with the library's internals: the
        # archive's global symbols are the vmmux_* API, and a program that
        # defines log_level, err_set or tp_now_ns of its own links.
        nm = shutil.which("nm")
        out = run([nm, "-g", "--defined-only", Installed.libs[0]])
        names = sorted(line.split()[-1] for line in out.splitlines()
                       if len(line.split()) == 3)
        self.assertTrue(names, out)
        for n in names:
            self.assertTrue(n.startswith("vmmux_"), "exported: %s" % n)
        self.assertIn("vmmux_vmm_main", names)
        src = os.path.join(Installed.work, "clash.c")
        with open(src, "w") as f:
            f.write("#include <vmmux/vmm.h>\n"
                    "int log_level = 7;\n"
                    "int err_set(void) { return log_level; }\n"
                    "unsigned long tp_now_ns(void) { return 0; }\n"
                    "static int h(struct vmmux_ctx *c, const struct vmmux_event *e,\n"
                    "             struct vmmux_reply *r) { (void)c; (void)e; (void)r; return 0; }\n"
                    "static const struct vmmux_role role = {.abi_version = VMMUX_ROLE_ABI_VERSION,\n"
                    "    .name = \"clash\", .handle = h};\n"
                    "int main(void) { return err_set() == 7 ? vmmux_vmm_main(&role) : 1; }\n")
        env = dict(os.environ)
        env.update(PKG_CONFIG_PATH=Installed.pc_dir, PKG_CONFIG_SYSROOT_DIR=Installed.stage)
        flags = run(["pkg-config", "--cflags", "--libs", "vmmux-vmm"], env=env).split()
        run(["cc", "-o", os.path.join(Installed.work, "clash"), src] + flags, env=env)

    def test_installed_files(self):
        names = [os.path.basename(h) for h in Installed.headers]
        self.assertEqual(names, ["vmm.h", "vmmux.h"])
        self.assertEqual(len(Installed.libs), 1, Installed.libs)
        with open(os.path.join(Installed.pc_dir, "vmmux-vmm.pc")) as f:
            pc = f.read()
        # libseccomp must be on the link line of a static library's users.
        self.assertRegex(pc, r"(?m)^Requires: .*libseccomp")
        self.assertRegex(pc, r"(?m)^Libs: .*-lvmmux-vmm")

    def test_compile_command_uses_the_installation_only(self):
        out = Installed.make_output
        cmd = [ln for ln in out.splitlines() if "echo_vmm.c" in ln and "-o echo-vmm" in ln]
        self.assertEqual(len(cmd), 1, out)
        cmd = cmd[0]
        self.assertNotIn(os.path.realpath(SRC), cmd)
        self.assertNotIn(os.path.realpath(BUILD), cmd)
        self.assertIn("-I" + os.path.join(Installed.stage, "usr"), cmd)
        self.assertIn("-L" + os.path.join(Installed.stage, "usr"), cmd)
        self.assertIn("-lvmmux-vmm", cmd)
        self.assertIn("-lseccomp", cmd)
        # The headers the compiler read: the installed ones, none of the tree's.
        with open(Installed.deps) as f:
            deps = f.read().replace("\\\n", " ").split()
        vmmux_headers = sorted(d for d in deps if "/vmmux/" in d)
        self.assertEqual(vmmux_headers, Installed.headers)
        for d in deps[1:]:  # after the target "echo-vmm:"
            d = os.path.realpath(os.path.join(Installed.work, d))
            self.assertFalse(d.startswith(os.path.realpath(SRC) + os.sep), d)
        self.assertTrue(os.access(Installed.program, os.X_OK))


class EchoVmm(VmmuxTest):
    """The example serves the events its routes send it, as a parallel VMM."""

    def echo(self, *args, output=None):
        """A --vmm option for the example with ARGS ("key=value"), writing to
        OUTPUT (a file in the test's directory)."""
        opt = "echo=external,program=%s,output=%s" % (Installed.program, output)
        return ["--vmm", ",".join([opt] + list(args))]

    def read_lines(self, path):
        self.assertTrue(os.path.exists(path), "the VMM's output %s is missing" % path)
        with open(path) as f:
            return f.read().splitlines()

    def check_io(self, lines, read, prefix=""):
        """io.elf's events as the echo VMM reports them; returns the number of
        write events."""
        for ln in lines:
            self.assertTrue(ln.startswith(prefix), ln)
        lines = [ln[len(prefix):] for ln in lines]
        writes = parse_writes(lines)
        self.assertEqual([w[0] for w in writes], list(range(1, len(writes) + 1)), lines)
        # OUT 8/16/32 to 0x80 first, then the rep outsb to 0x81 (KVM may
        # deliver it as one event per byte).
        self.assertEqual([w[1:] for w in writes[:3]],
                         [(0x80, 1, b"\x12"), (0x80, 2, b"\x34\x12"),
                          (0x80, 4, b"\x78\x56\x34\x12")])
        self.assertEqual({(w[1], w[2]) for w in writes[3:]}, {(0x81, 1)})
        self.assertEqual(b"".join(w[3] for w in writes[3:]), IO_OUTS)
        return len(writes)

    def io_output(self, read):
        return "in 0x80: %x %x %x\ninsb 0x81: %s\n" % (
            read & 0xff, read & 0xffff, read & 0xffffffff,
            " ".join(["%02x" % (read & 0xff)] * INSB_LEN))

    def check_stats(self, st, nwrites):
        """The echo VMM's and its route's counts, and that it ran as a
        process; returns its event count."""
        vmm = [v for v in st["vmms"] if v["name"] == "echo"]
        self.assertEqual(len(vmm), 1, st["vmms"])
        vmm = vmm[0]
        self.assertRegex(vmm["where"], r"^pid [0-9]+$")
        self.assertEqual((vmm["restarts"], vmm["redelivered"], vmm["maybe_duplicated"]),
                         (0, 0, 0))
        # 3 IN and at least one INS event besides the writes.
        self.assertGreaterEqual(vmm["count"], nwrites + 4)
        self.assertLessEqual(vmm["count"], nwrites + 3 + INSB_LEN)
        self.assertEqual(self.route_count(st, "io:0x80-0x81=echo"), vmm["count"])
        self.assertEqual(st["types"]["io"]["unrouted"], 0)
        return vmm["count"]

    def test_io_from_the_command_line(self):
        out = self.path("echo.out")
        read = 0xdeadbeef
        r, st = self.run_with_stats(
            "io.elf", *self.echo("memory=0x100000+0x1000", "read=%#x" % read, "dump=0x80",
                                 output=out),
            "--route", "io:0x80-0x81=echo")
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.out, self.io_output(read))
        lines = self.read_lines(out)
        nwrites = self.check_io(lines, read)
        # The 32-bit OUT to the dump port wrote 0x12345678: not a granted
        # address (outside the window, and outside RAM), so nothing is read.
        self.assertIn("dump 0x12345678: not granted", lines)
        self.assertEqual(lines.index("dump 0x12345678: not granted"),
                         lines.index("write 3: port 0x80 size 4 value 0x12345678") + 1)
        self.check_stats(st, nwrites)

    def test_stopped_cleanly(self):
        """vmmux stops the VMM by closing its socket: the library returns from
        serving and calls the role's fini (which writes the summary)."""
        out = self.path("echo.out")
        r, st = self.run_with_stats("io.elf", *self.echo("read=7", output=out),
                                    "--route", "io:0x80-0x81=echo")
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        lines = self.read_lines(out)
        summaries = [i for i, ln in enumerate(lines) if SUMMARY_RE.match(ln)]
        self.assertEqual(summaries, [len(lines) - 1],
                         "no summary last: the role's fini did not run\n%r" % lines[-3:])
        nwrites = self.check_io(lines[:-1], 7)
        count = self.check_stats(st, nwrites)
        m = SUMMARY_RE.match(lines[-1])
        self.assertEqual((m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)),
                          int(m.group(5))),
                         ("echo", count - nwrites, nwrites, 1 + 2 + 4 + len(IO_OUTS), 0))

    def test_granted_window_is_read(self):
        """The guest passes an address (hypercall.elf's OUTs to 0x501-0x502,
        routed as io): inside the granted window the VMM reads the guest's
        bytes, outside it vmmux_gm_read refuses."""
        arg = symbol("hypercall.elf", "hc_arg")  # {.a = 0x1111, .b = 0x2222}
        page = arg & ~0xfff
        expect = "dump %#x: 11 11 00 00 00 00 00 00" % arg
        for window, line in (("%#x+0x1000" % page, expect),
                             ("%#x+0x1000" % (page + 0x10000), "dump %#x: not granted" % arg)):
            with self.subTest(window=window):
                out = self.path("echo-%s.out" % window)
                r = self.run_guest("hypercall.elf",
                                   *self.echo("memory=" + window, "dump=0x502", output=out),
                                   "--route", "io:0x501-0x502=echo", "--log-level", "info")
                self.assertStatus(r, exit_device_status(0))
                self.assertNoCrash(r)
                self.assertEqual(r.out, "hypercalls done\n")
                lines = self.read_lines(out)
                self.assertEqual(lines[:3], [
                    "write 1: port 0x501 size 4 value %#x" % arg,
                    "write 2: port 0x502 size 4 value %#x" % arg,
                    line])
                # vmmux_log from the sandboxed process reaches vmmux's log.
                logged = "vmmux: info: vmm 'echo': dumped 8 bytes at %#x" % arg
                if line == expect:
                    self.assertIn(logged, r.err)
                else:
                    self.assertNotIn(logged, r.err)

    def test_json_config_with_program_args(self):
        cfg = {
            "guest": {"kernel": guest("io.elf")},
            "vmms": [{"name": "echo", "program": Installed.program,
                      "program_args": ["--prefix", "[json] "],
                      "memory": ["0x100000+0x2000"], "output": "echo.out",
                      "args": {"read": "0x5a"}}],
            "routes": ["io:0x80-0x81=echo"],
            "defaults": True,
            "stats_json": "stats.json",
        }
        path = self.path("vm.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = self.vmmux("run", "--config", path)
        self.assertStatus(r, exit_device_status(0))
        self.assertNoCrash(r)
        self.assertEqual(r.out, self.io_output(0x5a))
        nwrites = self.check_io(self.read_lines(self.path("echo.out")), 0x5a, prefix="[json] ")
        with open(self.path("stats.json")) as f:
            self.check_stats(json.load(f), nwrites)

    def test_unknown_argument_refused(self):
        """A role's argument list is a contract whatever the placement: an
        argument the role does not declare is an error, not ignored."""
        r = self.run_guest("io.elf", *self.echo("bogus=1", output=self.path("echo.out")),
                           "--route", "io:0x80-0x81=echo")
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertIn("bogus", r.err)

    def test_bad_argument_value(self):
        r = self.run_guest("io.elf", *self.echo("read=zz", output=self.path("echo.out")),
                           "--route", "io:0x80-0x81=echo")
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "")
        self.assertIn("vmm 'echo': argument read='zz' is not a number", r.err)
        self.assertIn("vmm 'echo'", r.err.splitlines()[-1])
        self.assertIn("role 'echo' failed to start", r.err)


class NotAVmm(VmmuxTest):
    """Programs that are not vmmux parallel VMMs are refused at start: vmmux
    exits with status 2 before the guest runs, naming the VMM."""

    def refused(self, program, *more, timeout=60):
        r = self.run_guest("io.elf", "--vmm", "echo=external,program=" + program, *more,
                           "--route", "io:0x80-0x81=echo", timeout=timeout)
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "", "the guest ran\n%r" % r)
        last = r.err.strip().splitlines()[-1]
        self.assertTrue(last.startswith("vmmux: error: vmm 'echo': "), r.err)
        return last

    def test_program_that_exits(self):
        last = self.refused("/bin/true")
        self.assertIn("set-up", last)

    def test_program_that_never_answers(self):
        """A program that ignores its set-up socket: refused after the set-up
        timeout (5 s), not waited for forever."""
        cfg = {"guest": {"kernel": guest("io.elf")},
               "vmms": [{"name": "echo", "program": shutil.which("sleep"),
                         "program_args": ["60"]}],
               "routes": ["io:0x80-0x81=echo"], "defaults": True}
        path = self.path("vm.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = self.vmmux("run", "--config", path, timeout=30)
        self.assertStatus(r, EXIT_USAGE)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "")
        self.assertRegex(r.err.strip().splitlines()[-1],
                         r"^vmmux: error: vmm 'echo': no answer to its set-up")

    def test_missing_program(self):
        # in a directory the VMM's uid can search (the test's own is 0700)
        missing = os.path.join(Installed.stage, "no-such-vmm")
        last = self.refused(missing)
        self.assertIn("cannot execute %s: No such file or directory" % missing, last)

    def test_not_executable(self):
        source = os.path.join(Installed.work, "echo_vmm.c")
        last = self.refused(source)
        self.assertIn("cannot execute %s: Permission denied" % source, last)

    def test_vmm_started_by_hand(self):
        """The library refuses to run without vmmux's set-up descriptor."""
        p = subprocess.run([Installed.program], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("started by vmmux, not by hand", p.stderr)


if __name__ == "__main__":
    unittest.main()
