#!/usr/bin/python3
"""Synthetic DICOM test data (no patient data: every name, ID and date is made up and marked
SYNTHETIC). Needs only Debian's pydicom (/usr/bin/python3; apt-get install python3-pydicom, which
tools/run-gateway.sh installs); pixel data is plain Python bytes (no numpy). Compressed transfer
syntaxes are made with DCMTK (dcmcjpeg, dcmcrle).

    gen_data.py --out DIR [--count N] [--modality CT|MR|US|SC|CR|DX|MG|PT|NM|XA]
                [--ts implicit|explicit|deflated|jpeg-lossless|jpeg-lossless-sv1|rle]
                [--rows R --cols C] [--frames F] [--big-bytes N] [--seed S]

Writes DIR/<modality>_<n>.dcm, one study per run (one series), each a valid Part-10 file with a
fresh SOP Instance UID under 2.25 (UUID-derived). --big-bytes N writes one multi-frame object
whose Pixel Data is at least N bytes, streamed to disk frame by frame (memory stays small
whatever N is), explicit VR little endian only. Prints the paths written, one per line."""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from array import array

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian)

SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "SC": "1.2.840.10008.5.1.4.1.1.7",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",
}
# modality -> (samples per pixel, bits allocated, signed)
PIXELS = {"US": (3, 8, False), "SC": (1, 8, False), "CT": (1, 16, True), "PT": (1, 16, False)}
TS_NAMES = {
    "implicit": ImplicitVRLittleEndian,
    "explicit": ExplicitVRLittleEndian,
    "deflated": DeflatedExplicitVRLittleEndian,
    "jpeg-lossless": "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1, DCMTK's default lossless
    "jpeg-lossless-sv1": "1.2.840.10008.1.2.4.70",
    "jpeg-lossless-p14": "1.2.840.10008.1.2.4.57",
    "rle": "1.2.840.10008.1.2.5",
}
IMPL_UID = "1.2.826.0.1.3680043.9.7433.1.1"  # test-data implementation class (2.25-style root)


def new_uid():
    return "2.25." + str(uuid.uuid4().int)


def base_dataset(modality, study, series, frame_of_ref, index, rows, cols, frames):
    spp, bits, signed = PIXELS.get(modality, (1, 16, False))
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.SOPInstanceUID = new_uid()
    ds.StudyDate = "20000101"
    ds.ContentDate = "20000101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "SYN0001"
    ds.Modality = modality
    ds.Manufacturer = "SYNTHETIC"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "SYNTHETIC TEST DATA"
    ds.SeriesDescription = "SYNTHETIC " + modality
    ds.PatientName = "SYNTHETIC^TEST"
    ds.PatientID = "SYN-0000"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = frame_of_ref
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = "RGB" if spp == 3 else "MONOCHROME2"
    if spp == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = bits
    ds.BitsStored = bits if bits == 8 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if modality == "CT":
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    return ds, spp, bits, signed


