"""DICOM Part-10 helpers of THE HealthImaging EMULATOR (tests/support/hi_emulator.py); not AWS.

Standard library only (pydicom is not in the pyenv python). Everything reads files through
bounded, seekable readers, so a 1 GiB instance is never held in memory:
  - parse_part10(bytes) / parse_part10_file(path): validate a Part-10 file as the import job and
    STOW-RS do, and return its identifying attributes plus the data set's element tree (values
    over INLINE_MAX bytes are left on disk as (offset, length));
  - to_dicom_json(tree): PS3.18 Annex F DICOM JSON of that tree (binary values over 1 MB and
    Pixel Data as BulkDataURI, as HealthImaging documents for its metadata);
  - write_explicit_le(src, dst): implicit VR little endian or deflated explicit VR little endian
    -> explicit VR little endian, file to file in 1 MiB chunks (the only transcoding the emulator
    does; compressed and big endian syntaxes are served only as stored);
  - a data dictionary (VR and keyword per tag) read from DCMTK's dicom.dic (libdcmtk), with a
    small built-in table as fallback, for implicit VR data and QIDO keywords.
"""

import base64
import glob
import hashlib
import io
import os
import re
import struct
import zlib

TS_IMPLICIT = "1.2.840.10008.1.2"
TS_EXPLICIT = "1.2.840.10008.1.2.1"
TS_DEFLATED = "1.2.840.10008.1.2.1.99"
TS_EXPLICIT_BE = "1.2.840.10008.1.2.2"
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
SINGLE_STRING_VRS = {"LT", "ST", "UT", "UR"}
PIXEL_DATA = 0x7FE00010
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
INLINE_MAX = 1024 * 1024  # AWS: binary attributes over 1 MB become BulkDataURI
MAX_DEPTH = 16
CHUNK = 1024 * 1024
IMPL_UID = "1.2.826.0.1.3680043.9.7433.1.2"  # the emulator's transcoder (test data root)


class P10Error(Exception):
    pass


# ---------------------------------------------------------------- data dictionary

_BUILTIN = {  # tag: (VR, keyword) for what the emulator itself needs when dicom.dic is missing
    0x00020000: ("UL", "FileMetaInformationGroupLength"),
    0x00020001: ("OB", "FileMetaInformationVersion"),
    0x00020002: ("UI", "MediaStorageSOPClassUID"), 0x00020003: ("UI", "MediaStorageSOPInstanceUID"),
    0x00020010: ("UI", "TransferSyntaxUID"), 0x00020012: ("UI", "ImplementationClassUID"),
    0x00020013: ("SH", "ImplementationVersionName"),
    0x00080005: ("CS", "SpecificCharacterSet"), 0x00080008: ("CS", "ImageType"),
    0x00080016: ("UI", "SOPClassUID"), 0x00080018: ("UI", "SOPInstanceUID"),
    0x00080020: ("DA", "StudyDate"), 0x00080021: ("DA", "SeriesDate"),
    0x00080023: ("DA", "ContentDate"), 0x00080030: ("TM", "StudyTime"),
    0x00080031: ("TM", "SeriesTime"), 0x00080050: ("SH", "AccessionNumber"),
    0x00080056: ("CS", "InstanceAvailability"), 0x00080060: ("CS", "Modality"),
    0x00080061: ("CS", "ModalitiesInStudy"), 0x00080062: ("UI", "SOPClassesInStudy"),
    0x00080070: ("LO", "Manufacturer"), 0x00080090: ("PN", "ReferringPhysicianName"),
    0x00080201: ("SH", "TimezoneOffsetFromUTC"), 0x00081030: ("LO", "StudyDescription"),
    0x0008103E: ("LO", "SeriesDescription"), 0x00081190: ("UR", "RetrieveURL"),
    0x00100010: ("PN", "PatientName"), 0x00100020: ("LO", "PatientID"),
    0x00100030: ("DA", "PatientBirthDate"), 0x00100032: ("TM", "PatientBirthTime"),
    0x00100040: ("CS", "PatientSex"), 0x0020000D: ("UI", "StudyInstanceUID"),
    0x0020000E: ("UI", "SeriesInstanceUID"), 0x00200010: ("SH", "StudyID"),
    0x00200011: ("IS", "SeriesNumber"), 0x00200013: ("IS", "InstanceNumber"),
    0x00200052: ("UI", "FrameOfReferenceUID"), 0x00201206: ("IS", "NumberOfStudyRelatedSeries"),
    0x00201208: ("IS", "NumberOfStudyRelatedInstances"),
    0x00201209: ("IS", "NumberOfSeriesRelatedInstances"),
    0x00280002: ("US", "SamplesPerPixel"), 0x00280004: ("CS", "PhotometricInterpretation"),
    0x00280006: ("US", "PlanarConfiguration"), 0x00280008: ("IS", "NumberOfFrames"),
    0x00280010: ("US", "Rows"), 0x00280011: ("US", "Columns"),
    0x00280100: ("US", "BitsAllocated"), 0x00280101: ("US", "BitsStored"),
    0x00280102: ("US", "HighBit"), 0x00280103: ("US", "PixelRepresentation"),
    0x00281052: ("DS", "RescaleIntercept"), 0x00281053: ("DS", "RescaleSlope"),
    0x00400244: ("DA", "PerformedProcedureStepStartDate"),
    0x00400245: ("TM", "PerformedProcedureStepStartTime"),
    0x00400275: ("SQ", "RequestAttributesSequence"), 0x7FE00010: ("OW", "PixelData"),
}
# dicom.dic pseudo-VRs -> the explicit VR the transcoder writes
_PSEUDO = {"ox": "OW", "px": "OW", "xs": "US", "lt": "OW", "up": "UL", "na": "UN", "xo": "OW"}


