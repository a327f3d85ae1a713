"""The differential test: an unmodified multiboot kernel that prints on COM1
(0x3f8) and exits through port 0xf4 gives the same console output and the
same exit status under

    vmmux run --kernel K [--append A]

as under

    qemu-system-x86_64 -accel kvm -display none -serial stdio \\
      -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel K [-append A]

Both get the same kernel path, which is part of the multiboot command line.
QEMU is required (`make check` installs qemu-system-x86): when it is missing
the test fails."""
import shutil
import subprocess

from harness import VmmuxTest, guest

QEMU = "qemu-system-x86_64"
QEMU_TIMEOUT = 120


def qemu_cmd(kernel, append):
    cmd = [QEMU, "-accel", "kvm", "-display", "none", "-serial", "stdio",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", kernel]
    if append is not None:
        cmd += ["-append", append]
    return cmd


def kernel_output(out):
    """The kernel's console output. QEMU's firmware (SeaBIOS) writes nothing
    on the serial port with -display none here, so nothing is stripped; if a
    firmware ever printed a banner first, exactly the lines before the
    kernel's first line ("multiboot ok", or "bad multiboot magic" when the
    entry contract is broken) would be firmware lines, and only those are
    dropped."""
    lines = out.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(("multiboot ok\n", "bad multiboot magic")):
            return "".join(lines[i:])
    return out


class Differential(VmmuxTest):
    def setUp(self):
        super().setUp()
        if shutil.which(QEMU) is None:
            self.fail("%s is not installed: install the Debian package qemu-system-x86 "
                      "(apt-get install qemu-system-x86; make check installs it)" % QEMU)

    def run_qemu(self, kernel, append):
        cmd = qemu_cmd(kernel, append)
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=QEMU_TIMEOUT)
        except subprocess.TimeoutExpired as t:
            raise AssertionError("%s did not finish within %ds\nstdout: %r\nstderr: %r" % (
                " ".join(cmd), QEMU_TIMEOUT, t.stdout, t.stderr))
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def compare(self, name, append=None):
        k = guest(name)
        qstatus, qout, qerr = self.run_qemu(k, append)
        vargs = ["run", "--kernel", k] + (["--append", append] if append is not None else [])
        r = self.vmmux(*vargs)
        self.assertNoCrash(r)
        what = "%s\n--- qemu: status %d ---\n%s\n--- qemu stderr ---\n%s" % (
            repr(r), qstatus, qout, qerr)
        # QEMU itself must have run the kernel: otherwise the comparison
        # would prove nothing.
        self.assertTrue(kernel_output(qout).startswith("multiboot ok\n"), what)
        self.assertEqual(r.out, kernel_output(qout), what)
        self.assertEqual(r.status, qstatus, what)
        # And both are what the kernel is written to do.
        self.assertEqual(qstatus, 85, what)
        return r.out

    def test_mb_hello_with_append(self):
        out = self.compare("mb_hello.mb", "console=ttyS0 a=1 b")
        self.assertEqual(out, "multiboot ok\ncmdline: %s console=ttyS0 a=1 b\n"
                         % guest("mb_hello.mb"))

    def test_mb_hello_without_append(self):
        self.compare("mb_hello.mb")

    def test_mb_aout_with_append(self):
        self.compare("mb_aout.mb", "root=/dev/vda ro")

    def test_mb_aout_without_append(self):
        self.compare("mb_aout.mb")

    def test_kernel_output_strips_only_firmware_lines(self):
        self.assertEqual(kernel_output("SeaBIOS x\nmultiboot ok\ncmdline: k \n"),
                         "multiboot ok\ncmdline: k \n")
        self.assertEqual(kernel_output("multiboot ok\n"), "multiboot ok\n")
        self.assertEqual(kernel_output("garbage\n"), "garbage\n")
        self.assertEqual(kernel_output("x multiboot ok\nmultiboot ok\n"), "multiboot ok\n")
