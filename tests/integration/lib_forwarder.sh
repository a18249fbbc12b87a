# Shared by test_forwarder_*.sh and tests/bench/forwarder_vs_awscli.sh (sourced, not run).
# Needs: GW_BUILD, GW_SRC; pyenv python3 (moto, boto3) as `python3`; Debian's /usr/bin/python3
# (pydicom) for data; DCMTK storescu.
set -euo pipefail

CORE="$GW_BUILD/core/dicom-core"
AWS_ENV="${AWS_ENV_PY:-$GW_SRC/tests/support/aws_env.py}"
T=$(mktemp -d /tmp/gw-fwd.XXXXXX)
CORE_PID=""
AWS_STARTED=0

fwd_cleanup() {
    if [[ -n "$CORE_PID" ]] && kill -0 "$CORE_PID" 2>/dev/null; then
        kill -TERM "$CORE_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$CORE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CORE_PID" 2>/dev/null || true
    fi
    if [[ $AWS_STARTED == 1 ]]; then
        python3 "$AWS_ENV" stop --dir "$T/aws" >/dev/null 2>&1 || true
    fi
    if [[ "${KEEP_TMP:-0}" != 1 ]]; then rm -rf "$T"; else echo "kept $T" >&2; fi
}
trap fwd_cleanup EXIT

die() {
    echo "FAIL: $*" >&2
    if [[ -f "$T/core.log" ]]; then echo "--- core.log (tail)" >&2; tail -n 40 "$T/core.log" >&2; fi
    exit 1
}

skip_unless_ready() {
    [[ -x "$CORE" ]] || die "no $CORE"
    [[ -f "$AWS_ENV" ]] || { echo "SKIP: tests/support/aws_env.py not on this branch"; exit 0; }
    command -v storescu >/dev/null || die "DCMTK storescu missing"
    "$CORE" status --config /dev/null 2>&1 | grep -q "not built" &&
        die "dicom-core was built without the aws backend"
    return 0
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

aws_up() {
    python3 "$AWS_ENV" start --dir "$T/aws" "$@" >"$T/aws_env.out" 2>&1 ||
        { cat "$T/aws_env.out" >&2; die "aws_env start"; }
    AWS_STARTED=1
    # shellcheck disable=SC1091
    source "$T/aws/env.sh"
}

# gen_objects DIR COUNT [ROWS] [NAME_PREFIX]: one study, three series, synthetic CT images (no
# patient data); DIR/uids.txt lists "file SOP-Instance-UID Study-Instance-UID" per object.
gen_objects() {
    /usr/bin/python3 - "$1" "$2" "${3:-64}" "${4:-ct}" <<'EOF'
import os, sys, uuid
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
out, n, rows, pre = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(out, exist_ok=True)
uid = lambda: "2.25." + str(uuid.uuid4().int)
study = uid()
series = [uid() for _ in range(3)]
for i in range(n):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series[i % 3]
    ds.PatientName = "SYNTHETIC^TEST"
    ds.PatientID = "SYNTH-0001"
    ds.Modality = "CT"
    ds.InstanceNumber = i + 1
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = (np.arange(rows * rows, dtype=np.int16) + i).tobytes()
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    name = f"{pre}_{i:05d}.dcm"
    pydicom.dcmwrite(os.path.join(out, name), ds, write_like_original=False)
    with open(os.path.join(out, "uids.txt"), "a") as m:
        m.write(f"{name} {ds.SOPInstanceUID} {study}\n")
EOF
}

# write_core_config FILE ACK [extra healthimaging json members]
write_core_config() {
    local file=$1 ack=$2 hi_extra=${3:-}
    CORE_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    mkdir -p "$T/spool"
    cat >"$file" <<EOF
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$CORE_PORT",
  "http_listen": "127.0.0.1:$HTTP_PORT", "spool_dir": "$T/spool", "ack": "$ack",
  "min_free_bytes": 0, "drain_ms": 2000, "log_level": "info",
  "backend": { "type": "aws", "region": "$REGION",
    "s3": { "bucket": "$BUCKET", "prefix": "dicom", "output_prefix": "import-output" },
    "healthimaging": { "datastore_id": "$DATASTORE_ID", "data_access_role_arn": "$ROLE_ARN",
                       "batch_max_age_ms": ${BATCH_AGE_MS:-1000}, "poll_initial_ms": 200,
                       "poll_max_ms": 1000 ${hi_extra} },
    "dynamodb": { "table": "$TABLE" },
    "ack_timeout_ms": ${ACK_TIMEOUT_MS:-30000}, "max_uploads": ${MAX_UPLOADS:-16},
    "endpoints": { "s3": "$MOTO_ENDPOINT", "dynamodb": "$MOTO_ENDPOINT",
                   "medical_imaging": "$HI_ENDPOINT", "medical_imaging_dicom": "$HI_ENDPOINT" } } }
EOF
}

