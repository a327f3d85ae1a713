"""The QEMU-compatible front end: `vmmux qemu ARGS...` and vmmux started as
qemu-system-x86_64 (a symlink).

The runner test drives qemu_runner/run_tests.sh, a runner written the way
hypervisor test suites write theirs (it takes $QEMU and boots each kernel
with -kernel/-append/-smp/-m/-device isa-debug-exit, reading output and
status), over the project's multiboot test kernels, once with QEMU=
qemu-system-x86_64 and once with QEMU= a symlink named qemu-system-x86_64 to
vmmux in a temporary directory: the same lines, the same statuses.

The other tests check the options one by one against what QEMU does."""
import os
import shutil
import subprocess
import time

from harness import VMMUX, VmmuxTest, SRC, guest

QEMU = "qemu-system-x86_64"
RUNNER = os.path.join(SRC, "tests", "integration", "qemu_runner", "run_tests.sh")
TESTLIST = os.path.join(SRC, "tests", "integration", "qemu_runner", "tests.txt")
WANT = {"WANT_mb_hello": "0x2a", "WANT_mb_aout": "0x2a", "WANT_mb_smp": "0x31",
        "WANT_bench_first": "0"}
EXIT_ARGS = ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]


class FrontEnd(VmmuxTest):
    def setUp(self):
        super().setUp()
        self.link = self.path(QEMU)
        os.symlink(os.path.abspath(VMMUX), self.link)

    def qemu(self, *args, timeout=60, env=None):
        """vmmux as qemu-system-x86_64: (status, stdout, stderr)."""
        p = subprocess.run([self.link] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout, env=env)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def test_version_and_help(self):
        st, out, err = self.qemu("-version")
        self.assertEqual(st, 0, err)
        self.assertTrue(out.startswith("QEMU emulator version 7.2.0 (vmmux "), out)
        self.assertIn("not QEMU", out.splitlines()[0])
        st2, out2, _ = self.qemu("--version")  # QEMU takes both dashes
        self.assertEqual((st2, out2), (st, out))
        st, out, err = self.qemu("-help")
        self.assertEqual(st, 0, err)
        self.assertIn("QEMU", out)  # what runners grep for
        for opt in ("-kernel", "-append", "-initrd", "-smp", "-m ", "-machine", "-accel",
                    "-enable-kvm", "-cpu", "-nodefaults", "-nographic", "-display none",
                    "-vga none", "-no-reboot", "-no-shutdown", "-serial", "-chardev",
                    "isa-debug-exit", "pc-testdev", "-name", "-S ", "-s ", "-gdb"):
            self.assertIn(opt, out)

    def test_device_list(self):
        # runners probe the devices: `$QEMU -device '?' | grep '"pc-testdev"'`
        for arg in ("?", "help"):
            st, out, err = self.qemu("-device", arg)
            self.assertEqual(st, 0, err)
            self.assertIn('name "pc-testdev", bus ISA\n', out)
            self.assertIn('name "isa-debug-exit", bus ISA\n', out)
        # and then run the kernel the way they do
        st, out, err = self.qemu("-enable-kvm", "-device", "pc-testdev", "-device",
                                 "isa-debug-exit,iobase=0xf4,iosize=0x4", "-vnc", "none",
                                 "-serial", "stdio", "-kernel", guest("mb_hello.mb"))
        self.assertEqual(st, 85, err)
        self.assertTrue(out.startswith("multiboot ok\n"), out)

    def test_refused_options(self):
        for args, msg in ((["-foo"], "qemu-system-x86_64: -foo: option not supported by vmmux"),
                          (["-monitor", "stdio"], "-monitor: option not supported"),
                          (["-accel", "tcg"], "-accel: 'tcg': vmmux runs guests under KVM only"),
                          (["-machine", "q35"], "machine 'q35' is not supported"),
                          (["-M", "pc,accel=tcg"], "accel 'tcg'"),
                          (["-machine", "pc,smm=off"], "'smm=off' is not supported"),
                          (["-cpu", "Haswell"], "model 'Haswell' is not supported"),
                          (["-device", "virtio-net"], "'virtio-net' is not supported"),
                          (["-device", "isa-debug-exit,foo=1"], "property 'foo=1'"),
                          (["-serial", "tcp::4444"], "'tcp::4444' is not supported"),
                          (["-serial", "chardev:nope"], "no -chardev with id 'nope'"),
                          (["-chardev", "file,id=a"], "'file,id=a': needs path="),
                          (["-chardev", "file,path=p"], "'file,path=p': needs id="),
                          (["-chardev", "pty,id=a"], "backend 'pty' is not supported"),
                          (["-display", "gtk"], "'gtk' is not supported"),
                          (["-vnc", ":1"], "-vnc: ':1' is not supported"),
                          (["-m", "12X"], "unknown size suffix 'X'"),
                          (["-m", "8G"], "out of range"),
                          (["-smp", "2,sockets=2"], "only a CPU count"),
                          (["-kernel"], "-kernel: requires an argument"),
                          ([], "no -kernel")):
            with self.subTest(args=args):
                st, out, err = self.qemu(*args)
                self.assertEqual(st, 1, err)
                self.assertEqual(out, "")
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertIn(msg, err)

    def test_image_error_is_status_1(self):
        st, out, err = self.qemu("-kernel", self.path("missing.mb"))
        self.assertEqual(st, 1, err)
        self.assertIn("missing.mb", err)

    def meminfo(self, *args):
        st, out, err = self.qemu("-nodefaults", "-display", "none", "-serial", "stdio",
                                 *EXIT_ARGS, "-kernel", guest("mb_meminfo.mb"), *args)
        self.assertEqual(st, 33, err)
        return out

    def test_memory_sizes(self):
        # QEMU's -m: MiB by default, suffixes, fractions; 128 MiB by default
        for args, ram in (([], 128 << 20), (["-m", "64"], 64 << 20),
                          (["-m", "1.5G"], 3 << 29), (["-m", "size=512M"], 512 << 20),
                          (["-m", "100m"], 100 << 20), (["-m", "65536k"], 64 << 20)):
            with self.subTest(args=args):
                self.assertIn("fw_cfg ram_size 0x%x\n" % ram, self.meminfo(*args))
        out = self.meminfo("-smp", "cpus=3", "-cpu", "host,+x2apic,-svm", "-M",
                           "pc,accel=kvm", "-enable-kvm", "-name", "t", "-vga", "none", "-no-user-config",
                           "-no-reboot", "-no-shutdown")
        self.assertIn("fw_cfg nb_cpus 3\n", out)

    def test_serial_backends(self):
        k = guest("mb_hello.mb")
        # -nographic: COM1 on stdio
        st, out, err = self.qemu("-nographic", *EXIT_ARGS, "-kernel", k, "-append", "x")
        self.assertEqual((st, out), (85, "multiboot ok\ncmdline: %s x\n" % k), err)
        # none / null / no -serial with -nodefaults: nothing on stdout
        for args in (["-serial", "none"], ["-serial", "null"], ["-nodefaults"]):
            with self.subTest(args=args):
                st, out, err = self.qemu(*args, *EXIT_ARGS, "-kernel", k)
                self.assertEqual((st, out), (85, ""), err)
        # file:PATH and -chardev file with -serial chardev:ID
        f1, f2 = self.path("com1.txt"), self.path("chr.txt")
        st, out, err = self.qemu("-serial", "file:" + f1, *EXIT_ARGS, "-kernel", k)
        self.assertEqual((st, out), (85, ""), err)
        with open(f1) as f:
            self.assertEqual(f.read(), "multiboot ok\ncmdline: %s \n" % k)
        st, out, err = self.qemu("-chardev", "file,id=c0,path=" + f2, "-serial", "chardev:c0",
                                 *EXIT_ARGS, "-kernel", k)
        self.assertEqual((st, out), (85, ""), err)
        with open(f2) as f:
            self.assertEqual(f.read(), "multiboot ok\ncmdline: %s \n" % k)

    def test_debug_exit_ports(self):
        # mb_hello writes to 0xf4; with the device there (any width up to
        # iosize) its status is (0x2a << 1) | 1
        k = guest("mb_hello.mb")
        st, out, err = self.qemu("-nographic", "-device", "isa-debug-exit,iobase=0xf2,iosize=4",
                                 "-kernel", k)
        self.assertEqual(st, 85, err)
        st, out, err = self.qemu("-nographic", "-device", "isa-debug-exit,iobase=0xf4",
                                 "-device", "pc-testdev", "-kernel", k)
        self.assertEqual(st, 85, err)

    def test_translation_shown(self):
        env = dict(os.environ, VMMUX_QEMU_SHOW="1")
        st, out, err = self.qemu("-nodefaults", "-serial", "stdio", *EXIT_ARGS, "-m", "64",
                                 "-smp", "2", "-kernel", guest("mb_hello.mb"), env=env)
        self.assertEqual(st, 85, err)
        line = err.splitlines()[0]
        self.assertTrue(line.startswith("vmmux run --no-defaults --irqchip --fw-cfg --kernel "),
                        line)
        for part in ("--mem=65536K", "--cpus=2", "io:0xf4-0xf7=exit", "io:0x3f8-0x3ff=uart",
                     "io:0x604-0x605=chipset"):
            self.assertIn(part, line)

    def test_gdb_options_map_to_run_options(self):
        # -s is --gdb tcp::1234, -S --gdb-wait: the run options of the GDB stub
        # (a vmmux with the stub then waits for the debugger: only the
        # translation, its first line on stderr, is read)
        env = dict(os.environ, VMMUX_QEMU_SHOW="1")
        p = subprocess.Popen([self.link, "-s", "-S", "-nographic", "-kernel",
                              guest("mb_hello.mb")], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            line = p.stderr.readline().decode()
        finally:
            p.kill()
            p.wait()
            p.stderr.close()
        self.assertIn(" --gdb tcp::1234 --gdb-wait", line)

    def test_gdb_session_through_the_front_end(self):
        # -gdb unix:PATH -S as a runner passes them: the guest waits for gdb,
        # which stops it at a hardware breakpoint, reads a variable and
        # detaches; the run then ends with the guest's own status
        gdb = shutil.which("gdb")
        self.assertIsNotNone(gdb, "gdb is not installed (make check installs it)")
        sock = self.path("g.sock")
        p = subprocess.Popen([self.link, "-nographic", *EXIT_ARGS, "-gdb", "unix:" + sock,
                              "-S", "-kernel", guest("mb_gdbt.mb")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            for _ in range(600):
                if os.path.exists(sock) or p.poll() is not None:
                    break
                time.sleep(0.05)
            out = subprocess.run([gdb, "-batch", "-nx", "-ex", "target remote " + sock,
                                  "-ex", "hbreak tick", "-ex", "continue", "-ex", "print i",
                                  "-ex", "detach", guest("mb_gdbt.mb")],
                                 capture_output=True, text=True, timeout=120).stdout
            status = p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertIn("Breakpoint 1, tick", out)
        self.assertIn("$1 = 1", out)
        self.assertEqual(status, 31)  # (15 << 1) | 1: the guest's own end

    def test_vmmux_qemu_command(self):
        # `vmmux qemu` is the same front end
        r = self.vmmux("qemu", "-nographic", *EXIT_ARGS, "-kernel", guest("mb_hello.mb"))
        self.assertEqual(r.status, 85, r)
        self.assertTrue(r.out.startswith("multiboot ok\n"), r)
        r = self.vmmux("qemu", "-bogus")
        self.assertEqual(r.status, 1, r)
        self.assertEqual(r.err, "vmmux qemu: -bogus: option not supported by vmmux (see -help)\n")


class Runner(VmmuxTest):
    """The same runner script, QEMU= qemu-system-x86_64 and QEMU= vmmux."""

    def setUp(self):
        super().setUp()
        if shutil.which(QEMU) is None:
            self.fail("%s is not installed: install the Debian package qemu-system-x86 "
                      "(apt-get install qemu-system-x86; make check installs it)" % QEMU)

    def runner(self, qemu):
        env = dict(os.environ, QEMU=qemu, KERNEL_DIR=os.path.dirname(guest("mb_hello.mb")),
                   **WANT)
        p = subprocess.run(["sh", RUNNER, TESTLIST], capture_output=True, env=env,
                           stdin=subprocess.DEVNULL, timeout=900)
        return p.returncode, p.stdout.decode(errors="replace")

    def test_same_lines_and_statuses(self):
        d = self.path("bin")
        os.mkdir(d)
        link = os.path.join(d, QEMU)
        os.symlink(os.path.abspath(VMMUX), link)
        qst, qout = self.runner(QEMU)
        vst, vout = self.runner(link)
        what = "--- qemu (%d) ---\n%s\n--- vmmux (%d) ---\n%s" % (qst, qout, vst, vout)
        self.assertEqual(qst, 0, what)  # every test passed under QEMU
        self.assertEqual(vout.splitlines(), qout.splitlines(), what)
        self.assertEqual(vst, qst, what)
        self.assertEqual(qout.count("\nPASS "), 6, what)
