#!/usr/bin/env bash
# The forwarder's AWS clients (gw-aws) against moto_server with signature checking on
# (INITIAL_NO_AUTH_ACTION_COUNT): S3 single PUT, multipart (streamed parts, per-part SHA-256),
# GetObject byte-identical, SSE header, key with a space; DynamoDB conditional writes (states never
# go back, replays refused with a distinct exit), GetItem, Query on the study_index GSI; a wrong
# secret key fails with SignatureDoesNotMatch and is not retried; a session token from the ECS
# credentials endpoint path is used when the environment has no keys (served by a tiny local
# server here; the awsharness metadata_server.py covers the full chain).
set -euo pipefail
GW_BUILD=${GW_BUILD:-build}
GW_SRC=${GW_SRC:-.}
TOOL="$GW_BUILD/forwarder/gw-aws"
[[ -x "$TOOL" ]] || { echo "missing $TOOL"; exit 1; }
PY=python3 # pyenv's: moto + boto3
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*"; [[ -f $work/moto.log ]] && tail -20 "$work/moto.log"; exit 1; }

port=$(free_port)
# 5 unauthenticated setup calls: create_user, create_access_key, put_user_policy, create_bucket,
# create_table. Everything after is signature-checked and policy-checked.
INITIAL_NO_AUTH_ACTION_COUNT=5 moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
done
EP="http://127.0.0.1:$port"
$PY - "$EP" "$GW_SRC/forwarder/schema/dynamodb-table.json" "$work/env.sh" <<'PYEOF'
import json, sys
import boto3
ep, schema, out = sys.argv[1:4]
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
          aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="gw-core")
k = iam.create_access_key(UserName="gw-core")["AccessKey"]
policy = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
     "Resource": "arn:aws:s3:::gw-plumbing/*"},
    {"Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem",
                                   "dynamodb:Query"],
     # moto authorises non-S3 actions against resource "*" only, so a table ARN here would
     # deny everything; the action list is still least privilege (no Scan, no DeleteItem).
     "Resource": "*"}]}
iam.put_user_policy(UserName="gw-core", PolicyName="task", PolicyDocument=json.dumps(policy))
boto3.client("s3", **kw).create_bucket(Bucket="gw-plumbing")
d = json.load(open(schema))
boto3.client("dynamodb", **kw).create_table(
    TableName="gw-items", **{k2: v for k2, v in d.items() if not k2.startswith("_")})
with open(out, "w") as f:
    f.write(f"export AWS_ACCESS_KEY_ID={k['AccessKeyId']}\n")
    f.write(f"export AWS_SECRET_ACCESS_KEY={k['SecretAccessKey']}\n")
PYEOF
# shellcheck disable=SC1091
. "$work/env.sh"
unset AWS_SESSION_TOKEN AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI
export AWS_EC2_METADATA_DISABLED=true
S3="--s3-endpoint $EP"
DDB="--ddb-endpoint $EP"

if [[ "${GW_SANITIZED:-0}" == 1 ]]; then big=11000000; else big=23000000; fi
head -c 300000 /dev/urandom >"$work/small.dcm"
head -c "$big" /dev/urandom >"$work/big.dcm"

echo "== S3 single PUT + GET"
"$TOOL" $S3 --sse AES256 s3-put gw-plumbing "dicom/b-20261124T030000Z-0a1b2c3d/1.2.826.0.1.1.dcm" "$work/small.dcm" || fail "small put"
"$TOOL" $S3 s3-get gw-plumbing "dicom/b-20261124T030000Z-0a1b2c3d/1.2.826.0.1.1.dcm" "$work/small.out" || fail "small get"
cmp "$work/small.dcm" "$work/small.out" || fail "small object differs"

echo "== S3 multipart (5 MiB parts) + GET, key with a space"
"$TOOL" $S3 --threshold 5242880 --part-size 5242880 s3-put gw-plumbing "dicom/b-x/big one.dcm" "$work/big.dcm" || fail "multipart put"
"$TOOL" $S3 s3-get gw-plumbing "dicom/b-x/big one.dcm" "$work/big.out" || fail "multipart get"
cmp "$work/big.dcm" "$work/big.out" || fail "multipart object differs"

