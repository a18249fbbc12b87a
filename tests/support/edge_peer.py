#!/usr/bin/env python3
"""Small TLS DICOM peers for the edge tests (standard library only).

  edge_peer.py hold PORT PKI CERT CALLING CALLED FLAGFILE
      open an association (Verification), print "held", keep it until FLAGFILE exists, then
      release it; exit 0 only if the A-ASSOCIATE-AC and the A-RELEASE-RP came.
  edge_peer.py idle PORT PKI CERT COUNT SECONDS
      open COUNT TLS connections that complete the handshake and then say nothing; print how
      many the server closed within SECONDS.
  edge_peer.py late PORT PKI CERT CALLING CALLED FLAGFILE
      complete the TLS handshake, print "connected", wait until FLAGFILE exists, then send the
      A-ASSOCIATE-RQ; print and exit with what came back: 0 A-ASSOCIATE-AC, 3 A-ABORT,
      4 A-ASSOCIATE-RJ, 5 closed without a PDU.
  edge_peer.py rq CALLING CALLED
      write one A-ASSOCIATE-RQ PDU to stdout (fuzz corpus seeds).
"""
import os
import select
import socket
import ssl
import struct
import sys
import time

VERIFICATION = b"1.2.840.10008.1.1"
IMPLICIT_LE = b"1.2.840.10008.1.2"
APP_CTX = b"1.2.840.10008.3.1.1.1"


def item(t, body):
    return struct.pack(">BBH", t, 0, len(body)) + body


def assoc_rq(calling, called, max_len=16384):
    pctx = item(0x20, bytes([1, 0, 0, 0]) + item(0x30, VERIFICATION) + item(0x40, IMPLICIT_LE))
    ui = item(0x50, item(0x51, struct.pack(">I", max_len)) + item(0x52, b"1.2.3.4"))
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode()
    body += bytes(32) + item(0x10, APP_CTX) + pctx + ui
    return struct.pack(">BBI", 1, 0, len(body)) + body


def tls_connect(port, pki, cert):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    ctx.load_cert_chain(os.path.join(pki, cert + ".crt"), os.path.join(pki, cert + ".key"))
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return ctx.wrap_socket(s, server_hostname="localhost")


def read_pdu(s):
    hdr = b""
    while len(hdr) < 6:
        d = s.recv(6 - len(hdr))
        if not d:
            return None, None
        hdr += d
    n = struct.unpack(">I", hdr[2:6])[0]
    body = b""
    while len(body) < n:
        d = s.recv(n - len(body))
        if not d:
            return None, None
        body += d
    return hdr[0], body


def hold(port, pki, cert, calling, called, flag):
    s = tls_connect(port, pki, cert)
    s.sendall(assoc_rq(calling, called))
    t, _ = read_pdu(s)
    if t != 2:
        print("no A-ASSOCIATE-AC: type", t)
        return 1
    print("held", flush=True)
    while not os.path.exists(flag):
        time.sleep(0.05)
    s.sendall(bytes([5, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
    t, _ = read_pdu(s)
    if t != 6:
        print("no A-RELEASE-RP: type", t)
        return 1
    s.close()
    return 0


def late(port, pki, cert, calling, called, flag):
    s = tls_connect(port, pki, cert)
    print("connected", flush=True)
    while not os.path.exists(flag):
        time.sleep(0.05)
    s.sendall(assoc_rq(calling, called))
    try:
        t, _ = read_pdu(s)
    except (ssl.SSLError, OSError):
        t = None
    print("answer", t, flush=True)
    return {2: 0, 7: 3, 3: 4}.get(t, 5)


def idle(port, pki, cert, count, seconds):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    ctx.load_cert_chain(os.path.join(pki, cert + ".crt"), os.path.join(pki, cert + ".key"))
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        socks.append(ctx.wrap_socket(s, server_hostname="localhost"))
    print("open", len(socks), flush=True)
    closed = set()
    deadline = time.time() + seconds
    while len(closed) < len(socks) and time.time() < deadline:
        live = [s for s in socks if s not in closed]
        r, _, _ = select.select(live, [], [], 0.5)
        for s in r:
            try:
                if not s.recv(100):
                    closed.add(s)
            except (ssl.SSLError, OSError):
                closed.add(s)
    print("closed", len(closed), flush=True)
    return 0 if len(closed) == len(socks) else 1


def main(a):
    if a[0] == "hold":
        return hold(int(a[1]), a[2], a[3], a[4], a[5], a[6])
    if a[0] == "late":
        return late(int(a[1]), a[2], a[3], a[4], a[5], a[6])
    if a[0] == "idle":
        return idle(int(a[1]), a[2], a[3], int(a[4]), float(a[5]))
    if a[0] == "rq":
        sys.stdout.buffer.write(assoc_rq(a[1], a[2]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
