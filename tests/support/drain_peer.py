#!/usr/bin/python3
"""Drain behaviour (PS3.8 A-RELEASE initiated by the SCP on SIGTERM, and a release collision).
Usage: drain_peer.py HOST PORT CALLED_AE SERVER_PID MODE   with MODE one of:
  release    - server sends A-RELEASE-RQ to an idle association; we answer A-RELEASE-RP; the
               server closes the connection (AR-3).
  collision  - we answer its A-RELEASE-RQ with our own A-RELEASE-RQ (collision). As the
               requestor we then send A-RELEASE-RP first (Sta9 -> Sta11); the acceptor answers
               A-RELEASE-RP (Sta10 -> Sta12 -> Sta13) and we close.
Exit 0 on the prescribed sequence."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pdu_peer import associate, pdu  # noqa: E402


def main():
    host, port, called, spid, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    p, _ = associate(host, port, called)
    os.kill(spid, signal.SIGTERM)
    r = p.recv_pdu(timeout=10)
    if r is None or r[0] != 0x05:
        sys.exit(f"expected A-RELEASE-RQ from the draining server, got {r!r}")
    if mode == "release":
        p.send(pdu(0x06, b"\0" * 4))
        if not p.expect_closed(timeout=10):
            sys.exit("server did not close after our A-RELEASE-RP")
    else:
        p.send(pdu(0x05, b"\0" * 4))       # collision
        p.send(pdu(0x06, b"\0" * 4))       # requestor answers first (AR-9)
        r = p.recv_pdu(timeout=10)
        if r is None or r[0] != 0x06:
            sys.exit(f"expected A-RELEASE-RP after the collision, got {r!r}")
        p.close()
    print(f"ok {mode}")


if __name__ == "__main__":
    main()
