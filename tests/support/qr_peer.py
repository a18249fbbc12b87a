#!/usr/bin/python3
"""A small Query/Retrieve SCU for the tests, speaking DIMSE byte by byte (PS3.7, PS3.8): hostile
identifiers (each must get its documented status while the association goes on) and a C-GET
cancelled after its first sub-operation. Standard library only; reuses pdu_peer.py's framing.

    qr_peer.py HOST PORT CALLED_AE CALLING_AE CASE [ARG]
      malformed      an identifier that is no dataset               -> A900, then C-ECHO works
      relational     a STUDY query matching on a SERIES-level key... -> C001 (relational)
      charset        Specific Character Set ISO 2022 IR 87           -> C002
      level          no Query/Retrieve Level                        -> A900
      get_cancel UID C-GET of study UID, C-CANCEL after the first C-STORE -> FE00, counts
      get_slow UID   C-GET of study UID, reading slowly (the core must not buffer)
      get_implicit UID DIR  C-GET of study UID taking Implicit VR LE only; datasets to DIR/N.raw
      get_mute UID   C-GET of study UID that never answers its first C-STORE: the core must abort
                     the association (idle timeout), not wait for ever
    qr_peer.py store_scp PORT DELAY_S
      a Storage SCP on 127.0.0.1:PORT (every context accepted in its first transfer syntax)
      that answers each C-STORE after DELAY_S seconds: a slow move destination
Prints what it got; exit 0 when it is what the conformance statement says."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pdu_peer import APP_CTX, EXPLICIT, IMPLICIT, VERIFICATION, Peer, item, pdata, pdu  # noqa: E402

STUDY_FIND = b"1.2.840.10008.5.1.4.1.2.2.1"
STUDY_GET = b"1.2.840.10008.5.1.4.1.2.2.3"
CT = b"1.2.840.10008.5.1.4.1.1.2"
MR = b"1.2.840.10008.5.1.4.1.1.4"


def ae(s):
    return s.encode().ljust(16)


def assoc_rq(called, calling, contexts, roles=()):
    body = struct.pack(">HH", 1, 0) + ae(called) + ae(calling) + b"\0" * 32 + item(0x10, APP_CTX)
    for cid, abstract, tss in contexts:
        sub = item(0x30, abstract) + b"".join(item(0x40, t) for t in tss)
        body += item(0x20, struct.pack(">BBBB", cid, 0, 0, 0) + sub)
    ui = item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.3.4") + item(0x55, b"QR_PEER")
    for uid in roles:  # SCP/SCU role selection (PS3.7 D.3.3.4): we take the SCP role
        ui += item(0x54, struct.pack(">H", len(uid)) + uid + b"\x00\x01")
    return pdu(0x01, body + item(0x50, ui))


def el(g, e, value, vr=None):
    """An Explicit VR LE element (identifier datasets)."""
    if len(value) % 2:
        value += b"\0" if vr == b"UI" else b" "
    return struct.pack("<HH", g, e) + vr + struct.pack("<H", len(value)) + value


def cmd(field, msg_id, sop_class, has_ds, extra=b""):
    def us(e, v):
        return struct.pack("<HHIH", 0, e, 2, v)

    def ui(e, s):
        if len(s) % 2:
            s += b"\0"
        return struct.pack("<HHI", 0, e, len(s)) + s
    body = b""
    if sop_class:
        body += ui(0x0002, sop_class)
    body += us(0x0100, field)
    if field == 0x0FFF:
        body += us(0x0120, msg_id)
    else:
        body += us(0x0110, msg_id)
    body += extra + us(0x0800, 0x0000 if has_ds else 0x0101)
    # elements must ascend: sort them by element number
    elems, i = [], 0
    while i < len(body):
        g, e, n = struct.unpack("<HHI", body[i:i + 8])
        elems.append((e, body[i:i + 8 + n]))
        i += 8 + n
    body = b"".join(b for _, b in sorted(elems))
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def parse_cmd(b):
    out, i = {}, 12
    while i + 8 <= len(b):
        g, e, n = struct.unpack("<HHI", b[i:i + 8])
        out[e] = b[i + 8:i + 8 + n]
        i += 8 + n
    return out


def us_of(c, e):
    return struct.unpack("<H", c[e])[0] if e in c else None


class Scu:
    def __init__(self, host, port, called, calling, contexts, roles=()):
        self.p = Peer(host, port)
        self.p.send(assoc_rq(called, calling, contexts, roles))
        r = self.p.recv_pdu()
        if r is None or r[0] != 0x02:
            raise AssertionError(f"association not accepted: {r!r}")
        self.pending = []  # PDVs of a P-DATA not handed out yet

    def send_msg(self, pcid, command, dataset=None):
        self.p.send(pdata(pcid, 0x03, command))
        if dataset is not None:
            for off in range(0, max(len(dataset), 1), 8000):
                last = off + 8000 >= len(dataset)
                self.p.send(pdata(pcid, 0x02 if last else 0x00, dataset[off:off + 8000]))

    def recv_msg(self, timeout=30):
        """(pcid, command dict, dataset bytes or None)."""
        cmd_b, ds, pcid, want_ds = b"", b"", None, None
        while True:
            while not self.pending:
                r = self.p.recv_pdu(timeout)
                if r is None:
                    raise AssertionError("connection closed")
                if r[0] == 0x05:
                    raise Released()
                if r[0] != 0x04:
                    raise AssertionError(f"unexpected PDU type {r[0]:#x}")
                b, i = r[1], 0
                while i + 6 <= len(b):
                    n = struct.unpack(">I", b[i:i + 4])[0]
                    self.pending.append((b[i + 4], b[i + 5], b[i + 6:i + 4 + n]))
                    i += 4 + n
            pc, mch, data = self.pending.pop(0)
            pcid = pc
            if mch & 1:
                cmd_b += data
                if mch & 2:
                    c = parse_cmd(cmd_b)
                    want_ds = us_of(c, 0x0800) != 0x0101
                    if not want_ds:
                        return pcid, c, None
            else:
                ds += data
                if mch & 2:
                    return pcid, parse_cmd(cmd_b), ds

    def echo(self):
        self.send_msg(1, cmd(0x0030, 99, VERIFICATION, False))
        _, c, _ = self.recv_msg()
        return us_of(c, 0x0900)


def find_status(h, port, called, calling, ident):
    s = Scu(h, port, called, calling, [(1, VERIFICATION, [IMPLICIT]), (3, STUDY_FIND, [EXPLICIT])])
    s.send_msg(3, cmd(0x0020, 7, STUDY_FIND, True), ident)
    statuses = []
    while True:
        _, c, _ = s.recv_msg()
        st = us_of(c, 0x0900)
        statuses.append(st)
        if st not in (0xFF00, 0xFF01):
            break
    comment = c.get(0x0902, b"").rstrip(b" \0").decode()
    echo = s.echo()
    return statuses[-1], comment, echo


def expect_find(h, port, called, calling, ident, want, what):
    st, comment, echo = find_status(h, port, called, calling, ident)
    print(f"{what}: status {st:04X} ({comment}); C-ECHO after it: {echo:04X}")
    if st != want or echo != 0:
        raise SystemExit(f"FAIL {what}: want {want:04X} and an echo 0000")


def get(h, port, called, calling, study, cancel_after=None, slow=0.0, ts=EXPLICIT, out=None):
    s = Scu(h, port, called, calling, [(1, STUDY_GET, [EXPLICIT]), (3, CT, [ts]), (5, MR, [ts])],
            roles=[CT, MR])
    ident = el(0x0008, 0x0052, b"STUDY", b"CS") + el(0x0020, 0x000D, study.encode(), b"UI")
    s.send_msg(1, cmd(0x0010, 5, STUDY_GET, True), ident)
    stores = 0
    while True:
        pcid, c, ds = s.recv_msg(timeout=60)
        field = us_of(c, 0x0100)
        if field == 0x0001:  # C-STORE-RQ: answer success
            stores += 1
            if out:
                with open(os.path.join(out, "%d.raw" % stores), "wb") as f:
                    f.write(ds)
            if slow:
                time.sleep(slow)
            mid = us_of(c, 0x0110)
            sop = c[0x1000]
            rsp = cmd(0x8001, 0, c[0x0002].rstrip(b"\0"), False, struct.pack("<HHIH", 0, 0x0120, 2, mid) +
                      struct.pack("<HHIH", 0, 0x0900, 2, 0) +
                      struct.pack("<HHI", 0, 0x1000, len(sop)) + sop)
            s.send_msg(pcid, rsp)
            if cancel_after and stores == cancel_after:
                s.send_msg(1, cmd(0x0FFF, 5, None, False))
            continue
        st = us_of(c, 0x0900)
        if st in (0xFF00, 0xFF01):
            continue
        counts = [us_of(c, e) for e in (0x1020, 0x1021, 0x1022, 0x1023)]
        return st, stores, counts


class Released(Exception):
    pass


def serve_one(conn, delay):
    p = Peer.__new__(Peer)
    p.s = conn
    r = p.recv_pdu(60)
    if r is None or r[0] != 0x01:
        return
    body, i, acs = r[1], 68, b""
    while i + 4 <= len(body):
        t, n = body[i], struct.unpack(">H", body[i + 2:i + 4])[0]
        b = body[i + 4:i + 4 + n]
        if t == 0x20:
            j, ts = 4, None
            while j + 4 <= len(b):
                st, sn = b[j], struct.unpack(">H", b[j + 2:j + 4])[0]
                if st == 0x40 and ts is None:
                    ts = b[j + 4:j + 4 + sn]
                j += 4 + sn
            acs += item(0x21, struct.pack(">BBBB", b[0], 0, 0, 0) + item(0x40, ts))
        i += 4 + n
    ac = body[:68] + item(0x10, APP_CTX) + acs + item(0x50, item(0x51, struct.pack(">I", 65536)))
    p.send(pdu(0x02, ac))
    scu = Scu.__new__(Scu)
    scu.p, scu.pending = p, []
    stores = 0
    try:
        while True:
            pcid, c, _ = scu.recv_msg(timeout=60)
            if us_of(c, 0x0100) != 0x0001:
                continue
            stores += 1
            time.sleep(delay)
            sop, cls, mid = c[0x1000], c[0x0002], us_of(c, 0x0110)
            rsp = cmd(0x8001, 0, cls.rstrip(b"\0"), False,
                      struct.pack("<HHIH", 0, 0x0120, 2, mid) +
                      struct.pack("<HHIH", 0, 0x0900, 2, 0) +
                      struct.pack("<HHI", 0, 0x1000, len(sop)) + sop)
            scu.send_msg(pcid, rsp)
    except Released:
        p.send(pdu(0x06, b"\0" * 4))
    except (AssertionError, OSError):
        pass
    print(f"store_scp: {stores} stores", flush=True)
    conn.close()


def store_scp(port, delay):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    while True:
        conn, _ = ls.accept()
        serve_one(conn, delay)


def main():
    if sys.argv[1] == "store_scp":
        store_scp(int(sys.argv[2]), float(sys.argv[3]))
        return
    h, port, called, calling, case = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], \
        sys.argv[5]
    arg = sys.argv[6] if len(sys.argv) > 6 else ""
    lvl = el(0x0008, 0x0052, b"STUDY", b"CS")
    if case == "malformed":
        expect_find(h, port, called, calling, b"\x08\x00\x52\x00CS\xff\x7fSTUDY", 0xA900,
                    "malformed identifier")
    elif case == "relational":
        ident = lvl + el(0x0008, 0x0060, b"CT", b"CS") + el(0x0020, 0x000D, b"", b"UI")
        # Modality is a SERIES key: below the level is A900; an upper-level key is relational
        expect_find(h, port, called, calling,
                    el(0x0008, 0x0052, b"SERIES", b"CS") + el(0x0010, 0x0010, b"X*", b"PN") +
                    el(0x0020, 0x000D, b"1.2.3", b"UI") + el(0x0020, 0x000E, b"", b"UI"),
                    0xC001, "relational query")
        expect_find(h, port, called, calling, ident, 0xA900, "key below the level")
    elif case == "charset":
        ident = el(0x0008, 0x0005, b"\\ISO 2022 IR 87", b"CS") + lvl + \
            el(0x0010, 0x0010, b"X*", b"PN") + el(0x0020, 0x000D, b"", b"UI")
        expect_find(h, port, called, calling, ident, 0xC002, "unsupported character set")
    elif case == "level":
        expect_find(h, port, called, calling, el(0x0020, 0x000D, b"", b"UI"), 0xA900,
                    "no level")
    elif case == "get_cancel":
        st, stores, counts = get(h, port, called, calling, arg, cancel_after=1)
        print(f"C-GET cancelled: status {st:04X}, stores {stores}, counts {counts}")
        if st != 0xFE00 or counts[0] in (None, 0) or counts[1] != stores:
            raise SystemExit("FAIL: want FE00 with remaining > 0 and completed = stores")
    elif case == "get_implicit":
        st, stores, counts = get(h, port, called, calling, arg, ts=IMPLICIT, out=sys.argv[7])
        print(f"C-GET, Implicit VR only: status {st:04X}, stores {stores}")
        if st != 0 or stores == 0:
            raise SystemExit("FAIL")
    elif case == "get_mute":
        s = Scu(h, port, called, calling, [(1, STUDY_GET, [EXPLICIT]), (3, CT, [EXPLICIT])],
                roles=[CT])
        ident = el(0x0008, 0x0052, b"STUDY", b"CS") + el(0x0020, 0x000D, arg.encode(), b"UI")
        s.send_msg(1, cmd(0x0010, 5, STUDY_GET, True), ident)
        t0 = time.time()
        try:
            while True:
                s.recv_msg(timeout=120)  # the C-STORE-RQ, then nothing we answer
        except (AssertionError, OSError) as e:
            print(f"C-GET never answered: the core ended it after {time.time() - t0:.1f} s ({e})")
    elif case == "get_slow":
        st, stores, counts = get(h, port, called, calling, arg, slow=0.5)
        print(f"C-GET slow: status {st:04X}, stores {stores}, counts {counts}")
        if st != 0:
            raise SystemExit("FAIL")
    else:
        raise SystemExit(f"unknown case {case}")


if __name__ == "__main__":
    main()
