#!/usr/bin/python3
"""Synthetic studies for the Query/Retrieve tests (no patient data: names, IDs and dates are made
up). Needs Debian's pydicom (/usr/bin/python3).

    qr_data.py --out DIR --patient-id ID --patient-name NAME --study-date YYYYMMDD
               [--modality CT] [--series N] [--instances M] [--charset latin1]
               [--ts explicit|implicit] [--rows R]

Writes DIR/s<series>_i<instance>.dcm, one study (fresh UIDs), N series of M instances each,
series k with Modality from --modality for k = 1 and "MR" for the others. Prints the Study
Instance UID."""
import argparse
import os
import uuid

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}


def uid():
    return "2.25." + str(uuid.uuid4().int)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--patient-id", required=True)
    ap.add_argument("--patient-name", required=True)
    ap.add_argument("--study-date", required=True)
    ap.add_argument("--modality", default="CT")
    ap.add_argument("--series", type=int, default=1)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--charset", default="")
    ap.add_argument("--ts", default="explicit")
    ap.add_argument("--rows", type=int, default=8)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    study = uid()
    ts = ExplicitVRLittleEndian if a.ts == "explicit" else ImplicitVRLittleEndian
    for s in range(a.series):
        series = uid()
        modality = a.modality if s == 0 else "MR"
        for i in range(a.instances):
            ds = Dataset()
            if a.charset == "latin1":
                ds.SpecificCharacterSet = "ISO_IR 100"
            ds.SOPClassUID = CLASSES[modality]
            ds.SOPInstanceUID = uid()
            ds.StudyDate = a.study_date
            ds.StudyTime = "101500"
            ds.AccessionNumber = "ACC" + a.patient_id
            ds.Modality = modality
            ds.StudyDescription = "SYNTHETIC QR TEST"
            ds.SeriesDescription = "SERIES %d" % (s + 1)
            ds.PatientName = a.patient_name
            ds.PatientID = a.patient_id
            ds.PatientBirthDate = "19700101"
            ds.PatientSex = "O"
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series
            ds.StudyID = "1"
            ds.SeriesNumber = s + 1
            ds.InstanceNumber = i + 1
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = ds.Columns = a.rows
            ds.BitsAllocated = ds.BitsStored = 8
            ds.HighBit = 7
            ds.PixelRepresentation = 0
            ds.PixelData = bytes((i + k) % 256 for k in range(a.rows * a.rows))
            m = FileMetaDataset()
            m.MediaStorageSOPClassUID = ds.SOPClassUID
            m.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            m.TransferSyntaxUID = ts
            ds.file_meta = m
            ds.is_little_endian, ds.is_implicit_VR = True, ts == ImplicitVRLittleEndian
            ds.save_as(os.path.join(a.out, "s%d_i%04d.dcm" % (s + 1, i + 1)),
                       write_like_original=False)
    print(study)


if __name__ == "__main__":
    main()
