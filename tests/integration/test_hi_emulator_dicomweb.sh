#!/usr/bin/env bash
# Proves the DICOMweb read side of THE HealthImaging EMULATOR (tests/support/hi_emulator.py, not
# AWS) with independent clients: tests/support/test_hi_emulator_dicomweb.py starts moto and the
# emulator (aws_env.py) on free loopback ports, stores generated instances (STOW-RS, an import
# job from moto S3, POST /_emulator/load; pydicom-written files from gen_data.py), and checks
# with botocore-signed requests: QIDO-RS at every level (matching, ordering, paging, the
# 10,000-result cap lowered by a knob), WADO-RS bodies byte-identical to what was stored, the
# implicit -> explicit VR transcoding (pydicom compares the data sets), metadata, frames, bulk
# data, imageSetId and non-primary image sets, a 128 MiB instance streamed with bounded memory,
# the STS AssumeRole shim's refusals, study-scoped session policies (403 AccessDeniedException
# out of scope), ExpiredTokenException, throttling and outage, and the index reloaded by a
# restarted emulator. Needs no build (GW_BUILD unused). Runs in about a minute.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=$(command -v python3)
fail() { echo "FAIL: $*"; exit 1; }
"$PY" -c 'import moto, boto3' || fail "pyenv python3 with moto and boto3 needed"
/usr/bin/python3 -c 'import pydicom, numpy' || fail "Debian python3-pydicom and python3-numpy needed"
command -v dcmcrle >/dev/null || fail "DCMTK dcmcrle needed (apt-get install dcmtk)"
compgen -G "/usr/share/libdcmtk*/dicom.dic" >/dev/null ||
    fail "DCMTK's dicom.dic (libdcmtk) needed: the emulator reads implicit VR data with it"
# the script bounds itself (10 minutes) and stops what it started by PID; timeout is a backstop
exec timeout -k 10 900 nice "$PY" "$src/tests/support/test_hi_emulator_dicomweb.py"
