#!/usr/bin/env bash
# End to end: storescu -> dicom-core -> forwarder -> moto (S3, DynamoDB, IAM: every request
# signed and checked against the least-privilege task policy) + THE HealthImaging EMULATOR
# (tests/support/hi_emulator.py, not AWS). Every object must be in S3 with the bytes the core
# acknowledged, imported, and its DynamoDB item IMPORTED, exactly once, also when the modality
# sends the study twice. Then partial job failures (FAILED items, `dicom-core failed`), and the
# STOW-RS path with ack "healthimaging".
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib_forwarder.sh
source "$here/lib_forwarder.sh"
skip_unless_ready

N=30
[[ "${GW_SANITIZED:-0}" == 1 ]] && N=10
aws_up --job-delay 0.2
export TCP_NODELAY=1

# ---- import path, ack "s3"
gen_objects "$T/in" "$N"
write_core_config "$T/core.json" s3
"$CORE" --check-config --config "$T/core.json" >/dev/null || die "check-config refused a good file"
core_start
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/in/*.dcm >"$T/storescu.log" 2>&1 ||
    die "storescu failed: $(tail -3 "$T/storescu.log")"
check_imported "$T/in" 120 || die "import path"
echo "ok: $N objects stored, imported and recorded"

# the modality sends the same study again: no new S3 object, item or job
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/in/*.dcm >>"$T/storescu.log" 2>&1 ||
    die "second storescu failed"
for _ in $(seq 100); do
    [[ -z "$(ls "$T/spool/ready")" ]] && break
    sleep 0.2
done
[[ -z "$(ls "$T/spool/ready")" ]] || die "resent objects stay in the spool"
check_imported "$T/in" 10 || die "a resend made duplicates"
grep -q '"ev":"duplicate_dropped"' "$T/core.log" || die "no duplicate_dropped log line"
echo "ok: a resent study makes no duplicate object, item or job"

"$CORE" status --config "$T/core.json" >"$T/status.out" || die "dicom-core status failed"
grep -q "imported" "$T/status.out" || die "status lacks the forwarder's counters"
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >"$T/metrics.out" || die "no /metrics"
grep -q 'dicom_core_forwarder_objects_total{stage="imported"}' "$T/metrics.out" ||
    die "no forwarder metrics"
echo "ok: dicom-core status and forwarder metrics"

# ---- partial failure of a job: two files refused by HealthImaging
gen_objects "$T/in2" 6
mapfile -t bad < <(awk 'NR<=2 {print $2}' "$T/in2/uids.txt")
printf '%s\n' "${bad[@]}" >"$T/bad.txt"
curl -sf -X POST "$HI_ENDPOINT/_emulator/fail" -d "{\"sop_uids\": [\"${bad[0]}\", \"${bad[1]}\"],
    \"exception_type\": \"ValidationException\", \"message\": \"synthetic refusal\"}" >/dev/null ||
    die "emulator fail control"
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/in2/*.dcm >>"$T/storescu.log" 2>&1 ||
    die "storescu (partial failure) failed"
check_imported "$T/in2" 120 "$T/bad.txt" || die "partial failure"
"$CORE" failed --config "$T/core.json" >"$T/failed.out" || die "dicom-core failed"
for s in "${bad[@]}"; do
    grep -q "$s" "$T/failed.out" || die "dicom-core failed does not list $s"
done
grep -q ValidationException "$T/failed.out" || die "failed list lacks the exception type"
echo "ok: files refused by the import are FAILED with their exception, and listed"
core_stop
curl -sf -X POST "$HI_ENDPOINT/_emulator/reset" -d '{}' >/dev/null

# ---- STOW-RS path, ack "healthimaging"; credentials from the ECS container endpoint this time
# (temporary credentials with a session token, served by tests/support/metadata_server.py)
gen_objects "$T/in3" 8
rm -rf "$T/spool"
write_core_config "$T/core.json" healthimaging ', "mode": "stow"'
CORE_ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN
          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=$ECS_CREDENTIALS_RELATIVE_URI"
          "DICOM_CORE_ECS_CREDENTIALS_HOST=$ECS_CREDENTIALS_HOST"
          "AWS_CONTAINER_AUTHORIZATION_TOKEN=$ECS_AUTHORIZATION_TOKEN"
          AWS_EC2_METADATA_DISABLED=true)
core_start
CORE_ENV=()
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/in3/*.dcm >>"$T/storescu.log" 2>&1 ||
    die "storescu (stow) failed"
MODE=stow check_imported "$T/in3" 60 || die "stow path"
core_stop
fetches=$(curl -sf "http://127.0.0.1:$METADATA_PORT/_count") || die "metadata server count"
echo "$fetches" | jq -e '.ecs > 0' >/dev/null || die "the core did not take its credentials from ECS: $fetches"
echo "ok: STOW-RS with ack healthimaging, ECS container credentials"
echo PASS
