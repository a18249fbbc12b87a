#!/usr/bin/env bash
# kill -9 of dicom-core at random points during a stream of stores with ack "s3" (the one
# DynamoDB write per object: a kill can land before or after the claim, before or after the S3
# PUT, before or after the journal's release), then a restart and the modality's resend of the
# whole round (the objects it had no success for, and the ones whose answer it may have lost).
# Every resend must succeed, and in the end there is exactly one S3 object and one DynamoDB item
# per SOP Instance UID and hash, each IMPORTED, with one import job per batch. Rounds alternate
# s3.checksum "sha256" and "crc64nvme". Peers: moto and THE HealthImaging EMULATOR.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib_forwarder.sh
source "$here/lib_forwarder.sh"
skip_unless_ready

ROUNDS=${ROUNDS:-4} PER=${PER:-24}
[[ "${GW_SANITIZED:-0}" == 1 ]] && ROUNDS=3 PER=12
aws_up --job-delay 0.5
export TCP_NODELAY=1
mkdir -p "$T/all"
: >"$T/all/uids.txt"
acked=0
for r in $(seq "$ROUNDS"); do
    sum=sha256
    (( r % 2 == 0 )) && sum=crc64nvme
    write_core_config "$T/core.json" s3
    python3 - "$T/core.json" "$sum" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["backend"]["s3"]["checksum"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))
PYEOF
    gen_objects "$T/in$r" "$PER" 64 "k$r"
    cat "$T/in$r/uids.txt" >>"$T/all/uids.txt"
    for f in "$T/in$r"/*.dcm; do ln -sf "$f" "$T/all/"; done
    core_start
    storescu -v -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T/in$r"/*.dcm >"$T/s$r.log" 2>&1 &
    SCU=$!
    sleep "$((RANDOM % 2)).$((RANDOM % 10))" # 0.0 - 1.9 s: before, during and after the stream
    core_kill9
    wait "$SCU" 2>/dev/null || true
    n=$(grep -c "Received Store Response (Success)" "$T/s$r.log" || true)
    acked=$((acked + n))
    echo "round $r ($sum): killed -9 after $n of $PER acknowledged"
    echo "--- killed" >>"$T/core.log"
    core_start
    storescu -v -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T/in$r"/*.dcm >"$T/s${r}b.log" 2>&1 ||
        { tail -5 "$T/s${r}b.log" >&2; die "round $r: the resend failed"; }
    ok=$(grep -c "Received Store Response (Success)" "$T/s${r}b.log" || true)
    [[ $ok == "$PER" ]] || die "round $r: $ok of $PER resent objects acknowledged"
    core_stop
done
core_start
check_imported "$T/all" 240 || die "after $ROUNDS rounds of kill -9"
core_stop
check_one_job_per_batch || die "duplicate import jobs"
echo "ok: $ROUNDS rounds of kill -9 under ack s3 ($acked acknowledged before the kills):" \
    "one S3 object and one item per SOP Instance UID and hash"
echo PASS
