#!/usr/bin/env bash
# Faults: (1) kill -9 of dicom-core mid-upload (multipart included) and mid-import-job, several
# times, then a restart: every acknowledged object ends in S3, imported and recorded exactly
# once, with no duplicate job; (2) S3 down with ack "s3": the modality gets 0xA700, never
# success, and after S3 returns everything drains; (3) HealthImaging throttling and a 503
# outage are ridden out; a job that FAILED as a whole marks its objects FAILED, and a re-drive
# imports them; (4) the resend of a copy torn in the spool lands. Peers: moto (signatures and
# IAM checked) and THE HealthImaging EMULATOR.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib_forwarder.sh
source "$here/lib_forwarder.sh"
skip_unless_ready

ITER=4 PER=12
[[ "${GW_SANITIZED:-0}" == 1 ]] && ITER=2 PER=6
aws_up --job-delay 0.8
export TCP_NODELAY=1

# ---- (1) kill -9 in a loop. S3 goes through a proxy we can slow down, so that kills land in
# the middle of uploads; a multipart object (threshold 5 MiB) rides along in the first round.
PROXY_PORT=$(free_port)
python3 - "$PROXY_PORT" "$MOTO_PORT" "$T/s3down" "$T/s3slow" >"$T/proxy.log" 2>&1 <<'PYEOF' &
import os, socket, sys, threading, time
lport, dport, down, slow = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport))
ls.listen(64)
def pipe(a, b, up):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if up and os.path.exists(slow):
                time.sleep(0.05)
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = ls.accept()
    if os.path.exists(down):
        c.close()
        continue
    u = socket.create_connection(("127.0.0.1", dport))
    threading.Thread(target=pipe, args=(c, u, True), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c, False), daemon=True).start()
PYEOF
PROXY_PID=$!
trap 'kill $PROXY_PID 2>/dev/null; fwd_cleanup' EXIT
for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && break; sleep 0.1; done

