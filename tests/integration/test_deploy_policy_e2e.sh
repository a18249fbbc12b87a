#!/usr/bin/env bash
# The forwarder under exactly the CloudFormation task role policy, end to end: aws_env.py puts
# the template's policy (rendered by tests/support/task_policy.py) into moto's IAM and the
# HealthImaging EMULATOR evaluates it too; dicom-core runs the compose file's core-aws
# configuration (endpoints moved to the harness, TLS and PROXY left out). With the full policy a
# study ends IMPORTED; with one action removed the forwarder fails where that action is needed:
#   s3:PutObject   -> C-STORE refused (ack "s3": the object is never acknowledged)
#   iam:PassRole   -> StartDICOMImportJob denied (forwarder_error AccessDenied)
#   s3:GetObject   -> the import output manifest cannot be read (forwarder_error AccessDenied)
# and nothing is marked IMPORTED. Skipped (with a note) when dicom-core lacks the aws backend.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
core=$build/core/dicom-core
tmp=$(mktemp -d)
source "$src/tests/support/deploy_lib.sh"
envs=()
stop_all() {
    local d
    deploy_cleanup_core
    for d in "${envs[@]}"; do python3 "$src/tests/support/aws_env.py" stop --dir "$d" >/dev/null 2>&1 || true; done
    deploy_cleanup
}
deploy_cleanup_core() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
trap stop_all EXIT

if ! [[ -x $core ]] || ! [[ $(ldd "$core" 2>/dev/null) == *libcurl* ]]; then
    echo "note: $core has no aws backend in this build: nothing to run"
    exit 0
fi
command -v storescu >/dev/null || { echo "FAIL DCMTK storescu missing"; exit 1; }
/usr/bin/python3 -c 'import pydicom' 2>/dev/null || { echo "FAIL /usr/bin/python3 lacks pydicom"; exit 1; }
n=4
/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$tmp/study" --count $n --modality CT >/dev/null
study=$(/usr/bin/python3 -c 'import glob,sys,pydicom; print(pydicom.dcmread(sorted(glob.glob(sys.argv[1]+"/*.dcm"))[0]).StudyInstanceUID)' "$tmp/study")
export TCP_NODELAY=1

# states of the study's instances, read with the task's own rights (Query on study_index)
states() {
    python3 - "$study" <<'EOS'
import os, sys, boto3
ddb = boto3.client("dynamodb", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name=os.environ["REGION"])
r = ddb.query(TableName=os.environ["TABLE"], IndexName="study_index",
              KeyConditionExpression="study_uid = :u", ExpressionAttributeValues={":u": {"S": sys.argv[1]}})
print(" ".join(sorted(i["state"]["S"] for i in r["Items"] if i["pk"]["S"].startswith("INSTANCE#"))))
EOS
}

run_case() { # label expect [--drop-action A]
    local label=$1 expect=$2 d=$tmp/env$((${#envs[@]} + 1))
    shift 2
    envs+=("$d")
    deploy_cleanup_core
    python3 "$src/tests/support/aws_env.py" start --dir "$d" --job-delay 0.2 "$@" >"$d.log" 2>&1 ||
        { echo "FAIL $label: aws_env start"; sed 's/^/    /' "$d.log"; failed=1; return; }
    (
        set -euo pipefail
        source "$d/env.sh"
        p1=$(free_port)
        p2=$(free_port)
        jq --arg l "127.0.0.1:$p1" --arg h "127.0.0.1:$p2" --arg sp "$d/spool" --arg b "$BUCKET" \
            --arg t "$TABLE" --arg ds "$DATASTORE_ID" --arg r "$ROLE_ARN" --arg m "$MOTO_ENDPOINT" \
            --arg hi "$HI_ENDPOINT" --arg reg "$REGION" '
            del(.tls, .proxy_protocol) | .listen = $l | .http_listen = $h | .spool_dir = $sp
            | .backend.region = $reg | .backend.s3.bucket = $b | .backend.dynamodb.table = $t
            | .backend.healthimaging.datastore_id = $ds | .backend.healthimaging.data_access_role_arn = $r
            | .backend.healthimaging.batch_max_age_ms = 1000
            | .backend.endpoints = {s3: $m, dynamodb: $m, sts: $m, medical_imaging: $hi, medical_imaging_dicom: $hi}' \
            "$src/compose/config/core-aws.json" >"$d/core.json"
        AWS_EC2_METADATA_DISABLED=true "$core" --config "$d/core.json" 2>"$d/core.log" &
        echo $! >"$d/core.pid"
        for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p2/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
        storescu -nh -aet MODALITY_AWS -aec DICOM_CORE 127.0.0.1 "$p1" "$tmp"/study/*.dcm >"$d/storescu.log" 2>&1 || true
        case $expect in
        imported)
            for _ in $(seq 600); do [[ $(states) == "$(printf 'IMPORTED %.0s' $(seq $n) | sed 's/ $//')" ]] && exit 0; sleep 0.1; done
            echo "states: $(states)"; exit 1 ;;
        refused)
            refused=$(grep -c '"ev":"c_store".*"status":"A' "$d/core.log" || true)
            [[ $refused -eq $n ]] || { echo "$refused of $n stores refused"; exit 1; }
            [[ -z $(states | tr -d ' ') || $(states) != *IMPORTED* ]] ;;
        denied)
            for _ in $(seq 600); do grep -q '"ev":"forwarder_error".*AccessDenied' "$d/core.log" && break; sleep 0.1; done
            grep -q '"ev":"forwarder_error".*AccessDenied' "$d/core.log" || { echo "no AccessDenied forwarder_error"; exit 1; }
            [[ $(states) != *IMPORTED* ]] || { echo "states: $(states)"; exit 1; } ;;
        esac
    ) >"$d.out" 2>&1
    local rc=$?
    [[ -f $d/core.pid ]] && pids+=("$(cat "$d/core.pid")")
    if ((rc == 0)); then
        echo "PASS $label"
    else
        echo "FAIL $label"
        sed 's/^/    /' "$d.out"
        tail -5 "$d/core.log" 2>/dev/null | sed 's/^/    core: /'
        failed=1
    fi
}

set +e
run_case "under the template's policy the study ends IMPORTED" imported
run_case "without s3:PutObject every C-STORE is refused (ack s3)" refused --drop-action s3:PutObject
run_case "without iam:PassRole the import is denied" denied --drop-action iam:PassRole
run_case "without s3:GetObject the import output cannot be read" denied --drop-action s3:GetObject
exit $failed
