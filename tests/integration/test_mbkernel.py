"""Multiboot kernels as `qemu -kernel` boots them: mb_smp.mb, a 32-bit
multiboot kernel that prints its command line and modules (strings, sizes,
contents; the layout checked), reads QEMU's fw_cfg at 0x510/0x511
(signature, CPU count, maximum CPU count, RAM size, the etc/e820 file found
through the file directory), starts its second vCPU with INIT-SIPI-SIPI
through the in-kernel local APIC (a real-mode trampoline at 0x7000) and
exits through port 0xf4 with 0x31 (status 99) when everything held.

The differential tests run the same kernel, modules and --append under

    qemu-system-x86_64 -accel kvm -smp 2 -m 64 -kernel K -append A -initrd I

and compare the console output and the exit status. The harness runs the
module again with every VMM as a parallel VMM process (suite kvm-parallel)."""
import json
import os
import shutil
import subprocess

from harness import EXIT_IMAGE, EXIT_USAGE, VmmuxTest, exit_device_status, guest

KERNEL = "mb_smp.mb"
OK = exit_device_status(0x31)  # 99
NO_FWCFG = exit_device_status(0x34)
AP_DOWN = exit_device_status(0x35)
QEMU = "qemu-system-x86_64"
QEMU_TIMEOUT = 120
SMP = ["--cpus", "2", "--irqchip", "--fw-cfg"]

M1 = b"alpha\n"
M2 = b"beta,gamma"  # in a file whose name has a comma


def shown(data):
    """The bytes as mb_smp prints them (at most 64, \\xNN for the others)."""
    s = "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else "\\x%02x" % b for b in data[:64])
    return s + ("..." if len(data) > 64 else "")


def expected(kernel, append, modules, cpus=2, mem_mib=64, max_cpus=None, ram_mib=None):
    """mb_smp's output: MODULES is a list of (module string, contents)."""
    out = "multiboot ok\ncmdline: %s %s\nmem_lower 639 KiB\n" % (kernel, append)
    out += "fw_cfg: signature QEMU, cpus %d, max cpus %d, ram %d MiB\n" % (
        cpus, max_cpus or cpus, ram_mib or mem_mib)
    out += "fw_cfg: etc/e820 RAM from 0: %d MiB\n" % (ram_mib or mem_mib)
    out += "modules: %d\n" % len(modules)
    for i, (s, data) in enumerate(modules):
        out += "module %d: '%s' %d bytes: %s\n" % (i, s, len(data), shown(data))
    out += "bsp: apic id 0\n"
    for ap in range(1, cpus):
        out += "ap %d: up, apic id %d\n" % (ap, ap)
    return out + "smp ok: %d cpus\n" % cpus


class Files:
    """Module files in DIR: m1.txt, 'm2,x.txt' (a comma in its name) and an
    empty one; INITRD names the first two in QEMU's syntax."""

    def __init__(self, d):
        self.m1 = os.path.join(d, "m1.txt")
        self.m2 = os.path.join(d, "m2,x.txt")
        self.m3 = os.path.join(d, "empty.bin")
        for p, data in ((self.m1, M1), (self.m2, M2), (self.m3, b"")):
            with open(p, "wb") as f:
                f.write(data)
        self.initrd = "%s arg1 x=y,%s p,,q" % (self.m1, self.m2.replace(",", ",,"))
        self.modules = [("%s arg1 x=y" % self.m1, M1), ("%s p,q" % self.m2, M2)]