# set_s3_endpoint FILE URL: point a written core config's S3 at URL (a proxy, or nothing)
set_s3_endpoint() {
    python3 - "$1" "$2" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["backend"]["endpoints"]["s3"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))
PYEOF
}

CORE_ENV=()  # e.g. (-u AWS_ACCESS_KEY_ID VAR=value): the core's environment changes
core_start() {
    env "${CORE_ENV[@]}" "$CORE" --config "$T/core.json" >>"$T/core.log" 2>&1 &
    CORE_PID=$!
    for _ in $(seq 100); do
        if (echo >"/dev/tcp/127.0.0.1/$CORE_PORT") 2>/dev/null; then return 0; fi
        kill -0 "$CORE_PID" 2>/dev/null || die "dicom-core exited at start"
        sleep 0.1
    done
    die "dicom-core did not listen"
}

core_kill9() {
    kill -KILL "$CORE_PID" 2>/dev/null || true
    wait "$CORE_PID" 2>/dev/null || true
    CORE_PID=""
}

core_stop() { # SIGTERM; a clean exit is required (sanitizer reports make it non-zero)
    kill -TERM "$CORE_PID" 2>/dev/null || true
    local rc=0
    wait "$CORE_PID" 2>/dev/null || rc=$?
    CORE_PID=""
    [[ $rc == 0 ]] || die "dicom-core exited with status $rc on SIGTERM"
}

