"""What a multiboot kernel is told about memory: mb_meminfo.mb prints the
multiboot flags, where the structure and memory map lie, mem_lower, mem_upper, every memory map entry, fw_cfg's
signature, RAM size and CPU counts, and every entry of fw_cfg's etc/e820.

vmmux must tell it what QEMU's pc machine tells it (vmms/fwcfg/pc_memmap.h):
the differential tests run

    qemu-system-x86_64 -accel kvm -display none -serial stdio \\
      -device isa-debug-exit,iobase=0xf4,iosize=4 -m M -smp N -kernel mb_meminfo.mb

and `vmmux run --kernel mb_meminfo.mb --mem M --cpus N` (the pc machine by
default) and compare the output line by line, and the exit status."""
import shutil
import subprocess

from harness import VmmuxTest, exit_device_status, guest

KERNEL = "mb_meminfo.mb"
DONE = exit_device_status(0x10)  # 33
QEMU = "qemu-system-x86_64"
QEMU_TIMEOUT = 120


def amd_ht():
    """QEMU reserves AMD's HyperTransport range on AMD vCPUs (vmmux's vCPUs
    have the host's vendor)."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("vendor_id"):
                return line.split(":")[1].strip() in ("AuthenticAMD", "HygonGenuine")
    return False


def expected(mib, cpus):
    """QEMU 7.2's pc machine with SeaBIOS, measured (RAM below 3.5 GiB)."""
    ram = mib << 20
    top = ram - 0x20000
    ht = amd_ht()
    out = ["mbi flags 0x24f", "mbi at 0x9500, mmap at 0x9000", "mem_lower 639 KiB", "mem_upper %d KiB" % ((top - (1 << 20)) // 1024),
           "mmap 0: base 0x0 len 0x9fc00 type 1", "mmap 1: base 0x9fc00 len 0x400 type 2",
           "mmap 2: base 0xf0000 len 0x10000 type 2",
           "mmap 3: base 0x100000 len 0x%x type 1" % (top - (1 << 20)),
           "mmap 4: base 0x%x len 0x20000 type 2" % top,
           "mmap 5: base 0xfeffc000 len 0x4000 type 2",
           "mmap 6: base 0xfffc0000 len 0x40000 type 2"]
    if ht:
        out.append("mmap 7: base 0xfd00000000 len 0x300000000 type 2")
    out += ["fw_cfg signature QEMU", "fw_cfg ram_size 0x%x" % ram, "fw_cfg nb_cpus %d" % cpus,
            "fw_cfg max_cpus %d" % cpus, "e820 0: base 0xfeffc000 len 0x4000 type 2"]
    if ht:
        out.append("e820 1: base 0xfd00000000 len 0x300000000 type 2")
    out += ["e820 %d: base 0x0 len 0x%x type 1" % (2 if ht else 1, ram), "end"]
    return "\n".join(out) + "\n"


class MemInfo(VmmuxTest):
    def test_pc_machine_memory(self):
        for mib, cpus in ((64, 2), (2, 1), (100, 3)):
            with self.subTest(mem=mib, cpus=cpus):
                r = self.run_guest(KERNEL, "--mem", "%dM" % mib, "--cpus", str(cpus))
                self.assertNoCrash(r)
                self.assertEqual(r.out, expected(mib, cpus), r)
                self.assertStatus(r, DONE)

    def test_without_fw_cfg(self):
        r = self.run_guest(KERNEL, "--no-fw-cfg")
        self.assertNoCrash(r)
        self.assertTrue(r.out.endswith("type 2\nfw_cfg none\nend\n"), r)
        self.assertIn("mem_upper 64384 KiB\n", r.out)
        self.assertStatus(r, DONE)


class Differential(VmmuxTest):
    def setUp(self):
        super().setUp()
        if shutil.which(QEMU) is None:
            self.fail("%s is not installed: install the Debian package qemu-system-x86 "
                      "(apt-get install qemu-system-x86; make check installs it)" % QEMU)

    def compare(self, mib, cpus):
        cmd = [QEMU, "-accel", "kvm", "-display", "none", "-serial", "stdio",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-m", str(mib),
               "-smp", str(cpus), "-kernel", guest(KERNEL)]
        try:
            q = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=QEMU_TIMEOUT)
        except subprocess.TimeoutExpired as t:
            raise AssertionError("%s did not finish within %ds: %r" % (" ".join(cmd),
                                                                      QEMU_TIMEOUT, t.stdout))
        qout = q.stdout.decode(errors="replace")
        r = self.run_guest(KERNEL, "--mem", "%dM" % mib, "--cpus", str(cpus))
        self.assertNoCrash(r)
        what = "%r\n--- qemu: status %d ---\n%s" % (r, q.returncode, qout)
        self.assertTrue(qout.startswith("mbi flags"), what)  # QEMU ran the kernel
        self.assertEqual(r.out.splitlines(), qout.splitlines(), what)
        self.assertEqual(r.status, q.returncode, what)
        self.assertEqual(q.returncode, DONE, what)

    def test_64m_2_cpus(self):
        self.compare(64, 2)

    def test_2m_1_cpu(self):
        self.compare(2, 1)

    def test_128m_4_cpus(self):
        self.compare(128, 4)

    def test_1000m_3_cpus(self):
        self.compare(1000, 3)
