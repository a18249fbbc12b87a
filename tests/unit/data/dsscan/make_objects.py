#!/usr/bin/python3
"""Regenerate the small, synthetic DICOM objects that tests/unit/test_dsscan.c walks (no patient
data: every name, ID and date is made up). Needs Debian's pydicom (/usr/bin/python3) and DCMTK
(dcmconv, dcmcrle, dcmcjpeg). Writes *.dcm next to this script and index.txt, one line per file:

    <file> <transfer syntax UID> <SOP Instance UID> <Study UID> <Series UID>

    /usr/bin/python3 tests/unit/data/dsscan/make_objects.py

It also writes each object's dataset as a seed of tests/fuzz/fuzz_dsscan (real_<name>: byte 0
the encoding, byte 1 the chunking seed, then the dataset after the File Meta group).

The objects cover what real modalities and toolkits send: pydicom's defined-length sequences
and items, DCMTK's undefined-length ones (dcmconv -e), group lengths and padding (dcmconv +g
+p), encapsulated pixel data with several fragments (dcmcrle, dcmcjpeg), a deeply nested SR-like
tree (also deflated), private elements and a UN sequence with implicit VR inside."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = "1.2.826.0.1.3680043.8.498.77"  # fixed, so that regenerating gives the same UIDs


def uid(n):
    return f"{ROOT}.{n}"


def code(value, meaning):
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = "99SYN"
    c.CodeMeaning = meaning
    return c


def image(n, rows=16, cols=16, frames=1):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = uid(1000 + n)
    ds.StudyDate = "20000101"
    ds.Modality = "CT"
    ds.Manufacturer = "SYNTHETIC"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = uid(9)
    ds.ReferencedStudySequence = Sequence([ref])
    proc = Dataset()
    proc.CodeValue = "SYN1"
    proc.CodingSchemeDesignator = "99SYN"
    proc.CodeMeaning = "SYNTHETIC"
    proc.ProcedureCodeSequence = Sequence([code("A", "a"), code("B", "b")])
    ds.RequestAttributesSequence = Sequence([proc, Dataset()])  # an empty item too
    ds.PatientName = "SYNTHETIC^TEST"
    ds.PatientID = "SYN-0000"
    ds.add_new(0x00091010, "LO", "SYNTHETIC CREATOR")
    ds.add_new(0x00091011, "OB", b"\x01\x02\x03")  # odd length, as some devices send
    ds.StudyInstanceUID = uid(2)
    ds.SeriesInstanceUID = uid(3)
    ds.InstanceNumber = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    px = (np.arange(rows * cols * frames, dtype=np.uint16) * 7 % 4096).astype(np.uint16)
    ds.PixelData = px.tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def sr(n, depth):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    ds.SOPInstanceUID = uid(2000 + n)
    ds.Modality = "SR"
    ds.StudyInstanceUID = uid(2)
    ds.SeriesInstanceUID = uid(4)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([code("ROOT", "root")])
    node = ds
    for level in range(depth):
        child = Dataset()
        child.RelationshipType = "CONTAINS"
        child.ValueType = "CONTAINER" if level < depth - 1 else "TEXT"
        child.ConceptNameCodeSequence = Sequence([code(f"L{level}", f"level {level}")])
        if level == depth - 1:
            child.TextValue = "SYNTHETIC"
        node.ContentSequence = Sequence([child])
        node = child
    return ds


def save(ds, path, ts):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.9.7433.1.1"
    ds.file_meta = meta
    ds.is_little_endian = True
    ds.is_implicit_VR = ts == ImplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    ds.save_as(path, write_like_original=False)


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"make_objects: {' '.join(args)}: {r.stderr.strip()}")


def main():
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        def dcmtk(opts, src, name):
            run("dcmconv", *opts, src, os.path.join(HERE, name))
            out.append(name)

        def put(name, ds, ts):
            path = os.path.join(HERE, name)
            save(ds, path, ts)
            out.append(name)

        put("ct_explicit.dcm", image(1), ExplicitVRLittleEndian)
        put("ct_implicit.dcm", image(2), ImplicitVRLittleEndian)
        put("ct_deflated.dcm", image(3), DeflatedExplicitVRLittleEndian)
        put("sr_deep_explicit.dcm", sr(1, 24), ExplicitVRLittleEndian)
        put("sr_deep_deflated.dcm", sr(2, 24), DeflatedExplicitVRLittleEndian)
        # DCMTK: undefined-length sequences and items (dcmconv -e), in both VR encodings;
        # group lengths and trailing padding (dcmconv +g +p)
        src = os.path.join(tmp, "src.dcm")
        save(image(4), src, ExplicitVRLittleEndian)
        dcmtk(["-e"], src, "ct_dcmtk_undefined.dcm")
        dcmtk(["+ti", "-e"], src, "ct_dcmtk_implicit_undefined.dcm")
        dcmtk(["+g", "+p", "256", "16"], src, "ct_dcmtk_padded.dcm")
        # encapsulated: RLE with three frames (three fragments), JPEG lossless
        src3 = os.path.join(tmp, "src3.dcm")
        save(image(5, frames=3), src3, ExplicitVRLittleEndian)
        run("dcmcrle", src3, os.path.join(HERE, "ct_rle_3frames.dcm"))
        out.append("ct_rle_3frames.dcm")
        run("dcmcjpeg", "+e1", src, os.path.join(HERE, "ct_jpeg_lossless.dcm"))
        out.append("ct_jpeg_lossless.dcm")
        # a private undefined-length sequence sent as UN, its inside in implicit VR LE
        # (PS3.5 6.2.2), in an explicit VR data set
        path = os.path.join(HERE, "ct_un_sequence.dcm")
        save(image(6), path, ExplicitVRLittleEndian)
        raw = open(path, "rb").read()
        at = raw.index(b"\x10\x00\x10\x00PN")  # (0010,0010): insert before it
        def impl(g, e, v):
            le = "little"
            return g.to_bytes(2, le) + e.to_bytes(2, le) + len(v).to_bytes(4, le) + v
        body = impl(0x0009, 0x0010, b"SYNTHETIC CREATOR ") + impl(0x0009, 0x1012, b"INSIDE")
        un = (b"\x09\x00\x12\x10UN\x00\x00\xff\xff\xff\xff"
              + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + body + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
              + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
        open(path, "wb").write(raw[:at] + un + raw[at:])
        out.append("ct_un_sequence.dcm")

    with open(os.path.join(HERE, "index.txt"), "w") as f:
        for name in out:
            ds = pydicom.dcmread(os.path.join(HERE, name))
            f.write(f"{name} {ds.file_meta.TransferSyntaxUID} {ds.SOPInstanceUID} "
                    f"{ds.StudyInstanceUID} {ds.SeriesInstanceUID}\n")
    seeds = os.path.join(HERE, "..", "..", "..", "fuzz", "corpus", "fuzz_dsscan")
    for i, name in enumerate(out):
        raw = open(os.path.join(HERE, name), "rb").read()
        start = 144 + int.from_bytes(raw[140:144], "little")  # after (0002,0000)'s group
        ts = pydicom.dcmread(os.path.join(HERE, name)).file_meta.TransferSyntaxUID
        enc = {ImplicitVRLittleEndian: 0, DeflatedExplicitVRLittleEndian: 2}.get(ts, 1)
        with open(os.path.join(seeds, "real_" + name[:-4]), "wb") as f:
            f.write(bytes([enc, (i * 37) & 0xFF]) + raw[start:])
    print("\n".join(out))


if __name__ == "__main__":
    main()