class Dictionary:
    def __init__(self, path=None):
        self.exact = dict(_BUILTIN)
        self.ranges = []  # (group lo, hi, element lo, hi, vr, keyword): (6000-60FF,3000)...
        self.source = "built-in table"
        paths = [path] if path else sorted(glob.glob("/usr/share/libdcmtk*/dicom.dic"))
        for p in paths:
            if p and os.path.exists(p):
                self._load(p)
                self.source = p
                break
        self.by_keyword = {kw: tag for tag, (_vr, kw) in self.exact.items()}

    def _load(self, path):
        rng = re.compile(r"([0-9A-Fa-f]{4})(?:-([0-9A-Fa-f]{4}))?")
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("#") or '"' in line:  # comments; private (creator) entries
                    continue
                parts = line.rstrip("\n").split("\t")
                m = re.fullmatch(r"\(([^,]+),([^)]+)\)", parts[0]) if len(parts) >= 3 else None
                if not m:
                    continue
                gm, em = rng.fullmatch(m.group(1)), rng.fullmatch(m.group(2))
                if not gm or not em:
                    continue  # "-o-"/"-u-" ranges: group lengths and private, handled apart
                vr, kw = parts[1], parts[2]
                glo, elo = int(gm.group(1), 16), int(em.group(1), 16)
                ghi = int(gm.group(2), 16) if gm.group(2) else glo
                ehi = int(em.group(2), 16) if em.group(2) else elo
                if glo == ghi and elo == ehi:
                    self.exact[(glo << 16) | elo] = (vr, kw)
                else:
                    self.ranges.append((glo, ghi, elo, ehi, vr, kw))

    def lookup(self, tag):
        """-> (vr, keyword) or (None, None)."""
        hit = self.exact.get(tag)
        if hit:
            return hit
        g, e = tag >> 16, tag & 0xFFFF
        for glo, ghi, elo, ehi, vr, kw in self.ranges:
            if glo <= g <= ghi and elo <= e <= ehi:
                return vr, kw
        return None, None

    def explicit_vr(self, tag):
        """The VR to write for an element read as implicit VR."""
        g, e = tag >> 16, tag & 0xFFFF
        if e == 0:
            return "UL"  # group length
        if g & 1:
            return "LO" if 0x10 <= e <= 0xFF else "UN"  # private creator / private data
        vr, _ = self.lookup(tag)
        if not vr:
            return "UN"
        vr = _PSEUDO.get(vr, vr)
        return vr if re.fullmatch(r"[A-Z]{2}", vr) else "UN"

    def tag_of(self, key):
        """QIDO attribute id: keyword or 8 hex digits -> tag int, or None."""
        if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
            return int(key, 16)
        return self.by_keyword.get(key)


