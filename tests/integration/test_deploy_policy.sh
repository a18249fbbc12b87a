#!/usr/bin/env bash
# The task role policy of cloudformation/dicom-gateway.yaml, rendered by tests/support/
# task_policy.py, is put into moto's IAM (signature and policy checks on) and every S3 and
# DynamoDB call the forwarder makes succeeds under it; each call fails once its action is dropped
# from the policy, and calls outside the policy (delete, list, scan, another bucket) are denied.
# Then the medical-imaging actions and iam:PassRole, through tests/support/aws_env.py (moto +
# the HealthImaging EMULATOR, which evaluates the credentials' IAM policy): StartDICOMImportJob,
# GetDICOMImportJob and StoreDICOM are allowed under the template's policy, and each is refused
# (403) once its action (or iam:PassRole for the import) is dropped. Then the reader role (read
# path): assumed by the task's credentials, every DICOMweb read allowed, store and import
# refused, a read refused once its action is dropped from the reader's policy.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v moto_server >/dev/null || { echo "FAIL moto_server missing (pyenv python3 with moto[server])"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
set +e
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
rc=$?

# ---------------------------------------------------------------- medical-imaging + iam:PassRole
if [[ ! -f $src/tests/support/aws_env.py || ! -f $src/tests/support/hi_emulator.py ]]; then
    echo "FAIL tests/support/aws_env.py or hi_emulator.py missing"
    exit 1
