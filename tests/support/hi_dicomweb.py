"""DICOMweb read side of THE HealthImaging EMULATOR (tests/support/hi_emulator.py); not AWS.

Store: every instance the emulator received (import jobs, STOW-RS, POST /_emulator/load) is a
file under --data-dir: {datastoreId}/{imageSetId}/{SOPInstanceUID}.dcm as stored, plus
{SOP}.ele.dcm (an explicit VR little endian copy, made once at store time for implicit VR and
deflated instances) and {SOP}.json (the index: image set, primary flag, DICOM JSON metadata,
bulk data and frame offsets). The index is reloaded from the .json files at start-up.

QIDO-RS and WADO-RS answer from that store as the HealthImaging developer guide documents them
(see docs/testing-aws.md "HealthImaging DICOMweb read APIs: facts we rely on"); where AWS does
not say, the emulator's choice is written next to the code and in that section.
"""

import json
import os
import re
import secrets
import shutil
import threading
import time

import hi_dicom as hd

UID_RX = re.compile(r"[0-9.]{1,64}")
IMAGE_SET_RX = re.compile(r"[0-9a-z]{32}")

# Query keys per API, as the developer guide's tables list them (by keyword; 8-hex tags too).
STUDY_KEYS = ["StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
              "ReferringPhysicianName", "StudyDescription", "PatientName", "PatientID",
              "PatientBirthDate", "PatientBirthTime", "StudyInstanceUID", "StudyID"]
SERIES_KEYS = STUDY_KEYS + ["Modality", "SeriesInstanceUID", "SeriesNumber",
                            "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"]
INSTANCE_KEYS = SERIES_KEYS + ["SOPClassUID", "SOPInstanceUID"]

# Attributes returned without includefield: PS3.18 Tables 10.6.3-3/-4/-5 (AWS says only "the
# standard set"), those the store holds; plus every attribute used as a match key.
STUDY_DEFAULT = [0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080061,
                 0x00080090, 0x00080201, 0x00081190, 0x00100010, 0x00100020, 0x00100030,
                 0x00100040, 0x0020000D, 0x00200010, 0x00201206, 0x00201208]
SERIES_DEFAULT = [0x00080005, 0x00080060, 0x00080201, 0x0008103E, 0x00081190, 0x0020000E,
                  0x00200011, 0x00201209, 0x00400244, 0x00400245, 0x00400275]
INSTANCE_DEFAULT = [0x00080005, 0x00080016, 0x00080018, 0x00080056, 0x00080201, 0x00081190,
                    0x00200013, 0x00280010, 0x00280011, 0x00280100, 0x00280008]


def _study_level(tag):
    """includefield=all at the study level: the patient and study attributes of AWS's table."""
    g, e = tag >> 16, tag & 0xFFFF
    return (g in (0x0010, 0x0032, 0x0038)
            or (g == 0x0008 and e in (0x0005, 0x0020, 0x0030, 0x0050, 0x0051, 0x0056, 0x0061,
                                      0x0062, 0x0090, 0x009C, 0x0201, 0x1030, 0x1032, 0x1048,
                                      0x1060, 0x1080, 0x1190))
            or (g == 0x0020 and e in (0x000D, 0x0010, 0x1206, 0x1208))
            or (g == 0x0040 and e in (0x0244, 0x0245, 0x0250, 0x0251, 0x0253, 0x1012)))


def _series_level(tag):
    g, e = tag >> 16, tag & 0xFFFF
    return (_study_level(tag)
            or (g == 0x0008 and e in (0x0021, 0x0031, 0x0060, 0x0064, 0x0068, 0x0070, 0x0080,
                                      0x0082, 0x1010, 0x103E, 0x103F, 0x1040, 0x1041, 0x1050,
                                      0x1070, 0x1090))
            or (g == 0x0018 and e in (0x0010, 0x0015, 0x0050, 0x0088, 0x1000, 0x1016, 0x1018,
                                      0x1019, 0x1020, 0x1030, 0x1050, 0x1200, 0x1201, 0x5100))
            or (g == 0x0020 and e in (0x000E, 0x0011, 0x0052, 0x0060, 0x1209))
            or (g == 0x0054 and e in (0x0081, 0x0101, 0x1000)))


