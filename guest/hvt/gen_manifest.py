#!/usr/bin/env python3
"""gen_manifest.py SOURCE.json OUTPUT.c: the manifest note of an hvt test guest.

SOURCE is a manifest in Solo5's manifest.json format:
  {"type": "solo5.manifest", "version": 1,
   "devices": [{"name": "storage", "type": "BLOCK_BASIC"}, ...]}
("type" may be left out). OUTPUT is a C file that declares the MFT1 note
the way solo5-elftool's generated file does: HVT_MFT_ENTRIES defined to the
number of entries (the devices and the implicit reserved-first entry 0)
before include/vmmux/hvt_abi.h, then one HVT_MFT1_NOTE_DEFINE, so that the
compiler lays out the note (its padding and n_descsz included). The checks
are solo5-elftool's: names of 1 to 67 ASCII letters and digits, unique, at
most 64 entries, known types, no other keys. Exits 1 with a message naming
SOURCE and the bad field.
"""
import json
import sys

MAX_ENTRIES = 64
NAME_MAX = 67
TYPES = {"BLOCK_BASIC": "HVT_MFT_DEV_BLOCK_BASIC", "NET_BASIC": "HVT_MFT_DEV_NET_BASIC"}


def fail(src, msg):
    sys.exit("%s: %s" % (src, msg))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_manifest.py SOURCE.json OUTPUT.c")
    src, out = sys.argv[1], sys.argv[2]
    try:
        with open(src) as f:
            root = json.load(f)
    except (OSError, ValueError) as e:
        fail(src, "cannot read the manifest: %s" % e)
    if not isinstance(root, dict):
        fail(src, "(root): expected an object")
    for k in root:
        if k not in ("type", "version", "devices"):
            fail(src, "(root): unknown key: %s" % k)
    if root.get("type", "solo5.manifest") != "solo5.manifest":
        fail(src, '.type: expected "solo5.manifest"')
    if root.get("version") != 1 or isinstance(root.get("version"), bool):
        fail(src, ".version: missing or not 1")
    devs = root.get("devices")
    if not isinstance(devs, list):
        fail(src, ".devices: missing or not an array")
    if 1 + len(devs) > MAX_ENTRIES:
        fail(src, ".devices: %d devices; at most %d fit" % (len(devs), MAX_ENTRIES - 1))
    lines, seen = [], set()
    for i, d in enumerate(devs):
        where = ".devices[%d]" % i
        if not isinstance(d, dict) or set(d) - {"name", "type"}:
            fail(src, "%s: expected an object with name and type only" % where)
        name, typ = d.get("name"), d.get("type")
        if not isinstance(name, str) or not name:
            fail(src, "%s.name: missing or empty" % where)
        if len(name) > NAME_MAX or not (name.isascii() and name.isalnum()):
            fail(src, "%s.name: '%s' is not 1 to %d letters and digits" % (where, name, NAME_MAX))
        if name in seen:
            fail(src, "%s.name: '%s' given twice" % (where, name))
        seen.add(name)
        if typ not in TYPES:
            fail(src, "%s.type: '%s' is not one of %s" % (where, typ, ", ".join(sorted(TYPES))))
        lines.append('\t\t{.name = "%s", .type = %s},' % (name, TYPES[typ]))
    n = 1 + len(devs)
    text = (
        "/* Generated from %s by guest/hvt/gen_manifest.py: do not edit. */\n"
        "#define HVT_MFT_ENTRIES %d\n"
        "#include <vmmux/hvt_abi.h>\n\n"
        "HVT_MFT1_NOTE_DEFINE(hvt_mft1_note,\n"
        "\t{.version = HVT_MFT_VERSION,\n"
        "\t .entries = %d,\n"
        "\t .e = {\n"
        '\t\t{.name = "", .type = HVT_MFT_RESERVED_FIRST},\n'
        "%s"
        "\t }});\n" % (src.rsplit("/", 1)[-1], n, n, "".join(l + "\n" for l in lines))
    )
    with open(out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