# (keys with '+', '=' or '&' are signed exactly as botocore signs them, see the unit vectors,
# but moto 5.2.1 decodes the path before checking and refuses boto3's signature for them too)
echo "== S3 keys with dot segments are signed and stored as named, not normalised"
ODDKEY="dicom/./odd/../k.dcm"
"$TOOL" $S3 s3-put gw-plumbing "$ODDKEY" "$work/small.dcm" >/dev/null || fail "odd key put"
"$TOOL" $S3 s3-get gw-plumbing "$ODDKEY" "$work/odd.out" >/dev/null || fail "odd key get"
cmp "$work/small.dcm" "$work/odd.out" || fail "odd key object differs"

echo "== S3 object metadata as boto3 sees it"
$PY - "$EP" "$work/small.dcm" <<'PYEOF' || fail "object metadata"
import base64, hashlib, sys
import boto3
ep, path = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1")
h = s3.head_object(Bucket="gw-plumbing", Key="dicom/b-20261124T030000Z-0a1b2c3d/1.2.826.0.1.1.dcm",
                   ChecksumMode="ENABLED")
want = base64.b64encode(hashlib.sha256(open(path, "rb").read()).digest()).decode()
assert h.get("ChecksumSHA256") == want, (h.get("ChecksumSHA256"), want)
assert h.get("ServerSideEncryption") == "AES256", h.get("ServerSideEncryption")
assert "ContentEncoding" not in h, h.get("ContentEncoding")
print("checksum, SSE and no Content-Encoding: ok")
PYEOF

echo "== SSE-KMS with a key id"
KMS=arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-0000-4000-8000-000000000000
"$TOOL" $S3 --sse aws:kms --kms-key-id "$KMS" s3-put gw-plumbing "dicom/kms/1.dcm" "$work/small.dcm" >/dev/null || fail "kms put"
$PY - "$EP" "$KMS" <<'PYEOF' || fail "kms metadata"
import sys
import boto3
ep, kms = sys.argv[1:3]
h = boto3.client("s3", endpoint_url=ep, region_name="us-east-1").head_object(
    Bucket="gw-plumbing", Key="dicom/kms/1.dcm")
assert h.get("ServerSideEncryption") == "aws:kms", h.get("ServerSideEncryption")
assert h.get("SSEKMSKeyId") == kms, h.get("SSEKMSKeyId")
PYEOF

echo "== GetObject cap"
if "$TOOL" $S3 --max 1000 s3-get gw-plumbing "dicom/b-x/big one.dcm" "$work/capped.out" 2>"$work/err"; then
    fail "a body over the cap was accepted"
fi
grep -q "response too big" "$work/err" || fail "cap error not reported: $(cat "$work/err")"

echo "== NoSuchKey is a clear, non-retried failure"
if "$TOOL" $S3 s3-get gw-plumbing "dicom/none.dcm" "$work/none.out" 2>"$work/err"; then fail "missing key"; fi
grep -q "code=NoSuchKey attempts=1" "$work/err" || fail "NoSuchKey: $(cat "$work/err")"

echo "== outside the policy: AccessDenied"
if "$TOOL" $S3 s3-put other-bucket "x.dcm" "$work/small.dcm" 2>"$work/err"; then fail "policy not enforced"; fi
grep -Eq "code=(AccessDenied|NoSuchBucket)" "$work/err" || fail "policy: $(cat "$work/err")"

echo "== wrong secret: SignatureDoesNotMatch, not retried"
if AWS_SECRET_ACCESS_KEY=wrong-secret "$TOOL" $S3 s3-get gw-plumbing "dicom/b-x/big one.dcm" "$work/x" 2>"$work/err"; then
    fail "a wrong secret was accepted"
fi
grep -q "code=SignatureDoesNotMatch attempts=1" "$work/err" || fail "wrong secret: $(cat "$work/err")"
if AWS_SECRET_ACCESS_KEY=wrong-secret "$TOOL" $DDB ddb-get gw-items '{"pk":{"S":"a"},"sk":{"S":"b"}}' 2>"$work/err"; then
    fail "DynamoDB accepted a wrong secret"