class MbKernel(VmmuxTest):
    def run_kernel(self, *args, **kw):
        r = self.run_guest(KERNEL, *args, **kw)
        self.assertNoCrash(r)
        return r

    def test_smp_modules_fw_cfg(self):
        f = Files(self.tmp)
        sj = self.path("stats.json")
        r = self.run_kernel(*SMP, "--append", "a=1 b", "--initrd", f.initrd,
                            "--module", f.m3 + " z", "--stats-json", sj)
        self.assertEqual(r.out, expected(guest(KERNEL), "a=1 b",
                                         f.modules + [(f.m3 + " z", b"")]), r)
        self.assertStatus(r, OK)
        with open(sj) as fp:
            st = json.load(fp)
        # every fw_cfg access went through the route to the fwcfg VMM
        n = self.route_count(st, "io:0x510-0x511=fwcfg")
        self.assertGreater(n, 100)
        self.assertEqual(self.vmm_count(st, "fwcfg"), n)

    def test_modules_only_by_module_option(self):
        # --module takes its string as it is: commas are not separators
        f = Files(self.tmp)
        r = self.run_kernel(*SMP, "--module", f.m2 + " a,b", "--module", f.m1)
        self.assertEqual(r.out, expected(guest(KERNEL), "",
                                         [(f.m2 + " a,b", M2), (f.m1, M1)]), r)
        self.assertStatus(r, OK)

    def test_later_initrd_replaces(self):
        f = Files(self.tmp)
        r = self.run_kernel(*SMP, "--initrd", f.m2.replace(",", ",,"), "--initrd", f.m1)
        self.assertEqual(r.out, expected(guest(KERNEL), "", [(f.m1, M1)]), r)
        self.assertStatus(r, OK)

    def test_one_cpu_more_memory(self):
        r = self.run_kernel("--fw-cfg", "--mem", "128M")
        self.assertEqual(r.out, expected(guest(KERNEL), "", [], cpus=1, mem_mib=128), r)
        self.assertStatus(r, OK)

    def test_config_file(self):
        # The file's module paths are relative to its directory.
        f = Files(self.tmp)
        cfg = {"machine": {"cpus": 2, "irqchip": True, "fw_cfg": True},
               "guest": {"kernel": guest(KERNEL), "append": "from=file",
                         "initrd": "m1.txt arg1 x=y,m2,,x.txt p,,q",
                         "modules": ["empty.bin z"]}}
        path = self.path("vm.json")
        with open(path, "w") as fp:
            json.dump(cfg, fp)
        r = self.vmmux("run", "--config", path)
        self.assertNoCrash(r)
        self.assertEqual(r.out, expected(guest(KERNEL), "from=file",
                                         f.modules + [(f.m3 + " z", b"")]), r)
        self.assertStatus(r, OK)

    def test_own_fwcfg_vmm(self):
        # A VMM of role fwcfg named fwcfg replaces the one --fw-cfg adds; the
        # arguments it does not give come from the machine.
        r = self.run_kernel("--cpus", "2", "--irqchip", "--fw-cfg",
                            "--vmm", "fwcfg=fwcfg,max_cpus=4")
        self.assertEqual(r.out, expected(guest(KERNEL), "", [], max_cpus=4), r)
        self.assertStatus(r, OK)
        # Or under another name on its own route, without --fw-cfg.
        r = self.run_kernel("--cpus", "2", "--irqchip", "--vmm", "fw=fwcfg,ram=0x8000000",
                            "--route", "io:0x510-0x511=fw")
        self.assertEqual(r.out, expected(guest(KERNEL), "", [], ram_mib=128), r)
        self.assertStatus(r, OK)

    def test_pc_machine_by_default(self):
        # A multiboot kernel gets QEMU's pc machine without asking: the
        # in-kernel irqchip (the AP comes up) and fw_cfg.
        r = self.run_kernel("--cpus", "2")
        self.assertEqual(r.out, expected(guest(KERNEL), "", []), r)
        self.assertStatus(r, OK)
        r = self.run_kernel("--cpus", "2", "--no-irqchip", "--irqchip", "--no-fw-cfg",
                            "--fw-cfg")  # the last one counts
        self.assertStatus(r, OK)

    def test_without_fw_cfg(self):
        r = self.run_kernel("--cpus", "2", "--no-fw-cfg")
        self.assertStatus(r, NO_FWCFG)
        self.assertTrue(r.out.endswith("fw_cfg: no signature\n"), r)

    def test_machine_keys_off(self):
        # machine.irqchip / machine.fw_cfg false in a file turn them off; the
        # command line overrides the file.
        path = self.path("vm.json")
        with open(path, "w") as fp:
            json.dump({"machine": {"cpus": 2, "fw_cfg": False},
                       "guest": {"kernel": guest(KERNEL)}}, fp)
        r = self.vmmux("run", "--config", path)
        self.assertNoCrash(r)
        self.assertStatus(r, NO_FWCFG)
        r = self.vmmux("run", "--config", path, "--fw-cfg")
        self.assertStatus(r, OK)
        with open(path, "w") as fp:
            json.dump({"machine": {"cpus": 2, "irqchip": False},
                       "guest": {"kernel": guest(KERNEL)}}, fp)
        r = self.vmmux("run", "--config", path)
        self.assertStatus(r, AP_DOWN)

    def test_hlt_route_needs_no_irqchip(self):
        # The pc machine handles HLT inside KVM: a HLT route is refused with
        # the option that allows it.
        r = self.run_kernel("--route", "type:hlt=main")
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("the default for multiboot kernels); use --no-irqchip", r.err)
        r = self.run_kernel("--route", "type:hlt=main", "--no-irqchip")
        self.assertStatus(r, OK)

    def test_pc_machine_ram_limit(self):
        r = self.run_kernel("--mem", "3584M")
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("at most 3583 MiB", r.err)

    def test_without_irqchip_the_ap_stays_down(self):
        # Without the in-kernel LAPIC the INIT and SIPI are MMIO writes that
        # nothing routes: the second vCPU keeps waiting, as it should.
        r = self.run_kernel("--cpus", "2", "--no-irqchip")
        self.assertStatus(r, AP_DOWN)
        self.assertTrue(r.out.endswith("bsp: apic id 0\nap 1: did not come up (reported 0)\n"),
                        r)
        self.assertIn("mmio write at 0xfee00300", r.err)


