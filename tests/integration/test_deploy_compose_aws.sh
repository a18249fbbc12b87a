#!/usr/bin/env bash
# The compose file's "aws" profile without Docker: its services' own command lines, run natively
# on loopback. moto_server (as the "moto" service); compose/aws_init.py (as "aws-init", twice:
# idempotent) creates the bucket, the table (forwarder/schema shape), the data access role and
# the core's IAM user with the CloudFormation task role policy; the HealthImaging EMULATOR with
# the exact arguments of the "healthimaging" service accepts that user's signature and policy
# (StartDICOMImportJob) and refuses a stranger's key. When dicom-core has the aws backend, the
# "core-aws" configuration (its endpoints moved to the loopback ports, TLS and PROXY left out)
# started through gw-entrypoint with GW_ENV_FILE stores a study that ends IMPORTED in DynamoDB.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
py=python3 # pyenv's: moto, boto3, PyYAML
tmp=$(mktemp -d)
source "$src/tests/support/deploy_lib.sh"
trap deploy_cleanup EXIT
command -v moto_server >/dev/null || { echo "FAIL moto_server missing"; exit 1; }
command -v docker-compose >/dev/null || { echo "FAIL docker-compose missing"; exit 1; }

docker-compose -f "$src/compose/docker-compose.yml" --profile aws config >"$tmp/compose.yml"
moto_port=$(free_port)
hi_port=$(free_port)
mkdir -p "$tmp/aws"
# each service's command, with the container paths and service addresses mapped to this machine
$py - "$tmp/compose.yml" "$src" "$tmp/aws" "$moto_port" "$hi_port" >"$tmp/cmds" <<'EOS'
import shlex, sys, yaml
cfg, src, aws, moto, hi = sys.argv[1:]
svc = yaml.safe_load(open(cfg))["services"]
def fix(words):
    out = []
    for w in words:
        w = w.replace("/opt/gw", src).replace("/aws/", aws + "/").replace("http://moto:5000", "http://127.0.0.1:" + moto)
        out.append(w)
    return out
hi_cmd = fix(svc["healthimaging"]["command"])
hi_cmd[hi_cmd.index("--port") + 1] = hi
print("AWS_INIT=" + shlex.quote(shlex.join(fix(svc["aws-init"]["command"]))))
print("HI=" + shlex.quote(shlex.join(hi_cmd)))
print("MOTO_ARGS=" + shlex.quote(shlex.join(svc["moto"]["command"][1:])))
EOS
source "$tmp/cmds"
echo "aws-init: $AWS_INIT"
echo "healthimaging: $HI"

moto_server -H 127.0.0.1 -p "$moto_port" >"$tmp/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
check "aws-init creates the account's resources" bash -c "$AWS_INIT"
check "aws-init a second time keeps them" bash -c "$AWS_INIT"
check "aws-init wrote the core's credentials" grep -q '^AWS_ACCESS_KEY_ID=AKIA' "$tmp/aws/credentials.env"

bash -c "exec $HI" >"$tmp/hi.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s "http://127.0.0.1:$hi_port/" >/dev/null 2>&1 && break; sleep 0.1; done

check "the core's user has exactly the template's task policy; the emulator accepts it" \
    env MOTO="http://127.0.0.1:$moto_port" HI="http://127.0.0.1:$hi_port" ENVFILE="$tmp/aws/credentials.env" \
    SRC="$src" $py - <<'EOS'
