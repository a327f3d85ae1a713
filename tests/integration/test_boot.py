"""Booting: every image format and CPU mode, the memory and vCPU options, the
PC-like defaults, VMMs and routes from the command line, and JSON configs
(with relative paths and command-line overrides)."""
import json
import os
import shutil

from harness import (EXIT_IMAGE, EXIT_POWEROFF, EXIT_USAGE, EXIT_GUEST_CRASH, VmmuxTest,
                     exit_device_status, guest)

HELLO = "hello from vmmux\n"
MIB = 1 << 20


def multiboot_out(path, append=None):
    """What mb_hello/mb_aout print: QEMU's multiboot command line is the
    kernel path as given, a space, then the -append text ("" without one)."""
    return "multiboot ok\ncmdline: %s %s\n" % (path, append if append is not None else "")


def is_interleaving(s, a, b):
    """True when S is A and B merged with each one's order kept."""
    if len(s) != len(a) + len(b):
        return False
    # ok[j]: s[:i+j] can be made of a[:i] and b[:j] (row i of the table).
    ok = [True] * (len(b) + 1)
    for j in range(1, len(b) + 1):
        ok[j] = ok[j - 1] and b[j - 1] == s[j - 1]
    for i in range(1, len(a) + 1):
        ok[0] = ok[0] and a[i - 1] == s[i - 1]
        for j in range(1, len(b) + 1):
            ok[j] = ((ok[j] and a[i - 1] == s[i + j - 1]) or
                     (ok[j - 1] and b[j - 1] == s[i + j - 1]))
    return ok[len(b)]


class ImageFormats(VmmuxTest):
    def test_elf64_long_mode_cpl0(self):
        r = self.run_guest("hello.elf")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, HELLO)
        self.assertNoCrash(r)

    def test_elf64_default_mode_is_cpl0(self):
        # user.elf reports its CPL: without --cpu-mode user an ELF64 image
        # runs in long mode at CPL0.
        r = self.run_guest("user.elf")
        self.assertStatus(r, exit_device_status(1))
        self.assertEqual(r.out, "not cpl3 (cpl 0)\n")

    def test_elf64_explicit_long_mode(self):
        r = self.run_guest("hello.elf", "--cpu-mode", "long")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, HELLO)

    def test_elf64_user_mode_cpl3(self):
        r = self.run_guest("user.elf", "--cpu-mode", "user")
        self.assertStatus(r, exit_device_status(0))
        self.assertEqual(r.out, "cpl3 ok\n")
        self.assertNoCrash(r)

    def test_multiboot_elf32_with_append(self):
        k = guest("mb_hello.mb")
        r = self.vmmux("run", "--kernel", k, "--append", "console=ttyS0 quiet x=1")
        self.assertStatus(r, exit_device_status(0x2a))
        self.assertEqual(r.out, multiboot_out(k, "console=ttyS0 quiet x=1"))
        self.assertNoCrash(r)

    def test_multiboot_elf32_without_append(self):
        k = guest("mb_hello.mb")
        r = self.vmmux("run", "--kernel", k)
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(k))

    def test_multiboot_aout_kludge_with_append(self):
        k = guest("mb_aout.mb")
        r = self.vmmux("run", "--kernel", k, "--append", "root=/dev/vda")
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(k, "root=/dev/vda"))
        self.assertNoCrash(r)

    def test_multiboot_aout_kludge_without_append(self):
        k = guest("mb_aout.mb")
        r = self.vmmux("run", "--kernel", k)
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(k))

    def test_multiboot_path_as_given(self):
        # A relative kernel path appears in the command line as given.
        d = os.path.dirname(guest("mb_hello.mb"))
        r = self.vmmux("run", "--kernel", "./mb_hello.mb", "--append", "rel", cwd=d)
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out("./mb_hello.mb", "rel"))

    def test_multiboot_explicit_protected_mode(self):
        k = guest("mb_hello.mb")
        r = self.vmmux("run", "--kernel", k, "--cpu-mode", "protected", "--append", "p")
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(k, "p"))

    def test_raw_real_mode(self):
        r = self.run_guest("raw16.bin", "--format", "raw", "--load-addr", "0x7c00")
        self.assertStatus(r, exit_device_status(5))
        self.assertEqual(r.out, "real mode\n")
        self.assertNoCrash(r)

    def test_raw_real_mode_explicit(self):
        r = self.run_guest("raw16.bin", "--format", "raw", "--load-addr", "0x7c00",
                           "--cpu-mode", "real")
        self.assertStatus(r, 11)
        self.assertEqual(r.out, "real mode\n")

    def test_raw_real_mode_entry_and_decimal_address(self):
        # 31744 = 0x7c00; --entry defaults to the load address, given here.
        r = self.run_guest("raw16.bin", "--format", "raw", "--load-addr", "31744",
                           "--entry", "0x7c00", "--cpu-mode", "real")
        self.assertStatus(r, 11)
        self.assertEqual(r.out, "real mode\n")

    def test_raw_long_mode(self):
        r = self.run_guest("raw64.bin", "--format", "raw", "--load-addr", "0x200000",
                           "--cpu-mode", "long")
        self.assertStatus(r, exit_device_status(6))
        self.assertEqual(r.out, "raw long\n")
        self.assertNoCrash(r)


