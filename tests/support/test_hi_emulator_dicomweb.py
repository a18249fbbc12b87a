#!/usr/bin/env python3
"""Tests THE HealthImaging EMULATOR's DICOMweb read side (tests/support/hi_emulator.py; not AWS)
with independent clients: botocore's SigV4Auth for every request, boto3's STS client for the
AssumeRole shim, Debian's pydicom (/usr/bin/python3) to check transcoded instances, and
tests/support/gen_data.py for pydicom-written files. Run by
tests/integration/test_hi_emulator_dicomweb.sh; pyenv python3 (moto, boto3).

    test_hi_emulator_dicomweb.py [--keep]

Starts moto and the emulator with aws_env.py in a temporary directory, stores instances through
STOW-RS, an import job and POST /_emulator/load, then checks QIDO-RS at each level (matching,
ordering, paging, the result cap), WADO-RS (bodies byte-identical to what was stored, the
implicit -> explicit VR transcoding, multipart, chunked, metadata, frames, bulk data, imageSetId
and non-primary image sets, a 128 MiB instance streamed with bounded memory), the STS shim's
refusals, study-scoped session policies (403 AccessDeniedException out of scope),
ExpiredTokenException, throttling and outage, and the index reloaded by a restarted emulator.
Every wait is bounded; processes are stopped by PID.
"""

import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
DEADLINE = time.time() + 600
PY = sys.executable
SYS_PY = "/usr/bin/python3"
ELE, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
READ_ACTIONS = ["SearchDICOMStudies", "SearchDICOMSeries", "SearchDICOMInstances",
                "GetDICOMInstance", "GetDICOMInstanceMetadata", "GetDICOMInstanceFrames",
                "GetDICOMSeriesMetadata", "GetDICOMBulkdata"]

passed = []


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def ok(msg):
    passed.append(msg)
    print(f"ok: {msg}", flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)


def bounded():
    if time.time() > DEADLINE:
        fail("the test ran past its 10-minute bound")


# ---------------------------------------------------------------- synthetic Part-10 writer

def uid():
    return "2.25." + str(int.from_bytes(secrets.token_bytes(16), "big"))


def _pad(b, vr):
    if len(b) % 2:
        b += b"\0" if vr in ("UI", "OB") else b" "
    return b


LONG = {"OB", "OW", "SQ", "UN", "UT", "UR", "UC"}


def _el(tag, vr, value, explicit):
    g, e = tag >> 16, tag & 0xFFFF
    if vr == "SQ":
        body = b""
        for item in value:
            ib = b"".join(_el(t, v, x, explicit) for t, v, x in sorted(item))
            body += struct.pack("<HHI", 0xFFFE, 0xE000, len(ib)) + ib
    elif vr == "US":
        body = struct.pack("<H", value)
    elif isinstance(value, bytes):
        body = _pad(value, vr)
    else:
        body = _pad(str(value).encode(), vr)
    if not explicit:
        return struct.pack("<HHI", g, e, len(body)) + body
    if vr in LONG:
        return struct.pack("<HH2sHI", g, e, vr.encode(), 0, len(body)) + body
    return struct.pack("<HH2sH", g, e, vr.encode(), len(body)) + body


def write_p10(path, ts, a):
    """a: dict of attribute values (see make_set); synthetic, no patient data."""
    rows, cols, frames = a.get("rows", 8), a.get("cols", 8), a.get("frames", 1)
    pixels = bytes((i * 7 + a["inst"]) % 256 for i in range(rows * cols * 2 * frames))
    els = [
        (0x00080016, "UI", a["cls"]), (0x00080018, "UI", a["sop"]),
        (0x00080020, "DA", a["date"]), (0x00080030, "TM", "101500"),
        (0x00080050, "SH", a.get("acc", "ACC1")), (0x00080060, "CS", a["mod"]),
        (0x00080090, "PN", ""), (0x00081030, "LO", a.get("desc", "SYNTHETIC STUDY")),
        (0x0008103E, "LO", "SYNTHETIC SERIES"),
        (0x00081110, "SQ", [[(0x00081150, "UI", "1.2.840.10008.3.1.2.3.1"),
                             (0x00081155, "UI", a["study"])]]),
        (0x00100010, "PN", a["pn"]), (0x00100020, "LO", a["pid"]),
        (0x00100030, "DA", "19000101"), (0x00100040, "CS", "O"),
        (0x0020000D, "UI", a["study"]), (0x0020000E, "UI", a["series"]),
        (0x00200010, "SH", "1"), (0x00200011, "IS", str(a["sn"])),
        (0x00200013, "IS", str(a["inst"])), (0x00280002, "US", 1),
        (0x00280004, "CS", "MONOCHROME2"), (0x00280008, "IS", str(frames)),
        (0x00280010, "US", rows), (0x00280011, "US", cols), (0x00280100, "US", 16),
        (0x00280101, "US", 12), (0x00280102, "US", 11), (0x00280103, "US", 0),
        (0x7FE00010, "OW", pixels)]
    explicit = ts != IMPLICIT
    body = b"".join(_el(t, v, x, explicit) for t, v, x in sorted(els, key=lambda e: e[0]))
    meta_els = [(0x00020001, "OB", b"\x00\x01"), (0x00020002, "UI", a["cls"]),
                (0x00020003, "UI", a["sop"]), (0x00020010, "UI", ts),
                (0x00020012, "UI", "1.2.826.0.1.3680043.9.7433.1.9")]
    meta = b"".join(_el(t, v, x, True) for t, v, x in meta_els)
    with open(path, "wb") as f:
        f.write(b"\0" * 128 + b"DICM" + _el(0x00020000, "UL", struct.pack("<I", len(meta)), True)
                + meta + body)
    return pixels


