#!/usr/bin/env bash
# C-GET of one study through dicom-core against DCMTK dcmqrscp serving the same study from local
# disk (the ceiling: no index to rebuild, no backend between the files and the socket), side by
# side in one run. getscu (DCMTK) is the client for both, receiving without writing (--ignore).
# Reports, for each server: instances/s and MB/s of the whole C-GET, the server's peak RSS during
# the retrieve (a fresh process each, so the store phase does not count) and its CPU time per
# instance; then the ratios core / dcmqrscp. Timing only: never pass/fail.
#
#   bash tests/bench/retrieve_vs_dcmqrscp.sh [file|aws]     (BENCH_N=500 BENCH_ROUNDS=3)
#
# file: the core's embedded file backend (its read index, files from its store directory).
# aws:  the core with the aws backend (scope all, the reader role's session) against moto and
#       the tests' HealthImaging emulator (QIDO-RS, WADO-RS; a Python process: its CPU is not the
#       core's and is printed apart), the study loaded into the emulator directly.
# Needs: dcmtk, /usr/bin/python3 with pydicom + numpy; aws: moto (pyenv python3), jq, curl.
# Run it once: the machine is shared.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
BACKEND=${1:-file}
N=${BENCH_N:-500}
ROUNDS=${BENCH_ROUNDS:-3}
if [[ $BACKEND == aws ]]; then
    # shellcheck source=../integration/lib_forwarder.sh
    GW_BUILD=$build GW_SRC=$src source "$src/tests/integration/lib_forwarder.sh" # sets T
    set +e
else
    T=$(mktemp -d /tmp/gw-retrieve-bench.XXXXXX)
fi
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
if [[ $BACKEND == aws ]]; then
    trap 'KEEP_TMP=1 fwd_cleanup 2>/dev/null; edge_cleanup' EXIT
else
    trap edge_cleanup EXIT
fi
export TCP_NODELAY=1
for tool in getscu storescu dcmqrscp dcmqridx /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench: $tool missing (dcmtk)"; exit 1; }
done
case $BACKEND in
file | aws) ;;
*) echo "usage: $0 [file|aws]"; exit 2 ;;
esac