fi
grep -Eq "status=(400|403)" "$work/err" || fail "ddb wrong secret: $(cat "$work/err")"

echo "== DynamoDB conditional writes"
ITEM='{"pk":{"S":"INSTANCE#1.2.826.0.1.1"},"sk":{"S":"SHA256#00ff"},"state":{"S":"RECEIVED"},"state_rank":{"N":"1"},"study_uid":{"S":"1.2.826.0.1"},"bytes":{"N":"300000"}}'
KEY='{"pk":{"S":"INSTANCE#1.2.826.0.1.1"},"sk":{"S":"SHA256#00ff"}}'
"$TOOL" $DDB ddb-put gw-items "$ITEM" "attribute_not_exists(pk)" >/dev/null || fail "first put"
set +e
"$TOOL" $DDB ddb-put gw-items "$ITEM" "attribute_not_exists(pk)" >/dev/null 2>"$work/err"
rc=$?
set -e
[[ $rc == 3 ]] || fail "replayed put: rc=$rc $(cat "$work/err")"
grep -q "code=ConditionalCheckFailedException" "$work/err" || fail "condition code"
NAMES='{"#s":"state"}'
"$TOOL" $DDB ddb-update gw-items "$KEY" "SET #s = :s, state_rank = :r" "state_rank < :r" "$NAMES" \
    '{":s":{"S":"STORED"},":r":{"N":"2"}}' >/dev/null || fail "forward update"
set +e
"$TOOL" $DDB ddb-update gw-items "$KEY" "SET #s = :s, state_rank = :r" "state_rank < :r" "$NAMES" \
    '{":s":{"S":"RECEIVED"},":r":{"N":"1"}}' >/dev/null 2>&1
rc=$?
set -e
[[ $rc == 3 ]] || fail "a state went back: rc=$rc"
"$TOOL" $DDB ddb-get gw-items "$KEY" >"$work/get.json" || fail "get"
grep -q '"state":{"S":"STORED"}' "$work/get.json" || fail "state after update: $(cat "$work/get.json")"
"$TOOL" $DDB ddb-query gw-items study_index "study_uid = :u" '{}' '{":u":{"S":"1.2.826.0.1"}}' >"$work/q.json" || fail "query"
grep -q '"Count":1' "$work/q.json" || fail "query result: $(cat "$work/q.json")"

echo "== a DynamoDB action outside the policy (DeleteItem) is denied"
if "$TOOL" $DDB ddb-call DeleteItem '{"TableName":"gw-items","Key":'"$KEY"'}' 2>"$work/err"; then
    fail "DeleteItem allowed"
fi
grep -q "code=AccessDenied" "$work/err" || fail "DeleteItem: $(cat "$work/err")"

echo "== credentials from the ECS container endpoint (relative URI, authorization token file)"
ecs_port=$(free_port)
echo "tok-$$" >"$work/ecs-token"
$PY - "$ecs_port" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "tok-$$" "$work/ecs.count" <<'PYEOF' &
import datetime, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, ak, sk, tok, count = sys.argv[1:6]
n = 0
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        global n
        if self.path != "/v2/credentials/abc" or self.headers.get("Authorization") != tok:
            self.send_response(403); self.end_headers(); return
        n += 1
        open(count, "w").write(str(n))
        exp = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps({"AccessKeyId": ak, "SecretAccessKey": sk, "Expiration": exp}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(port)), H).serve_forever()
PYEOF
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$ecs_port) 2>/dev/null && break; sleep 0.1; done
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    export AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/abc
    export DICOM_CORE_ECS_CREDENTIALS_HOST=127.0.0.1:$ecs_port
    export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$work/ecs-token
    "$TOOL" creds | grep -q "source=ecs" || exit 1
    "$TOOL" $S3 s3-get gw-plumbing "dicom/b-20261124T030000Z-0a1b2c3d/1.2.826.0.1.1.dcm" "$work/ecs.out"
) || fail "ECS credentials"
cmp "$work/small.dcm" "$work/ecs.out" || fail "object via ECS credentials differs"
echo "PASS"