import json, os, sys, boto3
sys.path.insert(0, os.path.join(os.environ["SRC"], "tests", "support"))
import task_policy
creds = dict(l.strip().split("=", 1) for l in open(os.environ["ENVFILE"]) if "=" in l)
iam = boto3.client("iam", endpoint_url=os.environ["MOTO"], region_name="us-east-1")
user = [u["UserName"] for u in iam.list_users()["Users"] if any(
    k["AccessKeyId"] == creds["AWS_ACCESS_KEY_ID"] for k in iam.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"])][0]
names = iam.list_user_policies(UserName=user)["PolicyNames"]
doc = iam.get_user_policy(UserName=user, PolicyName=names[0])["PolicyDocument"]
doc = json.loads(doc) if isinstance(doc, str) else doc
want = task_policy.actions(task_policy.render("dicom-gateway-local", "dicom-gateway-local",
    "00000000000000000000000000000001", "arn:aws:iam::123456789012:role/dicom-gateway-local-data-access"))
assert len(names) == 1 and task_policy.actions(doc) == want, (names, doc)
mi = boto3.client("medical-imaging", endpoint_url=os.environ["HI"], region_name="us-east-1",
                  aws_access_key_id=creds["AWS_ACCESS_KEY_ID"], aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
r = mi.start_dicom_import_job(datastoreId="00000000000000000000000000000001",
    dataAccessRoleArn="arn:aws:iam::123456789012:role/dicom-gateway-local-data-access",
    clientToken="b-20261124T030000Z-0000abcd",
    inputS3Uri="s3://dicom-gateway-local/dicom/b-20261124T030000Z-0000abcd/",
    outputS3Uri="s3://dicom-gateway-local/import-output/")
print("job", r["jobId"], "for", user)
EOS
check "the emulator refuses a key it does not know" env HI="http://127.0.0.1:$hi_port" $py -c '
import os, sys, boto3, botocore.exceptions as be
mi = boto3.client("medical-imaging", endpoint_url=os.environ["HI"], region_name="us-east-1",
                  aws_access_key_id="AKIANOTAKEY000000000", aws_secret_access_key="x")
try:
    mi.get_dicom_import_job(datastoreId="00000000000000000000000000000001", jobId="0" * 32)
except be.ClientError as e:
    sys.exit(0 if e.response["ResponseMetadata"]["HTTPStatusCode"] == 403 else 1)
sys.exit(1)'

# the core-aws configuration end to end, when this build has the aws backend
core=$build/core/dicom-core
if [[ -x $core ]] && [[ $(ldd "$core" 2>/dev/null) == *libcurl* ]] && [[ -x /usr/bin/python3 ]] && command -v storescu >/dev/null; then
    p1=$(free_port)
    p2=$(free_port)
    jq --arg l "127.0.0.1:$p1" --arg h "127.0.0.1:$p2" --arg m "http://127.0.0.1:$moto_port" \
        --arg hi "http://127.0.0.1:$hi_port" --arg sp "$tmp/spool" '
        del(.tls, .proxy_protocol) | .listen = $l | .http_listen = $h | .spool_dir = $sp
        | .backend.endpoints = {s3: $m, dynamodb: $m, sts: $m, medical_imaging: $hi, medical_imaging_dicom: $hi}' \
        "$src/compose/config/core-aws.json" >"$tmp/core-aws.json"
    (unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
     GW_ENV_FILE=$tmp/aws/credentials.env GW_RUN_DIR=$tmp/run AWS_EC2_METADATA_DISABLED=true \
         exec sh "$src/compose/gw-entrypoint.sh" "$core" --config "$tmp/core-aws.json") 2>"$tmp/core.log" &
    pids+=($!)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p2/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    /usr/bin/python3 "$src/tests/support/gen_data.py" --out "$tmp/study" --count 3 --modality CT >/dev/null
    check "storescu to the core-aws configuration" storescu -aet MODALITY_AWS -aec DICOM_CORE +sd 127.0.0.1 "$p1" "$tmp/study"
    check "every object ends IMPORTED in the table, keyed as the template's schema says" env MOTO="http://127.0.0.1:$moto_port" STUDY="$tmp/study" $py - <<'EOS'
import glob, os, sys, time, boto3
ddb = boto3.client("dynamodb", endpoint_url=os.environ["MOTO"], region_name="us-east-1")
n = len(glob.glob(os.path.join(os.environ["STUDY"], "*.dcm")))
for _ in range(600):
    items = ddb.scan(TableName="dicom-gateway-local")["Items"]
    states = [i["state"]["S"] for i in items if i["pk"]["S"].startswith("INSTANCE#")]
    if len(states) == n and all(s == "IMPORTED" for s in states):
        # the keys the forwarder writes are the template's key schema and index (CONTRACTS.md)
        import re
        for i in items:
            pk, sk = i["pk"]["S"], i["sk"]["S"]
            if pk.startswith("INSTANCE#"):
                assert re.fullmatch(r"SHA256#[0-9a-f]{64}", sk), sk
                assert i.get("study_uid", {}).get("S"), "instance item without study_uid (study_index)"
            else:
                assert re.fullmatch(r"JOB#b-\d{8}T\d{6}Z-[0-9a-f]{8}", pk) and sk == "JOB", (pk, sk)
        print("IMPORTED:", n); sys.exit(0)
    time.sleep(0.1)
print("states:", states); sys.exit(1)
EOS
    ((failed == 0)) || tail -20 "$tmp/core.log"
else
    echo "note: $core has no aws backend in this build (or DCMTK/pydicom missing): the store through core-aws is skipped"
fi
exit $failed