DICT = None


def dictionary():
    global DICT
    if DICT is None:
        DICT = Dictionary(os.environ.get("HI_EMULATOR_DICOM_DIC"))
    return DICT


# ---------------------------------------------------------------- bounded element reader

class Reader:
    """Element headers from a seekable file object; values are read or skipped by the caller."""

    def __init__(self, f, size, little=True, explicit=True):
        self.f, self.size, self.little, self.explicit = f, size, little, explicit

    def tell(self):
        return self.f.tell()

    def left(self):
        return self.size - self.f.tell()

    def take(self, n):
        if n < 0 or n > self.left():
            raise P10Error("Invalid DICOM data set: truncated data element")
        b = self.f.read(n)
        if len(b) != n:
            raise P10Error("Invalid DICOM data set: truncated data element")
        return b

    def skip(self, n):
        if n < 0 or n > self.left():
            raise P10Error("Invalid DICOM data set: truncated data element")
        self.f.seek(n, 1)

    def u16(self):
        return struct.unpack("<H" if self.little else ">H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I" if self.little else ">I", self.take(4))[0]

    def header(self):
        """-> (tag, vr or None, length, header bytes)."""
        start = self.tell()
        g, e = self.u16(), self.u16()
        tag = (g << 16) | e
        if g == 0xFFFE:
            return tag, None, self.u32(), self.tell() - start
        if self.explicit:
            vr = self.take(2).decode("latin-1")
            if not re.fullmatch(r"[A-Z]{2}", vr):
                raise P10Error("Invalid DICOM data set: invalid VR")
            if vr in LONG_VRS:
                self.take(2)
                return tag, vr, self.u32(), 12
            return tag, vr, self.u16(), 8
        return tag, None, self.u32(), 8


class Elem:
    __slots__ = ("tag", "vr", "off", "length", "value", "items", "frags")

    def __init__(self, tag, vr, off, length):
        self.tag, self.vr, self.off, self.length = tag, vr, off, length
        self.value, self.items, self.frags = None, None, None


def read_dataset(r, end, depth, in_item=False):
    """Elements until `end` (absolute offset) or, in an undefined-length item, the item
    delimiter. Values up to INLINE_MAX are read; longer ones keep (off, length) only."""
    if depth > MAX_DEPTH:
        raise P10Error("Invalid DICOM data set: sequences nested too deep")
    out = []
    d = dictionary()
    while (end is None and r.left() > 0) or (end is not None and r.tell() < end):
        tag, vr, ln, _h = r.header()
        if tag == ITEM_END:
            if in_item and end is None:
                return out
            raise P10Error("Invalid DICOM data set: unexpected item delimiter")
        if vr is None:  # implicit VR
            vr = d.explicit_vr(tag)
            if ln == 0xFFFFFFFF and tag != PIXEL_DATA:
                vr = "SQ"
            elif d.lookup(tag)[0] == "SQ":
                vr = "SQ"
        el = Elem(tag, vr, r.tell(), ln)
        if vr == "SQ" or (vr == "UN" and ln == 0xFFFFFFFF):
            nested = r if vr == "SQ" else Reader(r.f, r.size, True, False)
            el.vr = "SQ"
            el.items = read_items(nested, ln, depth + 1)
        elif ln == 0xFFFFFFFF:
            if tag != PIXEL_DATA:
                raise P10Error("Invalid DICOM data set: undefined length outside a sequence")
            el.frags = read_fragments(r)
        else:
            if ln > r.left():
                raise P10Error("Invalid DICOM data set: truncated data element")
            if ln <= INLINE_MAX and tag != PIXEL_DATA:
                el.value = r.take(ln)
            else:
                r.skip(ln)
        out.append(el)
    if in_item and end is None:
        raise P10Error("Invalid DICOM data set: unterminated item")
    return out


