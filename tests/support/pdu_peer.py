#!/usr/bin/python3
"""A hostile DICOM upper-layer peer for tests: crafts PDUs byte by byte (PS3.8 9.3) and checks the
SCP's answers against the state table of PS3.8 9.2. Standard library only. Usage:
    pdu_peer.py HOST PORT CALLED_AE [case ...]      (no case: all)
Exit 0 when every case got the answer the standard prescribes."""
import socket
import struct
import sys
import time

APP_CTX = b"1.2.840.10008.3.1.1.1"
VERIFICATION = b"1.2.840.10008.1.1"
CT_STORAGE = b"1.2.840.10008.5.1.4.1.1.2"
IMPLICIT = b"1.2.840.10008.1.2"
EXPLICIT = b"1.2.840.10008.1.2.1"


def item(t, body):
    return struct.pack(">BBH", t, 0, len(body)) + body


def pdu(t, body):
    return struct.pack(">BBI", t, 0, len(body)) + body


def ae(s):
    return s.encode().ljust(16)


def assoc_rq(called, calling="HOSTILE", version=1, app=APP_CTX, contexts=None, max_len=16384,
             extra=b""):
    if contexts is None:
        contexts = [(1, VERIFICATION, [IMPLICIT]), (3, CT_STORAGE, [EXPLICIT, IMPLICIT])]
    body = struct.pack(">HH", version, 0) + ae(called) + ae(calling) + b"\0" * 32
    body += item(0x10, app)
    for cid, abstract, tss in contexts:
        sub = item(0x30, abstract) + b"".join(item(0x40, t) for t in tss)
        body += item(0x20, struct.pack(">BBBB", cid, 0, 0, 0) + sub)
    ui = item(0x51, struct.pack(">I", max_len)) + item(0x52, b"1.2.3.4") + item(0x55, b"PDU_PEER")
    body += item(0x50, ui) + extra
    return pdu(0x01, body)


def pdata(pcid, mch, data):
    return pdu(0x04, struct.pack(">IBB", len(data) + 2, pcid, mch) + data)


def elem_us(e, v):
    return struct.pack("<HHIH", 0, e, 2, v)


def elem_ui(e, s):
    if len(s) % 2:
        s += b"\0"
    return struct.pack("<HHI", 0, e, len(s)) + s


def command(field, msg_id, sop_class, has_ds=False, sop_inst=None):
    body = elem_ui(0x0002, sop_class) + elem_us(0x0100, field) + elem_us(0x0110, msg_id)
    body += elem_us(0x0800, 0x0000 if has_ds else 0x0101)
    if sop_inst:
        body += elem_ui(0x1000, sop_inst)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


class Peer:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, b):
        self.s.sendall(b)

    def recv_pdu(self, timeout=10):
        """Returns (type, body), or None when the server closed the connection."""
        self.s.settimeout(timeout)
        hdr = b""
        while len(hdr) < 6:
            try:
                c = self.s.recv(6 - len(hdr))
            except ConnectionResetError:
                return None
            if not c:
                return None
            hdr += c
        t, _, n = struct.unpack(">BBI", hdr)
        body = b""
        while len(body) < n:
            c = self.s.recv(min(65536, n - len(body)))
            if not c:
                return None
            body += c
        return t, body

    def expect_closed(self, timeout=10):
        self.s.settimeout(timeout)
        try:
            while True:
                c = self.s.recv(65536)
                if not c:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def expect_abort(p, source, reason, what):
    r = p.recv_pdu()
    if r is None or r[0] != 0x07:
        raise AssertionError(f"{what}: expected A-ABORT, got {r!r}")
    src, rsn = r[1][2], r[1][3]
    if source is not None and (src != source or (reason is not None and rsn != reason)):
        raise AssertionError(f"{what}: A-ABORT source/reason {src}/{rsn}, want {source}/{reason}")
    if not p.expect_closed():
        raise AssertionError(f"{what}: connection not closed after A-ABORT")


def expect_reject(p, result, source, reason, what):
    r = p.recv_pdu()
    if r is None or r[0] != 0x03:
        raise AssertionError(f"{what}: expected A-ASSOCIATE-RJ, got {r!r}")
    got = (r[1][1], r[1][2], r[1][3])
    if got != (result, source, reason):
        raise AssertionError(f"{what}: A-ASSOCIATE-RJ {got}, want {(result, source, reason)}")


