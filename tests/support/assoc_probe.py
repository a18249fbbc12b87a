#!/usr/bin/env python3
"""Small DICOM peers for the edge's service and reverse-path tests (standard library only).

  assoc_probe.py rq PORT KEY CERT CA CALLING CALLED SPEC...
      TLS to 127.0.0.1:PORT with the client certificate CERT/KEY (the server checked against
      CA), an A-ASSOCIATE-RQ proposing one presentation context per SPEC ("UID", or
      "UID:SCU:SCP" with a role selection item, e.g. 1.2.840.10008.1.20.1:0:1), then prints what
      came back and exits: 0 A-ASSOCIATE-AC (one line "ctx ID UID RESULT" per context, PS3.8
      Table 9-18 results; then a release), 4 A-ASSOCIATE-RJ ("rj RESULT SOURCE REASON"),
      3 A-ABORT ("abort SOURCE REASON"), 5 the connection closed or TLS refused ("closed ...").
  assoc_probe.py proxy2 PORT OUT
      listen on 127.0.0.1:PORT, accept one connection, read its PROXY protocol v2 header and
      write its TLVs as JSON to OUT ({"cn", "client_id", "grants", "fingerprint", "src"}), then
      close the connection (the edge then refuses its client, transient, or aborts it).
"""
import json
import os
import socket
import ssl
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edge_peer import item, read_pdu  # noqa: E402 (the PDU helpers the edge tests share)

IMPLICIT_LE = b"1.2.840.10008.1.2"
EXPLICIT_LE = b"1.2.840.10008.1.2.1"
APP_CTX = b"1.2.840.10008.3.1.1.1"
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def assoc_rq(calling, called, specs):
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode()
    body += bytes(32) + item(0x10, APP_CTX)
    roles = b""
    for i, spec in enumerate(specs):
        parts = spec.split(":")
        uid = parts[0].encode()
        ts = item(0x40, EXPLICIT_LE) + item(0x40, IMPLICIT_LE)
        body += item(0x20, bytes([2 * i + 1, 0, 0, 0]) + item(0x30, uid) + ts)
        if len(parts) == 3:
            roles += item(0x54, struct.pack(">H", len(uid)) + uid +
                          bytes([int(parts[1]), int(parts[2])]))
    ui = item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.826.0.1.3680043.9.7433.1")
    body += item(0x50, ui + roles)
    return struct.pack(">BBI", 1, 0, len(body)) + body


def contexts_of_ac(body):
    """(id, result) of each presentation context item (0x21) of an A-ASSOCIATE-AC body."""
    out = []
    at = 68  # version, reserved, called, calling, 32 reserved
    while at + 4 <= len(body):
        t, n = body[at], struct.unpack(">H", body[at + 2:at + 4])[0]
        if t == 0x21:
            out.append((body[at + 4], body[at + 6]))
        at += 4 + n
    return out


def rq(port, key, cert, ca, calling, called, specs):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    try:
        raw = socket.create_connection(("127.0.0.1", int(port)), timeout=20)
        s = ctx.wrap_socket(raw)
        s.sendall(assoc_rq(calling, called, specs))
        t, body = read_pdu(s)
    except (OSError, ssl.SSLError) as e:
        print("closed", type(e).__name__, e)
        return 5
    if t == 2:
        print("ac")
        for cid, res in contexts_of_ac(body):
            print("ctx %d %s %d" % (cid, specs[(cid - 1) // 2].split(":")[0], res))
        s.sendall(bytes([5, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
        read_pdu(s)
        return 0
    if t == 3:
        print("rj %d %d %d" % (body[1], body[2], body[3]))
        return 4
    if t == 7:
        print("abort %d %d" % (body[2], body[3]))
        return 3
    print("closed without a PDU (type %r)" % (t,))
    return 5


def proxy2(port, out):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(port)))
    ls.listen(1)
    ls.settimeout(60)  # never wait for ever: a test that sends nothing fails here
    print("listening", flush=True)
    try:
        c, _ = ls.accept()
    except socket.timeout:
        json.dump({"error": "no connection from the edge"}, open(out, "w"))
        return 1
    c.settimeout(20)
    hdr = b""
    while len(hdr) < 16:
        d = c.recv(16 - len(hdr))
        if not d:
            break
        hdr += d
    if len(hdr) < 16 or hdr[:12] != SIG:
        json.dump({"error": "no PROXY v2 signature"}, open(out, "w"))
        return 1
    n = struct.unpack(">H", hdr[14:16])[0]
    rest = b""
    while len(rest) < n:
        d = c.recv(n - len(rest))
        if not d:
            break
        rest += d
    fam = hdr[13] >> 4
    alen = 12 if fam == 1 else 36
    res = {}
    if fam == 1:
        res["src"] = socket.inet_ntoa(rest[0:4])
    at = alen
    while at + 3 <= len(rest):
        t, ln = rest[at], struct.unpack(">H", rest[at + 1:at + 3])[0]
        v = rest[at + 3:at + 3 + ln]
        if t == 0xE0:
            res["fingerprint"] = v.hex()
        elif t == 0xE1:
            res["client_id"] = v.decode()
        elif t == 0xE2:
            res["grants"] = v.decode()
        elif t == 0x20:  # PP2_TYPE_SSL: client, verify, then sub-TLVs
            sub = 5
            while sub + 3 <= len(v):
                st, sl = v[sub], struct.unpack(">H", v[sub + 1:sub + 3])[0]
                if st == 0x22:
                    res["cn"] = v[sub + 3:sub + 3 + sl].decode()
                sub += 3 + sl
        at += 3 + ln
    json.dump(res, open(out, "w"))
    c.close()
    ls.close()
    return 0


def main(argv):
    if len(argv) >= 9 and argv[1] == "rq":
        return rq(*argv[2:8], argv[8:])
    if len(argv) == 4 and argv[1] == "proxy2":
        return proxy2(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
