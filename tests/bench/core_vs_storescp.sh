#!/usr/bin/env bash
# Benchmark (not a pass/fail test): dicom-core against DCMTK storescp +B (which streams to disk),
# side by side in one run on the same generated data, DCMTK storescu as the client:
#   - N objects of ~0.5 MB (512x512 int16 CT, explicit VR LE) in 1 association and in 4;
#   - one large multi-frame object (default 512 MiB).
# Reports images/s, MB/s, server peak RSS and our/their ratios, with our core with fsync on and
# off. Usage: tests/bench/core_vs_storescp.sh [N=1000] [BIG_MB=512]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${GW_BUILD:-$src/build}
N=${1:-1000}
BIG_MB=${2:-512}
T=$(mktemp -d /tmp/gw-bench.XXXXXX)
server=
cleanup() {
    [[ -n "$server" ]] && kill -KILL "$server" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
export TCP_NODELAY=1
[[ -x "$build/core/dicom-core" ]] || { echo "build dicom-core first (cmake --build build)"; exit 1; }
port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

echo "generating data in $T ..."
/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$T/small" --count "$N" --modality CT \
    --ts explicit --rows 512 --cols 512 >/dev/null
for i in 0 1 2 3; do mkdir -p "$T/split$i"; done
i=0
for f in "$T"/small/*.dcm; do ln "$f" "$T/split$((i % 4))/"; i=$((i + 1)); done
/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$T/big" --modality MR --ts explicit \
    --big-bytes $((BIG_MB * 1024 * 1024)) >/dev/null
small_bytes=$(du -cb "$T"/small/*.dcm | tail -1 | cut -f1)
big_bytes=$(du -cb "$T"/big/*.dcm | tail -1 | cut -f1)

wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }

start_server() { # kind port outdir
    local kind=$1 p=$2 out=$3
    rm -rf "$out"
    mkdir -p "$out"
    case $kind in
    storescp)
        storescp +B -od "$out/recv" -aet DICOM_CORE --max-pdu 131072 "$p" 2>"$T/server.log" &
        mkdir -p "$out/recv"
        ;;
    core | core-nofsync)
        local fs=true
        [[ $kind == core-nofsync ]] && fs=false
        cat >"$T/core.json" <<JSON
{ "listen": "127.0.0.1:$p", "http_listen": "", "spool_dir": "$out/spool", "fsync": $fs,
  "min_free_bytes": 0, "log_level": "warn", "max_pdu": 262144,
  "backend": { "type": "file", "dir": "$out/store" } }
JSON
        "$build/core/dicom-core" --config "$T/core.json" 2>"$T/server.log" &
        ;;
    esac
    server=$!
    wait_port "$p"
}

peak=0
stop_server() { # sets $peak (MiB)
    peak=$(hwm "$server")
    kill -TERM "$server"
    wait "$server" 2>/dev/null || true
    server=
}

now() { date +%s.%N; }

run_case() { # kind label
    local kind=$1 p rss t0 t1 one four big
    p=$(port)
    start_server "$kind" "$p" "$T/out-$kind"
    t0=$(now)
    storescu -aet BENCH -aec DICOM_CORE +sd 127.0.0.1 "$p" "$T/small" >/dev/null 2>&1
    t1=$(now)
    one=$(echo "$N / ($t1 - $t0)" | bc -l)
    t0=$(now)
    local clients=()
    for i in 0 1 2 3; do
        storescu -aet BENCH -aec DICOM_CORE +sd 127.0.0.1 "$p" "$T/split$i" >/dev/null 2>&1 &
        clients+=($!)
    done
    wait "${clients[@]}" || true
    t1=$(now)
    four=$(echo "$N / ($t1 - $t0)" | bc -l)
    stop_server
    rss=$peak
    # the large object in a fresh server, so that its peak RSS is the large object's
    p=$(port)
    start_server "$kind" "$p" "$T/out-$kind-big"
    t0=$(now)
    storescu -aet BENCH -aec DICOM_CORE 127.0.0.1 "$p" "$T"/big/*.dcm >/dev/null 2>&1
    t1=$(now)
    big=$(echo "$big_bytes / 1000000 / ($t1 - $t0)" | bc -l)
    stop_server
    printf '%s %.1f %.1f %.1f %s %s\n' "$kind" "$one" "$four" "$big" "$rss" "$peak" >>"$T/results"
}

apt_bc=$(command -v bc || true)
[[ -n "$apt_bc" ]] || { echo "needs bc (apt-get install bc)"; exit 1; }
echo "objects: $N x $((small_bytes / N)) B; large object: $big_bytes B"
for k in storescp core core-nofsync; do
    run_case "$k"
    tail -1 "$T/results"
done
mapfile -t results <"$T/results"
echo
printf '%-14s %12s %12s %12s %10s %10s\n' server "1x img/s" "4x img/s" "large MB/s" "RSS MiB" "RSS big"
for r in "${results[@]}"; do
    read -r k a b c d e <<<"$r"
    printf '%-14s %12s %12s %12s %10s %10s\n' "$k" "$a" "$b" "$c" "$d" "$e"
done
read -r _ s1 s4 sb _ _ <<<"${results[0]}"
for r in "${results[@]:1}"; do
    read -r k a b c _ _ <<<"$r"
    printf 'ratio %-13s 1x %.2f   4x %.2f   large %.2f  (vs storescp +B)\n' "$k" \
        "$(echo "$a / $s1" | bc -l)" "$(echo "$b / $s4" | bc -l)" "$(echo "$c / $sb" | bc -l)"
done
