#!/usr/bin/env bash
# Benchmark (not a pass/fail test): dicom-core against DCMTK storescp +B (which streams to disk),
# side by side in one run on the same generated data, DCMTK storescu as the client:
#   - N objects of ~0.5 MB (512x512 int16 CT, explicit VR LE) in 1 association and in 4;
#   - one large multi-frame object (default 512 MiB).
# Reports images/s, MB/s, server peak RSS and our/their ratios, with our core with fsync on and
# off, plus each server's CPU time per small object (user+system, both runs together: a figure
# that the machine's noise moves far less than the rates). This VM pays heavily the first time
# a page of page cache is touched, and that cost lands on whichever server happens to grow the
# cache; so the cases run in ROUNDS alternating rounds and the best figure of each is kept.
# Each round also runs the disk probe (tests/bench/disk_probe.c): the same objects written by one
# writer on the same file system with exactly the durable writes a store needs -- (a) new file +
# fsync + rename + directory fsync, (b) append into a preallocated segment + fdatasync, (c) no
# sync -- and the end prints dicom-core's durable rate as a fraction of (a) and (b).
# Usage: [ROUNDS=2] tests/bench/core_vs_storescp.sh [N=1000] [BIG_MB=512]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${GW_BUILD:-$src/build}
N=${1:-1000}
BIG_MB=${2:-512}
ROUNDS=${ROUNDS:-2}
T=$(mktemp -d /tmp/gw-bench.XXXXXX)
server=
cleanup() {
    [[ -n "$server" ]] && kill -KILL "$server" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
export TCP_NODELAY=1
[[ -x "$build/core/dicom-core" ]] || { echo "build dicom-core first (cmake --build build)"; exit 1; }
probe=$build/tests/disk_probe
if [[ ! -x "$probe" ]]; then # not built with the tree: build it here
    probe=$T/disk_probe
    cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -o "$probe" \
        "$src/tests/bench/disk_probe.c"
fi
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
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run_case() { # kind round
    local kind=$1 r=$2 p rss t0 t1 one four big c0 c1 cpu
    p=$(port)
    start_server "$kind" "$p" "$T/out-$kind-$r"
    c0=$(ticks "$server")
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
    c1=$(ticks "$server")
    cpu=$(echo "($c1 - $c0) * 1000 / $hz / (2 * $N)" | bc -l) # ms per object
    stop_server
    rss=$peak
    # the large object in a fresh server, so that its peak RSS is the large object's
    p=$(port)
    start_server "$kind" "$p" "$T/out-$kind-big-$r"
    t0=$(now)
    storescu -aet BENCH -aec DICOM_CORE 127.0.0.1 "$p" "$T"/big/*.dcm >/dev/null 2>&1
    t1=$(now)
    big=$(echo "$big_bytes / 1000000 / ($t1 - $t0)" | bc -l)
    stop_server
    printf '%s %.1f %.1f %.1f %s %s %.3f\n' "$kind" "$one" "$four" "$big" "$rss" "$peak" "$cpu" \
        >>"$T/rounds"
    rm -rf "$T/out-$kind-$r" "$T/out-$kind-big-$r"
}

apt_bc=$(command -v bc || true)
[[ -n "$apt_bc" ]] || { echo "needs bc (apt-get install bc)"; exit 1; }
echo "objects: $N x $((small_bytes / N)) B; large object: $big_bytes B"
for r in $(seq "$ROUNDS"); do
    for k in storescp core core-nofsync; do
        run_case "$k" "$r"
        echo "round $r: $(tail -1 "$T/rounds")"
    done
    mkdir -p "$T/probe"
    "$probe" --count "$N" "$T/probe" "$T"/small/*.dcm | awk '$1 == "probe"' |
        tee -a "$T/probe_rounds" | sed "s/^/round $r: /"
done
# best of the rounds per server: highest rates, lowest RSS and CPU
for k in storescp core core-nofsync; do
    awk -v k="$k" '$1 == k {
        if (!n++ || $2 > a) a = $2; if (n == 1 || $3 > b) b = $3; if (n == 1 || $4 > c) c = $4
        if (n == 1 || $5 < d) d = $5; if (n == 1 || $6 < e) e = $6; if (n == 1 || $7 < f) f = $7 }
        END { print k, a, b, c, d, e, f }' "$T/rounds" >>"$T/results"
done
mapfile -t results <"$T/results"
echo
printf '%-14s %10s %10s %11s %8s %8s %12s\n' server "1x img/s" "4x img/s" "large MB/s" "RSS MiB" \
    "RSS big" "CPU ms/obj"
for r in "${results[@]}"; do
    read -r k a b c d e f <<<"$r"
    printf '%-14s %10s %10s %11s %8s %8s %12s\n' "$k" "$a" "$b" "$c" "$d" "$e" "$f"
done
read -r _ s1 s4 sb _ _ _ <<<"${results[0]}"
for r in "${results[@]:1}"; do
    read -r k a b c _ _ _ <<<"$r"
    printf 'ratio %-13s 1x %.2f   4x %.2f   large %.2f  (vs storescp +B)\n' "$k" \
        "$(echo "$a / $s1" | bc -l)" "$(echo "$b / $s4" | bc -l)" "$(echo "$c / $sb" | bc -l)"
done
# the disk probe: best of the rounds per mode, then our durable rates as fractions of it
echo
echo "disk probe (same objects, same file system, one writer; best of $ROUNDS):"
for m in a b c; do
    awk -v m="$m" '$2 == m && (!n++ || $3 > best) { best = $3; line = $0 } END { print line }' \
        "$T/probe_rounds"
done | tee "$T/probe_best"
pa=$(awk '$2 == "a" { print $3 }' "$T/probe_best")
pb=$(awk '$2 == "b" { print $3 }' "$T/probe_best")
pc=$(awk '$2 == "c" { print $3 }' "$T/probe_best")
for r in "${results[@]:1}"; do
    read -r k a b _ _ _ _ <<<"$r"
    if [[ $k == core ]]; then
        printf 'fraction %-10s 1x %.2f of probe a, %.2f of probe b   4x %.2f of a, %.2f of b\n' \
            "$k" "$(echo "$a / $pa" | bc -l)" "$(echo "$a / $pb" | bc -l)" \
            "$(echo "$b / $pa" | bc -l)" "$(echo "$b / $pb" | bc -l)"
    else
        printf 'fraction %-10s 1x %.2f of probe c (no sync)   4x %.2f of c\n' "$k" \
            "$(echo "$a / $pc" | bc -l)" "$(echo "$b / $pc" | bc -l)"
    fi
done