class MbKernelErrors(VmmuxTest):
    def run_kernel(self, *args):
        r = self.run_guest(KERNEL, *args)
        self.assertNoCrash(r)
        self.assertEqual(r.out, "", r)
        return r

    def test_missing_module(self):
        f = Files(self.tmp)
        missing = self.path("nope.bin")
        r = self.run_kernel(*SMP, "--initrd", "%s,%s args" % (f.m1, missing))
        self.assertStatus(r, EXIT_IMAGE)
        self.assertIn("multiboot module 2: %s: cannot open: No such file or directory"
                      % missing, r.err)

    def test_directory_module(self):
        r = self.run_kernel(*SMP, "--module", self.tmp)
        self.assertStatus(r, EXIT_IMAGE)
        self.assertIn("multiboot module 1: %s: is a directory" % self.tmp, r.err)

    def test_module_larger_than_ram(self):
        big = self.path("big.bin")
        with open(big, "wb") as f:
            f.truncate(3 << 20)
        r = self.run_kernel(*SMP, "--mem", "2M", "--module", big)
        self.assertStatus(r, EXIT_IMAGE)
        self.assertIn("multiboot module 1: %s: file is 3 MiB, larger than guest RAM"
                      % big, r.err)

    def test_module_does_not_fit(self):
        big = self.path("big.bin")
        with open(big, "wb") as f:
            f.truncate(1 << 20)
        f = Files(self.tmp)
        r = self.run_kernel(*SMP, "--mem", "2M", "--module", f.m1, "--module", big)
        self.assertStatus(r, EXIT_IMAGE)
        self.assertIn("multiboot module 2: %s: 1048576 bytes do not fit in guest RAM" % big,
                      r.err)

    def test_bad_initrd_syntax(self):
        for initrd, msg in (("", "--initrd '': no module given"),
                            ("a,", "--initrd 'a,': module 2 is empty"),
                            (",a", "--initrd ',a': module 1 is empty"),
                            ("a, b", "module 2 (' b') has no file name")):
            with self.subTest(initrd=initrd):
                r = self.run_kernel("--initrd", initrd)
                self.assertStatus(r, EXIT_USAGE)
                self.assertIn(msg, r.err)
        r = self.run_kernel("--module", " x")
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("--module ' x': the module's file name", r.err)
        r = self.run_kernel("--module", "")
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("--module '': a module needs a file name", r.err)

    def test_bad_config(self):
        path = self.path("vm.json")
        for guest_cfg, msg in (({"initrd": 5}, "vm.json: guest.initrd:"),
                               ({"initrd": "a,"}, "vm.json: guest.initrd 'a,': module 2"),
                               ({"modules": "m"}, "vm.json: guest.modules:"),
                               ({"modules": ["m", ""]},
                                "vm.json: guest.modules[1] '': a module needs a file name"),
                               ({"modules": ["m", 3]}, "vm.json: guest.modules[1]:")):
            with self.subTest(cfg=guest_cfg):
                with open(path, "w") as f:
                    json.dump({"guest": dict(guest_cfg, kernel=guest(KERNEL))}, f)
                r = self.vmmux("run", "--config", path)
                self.assertNoCrash(r)
                self.assertStatus(r, EXIT_USAGE)
                self.assertIn(msg, r.err)
        with open(path, "w") as f:
            json.dump({"machine": {"fw_cfg": "yes"}, "guest": {"kernel": guest(KERNEL)}}, f)
        r = self.vmmux("run", "--config", path)
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("vm.json: machine.fw_cfg:", r.err)

    def test_help(self):
        r = self.vmmux("run", "--help")
        self.assertStatus(r, 0)
        for opt in ("--initrd", "--module", "--fw-cfg"):
            self.assertIn(opt, r.out)


def kernel_output(out):
    """The kernel's lines: from its first line on (a firmware banner, if one
    were ever printed before it, is dropped)."""
    i = out.find("multiboot ok\n")
    return out[i:] if i >= 0 else out