class Memory(VmmuxTest):
    """--mem: a bare number is MiB (as QEMU's -m); K/M/G suffixes are binary.
    No guest prints its RAM size, so the size vmmux gives the guest is checked
    through what depends on it: a --break address must be below the RAM size
    (refused with the size in MiB otherwise), the ELF runtime's stack is at
    the top of RAM, and an image that does not fit is refused."""

    def check_size(self, opt, size, shown):
        r = self.run_guest("hello.elf", "--mem", opt, "--break", hex(size - 0x1000))
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        r = self.run_guest("hello.elf", "--mem", opt, "--break", hex(size))
        self.assertStatus(r, EXIT_USAGE)
        self.assertIn("breakpoint %s is outside the guest RAM (%s)" % (hex(size), shown),
                      r.err)

    def test_bare_number_is_mib(self):
        self.check_size("64", 64 * MIB, "64 MiB")

    def test_mega_suffix(self):
        self.check_size("64M", 64 * MIB, "64 MiB")

    def test_kilo_suffix(self):
        self.check_size("65536K", 64 * MIB, "64 MiB")

    def test_giga_suffix(self):
        self.check_size("1G", 1024 * MIB, "1 GiB")

    def test_small_ram_fits(self):
        # hello.elf and mb_hello.mb are at 1 MiB: 2 MiB is enough, the stack
        # then sits just below 2 MiB.
        r = self.run_guest("hello.elf", "--mem", "2M")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        k = guest("mb_hello.mb")
        r = self.vmmux("run", "--kernel", k, "--mem", "2")
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(k))

    def test_too_small_for_elf64(self):
        k = guest("hello.elf")
        r = self.vmmux("run", "--kernel", k, "--mem", "1M")
        self.assertStatus(r, EXIT_IMAGE)
        self.assertEqual(r.out, "")
        self.assertIn(k, r.err)
        self.assertIn("beyond guest RAM", r.err)
        self.assertNoCrash(r)

    def test_too_small_for_multiboot(self):
        k = guest("mb_hello.mb")
        r = self.vmmux("run", "--kernel", k, "--mem", "1")
        self.assertStatus(r, EXIT_IMAGE)
        self.assertEqual(r.out, "")
        self.assertIn(k, r.err)
        self.assertIn("beyond guest RAM", r.err)
        self.assertNoCrash(r)


class Cpus(VmmuxTest):
    def test_two_cpus_hello(self):
        # Every vCPU runs hello's main: vCPU 0 prints the line and ends the
        # run; vCPU 1 may print all, part or none of its own copy before the
        # run ends, its bytes interleaved with vCPU 0's.
        r = self.run_guest("hello.elf", "--cpus", "2")
        self.assertStatus(r, 1)
        self.assertNoCrash(r)
        self.assertTrue(any(is_interleaving(r.out, HELLO, HELLO[:n])
                            for n in range(len(HELLO) + 1)),
                        "stdout is not one line plus part of a second\n%r" % r)

    def test_two_cpus_seen_by_guest(self):
        r = self.run_guest("smp.elf", "--cpus", "2")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "smp done 2\n")
        self.assertNoCrash(r)

    def test_interleaving_checker(self):
        # The checker above must be able to refuse.
        self.assertTrue(is_interleaving("hheelo", "hel", "heo"))
        self.assertFalse(is_interleaving("hello", "hello", "h"))
        self.assertFalse(is_interleaving("hlelo", "hello", ""))
        self.assertFalse(is_interleaving("hellohello", "hello", "hellx"))