def associate(host, port, called, **kw):
    p = Peer(host, port)
    p.send(assoc_rq(called, **kw))
    r = p.recv_pdu()
    if r is None or r[0] != 0x02:
        raise AssertionError(f"association not accepted: {r!r}")
    return p, r[1]


def pctx_results(ac_body):
    """{id: (result, ts)} from an A-ASSOCIATE-AC body."""
    out, i = {}, 68
    while i + 4 <= len(ac_body):
        t, n = ac_body[i], struct.unpack(">H", ac_body[i + 2:i + 4])[0]
        b = ac_body[i + 4:i + 4 + n]
        if t == 0x21:
            ts = b[8:8 + struct.unpack(">H", b[6:8])[0]] if len(b) >= 8 else b""
            out[b[0]] = (b[2], ts)
        i += 4 + n
    return out


def dimse_status(body):
    """Status (0000,0900) from a P-DATA body holding one whole command PDV."""
    data = body[6:]
    i = 0
    while i + 8 <= len(data):
        g, e, n = struct.unpack("<HHI", data[i:i + 8])
        if g == 0 and e == 0x0900:
            return struct.unpack("<H", data[i + 8:i + 10])[0]
        i += 8 + n
    return None


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def unknown_pdu_before_association(h, port, called):
    p = Peer(h, port)
    p.send(pdu(0x0D, b"\0" * 8))
    expect_abort(p, 0, 0, "unknown PDU type in Sta2 (AA-1)")


@case
def pdata_before_association(h, port, called):
    p = Peer(h, port)
    p.send(pdata(1, 3, b"\0" * 10))
    expect_abort(p, 0, 0, "P-DATA in Sta2 (AA-1)")


@case
def release_before_association(h, port, called):
    p = Peer(h, port)
    p.send(pdu(0x05, b"\0" * 4))
    expect_abort(p, 0, 0, "A-RELEASE-RQ in Sta2 (AA-1)")


@case
def oversized_assoc_rq(h, port, called):
    p = Peer(h, port)
    p.send(struct.pack(">BBI", 1, 0, 70000) + b"\0" * 1000)
    expect_abort(p, 0, 0, "A-ASSOCIATE-RQ over 64 KiB")


@case
def huge_declared_length(h, port, called):
    p = Peer(h, port)
    p.send(struct.pack(">BBI", 1, 0, 0xFFFFFFFF))
    expect_abort(p, 0, 0, "A-ASSOCIATE-RQ declaring 4 GiB")


@case
def bad_protocol_version(h, port, called):
    p = Peer(h, port)
    p.send(assoc_rq(called, version=2))
    expect_reject(p, 1, 2, 2, "protocol version 2")


@case
def bad_application_context(h, port, called):
    p = Peer(h, port)
    p.send(assoc_rq(called, app=b"1.2.3.4.5"))
    expect_reject(p, 1, 1, 2, "unknown application context")


@case
def wrong_called_ae(h, port, called):
    p = Peer(h, port)
    p.send(assoc_rq("NOT_THE_CORE"))
    expect_reject(p, 1, 1, 7, "wrong called AE")


@case
def called_ae_with_backslash(h, port, called):
    p = Peer(h, port)
    p.send(assoc_rq("BAD\\AE"))
    expect_reject(p, 1, 1, 7, "called AE with a backslash")


@case
def even_context_id(h, port, called):
    p = Peer(h, port)
    p.send(assoc_rq(called, contexts=[(2, VERIFICATION, [IMPLICIT])]))
    expect_abort(p, 0, 0, "even presentation context ID")


@case
def duplicate_context_id(h, port, called):
    p = Peer(h, port)
    p.send(assoc_rq(called, contexts=[(1, VERIFICATION, [IMPLICIT]), (1, CT_STORAGE, [IMPLICIT])]))
    expect_abort(p, 0, 0, "duplicate presentation context ID")


@case
def item_overruns_pdu(h, port, called):
    raw = bytearray(assoc_rq(called))
    # the application context item starts at 6+68; make its length run past the PDU
    struct.pack_into(">H", raw, 6 + 68 + 2, 0xFFF0)
    p = Peer(h, port)
    p.send(bytes(raw))
    expect_abort(p, 0, 0, "item length overrunning the PDU")


