#!/usr/bin/env bash
# Proves the AWS test harness itself (tests/support/aws_env.py, hi_emulator.py,
# metadata_server.py, sigv4_check.py) with independent clients: the AWS CLI and boto3 from
# pyenv's python3. The HealthImaging side is an EMULATOR (tests/support/hi_emulator.py).
#   - moto lets the first --no-auth-count requests in, then rejects a bad signature;
#   - the task policy allows what it lists (S3 PutObject, DynamoDB PutItem/Query on the index)
#     and denies what it does not (S3 ListBucket, DynamoDB Scan, medical-imaging:List...);
#   - the emulator accepts boto3's `medical-imaging` client (botocore's service model), runs an
#     import job reading moto S3, writes the output manifest and ndjson files, fails chosen and
#     invalid files, groups image sets per series with isPrimary, keeps clientToken idempotency,
#     throttles (429), is down (503, then connection refused) for a while, and answers STOW-RS
#     with a PS3.18 store response; it rejects bad signatures, unknown keys and missing auth;
#   - files written by pydicom and DCMTK (5 transfer syntaxes) import cleanly;
#   - metadata_server.py serves ECS and IMDSv2 credentials that moto accepts.
# Needs no build (GW_BUILD unused). Runs in about 20 s.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=$(command -v python3)
"$PY" -c 'import moto, boto3' || { echo "FAIL: pyenv python3 with moto and boto3 needed"; exit 1; }
work=$(mktemp -d)
env_dir=$work/env
cleanup() {
    "$PY" "$src/tests/support/aws_env.py" stop --dir "$env_dir" || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }

# --no-auth-count 1: exactly one request after set-up may go unchecked
"$PY" "$src/tests/support/aws_env.py" start --dir "$env_dir" --no-auth-count 1 --job-delay 0.4
# shellcheck disable=SC1091
. "$env_dir/env.sh"
echo "policy: $POLICY_SOURCE; table: $TABLE_SCHEMA_SOURCE"
for p in $(cat "$env_dir/pids"); do kill -0 "$p" 2>/dev/null || fail "harness process $p not running"; done

# ---- moto: the no-auth request, then a bad signature is refused (AWS CLI)
export AWS_EC2_METADATA_DISABLED=true AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard
bad_secret=${AWS_SECRET_ACCESS_KEY}x
: >"$work/empty.bin"
AWS_SECRET_ACCESS_KEY=$bad_secret aws --endpoint-url "$MOTO_ENDPOINT" s3api put-object \
    --bucket "$BUCKET" --key "dicom/noauth/free.bin" --body "$work/empty.bin" >/dev/null ||
    fail "the one no-auth request was refused"
if AWS_SECRET_ACCESS_KEY=$bad_secret aws --endpoint-url "$MOTO_ENDPOINT" s3api put-object \
    --bucket "$BUCKET" --key "dicom/noauth/bad.bin" --body "$work/empty.bin" >"$work/out" 2>&1; then
    fail "moto accepted a bad signature after the no-auth count"
fi
grep -q SignatureDoesNotMatch "$work/out" || { cat "$work/out"; fail "expected SignatureDoesNotMatch"; }
echo "ok: moto rejects a bad signature after the no-auth count"

# ---- the IAM policy: allowed and denied actions (AWS CLI)
echo hello >"$work/hello.txt"
aws --endpoint-url "$MOTO_ENDPOINT" s3 cp "$work/hello.txt" "s3://$BUCKET/dicom/cli/hello.txt" \
    >/dev/null || fail "s3:PutObject under the policy refused"
if aws --endpoint-url "$MOTO_ENDPOINT" s3api list-objects-v2 --bucket "$BUCKET" >"$work/out" 2>&1; then
    fail "s3:ListBucket allowed, but it is not in the task policy"
fi
grep -q AccessDenied "$work/out" || { cat "$work/out"; fail "expected AccessDenied for ListBucket"; }
aws --endpoint-url "$MOTO_ENDPOINT" dynamodb put-item --table-name "$TABLE" \
    --item '{"pk":{"S":"INSTANCE#1.2.3"},"sk":{"S":"SHA256#00"},"study_uid":{"S":"1.2"}}' ||
    fail "dynamodb:PutItem under the policy refused"
aws --endpoint-url "$MOTO_ENDPOINT" dynamodb query --table-name "$TABLE" --index-name study_index \
    --key-condition-expression 'study_uid = :s' \
    --expression-attribute-values '{":s":{"S":"1.2"}}' >/dev/null ||
    fail "dynamodb:Query on the index refused"
if aws --endpoint-url "$MOTO_ENDPOINT" dynamodb scan --table-name "$TABLE" >"$work/out" 2>&1; then
    fail "dynamodb:Scan allowed, but it is not in the task policy"