class DicomWebError(Exception):
    def __init__(self, status, etype, message):
        super().__init__(message)
        self.status, self.etype, self.message = status, etype, message


class Response:
    """status, headers, and a body of pieces: bytes, or (path, offset, length) read in chunks
    when written (never the whole file in memory)."""

    def __init__(self, status, headers, pieces):
        self.status, self.headers, self.pieces = status, headers, pieces

    def length(self):
        return sum(len(p) if isinstance(p, bytes) else p[2] for p in self.pieces)


def json_response(obj, status=200):
    return Response(status, [("Content-Type", "application/dicom+json")],
                    [json.dumps(obj).encode()])


# ---------------------------------------------------------------- the store

class Store:
    def __init__(self, root):
        self.root = root
        self.lock = threading.RLock()
        self.records = {}  # (ds, imageSetId, sop) -> record
        self.seq = 0
        os.makedirs(root, exist_ok=True)
        self._load()

    def _load(self):
        for ds in sorted(os.listdir(self.root)):
            dsdir = os.path.join(self.root, ds)
            if not os.path.isdir(dsdir):
                continue
            for sid in os.listdir(dsdir):
                sdir = os.path.join(dsdir, sid)
                for name in os.listdir(sdir) if os.path.isdir(sdir) else []:
                    if name.endswith(".json"):
                        try:
                            with open(os.path.join(sdir, name)) as f:
                                rec = json.load(f)
                        except (OSError, ValueError):
                            continue
                        self.records[(rec["ds"], rec["sid"], rec["sop"])] = rec
                        self.seq = max(self.seq, rec.get("seq", 0))

    def clear(self):
        with self.lock:
            self.records = {}
            for name in os.listdir(self.root):
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def spool_path(self):
        d = os.path.join(self.root, ".incoming")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, secrets.token_hex(8) + ".dcm")

    def add(self, ds, sid, primary, path, info, move=True):
        """Stores the Part-10 file at `path` (parsed as `info`) in image set `sid`; moves it
        (or copies when move is False). Returns the record."""
        sop = info["sop_uid"]
        name = sop if UID_RX.fullmatch(sop) else hd.bulk_hash(sop)
        sdir = os.path.join(self.root, ds, sid)
        os.makedirs(sdir, exist_ok=True)
        dst = os.path.join(sdir, name + ".dcm")
        if move:
            os.replace(path, dst)
        else:
            shutil.copyfile(path, dst)
        ts = info["transfer_syntax"]
        ele = None
        frame_info = info
        if ts in (hd.TS_IMPLICIT, hd.TS_DEFLATED):
            ele = os.path.join(sdir, name + ".ele.dcm")
            hd.write_explicit_le(dst, ele, info)
            frame_info = hd.parse_part10_file(ele)
        offsets_file = "ele" if ele else "file"
        bulk = {}

        def bulk_uri(p, el):
            h = hd.bulk_hash(p)
            pieces = [(el.off, el.length)] if el.frags is None else None
            bulk[h] = {"path": p, "pieces": pieces, "frags": el.frags}
            return "bulkdata:" + h
        meta = hd.to_dicom_json(frame_info["tree"], frame_info["little"], bulk=bulk_uri)
        meta["00020010"] = {"vr": "UI", "Value": [ts]}
        with self.lock:
            self.seq += 1
            rec = {"ds": ds, "sid": sid, "primary": primary, "sop": sop,
                   "study": info["study_uid"], "series": info["series_uid"], "ts": ts,
                   "file": dst, "ele": ele, "offsets_in": offsets_file,
                   "size": os.path.getsize(dst),
                   "ele_size": os.path.getsize(ele) if ele else None,
                   "updated": time.time(), "seq": self.seq, "meta": meta, "bulk": bulk,
                   "frames": _frames(frame_info, meta)}
            with open(os.path.join(sdir, name + ".json.tmp"), "w") as f:
                json.dump(rec, f)
            os.replace(os.path.join(sdir, name + ".json.tmp"), os.path.join(sdir, name + ".json"))
            self.records[(ds, sid, sop)] = rec
        return rec

    def find(self, ds, study, series, sop, image_set=None):
        with self.lock:
            if image_set is not None:
                rec = self.records.get((ds, image_set, sop))
            else:
                rec = next((r for (d, _s, o), r in self.records.items()
                            if d == ds and o == sop and r["primary"]), None)
        if rec is None or rec["study"] != study or (series is not None and
                                                    rec["series"] != series):
            raise DicomWebError(404, "ResourceNotFoundException", "Instance not found")
        return rec

    def series_records(self, ds, study, series, image_set=None):
        with self.lock:
            recs = [r for r in self.records.values()
                    if r["ds"] == ds and r["study"] == study and r["series"] == series
                    and (r["sid"] == image_set if image_set else r["primary"])]
        if not recs:
            raise DicomWebError(404, "ResourceNotFoundException", "Series not found")
        return sorted(recs, key=lambda r: (_num(r["meta"], "00200013"), r["sop"]))

    def primary(self, ds):
        with self.lock:
            return [r for r in self.records.values() if r["ds"] == ds and r["primary"]]