fi
envs=()
stop_envs() { for d in "${envs[@]}"; do python3 "$src/tests/support/aws_env.py" stop --dir "$d" >/dev/null 2>&1 || true; done; rm -rf "$tmp"; }
trap stop_envs EXIT
mi_check() { # label expect(allowed|denied:OP) [--drop-action A]...
    local label=$1 expect=$2 d=$tmp/env-$((${#envs[@]} + 1))
    shift 2
    envs+=("$d")
    if ! python3 "$src/tests/support/aws_env.py" start --dir "$d" "$@" >"$d.log" 2>&1; then
        echo "FAIL aws_env start ($label)"; sed 's/^/    /' "$d.log"; return 1
    fi
    (. "$d/env.sh" && python3 - "$expect" "$label" <<'EOF_MI'
import sys, boto3, botocore.auth, botocore.awsrequest, botocore.credentials, os, urllib.request, urllib.error
expect, label = sys.argv[1], sys.argv[2]
env = os.environ
mi = boto3.client("medical-imaging", endpoint_url=env["HI_ENDPOINT"], region_name=env["REGION"])
results = {}
def attempt(op, fn):
    try:
        fn(); results[op] = "allowed"
    except Exception as e:  # botocore ClientError or urllib HTTPError
        code = getattr(e, "code", None) or e.response["ResponseMetadata"]["HTTPStatusCode"]
        results[op] = "denied" if code == 403 else "allowed"  # 4xx other than 403: authorized
job = {}
def start():
    r = mi.start_dicom_import_job(datastoreId=env["DATASTORE_ID"], dataAccessRoleArn=env["ROLE_ARN"],
                                  clientToken="b-20261124T030000Z-0000abcd",
                                  inputS3Uri="s3://%s/%s/b-20261124T030000Z-0000abcd/" % (env["BUCKET"], env["S3_PREFIX"]),
                                  outputS3Uri="s3://%s/%s/" % (env["BUCKET"], env["OUTPUT_PREFIX"]))
    job["id"] = r["jobId"]
def get():
    mi.get_dicom_import_job(datastoreId=env["DATASTORE_ID"], jobId=job.get("id", "0" * 32))
def stow():
    body = b"--b1\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--b1--\r\n"
    url = "%s/datastore/%s/studies" % (env["HI_ENDPOINT"], env["DATASTORE_ID"])
    req = botocore.awsrequest.AWSRequest("POST", url, data=body, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b1'})
    creds = botocore.credentials.Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    botocore.auth.SigV4Auth(creds, "medical-imaging", env["REGION"]).add_auth(req)
    p = req.prepare()
    urllib.request.urlopen(urllib.request.Request(url, data=body, headers=dict(p.headers), method="POST"))
attempt("StartDICOMImportJob", start)
attempt("GetDICOMImportJob", get)
attempt("StoreDICOM", stow)
if expect == "allowed":
    bad = {k: v for k, v in results.items() if v != "allowed"}
else:
    op = expect.split(":", 1)[1]
    bad = {k: v for k, v in results.items() if v != ("denied" if k == op else "allowed")}
print(("PASS " if not bad else "FAIL ") + label + ("" if not bad else ": %s" % results))
sys.exit(1 if bad else 0)
EOF_MI
    )
}
mi_check "medical-imaging calls allowed under the template's policy (HealthImaging emulator)" allowed || rc=1
mi_check "without medical-imaging:StartDICOMImportJob the import is refused" denied:StartDICOMImportJob \
    --drop-action medical-imaging:StartDICOMImportJob || rc=1
mi_check "without iam:PassRole the import is refused" denied:StartDICOMImportJob --drop-action iam:PassRole || rc=1
mi_check "without medical-imaging:GetDICOMImportJob polling is refused" denied:GetDICOMImportJob \
    --drop-action medical-imaging:GetDICOMImportJob || rc=1
mi_check "without medical-imaging:StoreDICOM STOW-RS is refused" denied:StoreDICOM \
    --drop-action medical-imaging:StoreDICOM || rc=1

# ---------------------------------------------------------------- the reader role (read path)
# The task's credentials assume the template's reader role (through the emulator's STS front,
# which checks trust as AWS does); the reader's session may use every DICOMweb read action and
# nothing else (no STOW, no import); with one read action dropped from the reader's policy that
# action is refused; the task cannot assume a role that does not trust it. It reuses the first
# check's environment (the template's policies, nothing dropped) rather than starting another.
d=${envs[0]}
[[ -f $d/env.sh ]] || { echo "FAIL the first environment is not running (reader)"; exit 1; }
/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$tmp/reader-data" --count 1 --modality CT \
    --ts explicit --rows 8 --cols 8 >/dev/null || { echo "FAIL gen_data"; exit 1; }
(. "$d/env.sh" && python3 - "$src" "$tmp/reader-data" <<'EOF_RD'
import json, os, sys, time, urllib.request, urllib.error
import boto3, botocore.auth, botocore.awsrequest, botocore.credentials
from botocore.config import Config
src, data = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(src, "tests", "support"))
import task_policy
env = os.environ
hi, ds, region = env["HI_ENDPOINT"], env["DATASTORE_ID"], env["REGION"]
failed = 0
def report(ok, name):
    global failed
    print(("PASS " if ok else "FAIL ") + name)
    failed |= not ok
def post(path, obj):
    r = urllib.request.Request(hi + path, json.dumps(obj).encode(), method="POST")
    return json.load(urllib.request.urlopen(r))
inst = post("/_emulator/load", {"dir": data})["loaded"][0]
st, se, sop = inst["StudyInstanceUID"], inst["SeriesInstanceUID"], inst["SOPInstanceUID"]
sts = boto3.client("sts", endpoint_url=env["STS_ENDPOINT"], region_name=region,
                   config=Config(retries={"max_attempts": 1}))  # the task's own keys (env)
def assume(arn):
    try:
        return sts.assume_role(RoleArn=arn, RoleSessionName="policy-check")["Credentials"]
    except Exception as e:  # botocore ClientError
        return e.response["Error"]["Code"]
c = assume(env["READER_ROLE_ARN"])
report(isinstance(c, dict), "the task's credentials assume the reader role")
report(assume(env["ROLE_ARN"]) == "AccessDenied",
       "the task cannot assume a role that does not trust it (the data access role)")
D = f"{hi}/datastore/{ds}"
inst_path = f"{D}/studies/{st}/series/{se}/instances/{sop}"
reads = {"SearchDICOMStudies": f"{D}/studies", "SearchDICOMSeries": f"{D}/studies/{st}/series",
         "SearchDICOMInstances": f"{D}/studies/{st}/series/{se}/instances",
         "GetDICOMInstance": inst_path, "GetDICOMInstanceMetadata": inst_path + "/metadata",
         "GetDICOMInstanceFrames": inst_path + "/frames/1",
         "GetDICOMSeriesMetadata": f"{D}/studies/{st}/series/{se}/metadata"}
def call(creds, method, url, body=None, headers=None):
    cr = botocore.credentials.Credentials(creds["AccessKeyId"], creds["SecretAccessKey"],
                                          creds["SessionToken"])
    req = botocore.awsrequest.AWSRequest(method, url, data=body, headers=headers or {})
    botocore.auth.SigV4Auth(cr, "medical-imaging", region).add_auth(req)
    try:
        return urllib.request.urlopen(urllib.request.Request(
            url, data=body, headers=dict(req.prepare().headers), method=method)).status
    except urllib.error.HTTPError as e:
        return e.code
got = {a: call(c, "GET", u) for a, u in reads.items()}
report(all(v == 200 for v in got.values()), "the reader's session may use the DICOMweb reads: %s" % got)
stow = call(c, "POST", f"{D}/studies", b"--b\r\n\r\nx\r\n--b--",
            {"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
report(stow == 403, "the reader may not store (StoreDICOM %s)" % stow)
mi = boto3.client("medical-imaging", endpoint_url=hi, region_name=region,
                  aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                  aws_session_token=c["SessionToken"], config=Config(retries={"max_attempts": 1}))
try:
    mi.start_dicom_import_job(datastoreId=ds, dataAccessRoleArn=env["ROLE_ARN"],
                              inputS3Uri="s3://%s/dicom/x/" % env["BUCKET"],
                              outputS3Uri="s3://%s/import-output/" % env["BUCKET"])
    imp = 200
except Exception as e:
    imp = e.response["ResponseMetadata"]["HTTPStatusCode"]
report(imp == 403, "the reader may not import (StartDICOMImportJob %s)" % imp)
admin = boto3.client("iam", endpoint_url=env["MOTO_ENDPOINT"], region_name=region,
                     aws_access_key_id=env["ADMIN_ACCESS_KEY_ID"],
                     aws_secret_access_key=env["ADMIN_SECRET_ACCESS_KEY"])
name = env["READER_ROLE_ARN"].rsplit("/", 1)[-1]
for action in ("medical-imaging:GetDICOMInstance", "medical-imaging:SearchDICOMSeries"):
    doc = task_policy.render(env["BUCKET"], env["TABLE"], ds, env["ROLE_ARN"], region=region,
                             account=env["AWS_ACCOUNT_ID"], role="reader",
                             drop_actions=[action])
    admin.put_role_policy(RoleName=name, PolicyName="dicomweb-read",
                          PolicyDocument=json.dumps(doc))
    time.sleep(1.2)  # the emulator caches policies for a second
    op = action.split(":")[1]
    st2 = call(c, "GET", reads[op])
    report(st2 == 403, "without %s in the reader role that read is refused (%s)" % (action, st2))
sys.exit(1 if failed else 0)
EOF_RD
) || rc=1
exit $rc