@case
def truncated_assoc_rq_then_silence(h, port, called):
    p = Peer(h, port)
    p.send(assoc_rq(called)[:40])
    # ARTIM (configured short for this test) ends it: transport closed, no PDU needed
    if not p.expect_closed(timeout=15):
        raise AssertionError("half an A-ASSOCIATE-RQ kept the connection open past ARTIM")


@case
def silent_connection_closed_by_artim(h, port, called):
    p = Peer(h, port)
    if not p.expect_closed(timeout=15):
        raise AssertionError("idle connection in Sta2 not closed by ARTIM")


@case
def negotiation_results(h, port, called):
    p, ac = associate(h, port, called, contexts=[
        (1, VERIFICATION, [IMPLICIT]),
        (3, CT_STORAGE, [b"1.2.840.10008.1.2.4.50", EXPLICIT, IMPLICIT]),
        (5, b"1.2.3.4.5.6.7", [IMPLICIT]),
        (7, CT_STORAGE, [b"1.2.840.10008.1.2.99"]),
    ])
    res = pctx_results(ac)
    want = {1: (0, IMPLICIT), 3: (0, EXPLICIT), 5: (3, None), 7: (4, None)}
    for cid, (result, ts) in want.items():
        if cid not in res or res[cid][0] != result or (ts and res[cid][1].rstrip(b"\0") != ts):
            raise AssertionError(f"context {cid}: got {res.get(cid)}, want {result} {ts}")
    p.send(pdu(0x05, b"\0" * 4))
    r = p.recv_pdu()
    if r is None or r[0] != 0x06:
        raise AssertionError(f"A-RELEASE-RQ answered with {r!r}")


@case
def echo_then_release(h, port, called):
    p, _ = associate(h, port, called)
    p.send(pdata(1, 3, command(0x0030, 7, VERIFICATION)))
    r = p.recv_pdu()
    if r is None or r[0] != 0x04 or dimse_status(r[1]) != 0:
        raise AssertionError(f"C-ECHO answered with {r!r}")
    p.send(pdu(0x05, b"\0" * 4))
    r = p.recv_pdu()
    if r is None or r[0] != 0x06:
        raise AssertionError(f"release answered with {r!r}")


@case
def command_fragmented_in_one_byte_pdvs(h, port, called):
    p, _ = associate(h, port, called)
    cmd = command(0x0030, 9, VERIFICATION)
    for i, b in enumerate(cmd):
        p.send(pdata(1, 1 | (2 if i == len(cmd) - 1 else 0), bytes([b])))
    r = p.recv_pdu()
    if r is None or r[0] != 0x04 or dimse_status(r[1]) != 0:
        raise AssertionError(f"fragmented C-ECHO answered with {r!r}")


@case
def unknown_dimse_command_gets_failure(h, port, called):
    p, _ = associate(h, port, called)
    p.send(pdata(1, 3, command(0x0020, 11, VERIFICATION)))  # C-FIND-RQ, no dataset
    r = p.recv_pdu()
    st = dimse_status(r[1]) if r and r[0] == 0x04 else None
    if st is None or st == 0 or st < 0x0100:
        raise AssertionError(f"C-FIND got {r!r} (status {st})")
    p.send(pdata(1, 3, command(0x0030, 12, VERIFICATION)))
    r = p.recv_pdu()
    if r is None or dimse_status(r[1]) != 0:
        raise AssertionError("association unusable after an unknown command")


@case
def second_assoc_rq_in_sta6(h, port, called):
    p, _ = associate(h, port, called)
    p.send(assoc_rq(called))
    expect_abort(p, 2, 2, "A-ASSOCIATE-RQ in Sta6 (AA-8, unexpected PDU)")


@case
def unknown_pdu_in_sta6(h, port, called):
    p, _ = associate(h, port, called)
    p.send(pdu(0x0D, b"\0" * 4))
    expect_abort(p, 2, 1, "unrecognized PDU in Sta6 (AA-8)")


@case
def release_rp_in_sta6(h, port, called):
    p, _ = associate(h, port, called)
    p.send(pdu(0x06, b"\0" * 4))
    expect_abort(p, 2, 2, "A-RELEASE-RP in Sta6 (AA-8)")