def _frames(info, meta):
    """Frame pieces [(offset, length), ...] per frame, or None when they cannot be told."""
    def n(tag):
        v = meta.get(tag, {}).get("Value") or [None]
        return v[0]
    pix = next((el for el in info["tree"] if el.tag == hd.PIXEL_DATA), None)
    if pix is None:
        return None
    frames = int(n("00280008") or 1)
    if pix.frags is not None:
        frags = pix.frags[1:]  # the first item is the basic offset table
        if len(frags) == frames:
            return [[list(f)] for f in frags]
        if frames == 1:
            return [[list(f) for f in frags]]
        return None
    rows, cols, spp, bits = n("00280010"), n("00280011"), n("00280002") or 1, n("00280100")
    if not (rows and cols and bits) or bits % 8:
        return None
    flen = rows * cols * spp * bits // 8
    if flen * frames > pix.length:
        return None
    return [[[pix.off + i * flen, flen]] for i in range(frames)]


def _num(meta, tag):
    v = (meta.get(tag, {}).get("Value") or [None])[0]
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("inf")


def _strings(attr):
    """Match values of a DICOM JSON attribute as strings."""
    out = []
    for v in (attr or {}).get("Value", []) or []:
        if isinstance(v, dict):
            out.append(v.get("Alphabetic", ""))
        elif v is not None:
            out.append(str(v))
    return out


def expand_bulk(obj, base):
    """Turns the stored "bulkdata:<hash>" markers into this emulator's BulkDataURIs."""
    out = {}
    for k, a in obj.items():
        a = dict(a)
        if a.get("vr") == "SQ" and a.get("Value"):
            a["Value"] = [expand_bulk(it, base) for it in a["Value"]]
        uri = a.get("BulkDataURI")
        if uri and uri.startswith("bulkdata:"):
            a["BulkDataURI"] = f"{base}/bulkdata/{uri[len('bulkdata:'):]}"
        out[k] = a
    return out


# ---------------------------------------------------------------- QIDO-RS