fi
grep -q AccessDenied "$work/out" || { cat "$work/out"; fail "expected AccessDenied for Scan"; }
AWS_ACCESS_KEY_ID=$ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$ADMIN_SECRET_ACCESS_KEY \
    aws --endpoint-url "$MOTO_ENDPOINT" s3 ls "s3://$BUCKET/dicom/" >"$work/out" ||
    fail "the admin key cannot list the bucket"
grep -q "cli/" "$work/out" || fail "admin listing lacks dicom/cli/"
echo "ok: the task policy allows its actions and denies others; the admin key lists the bucket"

# ---- emulator reached by the AWS CLI's medical-imaging commands (signed by awscli/botocore)
if aws --endpoint-url "$HI_ENDPOINT" medical-imaging list-dicom-import-jobs \
    --datastore-id "$DATASTORE_ID" >"$work/out" 2>&1; then
    fail "medical-imaging:ListDICOMImportJobs allowed, but it is not in the task policy"
fi
grep -q AccessDeniedException "$work/out" || { cat "$work/out"; fail "expected AccessDeniedException"; }
echo "ok: AWS CLI medical-imaging is authenticated and authorized by the emulator"

# ---- libcurl's signer (curl --aws-sigv4, the code behind the forwarder's CURLOPT_AWS_SIGV4)
curl_aws() { # service, curl args...
    local svc=$1
    shift
    curl -s -o "$work/body" -D "$work/hdr" -w '%{http_code}' --aws-sigv4 "aws:amz:$REGION:$svc" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"
}
err_type() { tr -d '\r' <"$work/hdr" | sed -n 's/^x-amzn-ErrorType: *\([^:]*\).*/\1/Ip'; }
code=$(curl_aws medical-imaging -H 'Content-Type: application/json' -d \
    "{\"clientToken\":\"curl-1\",\"dataAccessRoleArn\":\"$ROLE_ARN\",\"inputS3Uri\":\"s3://$BUCKET/dicom/curl/\",\"outputS3Uri\":\"s3://$BUCKET/import-output/\"}" \
    "$HI_ENDPOINT/startDICOMImportJob/datastore/$DATASTORE_ID")