# check_imported DIR_OF_INPUT TIMEOUT_S [EXPECT_FAILED_SOPS_FILE]: every input object is in S3
# (dataset bytes identical, SHA-256 as recorded), its DynamoDB item IMPORTED with an image set
# (or FAILED when listed), exactly one item per SOP Instance UID, one S3 object per SOP Instance
# UID under the prefix, and the job items COMPLETED.
check_imported() {
    python3 - "$@" <<'EOF'
import hashlib, os, sys, time
import boto3
from boto3.dynamodb.conditions import Key
indir, timeout = sys.argv[1], float(sys.argv[2])
expect_failed = set(open(sys.argv[3]).read().split()) if len(sys.argv) > 3 else set()
ep, region = os.environ["MOTO_ENDPOINT"], os.environ["REGION"]
s3 = boto3.client("s3", endpoint_url=ep, region_name=region)
ddb = boto3.client("dynamodb", endpoint_url=ep, region_name=region)
table, bucket = os.environ["TABLE"], os.environ["BUCKET"]

def dataset_bytes(b):
    assert b[128:132] == b"DICM", "not Part-10"
    glen = int.from_bytes(b[140:144], "little")
    return b[144 + glen:]

want = {}
for line in open(os.path.join(indir, "uids.txt")):
    f, sop, study = line.split()
    want[sop] = (os.path.join(indir, f), study)
studies = {v[1] for v in want.values()}

def items():
    out = []
    for st in studies:
        kw = dict(TableName=table, IndexName="study_index",
                  KeyConditionExpression="study_uid = :s",
                  ExpressionAttributeValues={":s": {"S": st}})
        while True:
            r = ddb.query(**kw)
            out += r["Items"]
            if "LastEvaluatedKey" not in r:
                break
            kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
    return out

deadline = time.time() + timeout
while True:
    its = items()
    states = {}
    for it in its:
        states.setdefault(it["sop_uid"]["S"], []).append(it["state"]["S"])
    # wait for the expected end state (a wrong one shows once the time is up)
    done = all(("FAILED" if sop in expect_failed else "IMPORTED") in states.get(sop, [])
               for sop in want)
    if done or time.time() > deadline:
        break
    time.sleep(1)
errors = []
count = {}
for it in its:
    sop = it["sop_uid"]["S"]
    count[sop] = count.get(sop, 0) + 1
for sop, (path, study) in want.items():
    if count.get(sop, 0) != 1:
        errors.append(f"{sop}: {count.get(sop, 0)} DynamoDB items (want 1)")
for it in its:
    sop = it["sop_uid"]["S"]
    if sop not in want:
        errors.append(f"unexpected item {sop}")
        continue
    st = it["state"]["S"]
    exp = "FAILED" if sop in expect_failed else "IMPORTED"
    if st != exp:
        errors.append(f"{sop}: state {st}, want {exp} ({it.get('error_type', {}).get('S', '')})")
        continue
    if exp == "IMPORTED" and os.environ.get("MODE", "import") == "import" \
            and not it.get("image_set_id", {}).get("S"):
        errors.append(f"{sop}: no image_set_id")
    key = it["s3_key"]["S"]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if hashlib.sha256(body).hexdigest() != it["sha256"]["S"]:
        errors.append(f"{sop}: S3 object's SHA-256 differs from the item's")
    if dataset_bytes(body) != dataset_bytes(open(want[sop][0], "rb").read()):
        errors.append(f"{sop}: S3 dataset bytes differ from what storescu sent")
    if int(it["bytes"]["N"]) != len(body):
        errors.append(f"{sop}: bytes attribute {it['bytes']['N']} != {len(body)}")
# one object per SOP Instance UID: the task policy has no s3:ListBucket (and moto's
# /moto-api/data.json fails once a multipart upload happened), so every key an object could
# have is probed: <prefix>/<batch>/<SOP>.dcm for each batch that ever held objects (each has
# an import job, listed by the emulator) and each batch an item names.
import json, urllib.request
from botocore.exceptions import ClientError
with urllib.request.urlopen(os.environ["HI_ENDPOINT"] + "/_emulator/jobs", timeout=30) as r:
    jobs = json.load(r)["jobs"]
batches = {it["batch_id"]["S"] for it in its}
for j in jobs:
    parts = j["inputS3Uri"].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-1].startswith("b-"):
        batches.add(parts[-1])
per = {}
keys = []
for sop in want:
    for b in batches:
        try:
            s3.head_object(Bucket=bucket, Key=f"dicom/{b}/{sop}.dcm")
            per[sop] = per.get(sop, 0) + 1
            keys.append(b)
        except ClientError:
            pass
for sop in want:
    if per.get(sop, 0) != 1:
        errors.append(f"{sop}: {per.get(sop, 0)} S3 objects (want 1)")
for b in {it["batch_id"]["S"] for it in its}:
    j = ddb.get_item(TableName=table, Key={"pk": {"S": "JOB#" + b}, "sk": {"S": "JOB"}},
                     ConsistentRead=True).get("Item")
    want_job = os.environ.get("JOB_STATE", "COMPLETED")
    if os.environ.get("MODE", "import") == "import" and (not j or j["state"]["S"] != want_job):
        errors.append(f"job item of {b}: {j['state']['S'] if j else 'missing'}")
if errors:
    print("\n".join(errors[:40]), file=sys.stderr)
    print(f"{len(errors)} problem(s); {len(want)} objects", file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(want)} objects in S3, {len(want) - len(expect_failed)} IMPORTED, "
      f"{len(expect_failed)} FAILED, {len(keys)} S3 keys")
EOF
}

# check_one_job_per_batch: the emulator saw no two import jobs with one clientToken (batch id)
check_one_job_per_batch() {
    python3 - "$HI_ENDPOINT" <<'PYEOF'
import json, sys, urllib.request
jobs = json.load(urllib.request.urlopen(sys.argv[1] + "/_emulator/jobs"))["jobs"]
tokens = [j["clientToken"] for j in jobs]
assert len(tokens) == len(set(tokens)), f"{len(tokens)} jobs for {len(set(tokens))} tokens"
print(f"ok: {len(jobs)} import jobs, one per batch")
PYEOF
}