class Qido:
    def __init__(self, store, config):
        self.store, self.config = store, config

    def parse(self, query, level):
        from urllib.parse import parse_qsl
        d = hd.dictionary()
        allowed = {"study": STUDY_KEYS, "series": SERIES_KEYS, "instance": INSTANCE_KEYS}[level]
        allowed_tags = {d.tag_of(k) for k in allowed}
        q = {"match": [], "include": [], "all": False, "fuzzy": False,
             "limit": self.config["qido_default_limit"], "offset": 0}
        for k, v in parse_qsl(query, keep_blank_values=True):
            if k == "limit" or k == "offset":
                if not re.fullmatch(r"\d{1,9}", v):
                    raise DicomWebError(400, "ValidationException", f"Invalid {k} '{v}'")
                q[k] = int(v)
            elif k == "includefield":
                for f in v.split(","):
                    if f == "all":
                        q["all"] = True
                    elif f:
                        q["include"].append(f)
            elif k == "fuzzymatching":
                if v not in ("true", "false"):
                    raise DicomWebError(400, "ValidationException", "fuzzymatching must be "
                                        "true or false")
                q["fuzzy"] = v == "true"
            else:
                tag = d.tag_of(k)
                if tag is not None and (tag >> 16) & 1:
                    continue  # a private creator element named for includefield: not a filter
                if tag is None or (self.config["qido_strict_keys"] and tag not in allowed_tags):
                    raise DicomWebError(400, "ValidationException",
                                        f"Unsupported query parameter '{k}'")
                q["match"].append((tag, v))
        if q["limit"] < 1 or q["limit"] > self.config["qido_max_limit"]:
            raise DicomWebError(400, "ValidationException", f"limit must be between 1 and "
                                f"{self.config['qido_max_limit']}")
        if q["offset"] > self.config["qido_max_offset"]:
            raise DicomWebError(400, "ValidationException", f"offset must be at most "
                                f"{self.config['qido_max_offset']}")
        uniq = list(dict.fromkeys(q["include"]))
        if len(uniq) > self.config["qido_max_includefield"]:
            raise DicomWebError(400, "ValidationException", "At most "
                                f"{self.config['qido_max_includefield']} includefield values")
        q["include"] = uniq
        return q

    def search(self, ds, level, query, base, study=None, series=None, order="natural"):
        """level: study | series | instance; study/series: the path's UIDs (None when not in
        the path); order: natural (series/instance number) or updated (latest first)."""
        q = self.parse(query, level)
        recs = [r for r in self.store.primary(ds)
                if (study is None or r["study"] == study)
                and (series is None or r["series"] == series)]
        ents = entities(recs, level, base)
        ents = [e for e in ents if all(match(e["attrs"].get(f"{t:08X}"), t, v, q["fuzzy"])
                                       for t, v in q["match"])]
        if level == "study" or order == "updated":
            ents.sort(key=lambda e: (-e["updated"], e["key"]))
        elif level == "series":
            ents.sort(key=lambda e: (_num(e["attrs"], "00200011"), e["key"]))
        else:
            ents.sort(key=lambda e: (_num(e["attrs"], "00200013"), e["key"]))
        capped = ents[:self.config["qido_max_results"]]
        page = capped[q["offset"]:q["offset"] + q["limit"]]
        out = [project(e, level, q, study is None, series is None) for e in page]
        if not out and self.config["qido_empty_status"] == 204:
            return Response(204, [], [])
        return json_response(out)


def entities(recs, level, base):
    """Study, series or instance entities with their attributes (DICOM JSON)."""
    if level == "instance":
        return [{"key": r["sop"], "updated": r["updated"], "rec": r,
                 "attrs": dict(r["meta"], **{
                     "00080056": {"vr": "CS", "Value": ["ONLINE"]},
                     "00081190": {"vr": "UR", "Value": [
                         f"{base}/studies/{r['study']}/series/{r['series']}/instances/"
                         f"{r['sop']}"]}})} for r in recs]
    groups = {}
    for r in recs:
        k = r["study"] if level == "study" else (r["study"], r["series"])
        groups.setdefault(k, []).append(r)
    out = []
    for k, rs in groups.items():
        latest = max(rs, key=lambda r: (r["updated"], r["seq"]))
        keep = _study_level if level == "study" else _series_level
        attrs = {t: a for t, a in latest["meta"].items() if keep(int(t, 16))}
        if level == "study":
            mods = sorted({m for r in rs for m in _strings(r["meta"].get("00080060"))})
            classes = sorted({c for r in rs for c in _strings(r["meta"].get("00080016"))})
            attrs["00080061"] = {"vr": "CS", "Value": mods} if mods else {"vr": "CS"}
            attrs["00080062"] = {"vr": "UI", "Value": classes}
            attrs["00201206"] = {"vr": "IS", "Value": [len({r["series"] for r in rs})]}
            attrs["00201208"] = {"vr": "IS", "Value": [len(rs)]}
            attrs["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{k}"]}
        else:
            attrs["00201209"] = {"vr": "IS", "Value": [len(rs)]}
            attrs["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{k[0]}/series/{k[1]}"]}
        attrs["00080056"] = {"vr": "CS", "Value": ["ONLINE"]}
        out.append({"key": k if isinstance(k, str) else k[1],
                    "updated": max(r["updated"] for r in rs), "rec": latest, "attrs": attrs})
    return out