[[ $code == 200 ]] || { cat "$work/body"; fail "libcurl-signed StartDICOMImportJob: $code"; }
# sorted query: the signature holds and the policy decides; unsorted (libcurl 7.88 signs the
# order given): refused like AWS refuses it
code=$(curl_aws medical-imaging "$HI_ENDPOINT/listDICOMImportJobs/datastore/$DATASTORE_ID?jobStatus=COMPLETED&maxResults=5")
[[ $code == 403 && $(err_type) == AccessDeniedException ]] || fail "sorted query: $code $(err_type)"
code=$(curl_aws medical-imaging "$HI_ENDPOINT/listDICOMImportJobs/datastore/$DATASTORE_ID?maxResults=5&jobStatus=COMPLETED")
[[ $code == 403 && $(err_type) == InvalidSignatureException ]] || fail "unsorted query: $code $(err_type)"
code=$(curl_aws dynamodb -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: DynamoDB_20120810.GetItem' \
    -d "{\"TableName\":\"$TABLE\",\"Key\":{\"pk\":{\"S\":\"INSTANCE#1.2.3\"},\"sk\":{\"S\":\"SHA256#00\"}}}" "$MOTO_ENDPOINT/")
[[ $code == 200 ]] || { cat "$work/body"; fail "libcurl-signed DynamoDB GetItem: $code"; }
code=$(curl_aws dynamodb -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: DynamoDB_20120810.Scan' -d "{\"TableName\":\"$TABLE\"}" "$MOTO_ENDPOINT/")
[[ $code == 400 ]] && grep -q 'AccessDeniedException' "$work/body" ||
    { cat "$work/body"; fail "DynamoDB Scan outside the policy: $code (want 400 AccessDeniedException)"; }
sha=$(sha256sum "$work/hello.txt" | cut -d' ' -f1)
code=$(curl_aws s3 -X PUT -H "x-amz-content-sha256: $sha" --data-binary @"$work/hello.txt" \
    "$MOTO_ENDPOINT/$BUCKET/dicom/curl-s3/hello.txt")
[[ $code == 200 ]] || { cat "$work/body"; fail "libcurl-signed S3 PUT: $code"; }
echo "ok: libcurl's SigV4 accepted by moto and the emulator; its unsorted query refused like AWS"

# ---- Part-10 files written by other writers (pydicom from Debian's python3, DCMTK for the
# compressed ones) must import as well as the ones made below
for ts in implicit explicit deflated rle jpeg-lossless; do
    /usr/bin/python3 "$src/tests/support/gen_data.py" --out "$work/gen/$ts" --count 2 --ts "$ts" \
        --rows 64 --cols 64 >/dev/null || fail "gen_data.py --ts $ts"
done

# ---- the rest with boto3 (the image's botocore service model)
"$PY" - "$src" "$work/gen" <<'PYEOF'
import datetime, io, json, os, socket, sys, time, urllib.error, urllib.request, zlib
import boto3, botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

sys.path.insert(0, os.path.join(sys.argv[1], "tests", "support"))
E = os.environ
B, DS, ROLE = E["BUCKET"], E["DATASTORE_ID"], E["ROLE_ARN"]
HI, MOTO = E["HI_ENDPOINT"], E["MOTO_ENDPOINT"]
cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2,
             read_timeout=10)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def ok(msg):
    print("ok:", msg)


def code_of(fn):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


# --- sigv4_check.py against AWS's published SigV4 test suite (aws-sig-v4-test-suite)
import sigv4_check  # noqa: E402
V_NOW = datetime.datetime(2015, 8, 30, 12, 40, tzinfo=datetime.timezone.utc)
V_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
for name, method, path, query, sig in (
        ("get-vanilla", "GET", "/", "",
         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1",
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ("post-vanilla", "POST", "/", "",
         "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ("get-relative", "GET", "/example/..", "",
         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("get-space", "GET", "/example space/", "",
         "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741")):
    for tamper in (False, True):
        s_ = sig[:-1] + ("0" if sig[-1] != "0" else "1") if tamper else sig
        hdrs = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z"),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
                 f"service/aws4_request, SignedHeaders=host;x-amz-date, Signature={s_}")]
        try:
            sigv4_check.verify(method, path, query, hdrs, b"", lambda k: (V_SECRET, None),
                               "us-east-1", "service", now=V_NOW)
            good = True
        except sigv4_check.SigV4Error:
            good = False
        if good == tamper:
            print(f"FAIL: SigV4 test vector {name} (tampered={tamper})")
            sys.exit(1)
print("ok: sigv4_check.py passes AWS's SigV4 test vectors and refuses them tampered")


def control(path, body=None):
    req = urllib.request.Request(HI + path, data=json.dumps(body or {}).encode(),
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


# --- DICOM Part-10 files made here (explicit VR LE, implicit VR LE and deflated)
def elem(g, e, vr, val, explicit=True):
    if isinstance(val, str):
        val = val.encode()
        if len(val) % 2:
            val += b"\0" if vr == "UI" else b" "
    tag = g.to_bytes(2, "little") + e.to_bytes(2, "little")
    if not explicit:
        return tag + len(val).to_bytes(4, "little") + val
    if vr in ("OB", "OW", "SQ", "UN", "UT"):
        return tag + vr.encode() + b"\0\0" + len(val).to_bytes(4, "little") + val
    return tag + vr.encode() + len(val).to_bytes(2, "little") + val


def p10(study, series, sop, patient_id="PID-1", ts="1.2.840.10008.1.2.1"):
    sop_class = "1.2.840.10008.5.1.4.1.1.7"
    explicit = ts != "1.2.840.10008.1.2"
    # a nested sequence with undefined length before the UIDs, to exercise the skipper
    seq_item = elem(0x0008, 0x0100, "SH", "CODE", explicit)
    item = b"\xfe\xff\x00\xe0" + b"\xff\xff\xff\xff" + seq_item + b"\xfe\xff\x0d\xe0\0\0\0\0"
    seq_hdr = (b"\x08\x00\x15\x11" + (b"SQ\0\0" if explicit else b"") + b"\xff\xff\xff\xff")
    seq = seq_hdr + item + b"\xfe\xff\xdd\xe0\0\0\0\0"
    ds = (elem(0x0008, 0x0016, "UI", sop_class, explicit) +
          elem(0x0008, 0x0018, "UI", sop, explicit) +
          elem(0x0008, 0x0050, "SH", "ACC1", explicit) + seq +
          elem(0x0010, 0x0010, "PN", "TEST^SYNTHETIC", explicit) +
          elem(0x0010, 0x0020, "LO", patient_id, explicit) +
          elem(0x0020, 0x000D, "UI", study, explicit) +
          elem(0x0020, 0x000E, "UI", series, explicit) +
          elem(0x7FE0, 0x0010, "OW", b"\0\1" * 64, explicit))
    if ts == "1.2.840.10008.1.2.1.99":
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        ds = c.compress(ds) + c.flush()
    meta = (elem(0x0002, 0x0001, "OB", b"\0\1") +
            elem(0x0002, 0x0002, "UI", sop_class) + elem(0x0002, 0x0003, "UI", sop) +
            elem(0x0002, 0x0010, "UI", ts) + elem(0x0002, 0x0012, "UI", "1.2.3.4"))
    meta = elem(0x0002, 0x0000, "UL", len(meta).to_bytes(4, "little")) + meta
    return b"\0" * 128 + b"DICM" + meta + ds


root = "1.2.826.0.1.3680043.9.7777"
study = f"{root}.1"
ser_a, ser_b = f"{root}.1.1", f"{root}.1.2"
files = {}  # key -> (sop, series, expectation)
s3 = boto3.client("s3", endpoint_url=MOTO, config=cfg)
batch = "b-20261124T030000Z-0badf00d"
tss = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99"]
for i in range(6):
    ser = ser_a if i < 3 else ser_b
    sop = f"{root}.1.{1 if i < 3 else 2}.{i + 1}"
    files[f"dicom/{batch}/{sop}.dcm"] = (sop, ser, "primary", p10(study, ser, sop, ts=tss[i % 3]))
conflict_sop = f"{root}.1.1.99"   # same series, other patient ID -> non-primary image set
files[f"dicom/{batch}/{conflict_sop}.dcm"] = (conflict_sop, ser_a, "nonprimary",
                                              p10(study, ser_a, conflict_sop, patient_id="PID-2"))
chosen_sop = f"{root}.1.2.77"     # told to fail through /_emulator/fail
files[f"dicom/{batch}/{chosen_sop}.dcm"] = (chosen_sop, ser_b, "chosen",
                                            p10(study, ser_b, chosen_sop))
files[f"dicom/{batch}/{root}.9.9.dcm"] = (None, None, "invalid", b"not a dicom file" * 20)
for key, (_s, _r, _x, data) in files.items():
    s3.put_object(Bucket=B, Key=key, Body=data)
ok(f"{len(files)} synthetic Part-10 files in moto S3 under dicom/{batch}/")

control("/_emulator/fail", {"sop_uids": [chosen_sop], "exception_type": "ValidationException",
                            "message": "chosen to fail by the test"})
mi = boto3.client("medical-imaging", endpoint_url=HI, config=cfg)
code, status = code_of(lambda: mi.get_datastore(datastoreId=DS))
if (code, status) != ("AccessDeniedException", 403):
    fail(f"GetDatastore outside the policy gave {code} {status}")

req = dict(datastoreId=DS, dataAccessRoleArn=ROLE, clientToken=batch, jobName=batch,
           inputS3Uri=f"s3://{B}/dicom/{batch}/", outputS3Uri=f"s3://{B}/import-output/")
control("/_emulator/config", {"hold": "SUBMITTED"})  # statuses observed without timing
r1 = mi.start_dicom_import_job(**req)
if r1["jobStatus"] != "SUBMITTED" or r1["datastoreId"] != DS:
    fail(f"StartDICOMImportJob answer {r1}")
r2 = mi.start_dicom_import_job(**req)
if r2["jobId"] != r1["jobId"]:
    fail("same clientToken gave another jobId")
code, status = code_of(lambda: mi.start_dicom_import_job(**dict(
    req, outputS3Uri=f"s3://{B}/import-output/other/")))
if (code, status) != ("ConflictException", 409):
    fail(f"same clientToken with other parameters gave {code} {status}")
import concurrent.futures  # noqa: E402
with concurrent.futures.ThreadPoolExecutor(8) as pool:  # concurrent retries: still one job
    twins = list(pool.map(lambda _: boto3.client("medical-imaging", endpoint_url=HI, config=cfg)
                          .start_dicom_import_job(**dict(
                              req, clientToken="t-twins", jobName="twins",
                              inputS3Uri=f"s3://{B}/dicom/empty/"))["jobId"], range(8)))
if len(set(twins)) != 1:
    fail(f"concurrent StartDICOMImportJob with one clientToken made {len(set(twins))} jobs")
ok("StartDICOMImportJob: clientToken idempotent (also under 8 concurrent retries), "
   "ConflictException on changed parameters")

job = r1["jobId"]
seen = []


def poll_until(statuses):
    deadline = time.time() + 60
    while time.time() < deadline:
        p = mi.get_dicom_import_job(datastoreId=DS, jobId=job)["jobProperties"]
        if not seen or seen[-1] != p["jobStatus"]:
            seen.append(p["jobStatus"])
        if p["jobStatus"] in statuses:
            return p
        time.sleep(0.1)
    fail(f"job statuses {seen}: none of {statuses} within 60 s")


poll_until(("SUBMITTED",))
control("/_emulator/config", {"hold": "IN_PROGRESS"})
poll_until(("IN_PROGRESS",))
control("/_emulator/config", {"hold": None})
p = poll_until(("COMPLETED", "FAILED"))
if seen[-1] != "COMPLETED" or "IN_PROGRESS" not in seen or seen[0] != "SUBMITTED":
    fail(f"job statuses {seen}, message {p.get('message')}")
for k in ("jobId", "jobName", "jobStatus", "datastoreId", "dataAccessRoleArn", "inputS3Uri",
          "outputS3Uri", "submittedAt", "endedAt"):
    if k not in p:
        fail(f"jobProperties lacks {k}")
if not isinstance(p["submittedAt"], datetime.datetime):
    fail("submittedAt is not a timestamp")
ok(f"job statuses {' -> '.join(seen)}")

base = f"import-output/{DS}-DicomImport-{job}/"
man = json.load(s3.get_object(Bucket=B, Key=base + "job-output-manifest.json")["Body"])["jobSummary"]
succ = [json.loads(x) for x in s3.get_object(Bucket=B, Key=base + "SUCCESS/success.ndjson")[
    "Body"].read().decode().splitlines()]
fails = [json.loads(x) for x in s3.get_object(Bucket=B, Key=base + "FAILURE/failure.ndjson")[
    "Body"].read().decode().splitlines()]
if man["jobId"] != job or man["numberOfScannedFiles"] != len(files) or \
        man["numberOfImportedFiles"] != 7 or man["numberOfFilesWithCustomerError"] != 2:
    fail(f"manifest {man}")
if man["successOutputS3Uri"] != f"s3://{B}/{base}SUCCESS/":
    fail(f"successOutputS3Uri {man['successOutputS3Uri']}")
by_key = {r["inputFile"]: r for r in succ}
fail_keys = {r["inputFile"]: r["exception"] for r in fails}
sets = {}
for key, (sop, ser, expect, _d) in files.items():
    if expect in ("chosen", "invalid"):
        exc = fail_keys.get(key)
        if not exc or exc["exceptionType"] != "ValidationException" or not exc["message"]:
            fail(f"{expect} file {key} not in failure.ndjson as expected: {exc}")
        continue
    rec = by_key.get(key)
    if rec is None:
        fail(f"{key} not in success.ndjson")
    ir = rec["importResponse"]
    if ir["isPrimary"] != (expect == "primary"):
        fail(f"{key}: isPrimary {ir['isPrimary']}, expected {expect}")
    sets.setdefault((ser, ir["isPrimary"]), set()).add(ir["imageSetId"])
if any(len(v) != 1 for v in sets.values()) or len(sets) != 3 or \
        len({next(iter(v)) for v in sets.values()}) != 3:
    fail(f"image sets not one per series (+1 non-primary): {sets}")
inst = control("/_emulator/instances")["instances"]
for key, (sop, ser, expect, _d) in files.items():
    if expect in ("primary", "nonprimary"):
        got = inst.get(sop)
        if not got or got["imports"] != 1 or got["imageSetId"] != \
                by_key[key]["importResponse"]["imageSetId"]:
            fail(f"/_emulator/instances for {sop}: {got}")
    elif sop in inst:
        fail(f"failed instance {sop} recorded as imported")
if man["numberOfGeneratedImageSets"] != 3 or \
        sum(s["numberOfMatchedSOPInstances"] for s in man["imageSetsSummary"]) != 7:
    fail(f"imageSetsSummary {man['imageSetsSummary']}")
if "exceptionType" not in fail_keys[f"dicom/{batch}/{chosen_sop}.dcm"] or \
        "chosen to fail" not in fail_keys[f"dicom/{batch}/{chosen_sop}.dcm"]["message"]:
    fail("the chosen failure's message is not the one set")
ok("output manifest, SUCCESS/success.ndjson and FAILURE/failure.ndjson as documented; "
   "image sets per series with isPrimary; chosen and invalid files failed")

# --- a second job over pydicom/DCMTK-written files (5 transfer syntaxes, 5 series)
import glob  # noqa: E402
gen = sorted(glob.glob(os.path.join(sys.argv[2], "*", "*.dcm")))
batch2 = "b-20261124T030100Z-0000beef"
for f in gen:
    with open(f, "rb") as fh:
        s3.put_object(Bucket=B, Key=f"dicom/{batch2}/{os.path.basename(os.path.dirname(f))}-"
                      f"{os.path.basename(f)}", Body=fh.read())
j2 = mi.start_dicom_import_job(**dict(req, clientToken=batch2, jobName=batch2,
                                      inputS3Uri=f"s3://{B}/dicom/{batch2}/"))["jobId"]
deadline = time.time() + 60
while time.time() < deadline:
    p2 = mi.get_dicom_import_job(datastoreId=DS, jobId=j2)["jobProperties"]
    if p2["jobStatus"] in ("COMPLETED", "FAILED"):
        break
    time.sleep(0.1)
man2 = json.load(s3.get_object(Bucket=B, Key=f"import-output/{DS}-DicomImport-{j2}/"
                               "job-output-manifest.json")["Body"])["jobSummary"]
if p2["jobStatus"] != "COMPLETED" or man2["numberOfImportedFiles"] != len(gen) or \
        man2["numberOfGeneratedImageSets"] != 5 or \
        not all(x["isPrimary"] for x in man2["imageSetsSummary"]):
    fail(f"pydicom/DCMTK files: {p2['jobStatus']} {man2}")
ok(f"{len(gen)} pydicom/DCMTK-written files (implicit, explicit, deflated, RLE, JPEG lossless) "
   "imported into 5 primary image sets")

# --- request validation and refusals
def expect(what, fn, want_code, want_status):
    code, status = code_of(fn)
    if (code, status) != (want_code, want_status):
        fail(f"{what}: got {code} {status}, expected {want_code} {want_status}")

expect("input outside the bucket", lambda: mi.start_dicom_import_job(**dict(
    req, clientToken="t-2", inputS3Uri="s3://some-other-bucket/dicom/")),
    "ValidationException", 400)
expect("bad clientToken", lambda: mi.start_dicom_import_job(**dict(req, clientToken="bad token!")),
       "ValidationException", 400)
expect("role outside iam:PassRole", lambda: mi.start_dicom_import_job(**dict(
    req, clientToken="t-3", dataAccessRoleArn="arn:aws:iam::123456789012:role/SomeOtherRole")),
    "AccessDeniedException", 403)
expect("unknown job", lambda: mi.get_dicom_import_job(datastoreId=DS, jobId="0" * 32),
       "ResourceNotFoundException", 404)
expect("unknown datastore", lambda: mi.get_dicom_import_job(datastoreId="1" * 32, jobId=job),
       "ResourceNotFoundException", 404)
ok("validation: bucket, clientToken pattern, iam:PassRole, unknown job and datastore")

# --- SigV4 on the emulator
bad = boto3.client("medical-imaging", endpoint_url=HI, config=cfg,
                   aws_access_key_id=E["AWS_ACCESS_KEY_ID"],
                   aws_secret_access_key=E["AWS_SECRET_ACCESS_KEY"] + "x")
expect("bad signature", lambda: bad.get_dicom_import_job(datastoreId=DS, jobId=job),
       "InvalidSignatureException", 403)
unk = boto3.client("medical-imaging", endpoint_url=HI, config=cfg,
                   aws_access_key_id="AKIAUNKNOWNKEY000000", aws_secret_access_key="x")
expect("unknown key", lambda: unk.get_dicom_import_job(datastoreId=DS, jobId=job),
       "UnrecognizedClientException", 403)
try:
    urllib.request.urlopen(f"{HI}/getDICOMImportJob/datastore/{DS}/job/{job}", timeout=5)
    fail("unsigned request accepted")
except urllib.error.HTTPError as e:
    if e.code != 403 or not e.headers.get("x-amzn-ErrorType", "").startswith(
            "MissingAuthenticationTokenException"):
        fail(f"unsigned request: {e.code} {e.headers.get('x-amzn-ErrorType')}")
task = boto3.client("medical-imaging", endpoint_url=HI, config=cfg,
                    aws_access_key_id=E["TASK_ACCESS_KEY_ID"],
                    aws_secret_access_key=E["TASK_SECRET_ACCESS_KEY"],
                    aws_session_token=E["TASK_SESSION_TOKEN"])
task.get_dicom_import_job(datastoreId=DS, jobId=job)
notok = boto3.client("medical-imaging", endpoint_url=HI, config=cfg,
                     aws_access_key_id=E["TASK_ACCESS_KEY_ID"],
                     aws_secret_access_key=E["TASK_SECRET_ACCESS_KEY"],
                     aws_session_token="wrong-token")
expect("wrong session token", lambda: notok.get_dicom_import_job(datastoreId=DS, jobId=job),
       "UnrecognizedClientException", 403)
# a correct signature made 20 minutes ago: refused as expired
old_t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
amz = old_t.strftime("%Y%m%dT%H%M%SZ")
path = f"/getDICOMImportJob/datastore/{DS}/job/{job}"
host = f"127.0.0.1:{E['HI_PORT']}"
creq = "\n".join(["GET", path, "", f"host:{host}\nx-amz-date:{amz}\n", "host;x-amz-date",
                  sigv4_check.hashlib.sha256(b"").hexdigest()])
scope = f"{amz[:8]}/{E['REGION']}/medical-imaging/aws4_request"
sts_ = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                  sigv4_check.hashlib.sha256(creq.encode()).hexdigest()])
sig = sigv4_check.hmac.new(sigv4_check.signing_key(E["AWS_SECRET_ACCESS_KEY"], amz[:8],
                                                   E["REGION"], "medical-imaging"),
                           sts_.encode(), sigv4_check.hashlib.sha256).hexdigest()
