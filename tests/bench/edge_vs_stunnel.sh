#!/usr/bin/env bash
# dicom-edge against stunnel4 and haproxy (Debian), side by side in one run, same data, same
# upstream (dicom-core with fsync off, so that the proxies are measured, not the disk), and
# DCMTK storescp +tls as the direct-TLS reference. storescu +tls (DCMTK, TLS 1.3, mTLS) is the
# client everywhere. Reports images/s (1 association x N, 4 x N/4), MB/s for one large object,
# association set-up time (mTLS handshake + admission + upstream connect, over 30 C-ECHOs),
# proxy peak RSS, RSS per idle TLS connection (1000 of them), and CPU ms per object of the
# proxy, the core and the whole machine over the 4-association run. Ratios are edge / peer.
#
#   bash tests/bench/edge_vs_stunnel.sh      (BENCH_N=1000 BENCH_BIG_MB=512 by default)
# Needs: dcmtk, stunnel4, haproxy, /usr/bin/python3 with pydicom + numpy. Run it once: the
# machine is shared.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
N=${BENCH_N:-1000}
BIG_MB=${BENCH_BIG_MB:-512}
IDLE=${BENCH_IDLE:-1000}
T=$(mktemp -d /tmp/gw-edge-bench.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
ulimit -n 16384
for tool in stunnel4 haproxy storescu storescp; do
    command -v "$tool" >/dev/null || { echo "bench: $tool missing (tools/deps/edge.txt)"; exit 1; }
done

echo "== data: $N x 512x512 CT (0.5 MB) and one ${BIG_MB} MiB multi-frame object"
bash "$src/tests/support/test_pki.sh" "$T/pki"
make_dicom "$T/small" "$N" 512 512
/usr/bin/python3 - "$T/big" "$BIG_MB" <<'PY'
import os, sys
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
d, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
frames = max(1, mb * 1024 * 1024 // (512 * 512 * 2))
m = FileMetaDataset()
m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT
m.MediaStorageSOPInstanceUID = generate_uid()
m.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = m
ds.is_little_endian, ds.is_implicit_VR = True, False
ds.SOPClassUID, ds.SOPInstanceUID = m.MediaStorageSOPClassUID, m.MediaStorageSOPInstanceUID
ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
ds.Modality, ds.PatientID = "CT", "SYN0002"
ds.NumberOfFrames, ds.Rows, ds.Columns = frames, 512, 512
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
ds.PixelData = (np.arange(frames * 512 * 512, dtype=np.uint32) % 4096).astype(np.int16).tobytes()
ds.save_as(os.path.join(d, "big.dcm"), write_like_original=False)
PY
big_bytes=$(stat -c %s "$T/big/big.dcm")
ls "$T"/small/*.dcm >"$T/small.list"
split -n "l/4" "$T/small.list" "$T/quarter."

CP=$(port)
start_core sink "$CP" ', "max_associations": 4000, "max_pdu": 262144'
cat "$T/pki/server.crt" "$T/pki/server.key" >"$T/server.pem"
cat >"$T/policy.json" <<JSON
{ "clients": [ { "id": "bench", "match": { "subject_cn": "ct-room-1" },
                 "calling_ae": ["*"], "called_ae": ["*"], "route": "core" } ],
  "routes": { "core": { "upstream": "127.0.0.1:$CP" } } }
JSON

EP=$(port)
HP=$(port)
SP=$(port)
XP=$(port)
DP=$(port)
write_edge_config "$EP" "$HP" ', "limits": { "per_source_per_minute": 0, "assoc_rq_ms": 120000,
  "handshake_ms": 120000, "max_connections": 8000 }'
start_edge "$EP"
cat >"$T/stunnel.conf" <<CONF
foreground = yes
pid =
debug = 3
output = $T/stunnel.log
[dicom]
accept = 127.0.0.1:$SP
connect = 127.0.0.1:$CP
cert = $T/pki/server.crt
key = $T/pki/server.key
CAfile = $T/pki/ca.crt
CRLfile = $T/pki/crl.pem
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.2
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
CONF
stunnel4 "$T/stunnel.conf" 2>>"$T/stunnel.log" &
STUNNEL=$!
remember $STUNNEL
cat >"$T/haproxy.cfg" <<CONF
global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend dicom
    bind 127.0.0.1:$XP ssl crt $T/server.pem ca-file $T/pki/ca.crt crl-file $T/pki/crl.pem verify required ssl-min-ver TLSv1.2
    default_backend core
backend core
    server core 127.0.0.1:$CP
CONF
haproxy -f "$T/haproxy.cfg" -db >"$T/haproxy.log" 2>&1 &
HAPROXY=$!
remember $HAPROXY
mkdir -p "$T/direct"
TCP_NODELAY=1 storescp -aet DICOM_CORE -od "$T/direct" +B +tls "$T/pki/server.key" \
    "$T/pki/server.crt" +cf "$T/pki/ca.crt" "$DP" 2>"$T/direct.log" &
DIRECT=$!
remember $DIRECT
for p in "$SP" "$XP" "$DP"; do wait_port "$p"; done

now() { date +%s.%N; }
store() { # port files...
    local p=$1
    shift
    scu storescu ct1 CT_ROOM1 DICOM_CORE "$p" "$@" >/dev/null 2>>"$T/scu.err"
}
clean_sinks() { rm -rf "$T/direct"/* 2>/dev/null; } # the core keeps its store (its journal is open)
declare -A ips1 ips4 mbs setup cpu
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user+system, 1/100 s
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; } # the whole machine
run_peer() { # name port pid (the process in the path: proxy, or storescp when direct)
    local name=$1 p=$2 path_pid=$3 t0 t1 p0 p1 c0 c1 m0 m1
    clean_sinks
    t0=$(now)
    store "$p" "$T"/small/*.dcm || echo "  $name: storescu failed (1 assoc)"
    t1=$(now)
    ips1[$name]=$(echo "$N / ($t1 - $t0)" | bc -l)
    clean_sinks
    p0=$(ticks "$path_pid")
    c0=$(ticks "$CORE_PID_sink")
    m0=$(busy)
    t0=$(now)
    local pids=()
    for q in "$T"/quarter.*; do
        # shellcheck disable=SC2046
        store "$p" $(cat "$q") &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || echo "  $name: storescu failed (4 assoc)"; done
    t1=$(now)
    p1=$(ticks "$path_pid")
    c1=$(ticks "$CORE_PID_sink")
    m1=$(busy)
    ips4[$name]=$(echo "$N / ($t1 - $t0)" | bc -l)
    # CPU ms per object over the 4-association run: the process in the path, the core
    # upstream, and the whole machine (clients encrypting included)
    cpu[$name]=$(printf 'path %.3f  core %.3f  machine %.3f' \
        "$(echo "($p1 - $p0) * 10 / $N" | bc -l)" "$(echo "($c1 - $c0) * 10 / $N" | bc -l)" \
        "$(echo "($m1 - $m0) * 10 / $N" | bc -l)")
    clean_sinks
    t0=$(now)
    store "$p" "$T/big/big.dcm" || echo "  $name: storescu failed (large)"
    t1=$(now)
    mbs[$name]=$(echo "$big_bytes / 1000000 / ($t1 - $t0)" | bc -l)
    t0=$(now)
    for _ in $(seq 30); do
        scu echoscu ct1 CT_ROOM1 DICOM_CORE "$p" >/dev/null 2>>"$T/scu.err" || echo "  $name: echo failed"
    done
    t1=$(now)
    setup[$name]=$(echo "($t1 - $t0) * 1000 / 30" | bc -l)
    printf '  %-9s 1x%d: %7.1f img/s   4x%d: %7.1f img/s   large: %6.1f MB/s   set-up: %5.1f ms\n' \
        "$name" "$N" "${ips1[$name]}" "$((N / 4))" "${ips4[$name]}" "${mbs[$name]}" "${setup[$name]}"
}
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

store "$DP" "$T"/small/*.dcm || echo "  warm-up failed" # files and TLS code paths into cache
echo "== throughput (storescu +tls, TLS 1.3, mutual authentication)"
run_peer edge "$EP" "$EDGE_PID"
run_peer stunnel "$SP" "$STUNNEL"
run_peer haproxy "$XP" "$HAPROXY"
run_peer direct "$DP" "$DIRECT"
echo "== CPU ms per object, 4 associations (user+system from /proc; 'core' idles when direct)"
for n in edge stunnel haproxy direct; do printf '  %-9s %s\n' "$n" "${cpu[$n]}"; done
echo "== peak RSS after the runs: edge $(( $(hwm "$EDGE_PID") / 1024 )) MiB, stunnel" \
     "$(( $(hwm "$STUNNEL") / 1024 )) MiB, haproxy $(( $(hwm "$HAPROXY") / 1024 )) MiB"

idle_rss() { # name port pid
    local name=$1 p=$2 pid=$3 before after
    before=$(rss "$pid")
    /usr/bin/python3 "$src/tests/support/edge_peer.py" idle "$p" "$T/pki" ct1 "$IDLE" 600 \
        >"$T/idle.$name" 2>&1 &
    local ip=$!
    for _ in $(seq 1200); do grep -q '^open' "$T/idle.$name" && break; sleep 0.1; done
    sleep 1
    after=$(rss "$pid")
    kill "$ip" 2>/dev/null
    wait "$ip" 2>/dev/null
    echo "  $name: $(( (after - before) * 1024 / IDLE )) bytes per idle TLS connection" \
         "($IDLE open: RSS $((before / 1024)) -> $((after / 1024)) MiB)"
    sleep 2
}
echo "== memory per idle TLS connection (handshake done, nothing sent)"
idle_rss edge "$EP" "$EDGE_PID"
idle_rss stunnel "$SP" "$STUNNEL"
idle_rss haproxy "$XP" "$HAPROXY"

echo "== ratios (edge / peer)"
for peer in stunnel haproxy direct; do
    printf '  vs %-8s img/s 1x: %4.2f   4x: %4.2f   MB/s: %4.2f   set-up time: %4.2f\n' "$peer" \
        "$(echo "${ips1[edge]} / ${ips1[$peer]}" | bc -l)" \
        "$(echo "${ips4[edge]} / ${ips4[$peer]}" | bc -l)" \
        "$(echo "${mbs[edge]} / ${mbs[$peer]}" | bc -l)" \
        "$(echo "${setup[edge]} / ${setup[$peer]}" | bc -l)"
done
if [[ -s "$T/scu.err" ]] && grep -qE '^(E|F):' "$T/scu.err"; then
    echo "== client errors (first lines)"
    grep -E '^(E|F):' "$T/scu.err" | head -5
fi
