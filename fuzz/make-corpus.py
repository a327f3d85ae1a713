#!/usr/bin/env python3
"""fuzz/make-corpus.py: the seed corpus of fuzz/corpus/<harness>/, made the
way real inputs are made.

    python3 fuzz/make-corpus.py BUILD      (BUILD: a built tree, e.g. build)

Seeds come from what the project builds and documents:
  fuzz_loader     the test guests of guest/ as `make` builds them (multiboot
                  ELF32 and a.out, ELF64, raw 16- and 64-bit), each behind
                  the harness's option bytes (fuzz_loader.c), with modules
  fuzz_hvt_elf    the Solo5 hvt unikernels of guest/hvt (built as the Solo5
                  toolchain lays them out: ABI1 and MFT1 notes)
  fuzz_initrd     --initrd / --module values of docs/guests.md and the tests
  fuzz_route      every route spec written in docs/, configs/ and the
                  integration tests, a few to a file
  fuzz_config     configs/*.json and the shapes of config the docs describe
  fuzz_cli        the `vmmux run` command lines of docs/ and the README
  fuzz_gdb_rsp    the packets GDB sends to attach, read and write, step
  fuzz_api        requests of docs/control-api.md, one command each
  fuzz_api_socket the same requests, several to a connection
  fuzz_transport  call/reply/recover sequences of the main side
  fuzz_roles      exits to each built-in role's ports, as the test guests
                  make them, and the hvt hypercalls with their argument
                  structs in guest RAM, as guest/hvt's unikernels make them
  fuzz_snapshot   snapshots that vmmux itself writes (`vmmux ctl snapshot`)
                  of the test guests, one vCPU and two with the irqchip and
                  a parallel VMM: the part before guest memory (needs
                  /dev/kvm; skipped without it)
Seeds are named seed-*; entries kept by `make fuzz` (libFuzzer's hashes) and
crash-* regression inputs are left as they are.
"""
import glob
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'fuzz', 'corpus')


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, 'seed-' + name), 'wb') as f:
        f.write(data)


def loader(build):
    g = os.path.join(build, 'guest')
    # option byte: bit 0 raw, bits 1-3 mode (0 default, 1 real, 2 protected,
    # 3 long, 4 user), bit 4 entry given, bit 5 command line; then the RAM
    # size index, the load address index, the modules byte
    seeds = [
        ('mb_hello.mb', [0x20, 0, 0, 0]),
        ('mb_hello.mb', [0x20, 0, 0, 3 | (1 << 2) | (2 << 4) | (3 << 6)]),
        ('mb_aout.mb', [0x20, 0, 0, 1 | (2 << 2)]),
        ('mb_meminfo.mb', [0, 1, 0, 0]),
        ('mb_smp.mb', [0, 0, 0, 2 | (3 << 2)]),
        ('hello.elf', [0, 0, 0, 0]),
        ('user.elf', [4 << 1, 0, 0, 0]),
        ('smp.elf', [0, 3, 0, 0]),
        ('raw16.bin', [1 | (1 << 1), 0, 3, 0]),
        ('raw64.bin', [1 | (3 << 1) | 0x10, 0, 0, 0, 0]),
    ]
    for name, opts in seeds:
        p = os.path.join(g, name)
        if os.path.exists(p):
            with open(p, 'rb') as f:
                put('fuzz_loader', name + '-' + ''.join('%02x' % b for b in opts),
                    bytes(opts) + f.read())


def hvt(build):
    for p in sorted(glob.glob(os.path.join(build, 'guest', 'hvt', '*.hvt'))):
        with open(p, 'rb') as f:
            put('fuzz_hvt_elf', os.path.basename(p), b'\0' + f.read())
    # the UBSan finding: manifest entry 1's attached byte set to 2 (a bool
    # read from the file); hvt_image_parse must refuse it, defined
    p = os.path.join(build, 'guest', 'hvt', 'hvt_blk.hvt')
    if os.path.exists(p):
        with open(p, 'rb') as f:
            img = bytearray(f.read())
        at = img.find(b'storage\0') + 96  # offsetof(struct hvt_mft_entry, attached)
        img[at] = 2
        with open(os.path.join(OUT, 'fuzz_hvt_elf', 'crash-mft-attached-bool-2'), 'wb') as f:
            f.write(b'\0' + bytes(img))