try:
    urllib.request.urlopen(urllib.request.Request(HI + path, headers={
        "X-Amz-Date": amz, "Authorization": f"AWS4-HMAC-SHA256 Credential="
        f"{E['AWS_ACCESS_KEY_ID']}/{scope}, SignedHeaders=host;x-amz-date, Signature={sig}"}),
        timeout=5)
    fail("a 20-minute-old signature was accepted")
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    if e.code != 403 or "expired" not in body["message"]:
        fail(f"old signature: {e.code} {body}")
ok("emulator SigV4: bad signature, unknown key, missing auth, wrong token and an expired "
   "signature refused; temporary credentials of the task role accepted")

# --- throttling and outages
control("/_emulator/throttle", {"count": 2, "operations": ["GetDICOMImportJob"]})
for _ in range(2):
    expect("throttled", lambda: mi.get_dicom_import_job(datastoreId=DS, jobId=job),
           "ThrottlingException", 429)
mi.get_dicom_import_job(datastoreId=DS, jobId=job)
ok("throttling: ThrottlingException 429 for the chosen count, then served")

control("/_emulator/down", {"seconds": 60, "mode": "503"})
for _ in range(3):
    expect("down 503", lambda: mi.get_dicom_import_job(datastoreId=DS, jobId=job),
           "ServiceUnavailableException", 503)
