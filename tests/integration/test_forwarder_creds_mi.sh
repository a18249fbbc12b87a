#!/usr/bin/env bash
# The forwarder's clients (gw-aws) with the shared AWS harness (tests/support/aws_env.py: moto
# with signature and policy checks, THE HealthImaging EMULATOR hi_emulator.py, and
# metadata_server.py), under the task role's least-privilege policy:
#   - credentials from IMDSv2 and from the ECS endpoint (full URI + authorization token) are
#     temporary (session token) and accepted by moto; a wrong ECS token fails cleanly;
#   - HealthImaging: StartDICOMImportJob (idempotent on clientToken), GetDICOMImportJob polled to
#     COMPLETED, throttling (429) retried with backoff, 503 retried, a validation error not
#     retried; StoreDICOM (STOW-RS) streamed from a Part-10 file, answer read per instance.
set -euo pipefail
GW_BUILD=${GW_BUILD:-build}
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
TOOL="$GW_BUILD/forwarder/gw-aws"
[[ -x "$TOOL" ]] || { echo "missing $TOOL"; exit 1; }
PY=python3
work=$(mktemp -d)
env_dir=$work/env
cleanup() {
    "$PY" "$src/tests/support/aws_env.py" stop --dir "$env_dir" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$PY" "$src/tests/support/aws_env.py" start --dir "$env_dir" --job-delay 0.3 >/dev/null
# shellcheck disable=SC1091
. "$env_dir/env.sh"
ctl() { curl -sf -X POST -H 'Content-Type: application/json' -d "$2" "$HI_ENDPOINT/_emulator/$1" >/dev/null; }
S3="--s3-endpoint $MOTO_ENDPOINT"
MI="--mi-endpoint $HI_ENDPOINT --mi-dicom-endpoint $HI_ENDPOINT"

/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$work/dcm" --count 2 --rows 64 --cols 64 >"$work/files"
mapfile -t files <"$work/files"
[[ ${#files[@]} == 2 ]] || fail "gen_data"

echo "== IMDSv2 credentials (temporary) put objects under the task policy"
batch="b-20261124T030000Z-$(printf '%08x' $$)"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
    export AWS_EC2_METADATA_SERVICE_ENDPOINT=$IMDS_ENDPOINT
    "$TOOL" creds | tee "$work/creds.out" | grep -q "source=imds .*token=yes" || exit 1
    for f in "${files[@]}"; do
        "$TOOL" $S3 s3-put "$BUCKET" "$S3_PREFIX/$batch/$(basename "$f")" "$f" >/dev/null || exit 1
    done
) || fail "IMDS credentials"

echo "== ECS full URI + authorization token; a wrong token is refused"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
    export AWS_CONTAINER_CREDENTIALS_FULL_URI="http://$ECS_CREDENTIALS_HOST$ECS_CREDENTIALS_RELATIVE_URI"
    export AWS_CONTAINER_AUTHORIZATION_TOKEN=$ECS_AUTHORIZATION_TOKEN
    "$TOOL" creds | grep -q "source=ecs .*token=yes" || exit 1
    "$TOOL" $S3 s3-get "$BUCKET" "$S3_PREFIX/$batch/$(basename "${files[0]}")" "$work/back.dcm" >/dev/null || exit 1
    if AWS_CONTAINER_AUTHORIZATION_TOKEN=wrong "$TOOL" creds >/dev/null 2>&1; then exit 2; fi
) || fail "ECS credentials (rc=$?)"
cmp "${files[0]}" "$work/back.dcm" || fail "object read back differs"

echo "== StartDICOMImportJob (idempotent), GetDICOMImportJob to COMPLETED"
in_uri="s3://$BUCKET/$S3_PREFIX/$batch/"
out_uri="s3://$BUCKET/$OUTPUT_PREFIX/"
ctl throttle '{"count": 2, "operations": ["StartDICOMImportJob"]}'
"$TOOL" $MI mi-start "$DATASTORE_ID" "$ROLE_ARN" "$batch" "$in_uri" "$out_uri" >"$work/start" || fail "start: $(cat "$work/start")"
grep -q "attempts=3" "$work/start" || fail "two 429s then success should take 3 attempts: $(cat "$work/start")"
job=$(sed -n 's/.*job_id=\([^ ]*\).*/\1/p' "$work/start")
[[ -n $job ]] || fail "no job id: $(cat "$work/start")"
"$TOOL" $MI mi-start "$DATASTORE_ID" "$ROLE_ARN" "$batch" "$in_uri" "$out_uri" >"$work/start2" || fail "replayed start"
grep -q "job_id=$job " "$work/start2" || fail "clientToken replay gave another job: $(cat "$work/start2")"
throttled=$(curl -sf "$HI_ENDPOINT/_emulator/state" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["counters"]["throttled"])')
[[ $throttled -ge 2 ]] || fail "the emulator throttled $throttled requests, expected 2 (retried)"
status=""
for _ in $(seq 100); do
    "$TOOL" $MI mi-get "$DATASTORE_ID" "$job" >"$work/get" || fail "get: $(cat "$work/get")"
    status=$(sed -n 's/.*status=\([A-Z_]*\).*/\1/p' "$work/get")
    [[ $status == COMPLETED || $status == FAILED ]] && break
    sleep 0.2
done
[[ $status == COMPLETED ]] || fail "job ended $status"

echo "== 503 for a while is retried; a ValidationException is not"
ctl down '{"seconds": 0.5, "mode": "503"}'
"$TOOL" $MI mi-get "$DATASTORE_ID" "$job" >/dev/null || fail "get after 503s"
if "$TOOL" $MI mi-start "$DATASTORE_ID" "$ROLE_ARN" "bad token with spaces" "$in_uri" "$out_uri" 2>"$work/err"; then
    fail "an invalid clientToken was accepted"
fi
grep -q "code=ValidationException attempts=1" "$work/err" || fail "validation: $(cat "$work/err")"

echo "== StoreDICOM (STOW-RS) per instance, and a failed instance"
"$TOOL" $MI mi-stow "$DATASTORE_ID" "${files[0]}" >"$work/stow" || fail "stow: $(cat "$work/stow")"
grep -q "stored=1 failure=-1" "$work/stow" || fail "stow answer: $(cat "$work/stow")"
uid=$(/usr/bin/python3 -c 'import pydicom,sys; print(pydicom.dcmread(sys.argv[1]).SOPInstanceUID)' "${files[1]}")
ctl fail "{\"sop_uids\": [\"$uid\"]}"
set +e
"$TOOL" $MI mi-stow "$DATASTORE_ID" "${files[1]}" >"$work/stow2" 2>&1
set -e
grep -q "instance $uid stored=0 failure=272" "$work/stow2" || fail "failed instance: $(cat "$work/stow2")"
echo "PASS"