def read_items(r, ln, depth):
    items = []
    seq_end = None if ln == 0xFFFFFFFF else r.tell() + ln
    if seq_end is not None and seq_end > r.size:
        raise P10Error("Invalid DICOM data set: truncated sequence")
    while seq_end is None or r.tell() < seq_end:
        tag, _vr, iln, _h = r.header()
        if tag == SEQ_END and seq_end is None:
            return items
        if tag != ITEM:
            raise P10Error("Invalid DICOM data set: expected a sequence item")
        if iln == 0xFFFFFFFF:
            items.append(read_dataset(r, None, depth, in_item=True))
        else:
            items.append(read_dataset(r, r.tell() + iln, depth))
    return items


def read_fragments(r):
    """Encapsulated Pixel Data: [(offset, length)] of the items (the first is the offset
    table)."""
    frags = []
    while True:
        tag, _vr, ln, _h = r.header()
        if tag == SEQ_END:
            return frags
        if tag != ITEM or ln == 0xFFFFFFFF:
            raise P10Error("Invalid DICOM data set: bad encapsulated pixel data")
        frags.append((r.tell(), ln))
        r.skip(ln)


# ---------------------------------------------------------------- Part-10 files

def _meta(f, size):
    if size < 132:
        raise P10Error("Invalid DICOM P10 file: no 'DICM' prefix after the 128-byte preamble")
    f.seek(128)
    if f.read(4) != b"DICM":
        raise P10Error("Invalid DICOM P10 file: no 'DICM' prefix after the 128-byte preamble")
    r = Reader(f, size)
    meta = {}
    while r.left() >= 6:
        pos = r.tell()
        if struct.unpack("<H", f.read(2))[0] != 0x0002:
            f.seek(pos)
            break
        f.seek(pos)
        tag, _vr, ln, _h = r.header()
        if ln == 0xFFFFFFFF:
            raise P10Error("Invalid DICOM P10 file: undefined length in file meta information")
        meta[tag & 0xFFFF] = r.take(ln)
    return meta, r.tell()


def _text(b):
    return b.rstrip(b"\0 ").decode("latin-1")


def parse_fileobj(f, size):
    """-> dict(transfer_syntax, meta {element: bytes}, body_offset, tree [Elem], sop_uid,
    study_uid, series_uid, sop_class_uid, patient_id, patient_name, patient_birth_date,
    accession). Raises P10Error with an AWS-like message."""
    meta, body_off = _meta(f, size)
    ts = _text(meta.get(0x0010, b""))
    if not ts:
        raise P10Error("DICOM attribute TransferSyntaxUID does not exist")
    for e, name in ((0x0002, "MediaStorageSOPClassUID"), (0x0003, "MediaStorageSOPInstanceUID")):
        if e not in meta:
            raise P10Error(f"DICOM attribute {name} does not exist")
    if ts == TS_DEFLATED:
        f.seek(body_off)
        d = zlib.decompressobj(-15)
        try:
            body = d.decompress(f.read(), 256 * 1024 * 1024)
        except zlib.error:
            raise P10Error("Invalid deflated data set")
        r = Reader(io.BytesIO(body), len(body))
    else:
        f.seek(body_off)
        r = Reader(f, size, little=(ts != TS_EXPLICIT_BE), explicit=(ts != TS_IMPLICIT))
    tree = read_dataset(r, None, 0)
    top = {el.tag: el for el in tree}

    def val(tag):
        el = top.get(tag)
        return _text(el.value) if el is not None and el.value is not None else ""

    out = {"transfer_syntax": ts, "meta": meta, "body_offset": body_off, "tree": tree,
           "little": ts != TS_EXPLICIT_BE,
           "sop_class_uid": val(0x00080016), "sop_uid": val(0x00080018),
           "study_uid": val(0x0020000D), "series_uid": val(0x0020000E),
           "patient_id": val(0x00100020), "patient_name": val(0x00100010),
           "patient_birth_date": val(0x00100030), "accession": val(0x00080050)}
    for key, name in (("sop_uid", "SOPInstanceUID"), ("study_uid", "StudyInstanceUID"),
                      ("series_uid", "SeriesInstanceUID"), ("sop_class_uid", "SOPClassUID")):
        if not out[key]:
            raise P10Error(f"DICOM attribute {name} does not exist")
    if _text(meta[0x0003]) != out["sop_uid"]:
        raise P10Error("MediaStorageSOPInstanceUID does not match SOPInstanceUID")
    return out