control("/_emulator/reset", {})  # ends the outage (control requests are never refused)
mi.get_dicom_import_job(datastoreId=DS, jobId=job)
ok("down (503) until reset, then served")

port = int(E["HI_PORT"])
control("/_emulator/down", {"seconds": 5, "mode": "refuse"})
refused = False
t_end = time.time() + 4
while time.time() < t_end:
    s = socket.socket()
    try:
        s.settimeout(1)
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        refused = True
        break
    except OSError:
        pass  # reset while the listener closes
    finally:
        s.close()
    time.sleep(0.05)
if not refused:
    fail("the emulator still accepted connections while down (refuse)")
t0 = time.time()
while True:
    try:
        mi.get_dicom_import_job(datastoreId=DS, jobId=job)
        break
    except (botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionClosedError):
        if time.time() - t0 > 15:
            fail("the emulator did not come back after refusing connections")
        time.sleep(0.1)
ok("down (connection refused) for a while, then served again on the same port")

# --- STOW-RS data plane
def stow(parts, ctype=None, creds=None, path=f"/datastore/{DS}/studies"):
    boundary = "dicom-gw-test-boundary"
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
                    + p + b"\r\n" for p in parts) + b"--" + boundary.encode() + b"--\r\n"
    ctype = ctype or f'multipart/related; type="application/dicom"; boundary={boundary}'
    r = AWSRequest(method="POST", url=HI + path, data=body,
                   headers={"Content-Type": ctype, "Accept": "application/dicom+json"})
    SigV4Auth(creds or Credentials(E["AWS_ACCESS_KEY_ID"], E["AWS_SECRET_ACCESS_KEY"]),
              "medical-imaging", E["REGION"]).add_auth(r)
    pr = r.prepare()
    try:
        with urllib.request.urlopen(urllib.request.Request(
                pr.url, data=body, headers=dict(pr.headers), method="POST"), timeout=10) as h:
            return h.status, json.load(h), h.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None), e.headers

