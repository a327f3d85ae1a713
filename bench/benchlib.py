"""Helpers shared by the benchmark programs written in Python: statistics
over rounds and the markdown they print.

Every benchmark program prints one markdown section on stdout (a level-2
heading, then text and tables); bench/run.py assembles them into
bench/RESULTS.md. Figures are summarised over the rounds of one run as
"median [min-max]", and compared with a baseline measured in the same run.
"""
import statistics


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