write_core_config "$T/core.json" spool ', "max_concurrent_jobs": 2'
# S3 through the proxy; multipart above 5 MiB
python3 - "$T/core.json" "$PROXY_PORT" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["backend"]["endpoints"]["s3"] = f"http://127.0.0.1:{sys.argv[2]}"
c["backend"]["s3"]["multipart_threshold"] = 5 << 20
c["backend"]["s3"]["part_size"] = 5 << 20
json.dump(c, open(sys.argv[1], "w"))
PYEOF
mkdir -p "$T/all"
: >"$T/all/uids.txt"
for i in $(seq "$ITER"); do
    gen_objects "$T/in$i" "$PER" 64 "r$i"
    if [[ $i == 1 ]]; then gen_objects "$T/in$i" 1 1800 "big"; fi  # ~6.5 MB: multipart
    touch "$T/s3slow"
    core_start
    storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T/in$i"/*.dcm >"$T/storescu$i.log" 2>&1 ||
        die "storescu round $i"
    cat "$T/in$i/uids.txt" >>"$T/all/uids.txt"
    for f in "$T/in$i"/*.dcm; do ln -sf "$f" "$T/all/"; done
    if (( i % 2 )); then
        sleep 0.$((RANDOM % 8 + 1))              # mid-upload
        where=upload
    else
        rm -f "$T/s3slow"
        for _ in $(seq 100); do                   # mid-job: after a start, before its end
            grep -q import_job_started "$T/core.log" && break
            sleep 0.1
        done
        where=job
    fi
    core_kill9
    echo "round $i: killed -9 mid-$where"
    echo "--- killed" >>"$T/core.log"
done
rm -f "$T/s3slow"
core_start
# the input files are symlinked from $T/all; the manifest names them by file name
check_imported "$T/all" 180 || die "after kill -9 rounds"
core_stop
python3 - "$HI_ENDPOINT" <<'PYEOF' || die "duplicate import jobs"
import json, sys, urllib.request
jobs = json.load(urllib.request.urlopen(sys.argv[1] + "/_emulator/jobs"))["jobs"]
tokens = [j["clientToken"] for j in jobs]
assert len(tokens) == len(set(tokens)), f"{len(tokens)} jobs for {len(set(tokens))} tokens"
print(f"ok: {len(jobs)} import jobs, one per batch")
PYEOF
echo "ok: $ITER rounds of kill -9: every acknowledged object exactly once"

# ---- (2) S3 down with ack "s3": 0xA700, never success
rm -rf "$T/spool"
: >"$T/core.log"
ACK_TIMEOUT_MS=3000 write_core_config "$T/core.json" s3
set_s3_endpoint "$T/core.json" "http://127.0.0.1:$PROXY_PORT"
core_start
gen_objects "$T/down" 3
touch "$T/s3down"
storescu -v -nh -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/down/*.dcm >"$T/storescu_down.log" 2>&1 ||
    true
grep -qi "Received Store Response (Success)" "$T/storescu_down.log" &&
    die "a store was acknowledged while S3 was down"
n_fail=$(grep -c "Received Store Response (Refused: OutOfResources)" "$T/storescu_down.log" || true)
[[ "$n_fail" -ge 3 ]] || { cat "$T/storescu_down.log" >&2; die "expected 3 x 0xA700, saw $n_fail"; }
echo "ok: S3 down with ack s3: $n_fail x 0xA700, no success"
rm -f "$T/s3down"
gen_objects "$T/up" 5
storescu -v -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/up/*.dcm >"$T/storescu_up.log" 2>&1 ||
    die "storescu after S3 came back"
[[ $(grep -c "Received Store Response (Success)" "$T/storescu_up.log") == 5 ]] ||
    die "after S3 came back, not every store succeeded"
check_imported "$T/up" 120 || die "after S3 came back"
for _ in $(seq 100); do [[ -z "$(ls "$T/spool/ready")" ]] && break; sleep 0.3; done
[[ -z "$(ls "$T/spool/ready")" ]] || die "the spool did not drain after the outage"
echo "ok: after the outage everything drains"

# ---- (3) HealthImaging throttling, a 503 outage, and a job that fails as a whole
curl -sf -X POST "$HI_ENDPOINT/_emulator/throttle" \
    -d '{"count": 6, "operations": ["StartDICOMImportJob", "GetDICOMImportJob"]}' >/dev/null
gen_objects "$T/thr" 6
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/thr/*.dcm >>"$T/storescu.log" 2>&1 ||
    die "storescu (throttle)"
sleep 1
curl -sf -X POST "$HI_ENDPOINT/_emulator/down" -d '{"seconds": 3, "mode": "503"}' >/dev/null
check_imported "$T/thr" 120 || die "throttling / 503"
echo "ok: throttling and a 503 outage of HealthImaging are ridden out"

curl -sf -X POST "$HI_ENDPOINT/_emulator/fail" \
    -d '{"jobs": 1, "job_message": "synthetic job failure"}' >/dev/null
gen_objects "$T/jf" 4
awk '{print $2}' "$T/jf/uids.txt" >"$T/jf_bad.txt"
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/jf/*.dcm >>"$T/storescu.log" 2>&1 ||
    die "storescu (job failure)"
JOB_STATE=FAILED check_imported "$T/jf" 120 "$T/jf_bad.txt" || die "failed job"
"$CORE" failed --config "$T/core.json" | grep -q ImportJobFailed || die "failed list"
echo "ok: a failed job marks its objects FAILED with its message, listed by dicom-core failed"
"$CORE" redrive --config "$T/core.json" --all >/dev/null || die "dicom-core redrive"
# the items keep their first batch (the object stays at its key); its job stays FAILED
JOB_STATE=FAILED check_imported "$T/jf" 120 || die "re-driven objects not IMPORTED"
"$CORE" failed --config "$T/core.json" | grep -q "^0 FAILED" || die "re-driven objects still listed"
echo "ok: a re-drive imports them (one job per object, its key as input), without a new S3 object"
core_stop

# ---- (4) a copy torn in the spool (its bytes never reached the disk, so it was never
# acknowledged: a power loss) whose RECEIVED item was written, then the modality's resend, in
# another batch (after a restart): the torn copy gave its item up, the resend takes it over and
# lands, instead of being dropped as the torn copy's duplicate
write_core_config "$T/core.json" spool
set_s3_endpoint "$T/core.json" http://127.0.0.1:9
core_start
gen_objects "$T/torn" 1
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/torn/*.dcm >>"$T/storescu.log" 2>&1 ||
    die "storescu (torn)"
core_stop
torn=$(ls "$T"/spool/ready/*.dcm)
[[ $(echo "$torn" | wc -l) == 1 ]] || die "expected one spool entry, found: $torn"
truncate -s 1000 "$torn"
write_core_config "$T/core.json" spool
core_start
for _ in $(seq 100); do grep -q '"spool_torn_entry_dropped"' "$T/core.log" && break; sleep 0.2; done
grep -q '"spool_torn_entry_dropped"' "$T/core.log" || die "the torn entry was not dropped"
core_stop
core_start
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/torn/*.dcm >>"$T/storescu.log" 2>&1 ||
    die "storescu (resend of the torn object)"
check_imported "$T/torn" 60 || die "the resend of a torn copy did not land"
grep -q '"duplicate_dropped"' "$T/core.log" && die "the resend was dropped as a duplicate"
echo "ok: the resend of a torn copy takes over its item, lands in S3 and is imported"
core_stop
echo PASS
