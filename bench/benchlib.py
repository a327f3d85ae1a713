"""Helpers shared by the benchmark programs written in Python: statistics
over rounds and the markdown they print.

Every benchmark program prints one markdown section on stdout (a level-2
heading, then text and tables); bench/run.py assembles them into
bench/RESULTS.md. Figures are summarised over the rounds of one run as
"median [min-max]", and compared with a baseline measured in the same run.
"""
import json
import socket
import statistics
import time


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt="%.2f"):
    """'median [min-max]' of XS, each with FMT."""
    if not xs:
        return "-"
    return (fmt + " [" + fmt + "-" + fmt + "]") % (med(xs), min(xs), max(xs))


def ratio(x, base):
    if base is None or base != base or base <= 0 or x != x:
        return "-"
    return "%.2fx" % (x / base)


def table(header, rows):
    """A markdown table: HEADER a list of column names, ROWS lists of cells."""
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def verdict(ok):
    return "**met**" if ok else "**missed**"


def ctl_call(sock_path, cmd, **args):
    """One request to vmmux's control socket SOCK_PATH; its result, or
    RuntimeError with the error vmmux answered."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(120)
    s.connect(sock_path)
    s.sendall(json.dumps({"id": 1, "cmd": cmd, "args": args}).encode() + b"\n")
    buf = b""
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("control socket closed")
        buf += chunk
    s.close()
    rep = json.loads(buf.split(b"\n", 1)[0])
    if not rep.get("ok"):
        raise RuntimeError("%s: %r" % (cmd, rep.get("error")))
    return rep["result"]


def wait_for(pred, timeout=60):
    """True once PRED() is, polled every 5 ms; False after TIMEOUT s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False