s_sops = [f"{root}.3.1.{i}" for i in range(3)]
good = [p10(f"{root}.3", f"{root}.3.1", s) for s in s_sops]
st, resp, hdr = stow(good)
if st != 200 or hdr.get("Content-Type") != "application/dicom+json":
    fail(f"STOW all good: {st} {hdr.get('Content-Type')}")
refs = resp["00081199"]["Value"]
if sorted(x["00081155"]["Value"][0] for x in refs) != sorted(s_sops) or "00081198" in resp:
    fail(f"STOW ReferencedSOPSequence {resp}")
if not resp["00081190"]["Value"][0].endswith(f"/studies/{root}.3"):
    fail("STOW RetrieveURL")
control("/_emulator/fail", {"sop_uids": [s_sops[1]]})
st, resp, _ = stow(good[:2] + [b"garbage" * 10])
failed = resp.get("00081198", {}).get("Value", [])
if st != 202 or len(resp["00081199"]["Value"]) != 1 or len(failed) != 2:
    fail(f"STOW partial: {st} {resp}")
reasons = sorted(f["00081197"]["Value"][0] for f in failed)
if reasons != [0x0110, 0xC000]:
    fail(f"STOW FailureReason {reasons}")
st, resp, _ = stow([b"garbage"])
if st != 409 or "00081198" not in resp:
    fail(f"STOW none stored: {st}")
