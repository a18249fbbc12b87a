#!/usr/bin/env bash
# A resend of a FAILED object is a new attempt through the current mode, answered by that
# attempt's outcome (issue 14): (1) mode stow, ack "healthimaging": HealthImaging refuses an
# object (FailedSOPSequence, a permanent reason): the modality gets a permanent failure
# (0xC000, the reason as Error Comment), not 0xA700; its resend is sent again and refused
# again the same way; once HealthImaging takes it, the resend succeeds and the item is
# IMPORTED, with still one S3 object and one item. (2) mode import, ack "s3": an object whose
# import FAILED is sent again: success at the s3 point, and its S3 object is imported again (a
# re-drive), without a second S3 object or item. (3) s3.checksum "crc64nvme": single PUT and
# multipart uploads land; a single PUT's stored CRC-64/NVME is checked against an independent
# computation here (moto 5.2.1 stores the value it is given without checking it; for a
# multipart upload it computes its own at Complete, CRC32 in place of CRC64NVME when awscrt is
# missing, so the parts' and the full object's values are checked in tests/unit/test_http.c).
# Peers: moto and THE HealthImaging EMULATOR.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib_forwarder.sh
source "$here/lib_forwarder.sh"
skip_unless_ready
aws_up --job-delay 0.3
export TCP_NODELAY=1

# (1) stow, ack healthimaging
write_core_config "$T/core.json" healthimaging ', "mode": "stow"'
core_start
gen_objects "$T/x" 1 64 refused
X=$(awk '{print $2}' "$T/x/uids.txt")
curl -sf -X POST "$HI_ENDPOINT/_emulator/fail" -d "{\"sop_uids\": [\"$X\"]}" >/dev/null
for attempt in first resend; do
    storescu -v -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/x/*.dcm >"$T/x_$attempt.log" 2>&1 || true
    grep -q "Received Store Response (Success)" "$T/x_$attempt.log" &&
        die "$attempt: a refused object was acknowledged"
    grep -qi "OutOfResources" "$T/x_$attempt.log" &&
        { cat "$T/x_$attempt.log" >&2; die "$attempt: 0xA700 (the modality would retry for ever)"; }
    grep -qiE "Received Store Response \(.*(Cannot ?Understand|0xc000)" "$T/x_$attempt.log" ||
        { cat "$T/x_$attempt.log" >&2; die "$attempt: no permanent failure status"; }
done
grep -q '"why":"HealthImaging refused: FailureReason 0x0110"' "$T/core.log" ||
    die "the refusal's reason is not the Error Comment"
grep -q '"resend_of_failed"' "$T/core.log" || die "the resend was not a new attempt"
grep -q 'invalid state' "$T/core.log" && die "ack_failed ... invalid state"
echo "ok: a refused object and its resend get 0xC000 with the reason, never 0xA700"
curl -sf -X POST "$HI_ENDPOINT/_emulator/reset" -d '{}' >/dev/null
storescu -v -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/x/*.dcm >"$T/x_ok.log" 2>&1 ||
    { cat "$T/x_ok.log" >&2; die "the resend after HealthImaging took it"; }
grep -q "Received Store Response (Success)" "$T/x_ok.log" || die "the resend was not acknowledged"
MODE=stow check_imported "$T/x" 60 || die "the resent object is not IMPORTED once"
echo "ok: once HealthImaging takes it, the resend succeeds: IMPORTED, one S3 object, one item"
core_stop

# (2) import, ack s3: a resend of an object whose import FAILED
write_core_config "$T/core.json" s3
core_start
gen_objects "$T/z" 1 64 importfail
Z=$(awk '{print $2}' "$T/z/uids.txt")
echo "$Z" >"$T/z_bad.txt"
curl -sf -X POST "$HI_ENDPOINT/_emulator/fail" -d "{\"sop_uids\": [\"$Z\"]}" >/dev/null
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/z/*.dcm >"$T/z1.log" 2>&1 || die "storescu z"
check_imported "$T/z" 60 "$T/z_bad.txt" || die "the import failure was not recorded"
curl -sf -X POST "$HI_ENDPOINT/_emulator/reset" -d '{}' >/dev/null
storescu -v -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/z/*.dcm >"$T/z2.log" 2>&1 ||
    die "storescu z resend"
grep -q "Received Store Response (Success)" "$T/z2.log" || die "the resend was not acknowledged"
check_imported "$T/z" 60 || die "the resend did not re-import the object once"
grep -q '"redrive_started"' "$T/core.log" || die "no re-import"
echo "ok: import mode: a resend of a FAILED object succeeds at s3 and re-imports it, one object"
core_stop

# (3) CRC-64/NVME: a single PUT and a multipart upload (threshold 5 MiB)
write_core_config "$T/core.json" s3
python3 - "$T/core.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["backend"]["s3"].update(checksum="crc64nvme", multipart_threshold=5 << 20, part_size=5 << 20)
json.dump(c, open(sys.argv[1], "w"))
PYEOF
core_start
gen_objects "$T/c" 3 64 crc
gen_objects "$T/c" 1 1800 crcbig
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/c/*.dcm >"$T/c.log" 2>&1 || die "storescu crc"
check_imported "$T/c" 120 || die "crc64nvme uploads"
python3 - "$T/c" "$GW_SRC/tests/unit/data/crc64nvme" <<'PYEOF' || die "CRC-64/NVME checksums"
import base64, os, sys
import boto3
sys.path.insert(0, sys.argv[2])
from gen_vectors import crc  # the definition, one bit at a time made a table: not our C code
ep, region = os.environ["MOTO_ENDPOINT"], os.environ["REGION"]
s3 = boto3.client("s3", endpoint_url=ep, region_name=region)
ddb = boto3.client("dynamodb", endpoint_url=ep, region_name=region)
n = 0
for line in open(os.path.join(sys.argv[1], "uids.txt")):
    sop = line.split()[1]
    items = ddb.query(TableName=os.environ["TABLE"],
                      KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "INSTANCE#" + sop}})["Items"]
    key = items[0]["s3_key"]["S"]
    h = s3.head_object(Bucket=os.environ["BUCKET"], Key=key, ChecksumMode="ENABLED")
    got = h.get("ChecksumCRC64NVME")
    body = s3.get_object(Bucket=os.environ["BUCKET"], Key=key)["Body"].read()
    if len(body) >= 5 << 20:
        continue  # multipart: moto keeps its own checksum (see the head of this file)
    want = base64.b64encode(crc(body).to_bytes(8, "big")).decode()
    assert got == want, f"{sop} ({len(body)} bytes): stored {got}, computed {want}"
    assert h.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT", h.get("ChecksumType")
    n += 1
assert n >= 3, n
print(f"ok: {n} single-PUT objects carry the CRC-64/NVME of their bytes; the multipart one landed")
PYEOF
core_stop
echo PASS