@case
def pdv_on_unaccepted_context(h, port, called):
    p, _ = associate(h, port, called)
    p.send(pdata(9, 3, command(0x0030, 1, VERIFICATION)))
    expect_abort(p, 2, None, "PDV on a context never proposed")


@case
def dataset_before_command(h, port, called):
    p, _ = associate(h, port, called)
    p.send(pdata(3, 2, b"\x08\x00\x18\x00"))
    expect_abort(p, 2, None, "dataset PDV without a command")


@case
def pdv_length_overruns_pdu(h, port, called):
    p, _ = associate(h, port, called)
    p.send(pdu(0x04, struct.pack(">IBB", 5000, 1, 3) + b"\0" * 10))
    expect_abort(p, 2, None, "PDV item longer than its PDU")


@case
def pdu_over_negotiated_max(h, port, called):
    p, ac = associate(h, port, called)
    p.send(struct.pack(">BBI", 4, 0, 64 * 1024 * 1024))
    expect_abort(p, 2, None, "P-DATA over our maximum length")


@case
def store_with_mismatched_instance_uid(h, port, called):
    p, _ = associate(h, port, called)
    inst = b"1.2.3.4.5.6.7.8.1"
    p.send(pdata(3, 3, command(0x0001, 21, CT_STORAGE, has_ds=True, sop_inst=inst)))
    ds = (struct.pack("<HH2sH", 8, 0x16, b"UI", len(CT_STORAGE) + 1) + CT_STORAGE + b"\0" +
          struct.pack("<HH2sH", 8, 0x18, b"UI", 18) + b"1.2.3.4.5.6.7.8.99" +
          struct.pack("<HH2sH", 0x20, 0x0D, b"UI", 6) + b"1.2.3\0" +
          struct.pack("<HH2sH", 0x20, 0x0E, b"UI", 6) + b"1.2.4\0")
    p.send(pdata(3, 2, ds))
    r = p.recv_pdu()
    st = dimse_status(r[1]) if r and r[0] == 0x04 else None
    if st is None or st == 0 or (st & 0xF000) not in (0xA000, 0xC000):
        raise AssertionError(f"mismatched SOP Instance UID got {r!r} (status {st})")


@case
def store_with_traversal_uid(h, port, called):
    p, _ = associate(h, port, called)
    inst = b"../../etc/passwd"
    p.send(pdata(3, 3, command(0x0001, 22, CT_STORAGE, has_ds=True, sop_inst=inst)))
    p.send(pdata(3, 2, struct.pack("<HH2sH", 8, 0x18, b"UI", 16) + inst))
    r = p.recv_pdu()
    st = dimse_status(r[1]) if r and r[0] == 0x04 else None
    if st is None or st == 0:
        raise AssertionError(f"path-like SOP Instance UID got {r!r} (status {st})")


@case
def abort_mid_dataset_then_next_peer_served(h, port, called):
    p, _ = associate(h, port, called)
    inst = b"1.2.826.0.1.3680043.9.9999.1"
    p.send(pdata(3, 3, command(0x0001, 23, CT_STORAGE, has_ds=True, sop_inst=inst)))
    p.send(pdata(3, 0, struct.pack("<HH2sH", 8, 0x18, b"UI", 28) + inst))
    p.send(pdu(0x07, b"\0\0\0\0"))
    p.close()
    q, _ = associate(h, port, called)
    q.send(pdata(1, 3, command(0x0030, 1, VERIFICATION)))
    r = q.recv_pdu()
    if r is None or dimse_status(r[1]) != 0:
        raise AssertionError("server not serving after a peer aborted mid-dataset")


@case
def slow_byte_by_byte_association(h, port, called):
    p = Peer(h, port)
    for b in assoc_rq(called):
        p.send(bytes([b]))
    r = p.recv_pdu()
    if r is None or r[0] != 0x02:
        raise AssertionError(f"byte-by-byte A-ASSOCIATE-RQ answered with {r!r}")


def main():
    host, port, called = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    names = sys.argv[4:] or list(CASES)
    failed = 0
    for n in names:
        t0 = time.time()
        try:
            CASES[n](host, port, called)
            print(f"ok   {n} ({time.time() - t0:.2f}s)")
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {n}: {e}")
    print(f"{len(names) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
