#!/usr/bin/env bash
# Storage Commitment latency and cost: a 100-instance study is stored (DCMTK storescu, one
# association), then dcmjs-dimse sends the N-ACTION and waits for the N-EVENT-REPORT on the same
# association. Measured: from the last C-STORE success (the core's c_store log line) to the
# report's arrival at the SCU, at each commit point:
#   file backend: spool, stored (the file store)
#   aws backend (moto + the HealthImaging emulator of tests/support, NOT AWS): s3,
#   healthimaging with import jobs, healthimaging with STOW-RS
# and the requests per transaction: commitment's own DynamoDB requests (the core's
# dicom_core_commit_backend_requests), and the whole pipeline's HealthImaging requests per
# operation for that study (the emulator's counters, /_emulator/state).
# Each point gets a study of its own (a resent study would be recognised as duplicates).
# Timing only: never pass/fail. Env: N (instances, default 100), POINTS (subset of
# "spool stored s3 hi-import hi-stow").
set -euo pipefail
GW_SRC=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
GW_BUILD=${GW_BUILD:-$GW_SRC/build}
export GW_SRC GW_BUILD
N=${N:-100}
POINTS=${POINTS:-spool stored s3 hi-import hi-stow}
source "$GW_SRC/tests/integration/lib_forwarder.sh"
SCU=(node "$GW_SRC/tests/support/commit_scu.js")
printf "%-10s %-7s %14s %15s %9s %s\n" point backend last_store_ms n_action_rsp_ms ddb_reqs \
    "healthimaging requests (whole pipeline, this study)"

log_ms() { # the ts of the last line matching $1 in the core log, as unix ms
    grep "$1" "$T/core.log" | tail -1 | jq -r .ts | python3 -c \
        'import sys,datetime; s=sys.stdin.read().strip(); print(int(datetime.datetime.strptime(s,"%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()*1000))'
}
hi_state() { curl -sf "$HI_ENDPOINT/_emulator/state" | jq -c '.counters.requests // {}'; }

run_point() { # run_point NAME BACKEND POINT [hi extra]
    local name=$1 backend=$2 point=$3 extra=${4:-}
    rm -rf "$T/spool" "$T/store" "$T/study"
    : >"$T/core.log"
    gen_objects "$T/study" "$N" 64 # a new study each time: never a duplicate of an earlier run
    awk '{print "1.2.840.10008.5.1.4.1.1.2", $2}' "$T/study/uids.txt" >"$T/refs.txt"
    if [[ $backend == file ]]; then
        CORE_PORT=$(free_port) HTTP_PORT=$(free_port)
        cat >"$T/core.json" <<EOF
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$CORE_PORT", "http_listen": "127.0.0.1:$HTTP_PORT",
  "spool_dir": "$T/spool", "min_free_bytes": 0, "backend": { "type": "file", "dir": "$T/store" } }
EOF
    else
        write_core_config "$T/core.json" spool "$extra"
    fi
    python3 - "$T/core.json" "$point" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["clients"] = [{"calling_ae": ["MODALITY"], "services": ["store", "commit"]}]
c["commit"] = {"point": sys.argv[2], "poll_initial_ms": 100, "poll_max_ms": 1000,
               "deadline_ms": 600000}
json.dump(c, open(sys.argv[1], "w"))
EOF
    core_start
    local before
    before=$([[ $backend == aws ]] && hi_state || echo '{}')
    storescu -aet MODALITY -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T/study"/*.dcm >/dev/null 2>&1
    local t_store tuid="2.25.$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')"
    t_store=$(log_ms '"ev":"c_store"')
    "${SCU[@]}" request --host 127.0.0.1 --port "$CORE_PORT" --calling MODALITY --called DICOM_CORE \
        --tuid "$tuid" --refs "$T/refs.txt" --linger 600000 >"$T/rq.out" 2>&1 &
    local scu=$! t_rep="" t_rsp
    for _ in $(seq 6000); do
        t_rep=$( (grep '^{' "$T/rq.out" || true) | jq -r 'select(.ev=="report") | .at_ms' | head -1)
        [[ -n $t_rep ]] && break
        sleep 0.1
    done
    t_rsp=$( (grep '^{' "$T/rq.out" || true) | jq -r 'select(.ev=="n_action_rsp") | .at_ms' | head -1)
    kill "$scu" 2>/dev/null || true
    wait "$scu" 2>/dev/null || true
    local ddb hi="-"
    ddb=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^dicom_core_commit_backend_requests / {print $2}')
    if [[ $backend == aws ]]; then
        hi=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(",".join("%s:%d"%(k,b[k]-a.get(k,0)) for k in sorted(b) if b[k]-a.get(k,0)))' "$before" "$(hi_state)")
    fi
    printf "%-10s %-7s %14s %15s %9s %s\n" "$name" "$backend" "$((t_rep - t_store))" \
        "$((t_rep - t_rsp))" "${ddb:-0}" "$hi"
    core_stop
}

for p in $POINTS; do
    case $p in
    spool) run_point spool file spool ;;
    stored) run_point stored file stored ;;
    s3 | hi-import | hi-stow)
        [[ $AWS_STARTED == 1 ]] || { skip_unless_ready; aws_up; }
        case $p in
        s3) run_point s3 aws s3 ;;
        hi-import) run_point hi-import aws healthimaging ;;
        hi-stow) run_point hi-stow aws healthimaging ', "mode": "stow"' ;;
        esac
        ;;
    esac
done
