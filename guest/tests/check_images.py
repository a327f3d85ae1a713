#!/usr/bin/env python3
"""Static checks of the built guest images (run as the 'guest_images' test).

usage: check_images.py --objdump OBJDUMP IMAGE...

For every image, by its extension:
  NAME.elf  ELF64 x86-64 ET_EXEC; the entry lies in the first PT_LOAD, which
            starts at or above 0x100000; no PT_LOAD below 0x10000 (the low
            memory vmmux owns).
  NAME.mb   ELF32 i386 ET_EXEC with a valid multiboot v1 header (magic,
            checksum) at a 4-aligned offset in the first 8 KiB; without the
            a.out-kludge bit the entry lies in a PT_LOAD, with it the address
            fields are consistent with the header's file offset.
  NAME.bin  not empty; its code is checked through NAME.bin.elf, the linked
            ELF it was flattened from (ELF32 ones hold 16-bit code).
The code of each is disassembled with objdump: no SSE/AVX/MMX/x87 register
may appear (KVM's instruction emulator does not implement them).
Exits 1 with one line per problem, 0 when all pass.
"""
import argparse
import os
import re
import struct
import subprocess
import sys

MB_MAGIC = 0x1BADB002
FORBIDDEN = re.compile(r"%(?:[xyz]mm\d+|mm\d|st(?:\(\d\))?\b|k[0-7]\b)")

problems = []


def bad(path, msg):
    problems.append(f"{os.path.basename(path)}: {msg}")


def parse_elf(path, data):
    """Return (class, type, machine, entry, [(vaddr, memsz, offset, filesz)]) or None."""
    if len(data) < 52 or data[:4] != b"\x7fELF":
        bad(path, "not an ELF file")
        return None
    cls = data[4]
    if cls == 2:
        if len(data) < 64:
            bad(path, "truncated ELF64 header")
            return None
        e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIQQ", data, 16)
        e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
        fmt, want = "<IIQQQQQQ", 56
    elif cls == 1:
        e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIII", data, 16)
        e_phentsize, e_phnum = struct.unpack_from("<HH", data, 42)
        fmt, want = "<IIIIIIII", 32
    else:
        bad(path, f"unknown ELF class {cls}")
        return None
    if e_phentsize != want or e_phoff + e_phnum * want > len(data):
        bad(path, "bad program header table")
        return None
    loads = []
    for i in range(e_phnum):
        f = struct.unpack_from(fmt, data, e_phoff + i * want)
        if cls == 2:
            p_type, _, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = f
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, p_memsz, _, _ = f
        if p_type == 1:
            loads.append((p_vaddr, p_memsz, p_offset, p_filesz))
    return cls, e_type, e_machine, e_entry, loads


def in_load(addr, loads):
    return any(v <= addr < v + m for v, m, _, _ in loads)


def check_elf64(path, data):
    e = parse_elf(path, data)
    if not e:
        return
    cls, e_type, machine, entry, loads = e
    if cls != 2 or machine != 62:
        bad(path, "not ELF64 x86-64")
        return
    if e_type != 2:
        bad(path, f"e_type {e_type}, want ET_EXEC (2)")
    if not loads:
        bad(path, "no PT_LOAD")
        return
    first = loads[0]
    if first[0] < 0x100000:
        bad(path, f"first PT_LOAD at {first[0]:#x}, below 0x100000")
    if not first[0] <= entry < first[0] + first[1]:
        bad(path, f"entry {entry:#x} not in the first PT_LOAD")
    for v, m, _, _ in loads:
        if v < 0x10000:
            bad(path, f"PT_LOAD at {v:#x} overlaps the low 64 KiB")


def check_mb(path, data):
    e = parse_elf(path, data)
    if not e:
        return
    cls, e_type, machine, entry, loads = e
    if cls != 1 or machine != 3 or e_type != 2:
        bad(path, "not an ELF32 i386 ET_EXEC")
    hdr = None
    for off in range(0, min(len(data), 8192) - 11, 4):
        magic, flags, csum = struct.unpack_from("<III", data, off)
        if magic == MB_MAGIC and (magic + flags + csum) & 0xFFFFFFFF == 0:
            hdr = (off, flags)
            break
    if hdr is None:
        bad(path, "no valid multiboot header in the first 8 KiB")
        return
    off, flags = hdr
    if flags & 0x3 != 0x3:
        bad(path, f"multiboot flags {flags:#x} lack page-align/memory info")
    if not flags & 0x10000:
        if not in_load(entry, loads):
            bad(path, f"entry {entry:#x} not in a PT_LOAD")
        return
    if off + 32 > len(data):
        bad(path, "a.out-kludge fields truncated")
        return
    h_addr, l_addr, l_end, b_end, m_entry = struct.unpack_from("<IIIII", data, off + 12)
    start = off - (h_addr - l_addr)
    if not l_addr <= h_addr < l_end <= b_end:
        bad(path, "a.out-kludge addresses out of order")
    elif start < 0 or start + (l_end - l_addr) > len(data):
        bad(path, "a.out-kludge load range outside the file")
    elif not l_addr <= m_entry < l_end:
        bad(path, f"a.out-kludge entry {m_entry:#x} outside the loaded image")
    else:
        # the flat image must match what the ELF segments hold
        for v, _, o, fs in loads:
            lo, hi = max(v, l_addr), min(v + fs, l_end)
            if lo < hi and data[o + lo - v:o + hi - v] != data[start + lo - l_addr:start + hi - l_addr]:
                bad(path, "a.out-kludge image differs from the ELF segments")


def check_code(path, objdump, machine=None):
    cmd = [objdump, "-d", "--no-show-raw-insn"]
    if machine:
        cmd += ["-m", machine]
    r = subprocess.run(cmd + [path], capture_output=True, text=True)
    if r.returncode != 0:
        bad(path, f"objdump failed: {r.stderr.strip()}")
        return
    hits = [line.strip() for line in r.stdout.splitlines()
            if "\t" in line and FORBIDDEN.search(line.split("\t", 1)[1])]
    for line in hits[:5]:
        bad(path, f"forbidden register: {line}")
    if len(hits) > 5:
        bad(path, f"... and {len(hits) - 5} more instructions with forbidden registers")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objdump", default="objdump")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    for path in a.images:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            bad(path, f"cannot read: {err}")
            continue
        if path.endswith(".elf"):
            check_elf64(path, data)
            check_code(path, a.objdump)
        elif path.endswith(".mb"):
            check_mb(path, data)
            check_code(path, a.objdump)
        elif path.endswith(".bin"):
            if not data:
                bad(path, "empty")
            src = path + ".elf"
            try:
                with open(src, "rb") as f:
                    e = parse_elf(src, f.read())
            except OSError as err:
                bad(src, f"cannot read: {err}")
                continue
            if e:
                check_code(src, a.objdump, "i8086" if e[0] == 1 else None)
        else:
            bad(path, "unknown image kind")
    for p in problems:
        print(p)
    print(f"{len(a.images)} images checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