# ---------------------------------------------------------------- signed HTTP

class Client:
    def __init__(self, endpoint, region, akid, secret, token=None):
        u = urllib.parse.urlsplit(endpoint)
        self.host, self.port, self.region = u.hostname, u.port, region
        self.akid, self.secret, self.token = akid, secret, token

    def request(self, method, path, body=b"", headers=None, sink=None, service="medical-imaging"):
        """-> (status, headers dict lower-cased, body bytes). sink: write the body there."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        bounded()
        # AWS canonicalises the query with everything but RFC 3986 unreserved characters
        # percent-encoded, and botocore signs the query as sent: send it encoded that way
        p, _, q = path.partition("?")
        if q:
            q = "&".join(urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~") + "=" +
                         urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~")
                         for k, _, v in (x.partition("=") for x in q.split("&")))
            path = f"{p}?{q}"
        url = f"http://{self.host}:{self.port}{path}"
        req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        SigV4Auth(Credentials(self.akid, self.secret, self.token), service,
                  self.region).add_auth(req)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body=body or None, headers=dict(req.headers))
            r = conn.getresponse()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if sink is not None:
                while True:
                    b = r.read(1024 * 1024)
                    if not b:
                        break
                    sink.write(b)
                return r.status, hdrs, b""
            return r.status, hdrs, r.read()
        finally:
            conn.close()

    def get(self, path, accept=None, **kw):
        return self.request("GET", path, headers={"Accept": accept} if accept else None, **kw)

    def json(self, path, expect=200):
        st, h, b = self.get(path, "application/dicom+json")
        check(st == expect, f"GET {path}: {st} {b[:300]!r} (expected {expect})")
        return json.loads(b) if b else None


def error_type(h):
    return (h.get("x-amzn-errortype") or "").split(":")[0]


def val(obj, tag):
    v = (obj.get(tag) or {}).get("Value") or [None]
    return v[0]["Alphabetic"] if isinstance(v[0], dict) else v[0]


def multipart_parts(ctype, body):
    b = ctype.split("boundary=")[1].split(";")[0].strip('"').encode()
    parts = []
    for chunk in body.split(b"--" + b)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        parts.append((head, data[:-2] if data.endswith(b"\r\n") else data))
    return parts


def control(c, path, obj):
    conn = http.client.HTTPConnection(c.host, c.port, timeout=60)
    try:
        conn.request("POST", path, body=json.dumps(obj).encode(),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        check(r.status == 200, f"control {path}: {r.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


def control_get(c, path):
    conn = http.client.HTTPConnection(c.host, c.port, timeout=60)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1024 * 1024), b""):
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------- the test

def main():
    keep = "--keep" in sys.argv
    work = tempfile.mkdtemp(prefix="hi-dicomweb-")
    env_dir = os.path.join(work, "env")
    started = False
    try:
        r = subprocess.run([PY, os.path.join(HERE, "aws_env.py"), "start", "--dir", env_dir,
                            "--job-delay", "0.2", "--max-lifetime", "900"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fail(f"aws_env start: {r.stderr[-2000:]}")
        started = True
        with open(os.path.join(env_dir, "env.json")) as f:
            env = json.load(f)
        run(env, work)
        restart_check(env, work)
    finally:
        if started:
            subprocess.run([PY, os.path.join(HERE, "aws_env.py"), "stop", "--dir", env_dir],
                           timeout=60)
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"PASS test_hi_emulator_dicomweb ({len(passed)} checks)")


def run(env, work):
    import boto3
    from botocore.config import Config
    region, ds = env["REGION"], env["DATASTORE_ID"]
    acct = env["AWS_ACCOUNT_ID"]
    hi_ep = env["HI_ENDPOINT"]
    admin = Client(hi_ep, region, env["ADMIN_ACCESS_KEY_ID"], env["ADMIN_SECRET_ACCESS_KEY"])
    task = Client(hi_ep, region, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    core = admin  # reads before the reader role exists: the harness's allow-everything user
    D = f"/datastore/{ds}"
    pid_emu = None
    with open(os.path.join(env["AWS_ENV_DIR"], "pids")) as f:
        pids = [int(x) for x in f.read().split()]
    for p in pids:
        with open(f"/proc/{p}/cmdline", "rb") as f:
            if b"hi_emulator.py" in f.read():
                pid_emu = p
    check(pid_emu, "emulator PID not found")
    akw = dict(endpoint_url=env["MOTO_ENDPOINT"], region_name=region,
               aws_access_key_id=env["ADMIN_ACCESS_KEY_ID"],
               aws_secret_access_key=env["ADMIN_SECRET_ACCESS_KEY"])

    # ---- data: study A (2 series: CT explicit x3, MR implicit x2), study B (import job),
    # 7 paging studies (/_emulator/load), pydicom-written files, a 128 MiB instance
    data = os.path.join(work, "data")
    os.makedirs(data)
    A, A1, A2 = uid(), uid(), uid()
    B, B1 = uid(), uid()
    files, pix = {}, {}

    def make(name, ts, **a):
        a.setdefault("sop", uid())
        p = os.path.join(data, name + ".dcm")
        pix[a["sop"]] = write_p10(p, ts, a)
        files[a["sop"]] = p
        return a["sop"]
    a_ct = [make(f"a_ct{i}", ELE, cls=CT, study=A, series=A1, sn=1, inst=i, mod="CT",
                 pn="ALPHA^ONE", pid="P-A", date="20240101") for i in (3, 1, 2)]
    a_mr = [make(f"a_mr{i}", IMPLICIT, cls=MR, study=A, series=A2, sn=2, inst=i, mod="MR",
                 pn="ALPHA^ONE", pid="P-A", date="20240101", frames=2) for i in (1, 2)]
    b_ct = [make(f"b_ct{i}", ELE, cls=CT, study=B, series=B1, sn=1, inst=i, mod="CT",
                 pn="BRAVO^TWO", pid="P-B", date="20230615", frames=3) for i in (1, 2)]
    pages = [make(f"page{i}", ELE, cls=CT, study=uid(), series=uid(), sn=1, inst=1, mod="CT",
                  pn=f"PAGE^N{i}", pid=f"P-PG{i}", date="20220101") for i in range(7)]

    # STOW-RS: study A (an explicit and an implicit series)
    parts = b"".join(b"--BND\r\nContent-Type: application/dicom\r\n\r\n" +
                     open(files[s], "rb").read() + b"\r\n" for s in a_ct + a_mr) + b"--BND--\r\n"
    st, h, body = admin.request("POST", f"{D}/studies", parts, {
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=BND'})
    check(st == 200, f"STOW-RS study A: {st} {body[:300]!r}")
    # import job: study B from moto S3
    s3 = boto3.client("s3", **akw)
    for s in b_ct:
        s3.upload_file(files[s], env["BUCKET"], f"{env['S3_PREFIX']}/b/{s}.dcm")
    mi = boto3.client("medical-imaging", endpoint_url=hi_ep, region_name=region,
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    job = mi.start_dicom_import_job(
        datastoreId=ds, dataAccessRoleArn=env["ROLE_ARN"], clientToken=secrets.token_hex(8),
        inputS3Uri=f"s3://{env['BUCKET']}/{env['S3_PREFIX']}/b/",
        outputS3Uri=f"s3://{env['BUCKET']}/{env['OUTPUT_PREFIX']}/")["jobId"]
    while True:
        bounded()
        jst = mi.get_dicom_import_job(datastoreId=ds, jobId=job)["jobProperties"]["jobStatus"]
        if jst in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.2)
    check(jst == "COMPLETED", f"import job {jst}")
    # load: the paging studies, one at a time so that their last-update order is known
    for s in pages:
        time.sleep(0.01)
        out = control(admin, "/_emulator/load", {"paths": [files[s]]})
        check(len(out["loaded"]) == 1, f"load: {out}")
    gen = os.path.join(work, "gen")
    for ts, frames in (("implicit", 2), ("rle", 1)):
        subprocess.run([SYS_PY, os.path.join(HERE, "gen_data.py"), "--out", f"{gen}/{ts}",
                        "--count", "1", "--ts", ts, "--rows", "32", "--cols", "32",
                        "--frames", str(frames), "--modality", "CT"], check=True,
                       capture_output=True, timeout=120)
    out = control(admin, "/_emulator/load", {"dir": gen})
    check(len(out["loaded"]) == 2 and not out["failed"], f"load gen_data: {out}")
    gen_files = {x["SOPInstanceUID"]: x for x in out["loaded"]}
    inst = control_get(admin, "/_emulator/instances")["instances"]
    for s in a_ct + a_mr + b_ct + pages:
        stored = inst[s]["stored"]
        check(len(stored) == 1 and stored[0]["isPrimary"] and os.path.exists(stored[0]["path"]),
              f"instance {s} not stored on disk: {inst[s]}")
        with open(stored[0]["path"], "rb") as f1, open(files[s], "rb") as f2:
            check(f1.read() == f2.read(), f"stored file of {s} differs from what was sent")
    ok("instances from STOW-RS, an import job and /_emulator/load kept byte-identical on disk")

    # ---- QIDO-RS: studies
    st, h, _b = task.get(f"{D}/studies")
    check(st == 403 and error_type(h) == "AccessDeniedException",
          f"the task policy has no DICOMweb reads, yet SearchDICOMStudies gave {st}")
    allst = core.json(f"{D}/studies")
    check(len(allst) == 2 + 7 + 2, f"{len(allst)} studies")
    pg_order = [val(x, "00100020") for x in allst if (val(x, "00100020") or "").startswith("P-PG")]
    check(pg_order == [f"P-PG{i}" for i in range(6, -1, -1)],
          f"studies not ordered by last update, latest first: {pg_order}")
    a = core.json(f"{D}/studies?PatientID=P-A")
    check(len(a) == 1 and val(a[0], "0020000D") == A, f"PatientID match: {a}")
    a = a[0]
    check(val(a, "00100010") == "ALPHA^ONE" and a["00201206"]["Value"] == [2] and
          a["00201208"]["Value"] == [5] and a["00080061"]["Value"] == ["CT", "MR"] and
          val(a, "00080020") == "20240101" and
          val(a, "00081190").endswith(f"{D}/studies/{A}"), f"study attributes: {a}")
    check("00081030" not in a, "StudyDescription returned without includefield")
    check(val(core.json(f"{D}/studies?PatientID=P-A&includefield=00081030")[0], "00081030")
          == "SYNTHETIC STUDY", "includefield=00081030")
    check(val(core.json(f"{D}/studies?PatientID=P-A&includefield=StudyDescription")[0],
              "00081030") == "SYNTHETIC STUDY", "includefield by keyword")
    check("00081030" in core.json(f"{D}/studies?PatientID=P-A&includefield=all")[0],
          "includefield=all")
    q = [(f"PatientName=ALPHA%2A", {A}), ("PatientName=%2AONE", {A}),
         ("PatientName=ALPH%3F%5EONE", {A}), ("fuzzymatching=true&PatientName=alph", {A}),
         ("fuzzymatching=true&PatientName=two", {B}), ("PatientName=alph%2A", set()),
         ("StudyDate=20230101-", {A, B}), ("StudyDate=-20230615", None),
         ("StudyDate=20230615", {B}), (f"StudyInstanceUID={A},{B}", {A, B}),
         (f"0020000D={A}", {A}), ("ModalitiesInStudy=MR", {A}), ("PatientID=", None),
         ("PatientID=NOBODY", set())]
    for qs, want in q:
        got = {val(x, "0020000D") for x in core.json(f"{D}/studies?{qs}")}
        if want is None:
            check(len(got) == (10 if qs.startswith("StudyDate") else 11), f"{qs}: {len(got)}")
        else:
            check(got == want, f"study search {qs}: {got} != {want}")
    ok("QIDO studies: single value, wildcards, fuzzy PN, date ranges, UID lists, universal "
       "matching, includefield; ordered by last update; 200 [] for no match")
    for qs, why in (("Modality=CT", "a key AWS does not list for SearchDICOMStudies"),
                    ("limit=1001", "limit over 1000"), ("limit=0", "limit 0"),
                    ("offset=1000001", "offset over 1,000,000"), ("limit=x", "limit not a number"),
                    ("&".join(f"includefield=0010{i:04X}" for i in range(51)),
                     "51 includefield values")):
        st, h, b = core.get(f"{D}/studies?{qs}", "application/dicom+json")
        check(st == 400 and error_type(h) == "ValidationException", f"{why}: {st} {b[:200]!r}")
    check(len(core.json(f"{D}/studies?" + "&".join(f"includefield=0010{i:04X}"
                                                     for i in range(50)))) == 11, "50 includefield")
    control(admin, "/_emulator/config", {"qido_empty_status": 204})
    st, _h, b = core.get(f"{D}/studies?PatientID=NOBODY")
    check(st == 204 and b == b"", f"knob qido_empty_status 204: {st}")
    control(admin, "/_emulator/reset", {})
    ok("QIDO refusals (400 ValidationException): unlisted key, limit, offset, 51 includefield; "
       "the 204 knob")

    # ---- QIDO-RS: series and instances
    se = core.json(f"{D}/studies/{A}/series")
    check([val(x, "0020000E") for x in se] == [A1, A2] and
          [val(x, "00201209") for x in se] == [3, 2] and val(se[1], "00080060") == "MR",
          f"series of A (ordered by Series Number): {se}")
    check("00100020" not in se[0], "study attributes in a hierarchical series search")
    check([val(x, "0020000E") for x in core.json(f"{D}/studies/{A}/series?Modality=MR")] == [A2],
          "series Modality match")
    check(core.json(f"{D}/studies/{B}/series?Modality=MR") == [], "series no match")
    alls = core.json(f"{D}/series?PatientID=P-A")
    check({val(x, "0020000E") for x in alls} == {A1, A2} and
          all(val(x, "00100020") == "P-A" for x in alls), f"all series: {alls}")
    ins = core.json(f"{D}/studies/{A}/series/{A1}/instances")
    check([val(x, "00200013") for x in ins] == [1, 2, 3] and
          all(val(x, "00080016") == CT for x in ins) and
          val(ins[0], "00081190").endswith(f"/series/{A1}/instances/{val(ins[0], '00080018')}"),
          f"instances of A1 (ordered by Instance Number): {ins}")
    check([val(x, "00080018") for x in core.json(
        f"{D}/studies/{A}/series/{A1}/instances?SOPInstanceUID={a_ct[1]}")] == [a_ct[1]],
        "SOPInstanceUID match")
    check(len(core.json(f"{D}/studies/{A}/instances")) == 5, "study instances")
    check({val(x, "00080018") for x in core.json(f"{D}/instances?Modality=MR")} == set(a_mr),
          "all instances Modality=MR")
    full = core.json(f"{D}/studies/{A}/series/{A2}/instances?includefield=all")[0]
    check("00081110" in full and "7FE00010" not in full and val(full, "00280008") == 2,
          f"instance includefield=all: {sorted(full)}")
    ok("QIDO series and instances: hierarchical and relational forms, ordering, matching, "
       "includefield=all without Pixel Data")

    # ---- paging and the cap
    seen = []
    for off in (0, 3, 6, 9):
        page = core.json(f"{D}/studies?PatientName=PAGE%2A&limit=3&offset={off}")
        seen.append([val(x, "00100020") for x in page])
    check([len(p) for p in seen] == [3, 3, 1, 0] and
          sorted(sum(seen, [])) == sorted(f"P-PG{i}" for i in range(7)), f"pages: {seen}")
    control(admin, "/_emulator/config", {"qido_max_results": 5, "qido_default_limit": 2})
    capped = []
    for off in (0, 2, 4, 6):
        capped.append([val(x, "00100020") for x in core.json(
            f"{D}/studies?PatientName=PAGE%2A&offset={off}")])
    check([len(p) for p in capped] == [2, 2, 1, 0] and
          sum(capped, []) == [f"P-PG{i}" for i in range(6, 1, -1)],
          f"cap of 5 with default limit 2: {capped}")
    check(len(core.json(f"{D}/studies?limit=1000")) == 5, "cap applies to a single page too")
    control(admin, "/_emulator/reset", {})
    check(len(core.json(f"{D}/studies")) == 11, "reset restores the cap")
    ok("paging with limit/offset; matches past the cap are never returned (knob lowered to 5)")

    # ---- WADO-RS: instances
    def inst_path(study, series, sop):
        return f"{D}/studies/{study}/series/{series}/instances/{sop}"
    for sop, (study, series) in [(a_ct[0], (A, A1)), (a_mr[0], (A, A2)), (b_ct[1], (B, B1))]:
        st, h, b = core.get(inst_path(study, series, sop), "application/dicom; transfer-syntax=*")
        check(st == 200 and b == open(files[sop], "rb").read() and
              h["content-length"] == str(len(b)), f"transfer-syntax=* for {sop}: {st}")
    st, h, b = core.get(inst_path(A, A1, a_ct[0]))
    check(st == 200 and b == open(files[a_ct[0]], "rb").read() and
          h["content-type"] == f"application/dicom; transfer-syntax={ELE}",
          f"default for an explicit VR LE instance: {st} {h}")
    st, h, b = core.get(inst_path(A, A2, a_mr[0]), "application/dicom")
    check(st == 200 and f"transfer-syntax={ELE}" in h["content-type"] and
          b != open(files[a_mr[0]], "rb").read(), f"implicit instance by default: {st} {h}")
    transcoded = os.path.join(work, "mr_ele.dcm")
    with open(transcoded, "wb") as f:
        f.write(b)
    control(admin, "/_emulator/config", {"wado_chunked": True})
    st, h, b2 = core.get(inst_path(A, A2, a_mr[0]))
    check(st == 200 and h.get("transfer-encoding") == "chunked" and b2 == b,
          f"chunked knob: {st} {h}")
    control(admin, "/_emulator/reset", {})
    st, h, b = core.get(inst_path(A, A1, a_ct[1]), 'multipart/related; type="application/dicom"')
    mp = multipart_parts(h.get("content-type", ""), b)
    check(st == 200 and len(mp) == 1 and mp[0][1] == open(files[a_ct[1]], "rb").read() and
          b"transfer-syntax=" + ELE.encode() in mp[0][0], f"multipart: {st} {h}")
    rle_sop = next(s for s, x in gen_files.items() if "rle" in x["path"])
    imp_sop = next(s for s, x in gen_files.items() if "implicit" in x["path"])
    rle, impl = gen_files[rle_sop], gen_files[imp_sop]
    st, h, b = core.get(inst_path(rle["StudyInstanceUID"], rle["SeriesInstanceUID"], rle_sop))
    check(st == 406 and error_type(h) == "NotAcceptableException", f"RLE to ELE: {st}")
    st, h, b = core.get(inst_path(rle["StudyInstanceUID"], rle["SeriesInstanceUID"], rle_sop),
                        "application/dicom; transfer-syntax=*")
    check(st == 200 and b == open(rle["path"], "rb").read() and
          "transfer-syntax=1.2.840.10008.1.2.5" in h["content-type"], "RLE as stored")
    gen_ele = os.path.join(work, "gen_ele.dcm")
    st, h, _b = core.get(inst_path(impl["StudyInstanceUID"], impl["SeriesInstanceUID"], imp_sop),
                         sink=open(gen_ele, "wb"))
    check(st == 200, f"pydicom implicit file by default: {st}")
    cmp = subprocess.run([SYS_PY, "-c", r"""