def project(e, level, q, with_study, with_series):
    """The attributes returned for one match."""
    attrs = e["attrs"]
    if q["all"]:
        if level == "instance":
            keep = {t for t in attrs if t != "7FE00010" and not t.startswith("0002")}
        else:
            keep = set(attrs)
    else:
        tags = {"study": STUDY_DEFAULT, "series": SERIES_DEFAULT,
                "instance": INSTANCE_DEFAULT}[level]
        keep = {f"{t:08X}" for t in tags}
        if level != "study" and with_study:  # PS3.18: study attributes without a study in path
            keep |= {f"{t:08X}" for t in STUDY_DEFAULT}
        if level == "instance" and with_series:
            keep |= {f"{t:08X}" for t in SERIES_DEFAULT}
        keep |= {f"{t:08X}" for t, _v in q["match"]}
        d = hd.dictionary()
        for f in q["include"]:
            top = f.split(".")[0]
            tag = d.tag_of(top)
            if tag is not None:
                keep.add(f"{tag:08X}")  # a dotted path returns its whole top-level sequence
    keep.discard("00020010")
    return {t: attrs[t] for t in sorted(keep) if t in attrs}


def _range_norm(vr, s, hi):
    s = s.replace(":", "")
    if vr == "DA":
        return s
    if vr == "TM":
        head, _, frac = s.partition(".")
        head = head + ("99" if hi else "00") * ((6 - len(head)) // 2)
        return head + "." + (frac + ("9" if hi else "0") * 6)[:6]
    return (s + ("99991231235959" if hi else "00010101000000")[len(s):])[:14]


def match(attr, tag, value, fuzzy):
    """PS3.4 C.2.2.2 matching of one query key against an entity's attribute."""
    if value == "":
        return True  # universal matching
    d = hd.dictionary()
    vr = (attr or {}).get("vr") or d.explicit_vr(tag)
    have = _strings(attr)
    if not have:
        return False
    if vr == "UI":
        wants = [w for w in re.split(r"[,\\]", value) if w]
        return any(h in wants for h in have)
    if vr in ("DA", "TM", "DT") and "-" in value:
        lo, _, hi = value.partition("-")
        for h in have:
            hv = _range_norm(vr, h, False)
            if (not lo or hv >= _range_norm(vr, lo, False)) and \
                    (not hi or hv <= _range_norm(vr, hi, True)):
                return True
        return False
    if vr == "PN" and fuzzy:
        qwords = [w.lower() for w in re.split(r"[\^ =,]+", value.strip('"')) if w]
        for h in have:
            hwords = [w.lower() for w in re.split(r"[\^ =,]+", h) if w]
            if any(hw.startswith(qw) for qw in qwords for hw in hwords):
                return True
        return False
    if "*" in value or "?" in value:
        rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
        return any(re.fullmatch(rx, h, re.DOTALL) for h in have)
    return value in have


# ---------------------------------------------------------------- WADO-RS

def parse_accept(header):
    """-> [(media type, {params})] in the order given."""
    out = []
    for part in (header or "*/*").split(","):
        bits = [b.strip() for b in part.split(";")]
        params = {}
        for b in bits[1:]:
            k, _, v = b.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        if bits[0]:
            out.append((bits[0].lower(), params))
    return out


class Wado:
    def __init__(self, store, config):
        self.store, self.config = store, config

    def instance(self, rec, accept):
        chosen = None
        for media, params in parse_accept(accept):
            if media in ("application/dicom", "*/*", "application/*"):
                chosen = ("single", params.get("transfer-syntax", hd.TS_EXPLICIT))
                break
            if media == "multipart/related" and params.get("type", "application/dicom") \
                    in ("application/dicom",):
                chosen = ("multipart", params.get("transfer-syntax", hd.TS_EXPLICIT))
                break
        if chosen is None:
            raise DicomWebError(406, "NotAcceptableException",
                                "Accept must be application/dicom")
        kind, want = chosen
        path, size, ts = self.pick(rec, want)
        if kind == "single":
            return Response(200, [("Content-Type", f"application/dicom; transfer-syntax={ts}")],
                            [(path, 0, size)])
        b = "hi-emulator-" + secrets.token_hex(12)
        head = (f"--{b}\r\nContent-Type: application/dicom; transfer-syntax={ts}\r\n"
                f"Content-Length: {size}\r\n\r\n").encode()
        return Response(200, [("Content-Type", f'multipart/related; type="application/dicom"; '
                               f'boundary={b}')], [head, (path, 0, size), f"\r\n--{b}--\r\n".encode()])

    def pick(self, rec, want):
        """(file, size, transfer syntax) for a requested transfer syntax."""
        if want == "*" or want == rec["ts"]:
            return rec["file"], rec["size"], rec["ts"]
        if want == hd.TS_EXPLICIT and rec.get("ele"):
            return rec["ele"], rec["ele_size"], hd.TS_EXPLICIT
        raise DicomWebError(406, "NotAcceptableException",
                            f"The instance is stored as {rec['ts']}; the emulator returns it "
                            f"only in its stored transfer syntax (retry with transfer-syntax=*)")

    def frames(self, rec, frame_list, accept):
        want = hd.TS_EXPLICIT
        for media, params in parse_accept(accept):
            if media in ("multipart/related", "*/*", "application/octet-stream"):
                want = params.get("transfer-syntax", hd.TS_EXPLICIT)
                break
        else:
            raise DicomWebError(406, "NotAcceptableException", "Accept must be multipart/related;"
                                " type=application/octet-stream")
        nums = frame_list.split(",")
        if not all(re.fullmatch(r"[1-9]\d{0,8}", x) for x in nums) or len(set(nums)) != len(nums):
            raise DicomWebError(400, "ValidationException", "frameList must be distinct frame "
                                "numbers from 1")
        frames = rec.get("frames")
        if frames is None:
            raise DicomWebError(406, "NotAcceptableException", "Frames of this instance cannot "
                                "be returned by the emulator")
        stored = rec["ts"]
        if stored in (hd.TS_EXPLICIT, hd.TS_IMPLICIT, hd.TS_DEFLATED):  # native LE pixels
            if want not in ("*", hd.TS_EXPLICIT, stored):
                raise DicomWebError(406, "NotAcceptableException", "Requested transfer syntax "
                                    "cannot be returned; retry with transfer-syntax=*")
            ts = stored if want == "*" else hd.TS_EXPLICIT
        elif want in ("*", stored):  # compressed or big endian: only as stored
            ts = stored
        else:
            raise DicomWebError(406, "NotAcceptableException", f"The instance is stored as "
                                f"{stored}; the emulator returns its frames only in that "
                                f"transfer syntax (retry with transfer-syntax=*)")
        path = rec["ele"] if rec["offsets_in"] == "ele" else rec["file"]
        b = "hi-emulator-" + secrets.token_hex(12)
        pieces = []
        for x in nums:
            i = int(x) - 1
            if i >= len(frames):
                raise DicomWebError(404, "ResourceNotFoundException", f"Frame {x} not found")
            flen = sum(p[1] for p in frames[i])
            pieces.append((f"--{b}\r\nContent-Type: application/octet-stream; transfer-syntax="
                           f"{ts}\r\nContent-Length: {flen}\r\n\r\n").encode())
            pieces.extend((path, off, ln) for off, ln in frames[i])
            pieces.append(b"\r\n")
        pieces.append(f"--{b}--\r\n".encode())
        return Response(200, [("Content-Type", f'multipart/related; type="application/'
                               f'octet-stream"; transfer-syntax={ts}; boundary={b}')], pieces)

    def bulk(self, rec, h):
        b = rec.get("bulk", {}).get(h)
        if b is None:
            raise DicomWebError(404, "ResourceNotFoundException", "Bulk data not found")
        path = rec["ele"] if rec["offsets_in"] == "ele" else rec["file"]
        if b["pieces"]:
            pieces = [(path, off, ln) for off, ln in b["pieces"]]
        else:  # encapsulated pixel data: the fragments' bytes, offset table left out
            pieces = [(path, off, ln) for off, ln in b["frags"][1:]]
        return Response(200, [("Content-Type", "application/octet-stream")], pieces)
