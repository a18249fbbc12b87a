#!/usr/bin/env bash
# The task role policy of cloudformation/dicom-gateway.yaml, rendered by tests/support/
# task_policy.py, is put into moto's IAM (signature and policy checks on) and every S3 and
# DynamoDB call the forwarder makes succeeds under it; each call fails once its action is dropped
# from the policy, and calls outside the policy (delete, list, scan, another bucket) are denied.
# (The medical-imaging actions are checked by the forwarder's end-to-end tests against
# tests/support/hi_emulator.py, which evaluates the same policy.)
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v moto_server >/dev/null || { echo "FAIL moto_server missing (pyenv python3 with moto[server])"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$src" "$tmp" <<'EOF_PY'
import hashlib, base64, json, os, signal, socket, subprocess, sys, time, urllib.request
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

src, tmp = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(src, "tests", "support"))
import task_policy

BUCKET, TABLE, OTHER = "dicom-gw-policy", "dicom-gw-policy", "dicom-gw-other"
DS = "0123456789abcdef0123456789abcdef"
ROLE = "arn:aws:iam::123456789012:role/hi-data-access"
DROPPABLE = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "dynamodb:PutItem",
             "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Query"]
users = ["full"] + DROPPABLE
setup_calls = 3 * len(users) + 3  # per user: create, policy, key; 2 buckets and the table

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(setup_calls))
log = open(os.path.join(tmp, "moto.log"), "w")
moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                        stdout=log, stderr=log)
failed = 0
try:
    ep = "http://127.0.0.1:%d" % port
    for _ in range(200):
        try:
            urllib.request.urlopen(ep + "/moto-api/", timeout=1); break
        except OSError:
            time.sleep(0.1)
    cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    admin = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="setup",
                 aws_secret_access_key="setup", config=cfg)
    iam = boto3.client("iam", **admin)
    keys = {}
    for u in users:
        drop = [] if u == "full" else [u]
        doc = task_policy.render(BUCKET, TABLE, DS, ROLE, moto=True, drop_actions=drop)
        name = "core-" + u.replace(":", "-")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="task", PolicyDocument=json.dumps(doc))
        k = iam.create_access_key(UserName=name)["AccessKey"]
        keys[u] = (k["AccessKeyId"], k["SecretAccessKey"])
    s3a = boto3.client("s3", **admin)
    s3a.create_bucket(Bucket=BUCKET)
    s3a.create_bucket(Bucket=OTHER)
    boto3.client("dynamodb", **admin).create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "study_uid")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": "study_index", "KeySchema": [
            {"AttributeName": "study_uid", "KeyType": "HASH"}, {"AttributeName": "pk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}])

    def clients(u):
        kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id=keys[u][0],
                  aws_secret_access_key=keys[u][1], config=cfg)
        return boto3.client("s3", **kw), boto3.client("dynamodb", **kw)

    body = b"DICM" * 64
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    n = [0]

    def key():
        n[0] += 1
        return "dicom/b-20261124T030000Z-0000abcd/1.2.3.%d.dcm" % n[0]

    def put(s3, ddb):
        s3.put_object(Bucket=BUCKET, Key=key(), Body=body, ChecksumSHA256=sha)
        up = s3.create_multipart_upload(Bucket=BUCKET, Key=key())
        part = s3.upload_part(Bucket=BUCKET, Key=up["Key"], UploadId=up["UploadId"], PartNumber=1, Body=body)
        s3.complete_multipart_upload(Bucket=BUCKET, Key=up["Key"], UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})

    def abort(s3, ddb):
        # CreateMultipartUpload is s3:PutObject: done by the full user, aborted by this one
        up = full_s3.create_multipart_upload(Bucket=BUCKET, Key=key())
        s3.abort_multipart_upload(Bucket=BUCKET, Key=up["Key"], UploadId=up["UploadId"])

    def item(i):
        return {"pk": {"S": "INSTANCE#1.2.3.%d" % i}, "sk": {"S": "SHA256#" + "0" * 64}}

    def putitem(s3, ddb):
        n[0] += 1
        ddb.put_item(TableName=TABLE, Item=dict(item(n[0]), study_uid={"S": "1.2.3"},
                     state={"S": "RECEIVED"}, state_rank={"N": "1"}),
                     ConditionExpression="attribute_not_exists(pk)")

    rank = [1]

    def updateitem(s3, ddb):  # states only move forward: a higher rank each time
        rank[0] += 1
        ddb.update_item(TableName=TABLE, Key=item(1), UpdateExpression="SET #s = :s, state_rank = :r",
                        ConditionExpression="attribute_not_exists(state_rank) OR state_rank < :r",
                        ExpressionAttributeNames={"#s": "state"},
                        ExpressionAttributeValues={":s": {"S": "STORED"}, ":r": {"N": str(rank[0])}})

    def getitem(s3, ddb):
        ddb.get_item(TableName=TABLE, Key=item(1), ConsistentRead=True)

    def query(s3, ddb):
        ddb.query(TableName=TABLE, IndexName="study_index", KeyConditionExpression="study_uid = :u",
                  ExpressionAttributeValues={":u": {"S": "1.2.3"}})

    ops = {"s3:PutObject": put, "s3:AbortMultipartUpload": abort,
           "dynamodb:PutItem": putitem, "dynamodb:UpdateItem": updateitem,
           "dynamodb:GetItem": getitem, "dynamodb:Query": query}
    excess = {
        "s3:DeleteObject": lambda s3, ddb: s3.delete_object(Bucket=BUCKET, Key="dicom/x"),
        "s3:ListBucket": lambda s3, ddb: s3.list_objects_v2(Bucket=BUCKET),
        "s3:PutObject on another bucket": lambda s3, ddb: s3.put_object(Bucket=OTHER, Key="x", Body=b"x"),
        "dynamodb:Scan": lambda s3, ddb: ddb.scan(TableName=TABLE),
        "dynamodb:DeleteItem": lambda s3, ddb: ddb.delete_item(TableName=TABLE, Key=item(1)),
        "dynamodb:DescribeTable": lambda s3, ddb: ddb.describe_table(TableName=TABLE),
    }

    def denied(fn, c):
        try:
            fn(*c)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("AccessDenied", "AccessDeniedException") or status == 403:
                return True
            raise
        return False

    def report(ok, name, detail=""):
        global failed
        print(("PASS " if ok else "FAIL ") + name + (": " + detail if detail and not ok else ""))
        failed |= not ok

    # the setup's no-auth budget is spent: the objects `get` reads are written by the full user
    full_s3, full_ddb = clients("full")

    def get(s3, ddb):
        k = "import-output/job-output-manifest-%d.json" % n[0]
        full_s3.put_object(Bucket=BUCKET, Key=k, Body=b"{}")
        s3.get_object(Bucket=BUCKET, Key=k)
    ops["s3:GetObject"] = get
    report(denied(lambda a, b: s3a.list_buckets(), (None, None)),
           "setup credentials no longer accepted (moto checks signatures and policies now)")

    full = (full_s3, full_ddb)
    putitem(*full)  # the item the update/get/query steps use
    for action, fn in ops.items():
        try:
            fn(*full)
            report(True, "%s allowed under the template's policy" % action)
        except ClientError as e:
            report(False, "%s allowed under the template's policy" % action, str(e))
    for name, fn in excess.items():
        report(denied(fn, full), "%s denied" % name)
    for action in DROPPABLE:
        c = clients(action)
        report(denied(ops[action], c), "without %s its call is denied" % action)
        others = [a for a in DROPPABLE if a != action and a not in ("s3:AbortMultipartUpload",)]
        try:
            for a in others:
                if action == "s3:PutObject" and a == "s3:GetObject":
                    continue
                ops[a](*c)
            report(True, "without %s the other calls still pass" % action)
        except ClientError as e:
            report(False, "without %s the other calls still pass" % action, str(e))
finally:
    moto.send_signal(signal.SIGTERM)
    moto.wait(timeout=10)
sys.exit(1 if failed else 0)
EOF_PY