def parse_part10(data):
    """Validates a Part-10 file held in memory (STOW-RS parts, small imports)."""
    return parse_fileobj(io.BytesIO(data), len(data))


def parse_part10_file(path):
    with open(path, "rb") as f:
        return parse_fileobj(f, os.fstat(f.fileno()).st_size)


# ---------------------------------------------------------------- DICOM JSON (PS3.18 Annex F)

def _charset(tree):
    for el in tree:
        if el.tag == 0x00080005 and el.value is not None:
            terms = [t.strip() for t in el.value.decode("latin-1").split("\\")]
            if "ISO_IR 192" in terms:
                return "utf-8"
            return "latin-1"
    return "latin-1"


def _number(s, integer):
    s = s.strip()
    if not s:
        return None
    try:
        if integer:
            return int(s)
        v = float(s)
        return int(v) if v.is_integer() and "." not in s and "e" not in s.lower() else v
    except ValueError:
        return s  # malformed: keep the text rather than lose it


def json_value(vr, raw, little, charset):
    """Value list of one non-sequence element, or None for an empty value."""
    if raw is None or len(raw) == 0:
        return None
    end = "<" if little else ">"
    fmt = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q",
           "UV": "Q"}.get(vr)
    if fmt:
        n = len(raw) // struct.calcsize(fmt)
        return list(struct.unpack(end + fmt * n, raw[:n * struct.calcsize(fmt)]))
    if vr == "AT":
        n = len(raw) // 4
        vals = struct.unpack(end + "HH" * n, raw[:n * 4])
        return [f"{vals[i]:04X}{vals[i + 1]:04X}" for i in range(0, len(vals), 2)]
    text = raw.decode(charset if vr in ("PN", "LO", "LT", "SH", "ST", "UC", "UT") else "latin-1",
                      "replace").rstrip("\0 ")
    if vr in SINGLE_STRING_VRS:
        return [text]
    parts = text.split("\\")
    if vr in ("IS", "DS"):
        return [_number(p, vr == "IS") for p in parts]
    if vr == "PN":
        out = []
        for p in parts:
            groups = p.split("=")
            d = {k: v for k, v in zip(("Alphabetic", "Ideographic", "Phonetic"), groups) if v}
            out.append(d or None)
        return out
    return [p.strip(" ") if vr != "UI" else p.strip("\0 ") for p in parts]