st, _, _ = stow(good[:1], ctype="multipart/related; type=\"application/json\"; boundary=x")
if st != 415:
    fail(f"STOW wrong type: {st}")
st, _, hdr = stow(good[:1], creds=Credentials(E["AWS_ACCESS_KEY_ID"], "wrong"))
if st != 403 or not hdr.get("x-amzn-ErrorType", "").startswith("InvalidSignatureException"):
    fail(f"STOW bad signature: {st}")
ok("STOW-RS: PS3.18 store response with ReferencedSOPSequence / FailedSOPSequence "
   "(200, 202, 409), 415 on wrong type, 403 on bad signature")

# --- ListDICOMImportJobs query canonicalisation (admin: static key is not in moto) and state
state = control("/_emulator/state")
if state["counters"]["throttled"] < 2 or state["counters"]["auth_failures"] < 4:
    fail(f"emulator counters {state['counters']}")

# --- metadata server: ECS and IMDSv2 credentials, accepted by moto
md = f"http://127.0.0.1:{E['METADATA_PORT']}"
rel = E["ECS_CREDENTIALS_RELATIVE_URI"]
try:
    urllib.request.urlopen(md + rel, timeout=5)
    fail("ECS credentials served without the authorization token")
except urllib.error.HTTPError as e:
    if e.code != 401:
        fail(f"ECS without token: {e.code}")