echo "== data: one study of $N x 512x512 CT (0.5 MB each)"
make_dicom "$T/study" "$N" 512 512
STUDY=$(dcmdump +P StudyInstanceUID "$(ls "$T"/study/*.dcm | head -1)" | sed 's/.*\[\(.*\)\].*/\1/')
BYTES=$(cat "$T"/study/*.dcm | wc -c)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

# run NAME PORT AEC RESTART: ROUNDS C-GETs of the study, the server being $SPID; RESTART is a
# function that starts a fresh server under /usr/bin/time for each round and gives its report
# file in $TIMEFILE (dcmqrscp 3.6.7 --single-process serves one association, then
# dies on a signal: the default mode forks a child per association, whose CPU and memory a
# parent's figures would not show), or "" for a
# server that serves every round (its CPU and peak RSS from /proc). Prints the line of figures
# (the best round's rate; CPU and peak RSS over the rounds).
run() {
    local name=$1 p=$2 aec=$3 restart=$4 best=0 t0 t1 c0 ms cpu=0 rss=0
    [[ -z $restart ]] && c0=$(ticks "$SPID")
    for r in $(seq "$ROUNDS"); do
        [[ -n $restart ]] && $restart
        t0=$(date +%s%N)
        getscu -v --ignore -pdu 131072 -S -aet BENCH -aec "$aec" 127.0.0.1 "$p" -k QueryRetrieveLevel=STUDY \
            -k StudyInstanceUID="$STUDY" >"$T/$name.$r.out" 2>&1 || echo "  ($name round $r: getscu failed)"
        t1=$(date +%s%N)
        grep -ai 'Get Response (' "$T/$name.$r.out" | tail -1 | sed 's/^/  /'
        ms=$(((t1 - t0) / 1000000))
        ((best == 0 || ms < best)) && best=$ms
        if [[ -n $restart ]]; then
            for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$SPID" 2>/dev/null && kill -TERM "$(cat "/proc/$SPID/task/$SPID/children")"
            wait "$SPID" 2>/dev/null
            local u sy m
            read -r u sy m < <(tail -1 "$TIMEFILE") # a first line may say it ended on a signal
            cpu=$((cpu + $(awk -v a="$u" -v b="$sy" -v hz="$HZ" 'BEGIN {printf "%d", (a + b) * hz}')))
            ((m > rss)) && rss=$m
        fi
    done
    if [[ -z $restart ]]; then
        cpu=$(($(ticks "$SPID") - c0))
        rss=$(hwm "$SPID")
    fi
    local cpu_ms=$((cpu * 1000 / HZ)) ips mbs cpi
    ips=$(awk -v n="$N" -v ms="$best" 'BEGIN {printf "%.0f", n * 1000 / ms}')
    mbs=$(awk -v b="$BYTES" -v ms="$best" 'BEGIN {printf "%.0f", b / 1e6 * 1000 / ms}')
    rss=$((rss / 1024))
    cpi=$(awk -v c="$cpu_ms" -v n="$N" -v r="$ROUNDS" 'BEGIN {printf "%.2f", c / (n * r)}')
    printf '%-10s %6s inst/s %6s MB/s %5s MiB peak RSS %6s ms CPU/instance (server)\n' \
        "$name" "$ips" "$mbs" "$rss" "$cpi"
    eval "R_$name='$ips $mbs $rss $cpi'"
}

echo "== dcmqrscp (the ceiling: files from local disk)"
QP=$(port)
mkdir -p "$T/qrdb"
cat >"$T/dcmqrscp.cfg" <<CFG
NetworkTCPPort = $QP
MaxPDUSize = 131072
MaxAssociations = 16
HostTable BEGIN
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
QRSCP $T/qrdb RW (${N}0, 4096mb) ANY
AETable END
CFG
cp "$T"/study/*.dcm "$T/qrdb/"
dcmqridx "$T/qrdb" "$T"/qrdb/*.dcm
start_dcmqrscp() {
    TIMEFILE=$T/dcmqrscp.time
    /usr/bin/time -f '%U %S %M' -o "$TIMEFILE" \
        dcmqrscp --single-process -c "$T/dcmqrscp.cfg" --disable-host-lookup 2>>"$T/dcmqrscp.log" &
    SPID=$!
    remember "$SPID"
    wait_port "$QP"
}
run dcmqrscp "$QP" QRSCP start_dcmqrscp

echo "== dicom-core ($BACKEND backend)"
core_file() { # the file backend: stored through the core, then a fresh process
    CP=$(port)
    mkdir -p "$T/core"
    cat >"$T/core/core.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$CP", "http_listen": "",
  "spool_dir": "$T/core/spool", "min_free_bytes": 0, "fsync": false,
  "clients": [ { "calling_ae": ["BENCH"], "services": ["store", "echo", "get"], "read_scope": "all" } ],
  "backend": { "type": "file", "dir": "$T/core/store", "batch_max_age_ms": 100 } }
JSON
    "$build/core/dicom-core" --config "$T/core/core.json" 2>"$T/core/core.log" &
    CPID=$!
    remember "$CPID"
    wait_port "$CP"
    storescu -aet BENCH -aec DICOM_CORE 127.0.0.1 "$CP" "$T"/study/*.dcm >/dev/null 2>&1 || echo "  (store failed)"
    for _ in $(seq 600); do
        [[ $(grep -c '"sop"' "$T/core/store/qr_index.jsonl" 2>/dev/null) -ge $N ]] && break
        sleep 0.1
    done
    kill -TERM "$CPID"
    wait "$CPID" 2>/dev/null
    # a fresh process: its peak RSS is the retrieve's, not the store's
    "$build/core/dicom-core" --config "$T/core/core.json" 2>>"$T/core/core.log" &
    CPID=$!
    remember "$CPID"
    wait_port "$CP"
    for _ in $(seq 200); do
        [[ $(grep -c backend_file_index_ready "$T/core/core.log") -ge 2 ]] && break
        sleep 0.1
    done
}
core_aws() { # moto + the emulator (the study loaded into it), the core with the aws backend
    aws_up
    mkdir -p "$T/core"
    curl -sf -X POST "$HI_ENDPOINT/_emulator/load" -d "{\"dir\": \"$T/study\"}" >/dev/null ||
        { echo "bench: emulator load failed"; exit 1; }
    write_core_config "$T/core/core.json" spool
    python3 - "$T/core/core.json" "$STS_ENDPOINT" "$READER_ROLE_ARN" <<'PY'
import json, sys
f, sts, reader = sys.argv[1:]
c = json.load(open(f))
c["clients"] = [{"calling_ae": ["BENCH"], "services": ["echo", "get"], "read_scope": "all"}]
c["backend"]["endpoints"]["sts"] = sts
c["backend"]["read"] = {"reader_role_arn": reader}
json.dump(c, open(f, "w"))
PY
    CP=$CORE_PORT
    "$build/core/dicom-core" --config "$T/core/core.json" 2>"$T/core/core.log" &
    CPID=$!
    remember "$CPID"
    wait_port "$CP"
    EMU_PID=$(pgrep -f "hi_emulator.py.*$T/aws" | head -1)
    [[ -n $EMU_PID ]] && EMU_T0=$(ticks "$EMU_PID")
}
"core_$BACKEND"
SPID=$CPID
run core "$CP" DICOM_CORE ""

if [[ -n ${EMU_PID:-} ]]; then
    awk -v t="$(($(ticks "$EMU_PID") - EMU_T0))" -v hz="$HZ" -v n="$N" -v r="$ROUNDS" -v m="$(hwm "$EMU_PID")" \
        'BEGIN {printf "emulator   %.2f ms CPU/instance, %d MiB peak RSS (the HealthImaging stand-in, Python)\n", t * 1000 / hz / (n * r), m / 1024}'
fi
read -r qi qm qr qc <<<"$R_dcmqrscp"
read -r ci cm cr cc <<<"$R_core"
echo "== ratios core / dcmqrscp"
awk -v a="$ci" -v b="$qi" -v c="$cm" -v d="$qm" -v e="$cr" -v f="$qr" -v g="$cc" -v h="$qc" 'BEGIN {
    printf "instances/s %.2f   MB/s %.2f   peak RSS %.2f   CPU/instance %.2f\n", a / b, c / d, e / f, g / h }'