class PcDefaults(VmmuxTest):
    """What a `qemu -kernel K -serial stdio -device isa-debug-exit` user
    expects with no option at all: COM1 on stdout and nothing else there,
    nothing on stderr, the exit device's status, PC resets and power-off."""

    def test_console_and_exit_status(self):
        r = self.run_guest("hello.elf")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        self.assertEqual(r.err, "")

    def test_multiboot_like_qemu(self):
        k = guest("mb_hello.mb")
        r = self.vmmux("run", "--kernel", k, "--append", "a b")
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(k, "a b"))
        self.assertEqual(r.err, "")

    def test_poweroff(self):
        r = self.run_guest("poweroff.elf")
        self.assertStatus(r, EXIT_POWEROFF)
        self.assertEqual(r.out, "poweroff\n")

    def test_reset_through_cf9_and_i8042(self):
        r = self.run_guest("reset.elf")
        self.assertStatus(r, exit_device_status(3))
        self.assertEqual(r.out, "boot 1\nboot 2\nboot 3\n")

    def test_unassigned_ports_read_ones(self):
        r = self.run_guest("unrouted.elf")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "in8 0x1234: ff ok\nin16 0x1234: ffff ok\n"
                         "in32 0x1234: ffffffff ok\nmmio32 0xe0000000: ffffffff ok\n"
                         "out8 0x1234: done\nmmio32 write 0xe0000000: done\n")

    def test_no_defaults_leaves_no_console(self):
        # Without the defaults the console and the exit device are gone: the
        # exit write is dropped and the guest halts for good.
        r = self.run_guest("hello.elf", "--no-defaults")
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertEqual(r.out, "")
        self.assertNoCrash(r)


class CommandLineRouting(VmmuxTest):
    def test_vmm_and_route(self):
        opt, log = self.monitor(read="0x1234abcd")
        r = self.run_guest("io.elf", *opt, "--route", "io:0x80-0x81=mon")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "in 0x80: cd abcd 1234abcd\n"
                         "insb 0x81: cd cd cd cd cd cd cd cd\n")
        writes = [(e["key"], e["size"], e["value"]) for e in self.read_log(log)
                  if e["type"] == "io" and e["write"] and e["key"] == "0x80"]
        self.assertEqual(writes, [("0x80", 1, "0x12"), ("0x80", 2, "0x1234"),
                                  ("0x80", 4, "0x12345678")])

    def test_type_route(self):
        opt, log = self.monitor()
        r = self.run_guest("hlt.elf", *opt, "--route", "type:hlt=mon")
        self.assertStatus(r, exit_device_status(0x11))
        self.assertEqual(r.out, "before hlt\nafter hlt\n")
        self.assertEqual([e["type"] for e in self.read_log(log)], ["hlt"])

    def test_vmm_replaces_default_by_name(self):
        # A --vmm named like a default VMM takes its place and its routes.
        out = self.path("console.txt")
        r = self.run_guest("hello.elf", "--vmm", "uart=uart16550,output=" + out)
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "")
        with open(out) as f:
            self.assertEqual(f.read(), HELLO)

    def test_route_to_main_overrides_default(self):
        # A user route over the COM1 ports leaves the default uart route out:
        # main drops the writes and reads give all ones (THRE set).
        r = self.run_guest("hello.elf", "--route", "io:0x3f8-0x3ff=main")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "")