os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = md + rel
os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = E["ECS_AUTHORIZATION_TOKEN"]
for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ.pop(k, None)
sess = boto3.session.Session(region_name=E["REGION"])
c = sess.get_credentials().get_frozen_credentials()
if not c.token:
    fail("ECS credentials without a session token")
sess.client("s3", endpoint_url=MOTO, config=cfg).put_object(
    Bucket=B, Key="dicom/ecs/ok.bin", Body=b"x")
try:
    urllib.request.urlopen(md + "/latest/meta-data/iam/security-credentials/", timeout=5)
    fail("IMDSv1 request served")
except urllib.error.HTTPError as e:
    if e.code != 401:
        fail(f"IMDSv1: {e.code}")
tok = urllib.request.urlopen(urllib.request.Request(
    md + "/latest/api/token", method="PUT",
    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=5).read().decode()
role = urllib.request.urlopen(urllib.request.Request(
    md + "/latest/meta-data/iam/security-credentials/",
    headers={"X-aws-ec2-metadata-token": tok}), timeout=5).read().decode()
cred = json.load(urllib.request.urlopen(urllib.request.Request(
    md + "/latest/meta-data/iam/security-credentials/" + role,
    headers={"X-aws-ec2-metadata-token": tok}), timeout=5))
exp = datetime.datetime.strptime(cred["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
if cred["Code"] != "Success" or exp < datetime.datetime.utcnow():
    fail(f"IMDS credentials {cred}")
if cred["AccessKeyId"] == c.access_key:
    fail("the second credential answer did not rotate to the other session")
boto3.client("s3", endpoint_url=MOTO, config=cfg, region_name=E["REGION"],
             aws_access_key_id=cred["AccessKeyId"], aws_secret_access_key=cred["SecretAccessKey"],
             aws_session_token=cred["Token"]).put_object(Bucket=B, Key="dicom/imds/ok.bin", Body=b"x")
urllib.request.urlopen(urllib.request.Request(md + "/_fail", data=b'{"count": 1, "status": 500}',
                                              method="POST"), timeout=5).read()
ecs_req = urllib.request.Request(md + rel, headers={"Authorization": E["ECS_AUTHORIZATION_TOKEN"]})
try:
    urllib.request.urlopen(ecs_req, timeout=5)
    fail("the injected credential failure was not served")
except urllib.error.HTTPError as e:
    if e.code != 500:
        fail(f"injected failure: {e.code}")
if "AccessKeyId" not in json.load(urllib.request.urlopen(ecs_req, timeout=5)):
    fail("ECS credentials after the injected failure")
counts = json.load(urllib.request.urlopen(md + "/_count", timeout=5))
if counts["ecs"] < 2 or counts["imds_token"] != 1 or counts["imds_creds"] != 1 or \
        counts["rejected"] < 3:
    fail(f"metadata counts {counts}")
ok(f"metadata server: ECS (token checked) and IMDSv2 credentials work in moto; counts {counts}")
PYEOF

# ---- stop kills exactly the started processes
pids=$(cat "$env_dir/pids")
"$PY" "$src/tests/support/aws_env.py" stop --dir "$env_dir"
for p in $pids; do
    if kill -0 "$p" 2>/dev/null && grep -q "$env_dir" "/proc/$p/cmdline" 2>/dev/null; then
        fail "process $p still running after stop"
    fi
done
[[ ! -e "$env_dir/pids" ]] || fail "pids file left behind"
echo "ok: stop ended every harness process"
echo "PASS test_aws_harness"