def to_dicom_json(tree, little, charset=None, bulk=None, path=""):
    """DICOM JSON object of an element list. bulk(path, el) -> BulkDataURI for values not held
    inline (over INLINE_MAX, and Pixel Data always); group lengths are left out (PS3.18 F.2)."""
    charset = charset or _charset(tree)
    obj = {}
    for el in tree:
        if el.tag & 0xFFFF == 0:
            continue
        key = f"{el.tag:08X}"
        here = f"{path}.{key}" if path else key
        vr = el.vr
        if vr == "SQ":
            items = [to_dicom_json(it, little, charset, bulk, f"{here}.{i}")
                     for i, it in enumerate(el.items or [])]
            obj[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            continue
        if el.frags is not None or el.tag == PIXEL_DATA or (el.value is None and el.length):
            obj[key] = {"vr": vr if vr in BINARY_VRS else "OB"}
            if bulk:
                obj[key]["BulkDataURI"] = bulk(here, el)
            continue
        if vr in BINARY_VRS:
            obj[key] = {"vr": vr}
            if el.value:
                obj[key]["InlineBinary"] = base64.b64encode(el.value).decode()
            continue
        v = json_value(vr, el.value, little, charset)
        obj[key] = {"vr": vr, "Value": v} if v is not None else {"vr": vr}
    return obj


def bulk_hash(path):
    """The last segment of a BulkDataURI: AWS shows a 32-hex hash; ours is MD5 of the tag path."""
    return hashlib.md5(path.encode()).hexdigest()


# ---------------------------------------------------------------- writing explicit VR LE

def _el_header(tag, vr, ln):
    g, e = tag >> 16, tag & 0xFFFF
    if vr in LONG_VRS:
        return struct.pack("<HH2sHI", g, e, vr.encode(), 0, ln)
    return struct.pack("<HH2sH", g, e, vr.encode(), ln)


def build_meta(meta, ts):
    """Preamble, DICM and a file meta group (explicit VR LE) with transfer syntax `ts`; the other
    meta elements are kept, the group length recomputed."""
    def pad(b):
        return b + (b"\0" if len(b) % 2 else b"")
    elems = dict(meta)
    elems[0x0001] = b"\x00\x01"
    elems[0x0010] = pad(ts.encode())
    elems[0x0012] = pad(IMPL_UID.encode())
    elems[0x0013] = b"HI_EMULATOR "
    vrs = {0x0001: "OB", 0x0002: "UI", 0x0003: "UI", 0x0010: "UI", 0x0012: "UI",
           0x0013: "SH", 0x0016: "AE", 0x0017: "AE", 0x0018: "AE", 0x0026: "UR",
           0x0100: "UI", 0x0102: "OB"}
    body = b"".join(_el_header(0x00020000 | e, vrs.get(e, "UN"), len(elems[e])) + elems[e]
                    for e in sorted(elems) if e != 0x0000)
    return (b"\0" * 128 + b"DICM" + _el_header(0x00020000, "UL", 4) + struct.pack("<I", len(body))
            + body)


def _copy(src, dst, n):
    while n > 0:
        b = src.read(min(n, CHUNK))
        if not b:
            raise P10Error("Invalid DICOM data set: truncated data element")
        dst.write(b)
        n -= len(b)


def _transcode(r, dst, end, depth, in_item=False):
    """Implicit VR LE elements -> explicit VR LE, sequences and items rewritten with undefined
    lengths (their defined lengths would change with the longer headers)."""
    if depth > MAX_DEPTH:
        raise P10Error("Invalid DICOM data set: sequences nested too deep")
    d = dictionary()
    while (end is None and r.left() > 0) or (end is not None and r.tell() < end):
        tag, _vr, ln, _h = r.header()
        if tag == ITEM_END and in_item and end is None:
            return
        vr = d.explicit_vr(tag)
        is_sq = ln == 0xFFFFFFFF or d.lookup(tag)[0] == "SQ"
        if is_sq and tag != PIXEL_DATA:
            dst.write(_el_header(tag, "SQ", 0xFFFFFFFF))
            seq_end = None if ln == 0xFFFFFFFF else r.tell() + ln
            while seq_end is None or r.tell() < seq_end:
                itag, _v, iln, _h2 = r.header()
                if itag == SEQ_END and seq_end is None:
                    break
                if itag != ITEM:
                    raise P10Error("Invalid DICOM data set: expected a sequence item")
                dst.write(struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF))
                if iln == 0xFFFFFFFF:
                    _transcode(r, dst, None, depth + 1, in_item=True)
                else:
                    _transcode(r, dst, r.tell() + iln, depth + 1)
                dst.write(struct.pack("<HHI", 0xFFFE, 0xE00D, 0))
            dst.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
            continue
        if ln > r.left():
            raise P10Error("Invalid DICOM data set: truncated data element")
        if vr not in LONG_VRS and ln > 0xFFFF:
            vr = "UN"
        dst.write(_el_header(tag, vr, ln))
        _copy(r.f, dst, ln)
    if in_item and end is None:
        raise P10Error("Invalid DICOM data set: unterminated item")


def write_explicit_le(src_path, dst_path, info):
    """Writes src (implicit VR LE or deflated explicit VR LE) as explicit VR LE to dst_path,
    streaming. info: parse result of src."""
    ts = info["transfer_syntax"]
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        dst.write(build_meta(info["meta"], TS_EXPLICIT))
        src.seek(info["body_offset"])
        if ts == TS_DEFLATED:
            d = zlib.decompressobj(-15)
            while True:
                b = src.read(CHUNK)
                if not b:
                    break
                dst.write(d.decompress(b))
            dst.write(d.flush())
        elif ts == TS_IMPLICIT:
            size = os.fstat(src.fileno()).st_size
            _transcode(Reader(src, size, True, False), dst, None, 0)
        else:
            raise P10Error(f"no transcoding from {ts}")
