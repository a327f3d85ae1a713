"""The network peer of the hvt net tests and benchmark: run inside the
network namespace that holds the tap, it sends N frames of EtherType 0x88b5
through the tap to the guest (guest/hvt/net.c, test "echo") and waits for
each echo (the MACs swapped, the payload kept), resending after 200 ms
while the guest is not listening yet.

Usage: python3 test_hvt_peer.py IFACE GUEST_MAC N [TIMEOUT_S]
Prints "echoed N of M rtt_us_p50=X rtt_us_p99=Y per_s=Z" and exits 0 when
every frame came back.
"""
import os
import select
import socket
import struct
import sys
import time

ETH_TYPE = 0x88B5
PACKET_OUTGOING = 4


def main():
    iface, mac_s, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    guest_mac = bytes(int(x, 16) for x in mac_s.split(":"))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_TYPE))
    s.bind((iface, ETH_TYPE))
    own = s.getsockname()[4][:6]
    deadline = time.monotonic() + timeout
    rtts, echoed, first = [], 0, None
    for i in range(n):
        payload = struct.pack("!QQ", os.getpid(), i) + bytes(range(32))
        frame = guest_mac + own + struct.pack("!H", ETH_TYPE) + payload
        got = False
        while not got and time.monotonic() < deadline:
            t0 = time.monotonic()
            s.send(frame)
            while time.monotonic() - t0 < 0.2 and not got:
                r, _, _ = select.select([s], [], [], 0.2)
                if not r:
                    break
                data, addr = s.recvfrom(2048)
                if addr[2] == PACKET_OUTGOING or data[6:12] != guest_mac:
                    continue
                if data[0:6] == own and data[14:14 + len(payload)] == payload:
                    rtts.append(time.monotonic() - t0)
                    got = True
        if not got:
            break
        if first is None:
            first = time.monotonic()
        echoed += 1
    span = time.monotonic() - first if first else 0.0
    rtts.sort()
    p = (lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1e6 if rtts else 0.0)
    per_s = (echoed - 1) / span if span > 0 and echoed > 1 else 0.0
    print("echoed %d of %d rtt_us_p50=%.0f rtt_us_p99=%.0f per_s=%.1f" % (
        echoed, n, p(0.5), p(0.99), per_s))
    return 0 if echoed == n else 1


if __name__ == "__main__":
    sys.exit(main())