class ConfigFile(VmmuxTest):
    def write_config(self, cfg, name="vm.json", subdir="cfg"):
        d = self.path(subdir)
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, name)
        with open(p, "w") as f:
            json.dump(cfg, f)
        return p

    def copy_guest(self, name, subdir="cfg"):
        d = self.path(subdir)
        os.makedirs(d, exist_ok=True)
        shutil.copy(guest(name), os.path.join(d, name))

    def test_relative_kernel_resolved_against_config_dir(self):
        self.copy_guest("hello.elf")
        cfg = self.write_config({"guest": {"kernel": "hello.elf"}})
        # Run from another directory that has no hello.elf.
        other = self.path("elsewhere")
        os.makedirs(other)
        r = self.vmmux("run", "--config", cfg, cwd=other)
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        # And with the config path itself relative to the working directory.
        r = self.vmmux("run", "--config", os.path.join("..", "cfg", "vm.json"), cwd=other)
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)

    def test_multiboot_from_config(self):
        self.copy_guest("mb_hello.mb")
        cfg = self.write_config({"guest": {"kernel": "mb_hello.mb", "append": "from file"},
                                 "machine": {"mem": "16M", "cpus": 1}})
        r = self.vmmux("run", "--config", cfg)
        self.assertStatus(r, 85)
        kpath = os.path.join(os.path.dirname(cfg), "mb_hello.mb")
        self.assertEqual(r.out, multiboot_out(kpath, "from file"))

    def test_command_line_overrides_file(self):
        self.copy_guest("mb_hello.mb")
        cfg = self.write_config({"guest": {"kernel": "mb_hello.mb", "append": "from file"},
                                 "machine": {"mem": "1M"}})
        kpath = os.path.join(os.path.dirname(cfg), "mb_hello.mb")
        # The file alone: 1 MiB is too small for the image.
        r = self.vmmux("run", "--config", cfg)
        self.assertStatus(r, EXIT_IMAGE)
        self.assertIn("beyond guest RAM", r.err)
        # --mem and --append override the file, wherever --config appears.
        r = self.vmmux("run", "--mem", "8M", "--append", "from cli", "--config", cfg)
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(kpath, "from cli"))
        r = self.vmmux("run", "--config", cfg, "--mem", "8M", "--append", "cli 2")
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(kpath, "cli 2"))
        # --kernel overrides guest.kernel.
        k = guest("mb_aout.mb")
        r = self.vmmux("run", "--config", cfg, "--mem", "8M", "--kernel", k)
        self.assertStatus(r, 85)
        self.assertEqual(r.out, multiboot_out(k, "from file"))

    def test_vmms_and_routes_from_file_plus_command_line(self):
        self.copy_guest("io.elf")
        cfg = self.write_config({
            "guest": {"kernel": "io.elf"},
            "vmms": [{"name": "mon", "role": "monitor", "output": "mon.jsonl",
                      "args": {"read": "0x77"}}],
            "routes": ["io:0x80=mon"],
            "defaults": True,
        })
        # The file routes port 0x80; the command line adds 0x81.
        r = self.vmmux("run", "--config", cfg, "--route", "io:0x81=mon")
        self.assertStatus(r, 1)
        self.assertEqual(r.out, "in 0x80: 77 77 77\ninsb 0x81: 77 77 77 77 77 77 77 77\n")
        # The monitor's relative output path is in the config's directory.
        log = self.read_log(os.path.join(os.path.dirname(cfg), "mon.jsonl"))
        keys = sorted({e["key"] for e in log})
        self.assertEqual(keys, ["0x80", "0x81"])

    def test_vmms_in_file_add_to_defaults(self):
        # A file's vmms and routes add to the defaults, as --vmm and --route
        # do: the console and the exit device are there.
        self.copy_guest("hello.elf")
        doc = {"guest": {"kernel": "hello.elf"},
               "vmms": [{"name": "mon", "role": "monitor"}],
               "routes": ["io:0x80=mon"]}
        r = self.vmmux("run", "--config", self.write_config(doc))
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        # "defaults": false leaves them out: no uart, no exit device, no
        # output, and the guest halts for good.
        doc["defaults"] = False
        r = self.vmmux("run", "--config", self.write_config(doc))
        self.assertStatus(r, EXIT_GUEST_CRASH)
        self.assertEqual(r.out, "")

    def test_stats_json_relative_to_config(self):
        self.copy_guest("hello.elf")
        cfg = self.write_config({"guest": {"kernel": "hello.elf"}, "stats_json": "s.json"})
        r = self.vmmux("run", "--config", cfg, cwd=self.tmp)
        self.assertStatus(r, 1)
        self.assertEqual(r.out, HELLO)
        with open(os.path.join(os.path.dirname(cfg), "s.json")) as f:
            stats = json.load(f)
        self.assertEqual(stats["types"]["request"]["count"], 1)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "s.json")))