class Differential(VmmuxTest):
    """The same kernel, modules and --append under QEMU (KVM) and vmmux."""

    def setUp(self):
        super().setUp()
        if shutil.which(QEMU) is None:
            self.fail("%s is not installed: install the Debian package qemu-system-x86 "
                      "(apt-get install qemu-system-x86; make check installs it)" % QEMU)

    def run_qemu(self, cpus, mem, append, initrd):
        cmd = [QEMU, "-accel", "kvm", "-display", "none", "-serial", "stdio",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-smp", str(cpus),
               "-m", str(mem), "-kernel", guest(KERNEL)]
        if append is not None:
            cmd += ["-append", append]
        if initrd is not None:
            cmd += ["-initrd", initrd]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=QEMU_TIMEOUT)
        except subprocess.TimeoutExpired as t:
            raise AssertionError("%s did not finish within %ds\nstdout: %r\nstderr: %r" % (
                " ".join(cmd), QEMU_TIMEOUT, t.stdout, t.stderr))
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def compare(self, cpus=2, mem=64, append=None, initrd=None):
        qstatus, qout, qerr = self.run_qemu(cpus, mem, append, initrd)
        args = ["--cpus", str(cpus), "--mem", "%dM" % mem, "--irqchip", "--fw-cfg"]
        if append is not None:
            args += ["--append", append]
        if initrd is not None:
            args += ["--initrd", initrd]
        r = self.run_guest(KERNEL, *args)
        self.assertNoCrash(r)
        what = "%r\n--- qemu: status %d ---\n%s\n--- qemu stderr ---\n%s" % (r, qstatus, qout,
                                                                             qerr)
        self.assertTrue(kernel_output(qout).startswith("multiboot ok\n"), what)
        self.assertEqual(r.out, kernel_output(qout), what)
        self.assertEqual(r.status, qstatus, what)
        self.assertEqual(qstatus, OK, what)  # and both did what the kernel checks
        return r.out

    def test_two_cpus_modules_append(self):
        f = Files(self.tmp)
        out = self.compare(append="console=ttyS0 a=1", initrd=f.initrd)
        self.assertEqual(out, expected(guest(KERNEL), "console=ttyS0 a=1", f.modules))

    def test_one_cpu_no_modules(self):
        out = self.compare(cpus=1, mem=32)
        self.assertEqual(out, expected(guest(KERNEL), "", [], cpus=1, mem_mib=32))

    def test_three_cpus_empty_module(self):
        f = Files(self.tmp)
        out = self.compare(cpus=3, initrd="%s,%s z" % (f.m3, f.m1))
        self.assertEqual(out, expected(guest(KERNEL), "", [(f.m3, b""), (f.m1 + " z", M1)],
                                       cpus=3))


class MissingDevice(VmmuxTest):
    """mb_spin polls one device 5000 times: without the device, one hint
    names the option that provides it (src/vmm/hint.h); with it, none."""

    GAVE_UP = exit_device_status(0x20)
    ANSWERED = exit_device_status(0x21)

    def spin(self, device, *args):
        r = self.run_guest("mb_spin.mb", "--append", device, *args)
        self.assertNoCrash(r)
        return r

    def hints(self, r):
        return [ln for ln in r.err.splitlines() if " keeps " in ln]

    def test_pc_machine_has_them(self):
        for device in ("lapic", "fwcfg"):
            with self.subTest(device=device):
                r = self.spin(device)
                self.assertStatus(r, self.ANSWERED)
                self.assertEqual(self.hints(r), [], r)

    def test_no_irqchip(self):
        r = self.spin("lapic", "--no-irqchip")
        self.assertStatus(r, self.GAVE_UP)
        self.assertEqual(self.hints(r), [
            "vmmux: warn: vCPU 0 keeps reading the local APIC at 0xfee00300 (1000 accesses); "
            "this machine has no irqchip: give --irqchip (drop --no-irqchip or "
            "machine.irqchip false)"], r)

    def test_no_fw_cfg(self):
        r = self.spin("fwcfg", "--no-fw-cfg")
        self.assertStatus(r, self.GAVE_UP)
        h = self.hints(r)
        self.assertEqual(len(h), 1, r)
        self.assertRegex(h[0], r"vCPU 0 keeps (reading|writing) fw_cfg at port 0x51[01] "
                         r"\(1000 accesses\); this machine has no fw_cfg: give --fw-cfg "
                         r"\(drop --no-fw-cfg or machine.fw_cfg false\)$")

    def test_unrouted_port(self):
        r = self.spin("port")
        self.assertStatus(r, self.GAVE_UP)
        self.assertEqual(self.hints(r), [
            "vmmux: warn: vCPU 0 keeps reading port 0x1234 (1000 accesses), which no route "
            "takes: route it to a VMM that serves it (--route io:0x1234=VMM)"], r)
        # routed, nothing to hint
        r = self.spin("port", "--vmm", "z=sink", "--route", "io:0x1234=z")
        self.assertStatus(r, self.ANSWERED)
        self.assertEqual(self.hints(r), [], r)