def initrd():
    vals = ['m1.txt arg1,m2.txt\nm3.txt a b\n', 'initrd.img\n',
            'a,,b c,d\nfile with spaces\n', 'mod0 x=1,mod1 y=2,mod2\n']
    for i, v in enumerate(vals):
        put('fuzz_initrd', str(i), v.encode() + struct.pack('<QQQQ', 0x101000, 64 << 20,
                                                           4096, 0x200000))


ROUTE_RE = re.compile(r'\b(?:io|mmio|msr|hypercall|exception|platform|request|type)'
                      r':[0-9a-zA-Z_+\-]+=[a-z0-9_\-]+(?:\([^)\s"\'`]*\))?(?:;[^\s"\'`,]*)?')


def routes():
    found = []
    files = glob.glob(os.path.join(ROOT, 'docs', '*.md')) + \
        glob.glob(os.path.join(ROOT, 'configs', '*.json')) + \
        glob.glob(os.path.join(ROOT, 'tests', 'integration', '*.py')) + \
        [os.path.join(ROOT, 'src', 'route', 'spec.h')]
    for p in sorted(files):
        with open(p, errors='replace') as f:
            for m in ROUTE_RE.findall(f.read()):
                if m not in found and len(m) < 200:
                    found.append(m)
    for i in range(0, len(found), 6):
        put('fuzz_route', '%03d' % (i // 6), '\n'.join(found[i:i + 6]) + '\n')
    return found


def configs():
    for p in sorted(glob.glob(os.path.join(ROOT, 'configs', '*.json'))):
        with open(p, 'rb') as f:
            data = f.read()
        put('fuzz_config', os.path.basename(p), b'\0' + data)
        put('fuzz_config', 'nokernel-' + os.path.basename(p), b'\x02' + data)
    # configs written by the integration tests: each json.dumps of a dict
    # literal is not recoverable statically; a few shapes they use
    extra = [
        {"machine": {"mem": "16M", "cpus": 2}, "guest": {"kernel": "k.elf"},
         "vmms": [{"name": "sink", "role": "sink"}], "routes": ["io:0x80=sink"]},
        {"guest": {"kernel": "k.mb", "initrd": "m1 a,m2", "modules": ["m3 x"],
                   "cmdline": "console=ttyS0"}, "defaults": True},
        {"guest": {"kernel": "k.bin", "format": "raw", "load_addr": "0x7c00", "mode": "real"},
         "stats_json": "s.json", "api_sock": "a.sock", "log_level": "debug"},
        {"hvt": {"unikernel": "u.hvt", "block": {"storage": {"path": "d.img"}}},
         "machine": {"mem": "32M"}},
        {"vmms": [{"name": "g", "role": "sink", "placement": "parallel", "memory": ["0x0+0x1000"],
                   "raise": ["irq:4"], "timeout": "5ms"}],
         "routes": ["io:0x80-0x8f=group(weighted:g*2,main);timeout=1ms"]},
    ]
    for i, c in enumerate(extra):
        put('fuzz_config', 'shape%d.json' % i, b'\x02' + json.dumps(c).encode())


def api(found_routes):
    reqs = [
        {"id": 1, "cmd": "ping"},
        {"id": "v", "cmd": "version"},
        {"id": 2, "cmd": "routes.list"},
        {"id": 3, "cmd": "vmms.list"},
        {"id": 4, "cmd": "stats.get"},
        {"id": 5, "cmd": "metrics.get"},
        {"id": 6, "cmd": "routes.add", "args": {"spec": "io:0x81=sink"}},
        {"id": 7, "cmd": "routes.delete", "args": {"spec": "io:0x80"}},
        {"id": 8, "cmd": "routes.replace", "args": {"spec": "io:0x80=mon"}},
        {"id": 9, "cmd": "routes.batch", "args": {"changes": [
            {"op": "delete", "spec": "io:0x80"}, {"op": "add", "spec": "io:0x80-0x8f=sink"},
            {"op": "add", "spec": "msr:0x40002000=mon"}]}},
        {"id": 10, "cmd": "vmm.add", "args": {"spec": "s2=sink"}},
        {"id": 11, "cmd": "vmm.add", "args": {"vmm": {"name": "m2", "role": "monitor",
                                                      "args": {"read": "0x1"}}}},
        {"id": 12, "cmd": "vmm.stop", "args": {"name": "sink"}},
        {"id": 13, "cmd": "vmm.swap", "args": {"name": "mon", "spec": "mon=monitor"}},
        {"id": 14, "cmd": "platform.raise", "args": {"event": "smi", "value": "0x42"}},
        {"id": None, "cmd": "routes.add", "args": {"spec": "io:0x3f8=mon"}},
        {"id": 15, "cmd": "routes.add", "args": {"spec": "mmio:0xe0000000+0x10=mon;coalesced"}},
        {"id": 16, "cmd": "routes.add", "args": {"spec": "io:0x90=sink;doorbell=0x1"}},
    ]
    lines = [json.dumps(r) for r in reqs]
    lines += [json.dumps({"id": 100 + i, "cmd": "routes.add", "args": {"spec": s}})
              for i, s in enumerate(found_routes[:12])]
    for i, l in enumerate(lines):
        put('fuzz_api', '%02d' % i, l + '\n')
    put('fuzz_api', 'bad', '\n'.join(['{', '[]', '{"id": [1]}', '{"id": 1}',
                                      '{"id": 1, "cmd": "nope"}', '   ',
                                      '{"id": 1, "cmd": "ping", "x": 1}']) + '\n')
    for i in range(0, len(lines), 5):
        put('fuzz_api_socket', '%02d' % (i // 5),
            bytes([16, 0]) + ('\n'.join(lines[i:i + 5]) + '\n').encode())
    put('fuzz_api_socket', 'split', bytes([0, 0]) + b'{"id": 1, "cmd": "ping"}\n\n \n')
    put('fuzz_api_socket', 'long', bytes([255, 1]) + b'{"id": 1, "cmd": "ping", "args": {}}')
    put('fuzz_api_socket', 'noread', bytes([8, 4]) + ('{"id": 1, "cmd": "ping"}\n' * 40).encode())


def transport():
    # opcodes of fuzz_transport.c: 2 call, 1 VMM reply, 4 wait, 5 async pop,
    # 6 VMM async, 7 recover, 8 cancel, 9 state load, 10 VMM saved state,
    # 11 post, 12 VMM posted ring, 13 heartbeat, 14 ready, 15 async sleep,
    # 16 ready received
    ev = bytes([0, 1, 0, 1, 0, 0, 0, 0, 1]) + struct.pack('<QQ', 0x3f8, 0x41)
    reply = bytes([1, 0, 0]) + struct.pack('<I', 0) + bytes([2, 0]) + struct.pack('<Q', 7)
    seqs = {
        'call-reply-wait': bytes([2, 0]) + ev + reply + bytes([4, 0]) + ev,
        'call-recover': bytes([2, 1]) + ev + bytes([7, 8, 1]),
        'async': bytes([6, 0, 5]) + ev * 4 + bytes([5, 15]),
        'state': bytes([10, 0]) + struct.pack('<H', 16) + bytes(16) + bytes([9, 0, 0x20]),
        'posted': bytes([11]) + ev + bytes([11]) + ev + bytes([12, 1]) + struct.pack('<Q', 1) +
                  bytes([3]) + struct.pack('<Q', 0) + bytes([13, 1]) + bytes(8),
        'ready': bytes([14, 3]) + struct.pack('<H', 0) + struct.pack('<IIIi', 0x6f6c6568, 1, 1, 0),
        # 16: a ready received on the set-up socket (struct hs_ready, 304 bytes)
        'ready-recv': bytes([16, 0]) + struct.pack('<H', 304) +
                      struct.pack('<IIIi', 0x6f6c6568, 1, 1, 0) + b'sink'.ljust(32, b'\0') +
                      bytes(256) + bytes([16, 1]) + struct.pack('<H', 304) +
                      struct.pack('<IIIi', 0x6f6c6568, 1, 1, -22) + b'sink'.ljust(32, b'\0') +
                      b'bad role argument'.ljust(256, b'\0'),
    }
    for k, v in seqs.items():
        put('fuzz_transport', k, v)


def roles():
    # events of fuzz_roles.c: who (0 vCPU), b (size index, 4 write, 8 64-bit
    # value), type, key selector (index into its keys, + 19 * offset), value
    def io(key_index, off, value, write=True, size=0):
        return bytes([0, size | (4 if write else 0), 0, key_index + 19 * off, value & 0xff])
    seqs = {
        'uart': io(0, 0, 0x48) + io(0, 0, 0x69) + io(0, 5, 0, False) + io(0, 3, 0x80) +
                io(0, 0, 1) + io(0, 3, 3) + io(0, 1, 0x0f),
        'exit': io(1, 0, 0x10),
        'chipset': io(2, 0, 0xfe) + io(3, 0, 0x06) + io(4, 0, 0x20, size=1),
        'smm': io(5, 0, 0x01) + bytes([3, 0, 7, 0, 1]),
        'fault': io(6, 0, 0x00, size=2),
        'monitor': bytes([0, 2, 1, 7, 0]) + bytes([0, 6, 1, 7, 0x55]) + bytes([0, 3, 2, 8, 0]) +
                   bytes([0, 0, 4, 9, 0]) + bytes([0, 0, 5, 10, 0]) + bytes([0, 0, 6, 17, 0]),
        'sink': io(11, 0, 1) + bytes([0, 6, 1, 12, 7]),
        'fwcfg': io(13, 0, 0x00, size=1) + io(13, 1, 0, False) + io(13, 1, 0, False) +
                 io(13, 0, 0x19, size=1) + io(13, 1, 0, False),
        'raised': bytes([2 + 6 * 3, 4, 8, 17, 1]) + bytes([3, 0, 7, 0, 2]),
    }

    # the guest writes its RAM (who 5: GPA, length - 1, bytes), then makes
    # an hvt hypercall (type 4; key selector 9 + 19 * (nr - 1) gives nr) whose
    # value (b bit 3: 8 bytes) is the argument struct's GPA
    def ram(gpa, data):
        return bytes([5]) + struct.pack('<I', gpa) + bytes([len(data) - 1]) + data

    def hc(nr, arg):
        return bytes([0, 8, 4, 9 + 19 * (nr - 1)]) + struct.pack('<Q', arg)
    seqs['hvt-puts'] = ram(0x3000, b'hello\n') + ram(0x2000, struct.pack('<QQ', 0x3000, 6)) + \
        hc(2, 0x2000)
    blk = struct.pack('<QQQQq', 1, 512, 0x3000, 512, 0)
    seqs['hvt-block'] = ram(0x3000, b'sector 1') + ram(0x2100, blk) + hc(4, 0x2100) + \
        ram(0x2100, blk) + hc(5, 0x2100)
    seqs['hvt-net'] = ram(0x3000, bytes(range(48))) + \
        ram(0x2200, struct.pack('<QQQq', 2, 0x3000, 60, 0)) + hc(6, 0x2200) + \
        bytes([4, 0, 0, 0, 64]) + ram(0x2300, struct.pack('<QQQq', 2, 0x4000, 1514, 0)) + \
        hc(7, 0x2300)
    for k, v in seqs.items():
        put('fuzz_roles', k, v)


def cli():
    """`vmmux run` command lines written in docs/ and the README."""
    import shlex
    lines = []
    for p in sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md'))) + [os.path.join(ROOT, 'README.md')]:
        with open(p, errors='replace') as f:
            text = f.read().replace('\\\n', ' ')
        for m in re.findall(r'vmmux run ([^`|&\n]*)', text):
            try:
                args = shlex.split(m)
            except ValueError:
                continue
            if args and args not in lines:
                lines.append(args)
    lines.append(['--kernel', 'k.mb', '--initrd', 'm1 a,,b,m2', '--module', 'm3 x', '--mem', '128M',
                  '--cpus', '2', '--route', 'io:0x80=s', '--vmm', 's=sink', '--break', '0x100000',
                  '--log-level', 'debug', '--parallel', '--spin', '20us'])
    for i, args in enumerate(lines):
        put('fuzz_cli', '%02d' % i, '\0'.join(args))


def gdb():
    """What GDB sends when it attaches, reads and writes memory, sets a
    breakpoint and steps (its own packets, as gdb 13 frames them)."""
    def pkt(p):
        b = p.encode('latin-1')
        return b'$' + b + b'#' + ('%02x' % (sum(b) % 256)).encode()
    sessions = {
        'attach': ['qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;'
                   'vfork-events+;exec-events+;vContSupported+;QThreadEvents+;no-resumed+',
                   'vMustReplyEmpty', 'QStartNoAckMode', 'Hgp0.0',
                   'qXfer:features:read:target.xml:0,ffb', 'qTStatus', '?', 'qfThreadInfo',
                   'qsThreadInfo', 'qAttached', 'Hc-1', 'qOffsets', 'g'],
        'memory': ['m100000,40', 'M100000,4:deadbeef', 'p10', 'P10=0010000000000000',
                   'X100010,4:}\x03}\x04ab'],
        'break': ['Z0,100000,1', 'Z1,100004,1', 'vCont?', 'vCont;s:1', 'z0,100000,1', 'c',
                  'D'],
    }
    for k, v in sessions.items():
        put('fuzz_gdb_rsp', k, b'+'.join(pkt(x) for x in v) + b'+')
    put('fuzz_gdb_rsp', 'interrupt-rle', b'+\x03' + pkt('0* ') + b'-' + pkt('g'))


def snapshots(build):
    if not os.path.exists('/dev/kvm'):
        print('make-corpus: no /dev/kvm: no fuzz_snapshot seeds made', file=sys.stderr)
        return
    vmmux = os.path.join(build, 'vmmux')
    g = os.path.join(build, 'guest', 'snapseq.elf')
    runs = [('cpl3', ['--cpu-mode', 'user']),
            ('smp-parallel-uart', ['--cpu-mode', 'user', '--cpus', '2', '--irqchip',
                                   '--vmm', 'uart=uart16550,placement=parallel,output=stdout',
                                   '--route', 'io:0x3f8-0x3ff=uart'])]
    for name, args in runs:
        with tempfile.TemporaryDirectory() as d:
            sock, snap = os.path.join(d, 'api'), os.path.join(d, 'snap')
            p = subprocess.Popen([vmmux, 'run', '--kernel', g, '--api-sock', sock] + args,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(200):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)
            time.sleep(0.3)
            subprocess.run([vmmux, 'ctl', '--api-sock', sock, 'snapshot', snap, '--stop'],
                           stdout=subprocess.DEVNULL, check=True)
            p.wait(timeout=30)
            with open(snap, 'rb') as f:
                data = f.read(1 << 20)
            size = os.path.getsize(snap)
            # the sections, up to END (type 10); guest memory starts at the
            # next 4 KiB boundary (docs/snapshot.md)
            at = 64
            while at + 24 <= len(data):
                typ, = struct.unpack_from('<I', data, at)
                slen, = struct.unpack_from('<Q', data, at + 8)
                at += 24 + ((slen + 7) & ~7)
                if typ == 10:
                    break
            head = data[:min((at + 4095) & ~4095, len(data))]
            # flags 0 (the CRCs as written), then the file's length beyond
            # the bytes given
            put('fuzz_snapshot', name, bytes([0]) + struct.pack('<I', min(size - len(head),
                                                                         0xffffffff)) + head)
            put('fuzz_snapshot', name + '-fixcrc',
                bytes([1]) + struct.pack('<I', min(size - len(head), 0xffffffff)) + head)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    loader(build)
    hvt(build)
    initrd()
    found = routes()
    configs()
    api(found)
    transport()
    roles()
    cli()
    gdb()
    snapshots(build)


if __name__ == '__main__':
    main()