def _ramp_rows(rows, cols, bits, scale, offset):
    """Rows of the pattern ((x + y + offset) % period) * scale, little-endian samples."""
    period = 248 if bits == 8 else 256  # 8 bits: room for the noise below without a wrap
    size = bits // 8
    cycle = b"".join(((k % period) * scale).to_bytes(size, "little") for k in range(period))
    line = cycle * (cols // period + 2)
    out = []
    for y in range(rows):
        at = (y + offset) % period * size
        out.append(line[at:at + cols * size])
    return out


def _noise(rng, n, bits, mask):
    """n samples of random noise in [0, mask], little-endian, as bytes."""
    table = bytes(b & mask for b in range(256))
    low = rng.randbytes(n).translate(table)
    if bits == 8:
        return low
    out = bytearray(2 * n)
    out[0::2] = low
    return bytes(out)


def _add_lanes(a, b):
    """Sample-wise a + b of two equal-length little-endian byte strings whose sums never carry
    out of a sample (callers keep each sum under the sample's range): one big-integer add."""
    return (int.from_bytes(a, "little") + int.from_bytes(b, "little")).to_bytes(len(a), "little")


def pixels(rng, rows, cols, spp, bits, signed, frames, index):
    """A smooth pattern plus noise (compresses like an image, not like zeros or pure noise).
    Plain Python bytes: every sample of a 16-bit image stays within 12 bits stored, so signed
    and unsigned pixels have the same bytes."""
    del signed  # values are non-negative and under 4096 either way
    size = bits // 8
    tc = "B" if bits == 8 else "H"
    if bits == 8:
        base = b"".join(_ramp_rows(rows, cols, bits, 1, 7 * index))
        img = _add_lanes(base, _noise(rng, rows * cols, bits, 7))
    else:
        base = b"".join(_ramp_rows(rows, cols, bits, 8, 7 * index))
        img = _add_lanes(base, _noise(rng, rows * cols, bits, 63))
    row_len = cols * size
    img_rows = [img[y * row_len:(y + 1) * row_len] for y in range(rows)]
    if spp == 3:
        # R: the image, G: flipped top to bottom, B: flipped left to right; samples interleaved
        out_rows = []
        for y in range(rows):
            mirrored = array(tc, img_rows[y])
            mirrored.reverse()
            px = array(tc, bytes(3 * row_len))
            px[0::3] = array(tc, img_rows[y])
            px[1::3] = array(tc, img_rows[rows - 1 - y])
            px[2::3] = mirrored
            out_rows.append(px.tobytes())
        img_rows = out_rows
    if frames <= 1:
        return b"".join(img_rows)
    out = []
    for f in range(frames):  # frame f: the image rolled down by f rows
        k = f % rows
        out.append(b"".join(img_rows[rows - k:] + img_rows[:rows - k]))
    return b"".join(out)


def file_meta(ds, ts):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = IMPL_UID
    meta.ImplementationVersionName = "GW_GEN_DATA"
    return meta


def save(ds, path, ts):
    ds.file_meta = file_meta(ds, ts)
    ds.is_little_endian = True
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    ds.save_as(path, write_like_original=False)


def compress(tool_args, src, dst):
    r = subprocess.run(tool_args + [src, dst], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"gen_data: {' '.join(tool_args)} failed: {r.stderr.strip()}")


def write_one(args, rng, ids, index, tmpdir):
    ds, spp, bits, signed = base_dataset(args.modality, *ids, index, args.rows, args.cols,
                                         args.frames)
    data = pixels(rng, args.rows, args.cols, spp, bits, signed, args.frames, index)
    ds.PixelData = data
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    path = os.path.join(args.out, f"{args.modality}_{index:05d}.dcm")
    ts = args.ts
    if ts in ("implicit", "explicit", "deflated"):
        save(ds, path, TS_NAMES[ts])
        return path
    # compressed: write explicit VR LE, then let DCMTK encode it
    plain = os.path.join(tmpdir, "plain.dcm")
    save(ds, plain, ExplicitVRLittleEndian)
    if ts in ("jpeg-lossless", "jpeg-lossless-sv1"):
        compress(["dcmcjpeg", "+e1"], plain, path)
    elif ts == "jpeg-lossless-p14":
        compress(["dcmcjpeg", "+el"], plain, path)
    elif ts == "rle":
        compress(["dcmcrle"], plain, path)
    else:
        sys.exit(f"gen_data: unknown --ts {ts}")
    return path


def write_big(args, ids):
    """One multi-frame object of at least big_bytes of pixel data, streamed to disk."""
    rows, cols = args.rows, args.cols
    frame = rows * cols * 2
    frames = max(1, -(-args.big_bytes // frame))
    ds, _, _, _ = base_dataset(args.modality, *ids, 0, rows, cols, frames)
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    path = os.path.join(args.out, f"{args.modality}_big.dcm")
    save(ds, path, ExplicitVRLittleEndian)  # everything but Pixel Data (7FE0,0010) is last
    total = frames * frame
    if total > 0xFFFFFFFE:
        sys.exit("gen_data: --big-bytes over 4 GiB does not fit one explicit length")
    rng = random.Random(args.seed)
    chunk = _noise(rng, frame // 2, 16, 0xFF)
    high = bytearray(chunk)
    high[1::2] = rng.randbytes(frame // 2).translate(bytes(b & 0x0F for b in range(256)))
    chunk = bytes(high)  # random samples within 12 bits stored
    with open(path, "ab") as f:
        f.write(b"\xe0\x7f\x10\x00OW\x00\x00" + total.to_bytes(4, "little"))
        for i in range(frames):
            # vary each frame cheaply so that no two frames are identical
            f.write(i.to_bytes(4, "little") + chunk[4:])
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--modality", default="CT", choices=sorted(SOP_CLASSES))
    ap.add_argument("--ts", default="explicit", choices=sorted(TS_NAMES))
    ap.add_argument("--rows", type=int, default=0, help="default 512 (CT/MR...), 256 (US/SC)")
    ap.add_argument("--cols", type=int, default=0)
    ap.add_argument("--frames", type=int, default=1)
    ap.add_argument("--big-bytes", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    small = args.modality in ("US", "SC")
    args.rows = args.rows or (256 if small else 512)
    args.cols = args.cols or (256 if small else 512)
    if args.ts in ("jpeg-lossless", "jpeg-lossless-sv1", "jpeg-lossless-p14", "rle"):
        for tool in ("dcmcjpeg", "dcmcrle"):
            if not shutil.which(tool):
                sys.exit(f"gen_data: {tool} not found (apt-get install dcmtk)")
    os.makedirs(args.out, exist_ok=True)
    ids = (new_uid(), new_uid(), new_uid())
    if args.big_bytes:
        if args.ts != "explicit":
            sys.exit("gen_data: --big-bytes writes explicit VR little endian only")
        print(write_big(args, ids))
        return
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.count):
            print(write_one(args, rng, ids, i, tmp))


if __name__ == "__main__":
    main()