import sys, pydicom
for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):
    a, b = pydicom.dcmread(src), pydicom.dcmread(dst)
    assert b.file_meta.TransferSyntaxUID == '1.2.840.10008.1.2.1', b.file_meta.TransferSyntaxUID
    assert not b.is_implicit_VR
    assert [e.tag for e in a] == [e.tag for e in b]
    for e in a:
        assert e.value == b[e.tag].value, e
print('same')
""", files[a_mr[0]], transcoded, impl["path"], gen_ele], capture_output=True, text=True,
        timeout=120)
    check(cmp.returncode == 0 and "same" in cmp.stdout, f"pydicom: {cmp.stderr[-800:]}")
    st, h, _b = core.get(inst_path(A, A1, uid()))
    check(st == 404 and error_type(h) == "ResourceNotFoundException", f"unknown SOP: {st}")
    st, h, _b = core.get(inst_path(A, A2, a_ct[0]))
    check(st == 404, f"SOP under the wrong series: {st}")
    st, h, _b = core.get(inst_path(A, A1, a_ct[0]), "application/dicom+json")
    check(st == 406, f"instance with Accept dicom+json: {st}")
    ok("GetDICOMInstance: stored bytes for transfer-syntax=* and explicit VR LE; implicit VR "
       "transcoded to explicit (pydicom: same data sets); RLE only as stored (406 otherwise); "
       "single part, multipart/related and chunked bodies; 404")

    # ---- metadata, frames, bulk data
    md = core.json(inst_path(A, A2, a_mr[1]) + "/metadata")
    check(len(md) == 1 and val(md[0], "00020010") == IMPLICIT and
          val(md[0], "00080018") == a_mr[1] and val(md[0], "00100010") == "ALPHA^ONE" and
          val(md[0]["00081110"]["Value"][0], "00081155") == A and
          md[0]["00280010"]["Value"] == [8] and "BulkDataURI" in md[0]["7FE00010"],
          f"instance metadata: {md}")
    uri = urllib.parse.urlsplit(md[0]["7FE00010"]["BulkDataURI"])
    st, h, b = core.get(uri.path, "application/octet-stream")
    check(st == 200 and b == pix[a_mr[1]], f"bulk data of Pixel Data: {st} {len(b)}")
    sm = core.json(f"{D}/studies/{A}/series/{A1}/metadata")
    check([val(x, "00200013") for x in sm] == [1, 2, 3], "series metadata in instance order")
    flen = 8 * 8 * 2
    st, h, b = core.get(inst_path(B, B1, b_ct[0]) + "/frames/3,1",
                        "multipart/related; type=application/octet-stream; transfer-syntax=*")
    mp = multipart_parts(h.get("content-type", ""), b)
    check(st == 200 and [p[1] for p in mp] == [pix[b_ct[0]][2 * flen:3 * flen],
                                               pix[b_ct[0]][:flen]], f"frames 3,1: {st}")
    st, h, b = core.get(inst_path(B, B1, b_ct[0]) + "/frames/4")
    check(st == 404, f"frame 4 of 3: {st}")
    st, h, b = core.get(inst_path(B, B1, b_ct[0]) + "/frames/1,1")
    check(st == 400, f"duplicate frame numbers: {st}")
    ok("metadata (instance, series), BulkDataURI for Pixel Data, frames")

    # ---- imageSetId: a conflicting copy lands in a non-primary image set
    conflict = os.path.join(work, "conflict.dcm")
    write_p10(conflict, ELE, dict(cls=CT, sop=a_ct[2], study=A, series=A1, sn=1, inst=2,
                                  mod="CT", pn="ALPHA^ONE", pid="P-A-OTHER", date="20240101"))
    st, h, body = admin.request("POST", f"{D}/studies/{A}", b"--X\r\n\r\n" + open(
        conflict, "rb").read() + b"\r\n--X--\r\n", {
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=X'})
    check(st == 200, f"STOW conflict: {st}")
    stored = control_get(admin, "/_emulator/instances")["instances"][a_ct[2]]["stored"]
    prim = [x for x in stored if x["isPrimary"]]
    other = [x for x in stored if not x["isPrimary"]]
    check(len(prim) == 1 and len(other) == 1, f"primary and non-primary copies: {stored}")
    md = core.json(inst_path(A, A1, a_ct[2]) + "/metadata")
    check(val(md[0], "00100020") == "P-A", "without imageSetId: the primary image set")
    md = core.json(inst_path(A, A1, a_ct[2]) + f"/metadata?imageSetId={other[0]['imageSetId']}")
    check(val(md[0], "00100020") == "P-A-OTHER", "imageSetId: the non-primary copy")
    st, h, b = core.get(inst_path(A, A1, a_ct[2]) + f"?imageSetId={other[0]['imageSetId']}",
                        "application/dicom; transfer-syntax=*")
    check(st == 200 and b == open(conflict, "rb").read(), "GetDICOMInstance with imageSetId")
    check({val(x, "00100020") for x in core.json(
        f"{D}/studies/{A}/instances?includefield=PatientID")} == {"P-A"},
          "QIDO sees primary image sets only")
    st, h, b = core.get(inst_path(A, A1, a_ct[2]) + f"?imageSetId={secrets.token_hex(16)}")
    check(st == 404, f"unknown imageSetId: {st}")
    st, h, b = core.get(inst_path(A, A1, a_ct[2]) + "?imageSetId=NOT-AN-ID")
    check(st == 400, f"malformed imageSetId: {st}")
    ok("primary image sets unless imageSetId is given; QIDO shows primary image sets only")

    # ---- a 128 MiB instance streams with bounded memory
    big_dir = os.path.join(work, "big")
    r = subprocess.run([SYS_PY, os.path.join(HERE, "gen_data.py"), "--out", big_dir,
                        "--big-bytes", str(128 * 1024 * 1024), "--rows", "512", "--cols", "512"],
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"gen_data --big-bytes: {r.stderr[-500:]}")
    big = r.stdout.split()[-1]
    out = control(admin, "/_emulator/load", {"paths": [big]})["loaded"][0]
    before = vm_hwm(pid_emu)
    got = os.path.join(work, "big_got.dcm")
    t0 = time.time()
    with open(got, "wb") as f:
        st, h, _b = core.get(inst_path(out["StudyInstanceUID"], out["SeriesInstanceUID"],
                                       out["SOPInstanceUID"]), sink=f)
    after = vm_hwm(pid_emu)
    check(st == 200 and int(h["content-length"]) == os.path.getsize(big) and
          sha256(got) == sha256(big), "128 MiB instance not returned intact")
    check(after - before < 48 * 1024 * 1024,
          f"emulator peak memory grew by {(after - before) >> 20} MiB serving 128 MiB")
    os.unlink(got)
    ok(f"128 MiB instance streamed from disk intact in {time.time() - t0:.1f} s; emulator peak "
       f"memory grew {(after - before) >> 20} MiB")

    # ---- STS shim and session policies
    iam = boto3.client("iam", **akw)
    reader = "dicom-core-reader"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": [f"arn:aws:iam::{acct}:user/dicom-core",
                              f"arn:aws:iam::{acct}:role/dicom-core-task",
                              # the admin assumes it through moto directly (moto checks trust)
                              f"arn:aws:iam::{acct}:user/test-admin"]}}]}
    iam.create_role(RoleName=reader, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=reader, PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": [f"medical-imaging:{x}" for x in READ_ACTIONS],
            "Resource": env["DATASTORE_ARN"]}]}))
    iam.create_role(RoleName="not-trusting", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:aws:iam::{acct}:user/test-admin"}}]}))
    reader_arn = f"arn:aws:iam::{acct}:role/{reader}"
    sts = boto3.client("sts", endpoint_url=env["STS_ENDPOINT"], region_name=region,
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                       config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    scope = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": [f"medical-imaging:{x}" for x in READ_ACTIONS],
        "Resource": env["DATASTORE_ARN"],
        "Condition": {"StringEquals": {"medical-imaging:StudyInstanceUID": [A]}}}]}
    resp = sts.assume_role(RoleArn=reader_arn, RoleSessionName="scope-a",
                           Policy=json.dumps(scope), DurationSeconds=900)
    c = resp["Credentials"]
    check("PackedPolicySize" in resp and resp["AssumedRoleUser"]["Arn"].endswith(
        f"assumed-role/{reader}/scope-a"), f"AssumeRole answer: {resp}")
    scoped = Client(hi_ep, region, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    check(scoped.get(inst_path(A, A1, a_ct[0]))[0] == 200, "scoped key reads its study")
    for path, what in ((inst_path(B, B1, b_ct[0]), "GetDICOMInstance"),
                       (inst_path(B, B1, b_ct[0]) + "/metadata", "GetDICOMInstanceMetadata"),
                       (f"{D}/studies/{B}/series/{B1}/metadata", "GetDICOMSeriesMetadata"),
                       (f"{D}/studies/{B}/series", "SearchDICOMSeries"),
                       (f"{D}/studies", "SearchDICOMStudies (no condition key: never allowed)"),
                       (f"{D}/instances", "SearchDICOMAllInstances (no study in the path)")):
        st, h, b = scoped.get(path)
        check(st == 403 and error_type(h) == "AccessDeniedException" and
              b"no session policy allows" in b, f"scoped key, {what}: {st} {b[:300]!r}")
    check(len(scoped.json(f"{D}/studies/{A}/series")) == 2, "scoped SearchDICOMSeries of A")
    check(len(scoped.json(f"{D}/studies/{A}/instances")) == 5, "scoped study instances of A")
    sess = control_get(admin, "/_emulator/sessions")["sessions"][c["AccessKeyId"]]
    check(sess["Source"] == "sts-shim" and json.loads(sess["SessionPolicy"]) == scope,
          f"/_emulator/sessions: {sess}")
    plain = sts.assume_role(RoleArn=reader_arn, RoleSessionName="whole")["Credentials"]
    whole = Client(hi_ep, region, plain["AccessKeyId"], plain["SecretAccessKey"],
                   plain["SessionToken"])
    check(len(whole.json(f"{D}/studies")) == 12, "reader role without a session policy")
    st, h, b = whole.request("POST", f"{D}/studies", parts, {
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=BND'})
    check(st == 403 and error_type(h) == "AccessDeniedException", f"reader role STOW: {st}")
    # keys moto issues directly: the session policy is read from /moto-api/data.json
    msts = boto3.client("sts", config=Config(parameter_validation=False), **akw)
    m = msts.assume_role(RoleArn=reader_arn, RoleSessionName="via-moto",
                         Policy=json.dumps(scope))["Credentials"]
    via = Client(hi_ep, region, m["AccessKeyId"], m["SecretAccessKey"], m["SessionToken"])
    check(via.get(inst_path(A, A1, a_ct[0]))[0] == 200 and
          via.get(inst_path(B, B1, b_ct[0]))[0] == 403, "moto-issued scoped key")
    ok("session policy scoped to study A: A read (instance, series search, study instances); "
       "B refused 403 AccessDeniedException for every action; SearchDICOMStudies refused; "
       "the same for a key moto issued directly")

    def sts_err(**kw):
        try:
            sts.assume_role(**kw)
        except Exception as e:  # botocore ClientError
            return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
        return None, 200
    long_policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "medical-imaging:GetDICOMInstance",
        "Resource": env["DATASTORE_ARN"], "Condition": {"StringEquals": {
            "medical-imaging:StudyInstanceUID": [uid() for _ in range(60)]}}}]})
    for kw, want in (
            (dict(RoleArn=f"arn:aws:iam::{acct}:role/not-trusting", RoleSessionName="x1"),
             ("AccessDenied", 403)),
            (dict(RoleArn=f"arn:aws:iam::{acct}:role/no-such-role", RoleSessionName="x1"),
             ("AccessDenied", 403)),
            (dict(RoleArn=reader_arn, RoleSessionName="x1", Policy=long_policy),
             ("ValidationError", 400)),
            (dict(RoleArn=reader_arn, RoleSessionName="x1", Policy="{not json"),
             ("MalformedPolicyDocument", 400)),
            (dict(RoleArn=reader_arn, RoleSessionName="x1", DurationSeconds=100),
             ("ValidationError", 400)),
            (dict(RoleArn=reader_arn, RoleSessionName="x1", DurationSeconds=7200),
             ("ValidationError", 400)),
            (dict(RoleArn=reader_arn, RoleSessionName="x"), ("ValidationError", 400))):
        got = sts_err(**kw)
        check(got == want, f"AssumeRole {kw}: {got} != {want}")
    check(len(long_policy) > 2048, "the long policy is over 2,048 characters")
    control(admin, "/_emulator/config", {"sts_packed_limit": 100})
    check(sts_err(RoleArn=reader_arn, RoleSessionName="x1", Policy=json.dumps(scope)) ==
          ("PackedPolicyTooLarge", 400), "packed limit knob")
    control(admin, "/_emulator/reset", {})
    ident = boto3.client("sts", endpoint_url=env["STS_ENDPOINT"], region_name=region,
                         aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c[
                             "SecretAccessKey"], aws_session_token=c["SessionToken"])
    check(ident.get_caller_identity()["Arn"].endswith(f"assumed-role/{reader}/scope-a"),
          "GetCallerIdentity passes through to moto")
    ok("STS shim refuses an untrusted caller, a missing role, a policy over 2,048 characters, "
       "a malformed policy, DurationSeconds under 900 or over the role's maximum; "
       "PackedPolicyTooLarge on the knob")

    # ---- expiry
    control(admin, "/_emulator/expire", {"access_key_ids": [c["AccessKeyId"]]})
    st, h, b = scoped.get(inst_path(A, A1, a_ct[0]))
    check(st == 403 and error_type(h) == "ExpiredTokenException", f"expired shim key: {st} {b!r}")
    short = msts.assume_role(RoleArn=reader_arn, RoleSessionName="short",
                             DurationSeconds=2)["Credentials"]
    sk = Client(hi_ep, region, short["AccessKeyId"], short["SecretAccessKey"],
                short["SessionToken"])
    check(sk.get(f"{D}/studies")[0] == 200, "short-lived moto key before its expiry")
    time.sleep(2.5)
    st, h, b = sk.get(f"{D}/studies")
    check(st == 403 and error_type(h) == "ExpiredTokenException" and
          b"expired" in b, f"moto key after its expiry: {st} {b!r}")
    ok("ExpiredTokenException (403) for an expired temporary key (declared, and a real 2 s one)")

    # ---- faults
    control(admin, "/_emulator/throttle", {"count": 2, "operations": ["GetDICOMInstance"]})
    check(core.get(f"{D}/studies")[0] == 200, "search not throttled")
    for _ in range(2):
        st, h, b = core.get(inst_path(A, A1, a_ct[0]))
        check(st == 429 and error_type(h) == "ThrottlingException", f"throttled: {st}")
    check(core.get(inst_path(A, A1, a_ct[0]))[0] == 200, "served after the throttled count")
    control(admin, "/_emulator/down", {"seconds": 60, "mode": "503"})
    st, h, b = core.get(f"{D}/studies/{A}/series")
    check(st == 503 and error_type(h) == "ServiceUnavailableException", f"down: {st}")
    check(sts_err(RoleArn=reader_arn, RoleSessionName="during") == (None, 200),
          "STS shim is not HealthImaging: not down")
    control(admin, "/_emulator/reset", {})
    check(core.get(f"{D}/studies/{A}/series")[0] == 200, "served after reset")
    state = control_get(admin, "/_emulator/state")
    check(state["counters"]["requests"].get("GetDICOMInstance", 0) > 10 and
          state["counters"]["expired_tokens"] >= 2 and
          state["counters"]["wado_bytes"] > 128 * 1024 * 1024, f"state: {state['counters']}")
    ok("throttling (429 ThrottlingException) and outage (503) by AWS operation name")


def restart_check(env, work):
    """A second emulator on a copy of the data directory reloads the index."""
    src = env["HI_DATA_DIR"]
    dst = os.path.join(work, "hi-data-copy")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".incoming"))
    port_file = os.path.join(work, "emu2.port")
    with open(os.path.join(work, "emu2.log"), "wb") as log:
        p = subprocess.Popen([PY, os.path.join(HERE, "hi_emulator.py"), "--port-file",
                              port_file, "--datastore-id", env["DATASTORE_ID"], "--cred",
                              "AKIDRESTART:secret", "--data-dir", dst, "--watch-dir", work,
                              "--max-lifetime", "120"], stdout=log, stderr=log,
                             start_new_session=True)
    try:
        while not os.path.exists(port_file):
            bounded()
            check(p.poll() is None, "second emulator exited")
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read())
        c = Client(f"http://127.0.0.1:{port}", "us-east-1", "AKIDRESTART", "secret")
        D = f"/datastore/{env['DATASTORE_ID']}"
        studies = c.json(f"{D}/studies?limit=1000")
        check(len(studies) == 12, f"restarted emulator sees {len(studies)} studies")
        one = c.json(f"{D}/studies?PatientID=P-A")[0]
        check(one["00201208"]["Value"] == [5], "restarted emulator: counts from the index")
        ok("a restarted emulator reloads the index from --data-dir")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


if __name__ == "__main__":
    main()
