#!/usr/bin/env bash
# dicom-core as a Store SCP against real DCMTK peers (echoscu, storescu), file backend, temp spool:
#  - C-ECHO; C-STORE of CT, MR, US, SC in implicit VR LE, explicit VR LE, deflated, JPEG Lossless
#    and RLE: each stored dataset (after the File Meta group) byte-identical to the file sent, with
#    a File Meta group naming the same SOP class/instance and transfer syntax;
#  - parallel associations; one object over 1 GiB (not under sanitizers) with the core's peak RSS
#    staying small;
#  - a wrong called AE title rejected as storescu reports it; an association killed mid-object
#    (storescu SIGKILLed, and a raw peer that resets the connection) leaves nothing in ready/ or
#    the store; a SOP Instance UID that differs from the command gets a failure status; free disk
#    under min_free_bytes gives 0xA700; SIGHUP reloads without dropping a live association;
#    SIGTERM during stores loses nothing that was acknowledged and exits 0.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
core_bin=$build/core/dicom-core
PY=/usr/bin/python3
T=$(mktemp -d /tmp/gw-store.XXXXXX)
XDEV=/dev/shm/gw-store-xdev.$$ # a store on another file system than the spool (tmpfs)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$T" "$XDEV"
}
trap cleanup EXIT
export TCP_NODELAY=1
rc=0
fail() {
    echo "FAIL: $*"
    rc=1
}
ok() { echo "ok   $*"; }

[[ -x $core_bin ]] || { echo "no $core_bin"; exit 1; }
port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
sanitized=${GW_SANITIZED:-}

# start_core NAME [extra json members]: config in $T/NAME.json, spool/store under $T/NAME/
start_core() {
    local name=$1 extra=${2:-}
    P=$(port)
    H=$(port)
    mkdir -p "$T/$name"
    cat >"$T/$name.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$P", "http_listen": "127.0.0.1:$H",
  "spool_dir": "$T/$name/spool", "min_free_bytes": ${MIN_FREE:-0}, "artim_ms": 5000, "idle_ms": 30000,
  "drain_ms": 20000, $extra
  "backend": { "type": "file", "dir": "${STORE_DIR:-$T/$name/store}", "batch_max_age_ms": 200 } }
JSON
    "$core_bin" --config "$T/$name.json" 2>>"$T/$name.log" &
    core=$!
    pids+=("$core")
    wait_port "$P" || { fail "$name: core did not listen"; tail -20 "$T/$name.log"; exit 1; }
}

stop_core() { # SIGTERM, expect exit 0
    kill -TERM "$core" 2>/dev/null
    wait "$core"
    local st=$?
    [[ $st -eq 0 ]] || fail "core exited $st on SIGTERM"
}

# helper: File Meta checks and dataset comparison, streaming (works for objects over 1 GiB)
cat >"$T/dscmp.py" <<'EOF'
import glob, hashlib, struct, sys

def meta(path):
    """(dict of group-0002 string values, offset of the dataset) without loading the file."""
    with open(path, "rb") as f:
        head = f.read(132)
        if len(head) < 132 or head[128:132] != b"DICM":
            raise SystemExit(f"{path}: no DICM prefix")
        vals, off = {}, 132
        while True:
            h = f.read(8)
            if len(h) < 8:
                return vals, off
            g, e = struct.unpack("<HH", h[:4])
            if g != 2:
                return vals, off
            vr = h[4:6]
            if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
                n = struct.unpack("<I", f.read(4))[0]
                hl = 12
            else:
                n = struct.unpack("<H", h[6:8])[0]
                hl = 8
            v = f.read(n)
            vals[e] = v.rstrip(b"\0 ").decode("ascii", "replace") if vr in (b"UI", b"AE", b"SH") else v
            off += hl + n

def ds_hash(path):
    _, off = meta(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(off)
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)

def uid_of(path):
    import pydicom
    return pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID

cmd = sys.argv[1]
if cmd == "compare":  # compare STORE_DIR CALLING_AE FILE...: each file stored identically
    store, calling, bad = sys.argv[2], sys.argv[3], 0
    for f in sys.argv[4:]:
        m, _ = meta(f)
        uid = m[0x0003]
        got = glob.glob(f"{store}/*/*/{uid}.dcm")
        if len(got) != 1:
            print(f"{f}: {len(got)} stored copies of {uid}")
            bad += 1
            continue
        sm, _ = meta(got[0])
        for e, what in ((0x0002, "Media Storage SOP Class"), (0x0003, "Media Storage SOP Instance"),
                        (0x0010, "Transfer Syntax")):
            if sm.get(e) != m.get(e):
                print(f"{f}: stored {what} {sm.get(e)!r}, sent {m.get(e)!r}")
                bad += 1
        if sm.get(0x0016) != calling:
            print(f"{f}: Source AE Title {sm.get(0x0016)!r}, want {calling!r}")
            bad += 1
        if not sm.get(0x0012):
            print(f"{f}: no Implementation Class UID in the stored File Meta")
            bad += 1
        if ds_hash(f) != ds_hash(got[0]):
            print(f"{f}: stored dataset differs from the one sent")
            bad += 1
    sys.exit(1 if bad else 0)
elif cmd == "uids":  # uids FILE...: the SOP Instance UIDs
    for f in sys.argv[2:]:
        print(meta(f)[0][0x0003])
EOF

gen() { # dir args...
    local d=$1
    shift
    $PY "$src/tests/support/gen_data.py" --out "$d" "$@" >/dev/null || fail "gen_data $*"
}
stored_count() { find "$1/store" -name '*.dcm' 2>/dev/null | wc -l; }
wait_drained() { # dir: the backend has emptied ready/
    for _ in $(seq 300); do
        ls "$1/spool/ready" 2>/dev/null | grep -q . || return 0
        sleep 0.1
    done
    return 1
}
wait_stored() { # dir n: the backend moves objects from ready/ into the store
    for _ in $(seq 300); do
        [[ $(stored_count "$1") -ge $2 ]] && return 0
        sleep 0.1
    done
    return 1
}

n_small=3
[[ -n $sanitized ]] && n_small=2
gen "$T/d/ct-implicit" --count $n_small --modality CT --ts implicit
gen "$T/d/ct-explicit" --count $n_small --modality CT --ts explicit
gen "$T/d/mr" --count $n_small --modality MR --ts explicit --rows 256 --cols 256
gen "$T/d/us" --count $n_small --modality US --ts explicit
gen "$T/d/sc" --count $n_small --modality SC --ts explicit
gen "$T/d/ct-deflated" --count $n_small --modality CT --ts deflated
gen "$T/d/ct-jpegll" --count $n_small --modality CT --ts jpeg-lossless
gen "$T/d/mr-rle" --count $n_small --modality MR --ts rle --rows 256 --cols 256

# ---------------------------------------------------------------- main instance
start_core main
A=$T/main
echoscu -aet ECHO1 -aec DICOM_CORE 127.0.0.1 "$P" && ok "C-ECHO" || fail "echoscu exit $?"

sent=0
send() { # label storescu-options dir
    local label=$1 opts=$2 dir=$3
    if storescu -aet SENDER1 -aec DICOM_CORE $opts 127.0.0.1 "$P" "$dir"/*.dcm >"$T/scu.out" 2>&1; then
        sent=$((sent + $(ls "$dir"/*.dcm | wc -l)))
        ok "storescu $label"
    else
        fail "storescu $label"
        cat "$T/scu.out"
    fi
}
send "CT implicit VR LE" "-xi" "$T/d/ct-implicit"
send "CT explicit VR LE" "" "$T/d/ct-explicit"
send "MR explicit VR LE" "" "$T/d/mr"
send "US explicit VR LE (RGB)" "" "$T/d/us"
send "SC explicit VR LE" "" "$T/d/sc"
send "CT deflated explicit VR LE" "-xd" "$T/d/ct-deflated"
send "CT JPEG Lossless SV1" "-xs" "$T/d/ct-jpegll"
send "MR RLE Lossless" "-xr" "$T/d/mr-rle"
wait_stored "$A" "$sent" || fail "only $(stored_count "$A") of $sent objects reached the store"
if $PY "$T/dscmp.py" compare "$A/store" SENDER1 "$T"/d/*/*.dcm; then
    ok "$sent stored datasets byte-identical to those sent, File Meta correct"
else
    fail "stored objects differ from those sent"
fi

# the sidecar (as the file backend journals it): UIDs, AE titles, peer, size and SHA-256 of the
# stored file; no patient data in the journal or the log; /metrics and /healthz agree
cat >"$T/journal.py" <<'EOF2'
import glob, hashlib, json, os, sys, time
import pydicom
store, calling, files = sys.argv[1], sys.argv[2], sys.argv[3:]
want_uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
for _ in range(100):  # the journal line may follow the file's rename by a moment
    recs = {}
    for line in open(os.path.join(store, "journal.jsonl")):
        if line.endswith("\n"):
            j = json.loads(line)
            if j.get("ev") == "stored":
                recs[j["sop_instance_uid"]] = j
    if want_uids <= recs.keys():
        break
    time.sleep(0.1)
bad = 0
for f in files:
    d = pydicom.dcmread(f, stop_before_pixels=True)
    r = recs.get(d.SOPInstanceUID)
    if r is None:
        print(f"{f}: no 'stored' journal record"); bad += 1; continue
    stored = glob.glob(f"{store}/*/*/{d.SOPInstanceUID}.dcm")[0]
    want = {"sop_class_uid": d.SOPClassUID, "study_instance_uid": d.StudyInstanceUID,
            "series_instance_uid": d.SeriesInstanceUID,
            "transfer_syntax_uid": d.file_meta.TransferSyntaxUID, "calling_ae": calling,
            "called_ae": "DICOM_CORE", "bytes": os.path.getsize(stored),
            "sha256": hashlib.sha256(open(stored, "rb").read()).hexdigest()}
    for k, v in want.items():
        if r.get(k) != v:
            print(f"{f}: journal {k} = {r.get(k)!r}, want {v!r}"); bad += 1
    if not str(r.get("peer", "")).startswith("127.0.0.1:"):
        print(f"{f}: journal peer {r.get('peer')!r}"); bad += 1
sys.exit(1 if bad else 0)
EOF2
if $PY "$T/journal.py" "$A/store" SENDER1 "$T"/d/*/*.dcm; then
    ok "journal records carry the sidecar: UIDs, transfer syntax, AE titles, peer, size, SHA-256"
else
    fail "journal/sidecar records wrong"
fi
if grep -lE 'SYNTHETIC\^TEST|SYN-0000' "$A/store/journal.jsonl" "$T/main.log" 2>/dev/null; then
    fail "patient name or ID in the journal or the log"
else
    ok "no patient name or ID in the journal or the log"
fi
metrics=$(curl -sf "http://127.0.0.1:$H/metrics") || fail "GET /metrics"
n_metric=$(awk '/^dicom_core_objects_stored_total / {print $2}' <<<"$metrics")
[[ "$n_metric" == "$sent" ]] && ok "/metrics: dicom_core_objects_stored_total $n_metric" ||
    fail "/metrics says $n_metric objects stored, $sent were sent"
grep -q '"ok"' <<<"$(curl -sf "http://127.0.0.1:$H/healthz")" && ok "/healthz ok" || fail "/healthz not ok"
# the operator's HTTP listener stays bounded: GET/HEAD only, 8 KiB head, 5 s to send it
http_codes="$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$H/healthz") \
$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$H/nope") \
$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)" "http://127.0.0.1:$H/healthz") \
$(curl -s -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$H/metrics")"
[[ $http_codes == "405 404 431 200" ]] && ok "HTTP listener: POST 405, unknown 404, 9 KiB head 431, HEAD 200" ||
    fail "HTTP listener answered $http_codes, want 405 404 431 200"
$PY - "$H" <<'EOF2' && ok "HTTP listener closes a client that never finishes its request head" || fail "slow HTTP client kept open"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /healthz HTTP/1.1\r\n")
s.settimeout(30)
try:
    s.recv(100)  # EOF (or a 408 before it) ends the wait; only a 30 s silence fails
    sys.exit(0)
except socket.timeout:
    sys.exit(1)
except ConnectionResetError:
    sys.exit(0)
EOF2

# parallel associations
n_par=4
n_each=8
[[ -n $sanitized ]] && n_each=3
for i in $(seq $n_par); do gen "$T/p/$i" --count $n_each --modality CT --ts explicit --rows 256 --cols 256 --seed "$i"; done
before=$(stored_count "$A")
scus=()
for i in $(seq $n_par); do
    storescu -aet "PAR$i" -aec DICOM_CORE 127.0.0.1 "$P" "$T/p/$i"/*.dcm >"$T/par$i.out" 2>&1 &
    scus+=($!)
done
par_ok=1
for i in "${!scus[@]}"; do wait "${scus[$i]}" || { par_ok=0; cat "$T/par$((i + 1)).out"; }; done
[[ $par_ok -eq 1 ]] || fail "a parallel storescu failed"
wait_stored "$A" $((before + n_par * n_each)) || fail "parallel: $(($(stored_count "$A") - before)) of $((n_par * n_each)) stored"
for i in $(seq $n_par); do
    $PY "$T/dscmp.py" compare "$A/store" "PAR$i" "$T/p/$i"/*.dcm || fail "parallel association $i: stored objects differ"
done
[[ $rc -eq 0 ]] && ok "$n_par parallel associations x $n_each objects"

# wrong called AE title: A-ASSOCIATE-RJ permanent, service-user, reason 7
storescu -aet SENDER1 -aec NOT_THE_CORE 127.0.0.1 "$P" "$T/d/sc"/*.dcm >"$T/rj.out" 2>&1
st=$?
if [[ $st -eq 1 ]] && grep -q "Association Rejected" "$T/rj.out" &&
    grep -qi "Called AE Title Not Recognized" "$T/rj.out"; then
    ok "wrong called AE title rejected (storescu exit 1, Called AE Title Not Recognized)"
else
    fail "wrong called AE: storescu exit $st"
    cat "$T/rj.out"
fi

# SOP Instance UID in the dataset differs from the command's: a failure status, nothing stored
before=$(stored_count "$A")
if $PY "$src/tests/support/pdu_peer.py" 127.0.0.1 "$P" DICOM_CORE store_with_mismatched_instance_uid >"$T/mm.out"; then
    ok "SOP Instance UID mismatch answered with a failure status"
else
    fail "SOP Instance UID mismatch"
    cat "$T/mm.out"
fi
sleep 0.5
[[ $(stored_count "$A") -eq $before ]] || fail "a mismatched object was stored"
find "$A/store" -name '1.2.3.4.5.6.7.8.*' | grep -q . && fail "mismatched UID in the store"

# an association killed mid-object: a raw peer sends half a dataset, then resets the connection
cat >"$T/killpeer.py" <<EOF
import socket, struct, sys, time
sys.path.insert(0, "$src/tests/support")
import pdu_peer as pp
inst = b"1.2.826.0.1.3680043.9.7433.99.1"
p, _ = pp.associate("127.0.0.1", $P, "DICOM_CORE")
p.send(pp.pdata(3, 3, pp.command(0x0001, 5, pp.CT_STORAGE, has_ds=True, sop_inst=inst)))
ds = (struct.pack("<HH2sH", 8, 0x16, b"UI", 26) + pp.CT_STORAGE + b"\0" +
      struct.pack("<HH2sH", 8, 0x18, b"UI", 32) + inst + b"\0" +
      struct.pack("<HH2sH", 0x20, 0x0D, b"UI", 6) + b"1.2.3\0" +
      struct.pack("<HH2sH", 0x20, 0x0E, b"UI", 6) + b"1.2.4\0" +
      struct.pack("<HH2sI", 0x7FE0, 0x10, b"OW", 0) + struct.pack("<I", 1 << 20))
p.send(pp.pdata(3, 0, ds))
for _ in range(64):
    p.send(pp.pdata(3, 0, b"\x55" * 8000))
time.sleep(0.3)
p.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
p.s.close()
EOF
$PY "$T/killpeer.py" || fail "kill peer did not run"
# storescu SIGKILLed while a large object is on the wire
kill_mb=300
[[ -n $sanitized ]] && kill_mb=64
gen "$T/kill" --modality MR --big-bytes $((kill_mb * 1024 * 1024))
kill_uid=$($PY "$T/dscmp.py" uids "$T"/kill/*.dcm)
storescu -aet KILLED -aec DICOM_CORE 127.0.0.1 "$P" "$T"/kill/*.dcm >/dev/null 2>&1 &
scu=$!
pids+=("$scu")
killed=0
for _ in $(seq 2000); do
    if find "$A/spool/tmp" -type f -size +1M 2>/dev/null | grep -q .; then
        kill -KILL "$scu" 2>/dev/null && killed=1
        break
    fi
    kill -0 "$scu" 2>/dev/null || break
    sleep 0.005
done
wait "$scu" 2>/dev/null
[[ $killed -eq 1 ]] || echo "note: storescu finished before it could be killed mid-object"
sleep 1
clean=1
for _ in $(seq 50); do
    clean=1
    ls "$A/spool/ready" | grep -q . && clean=0
    find "$A/spool/tmp" -type f | grep -q . && clean=0
    [[ $clean -eq 1 ]] && break
    sleep 0.1
done
if [[ $killed -eq 1 ]]; then
    find "$A/store" -name "$kill_uid.dcm" | grep -q . && fail "killed object reached the store"
fi
find "$A/store" -name '1.2.826.0.1.3680043.9.7433.99.1.dcm' | grep -q . && fail "reset object reached the store"
if [[ $clean -eq 1 ]]; then
    ok "associations killed mid-object leave nothing in ready/, tmp/ or the store"
else
    fail "leftovers after killed associations: ready: $(ls "$A/spool/ready") tmp: $(ls "$A/spool/tmp")"
fi
echoscu -aet AFTERKILL -aec DICOM_CORE 127.0.0.1 "$P" || fail "core not serving after killed associations"
rm -rf "$T/kill"

# one object over 1 GiB, streamed; the core's peak RSS stays small
if [[ -z $sanitized ]]; then
    gen "$T/big" --modality MR --big-bytes $((1100 * 1024 * 1024))
    before=$(stored_count "$A")
    if storescu -aet BIG -aec DICOM_CORE 127.0.0.1 "$P" "$T"/big/*.dcm >"$T/big.out" 2>&1; then
        wait_stored "$A" $((before + 1)) || fail "the 1.1 GiB object did not reach the store"
        $PY "$T/dscmp.py" compare "$A/store" BIG "$T"/big/*.dcm || fail "1.1 GiB object differs"
        hwm=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$core/status")
        if [[ $hwm -lt 96 ]]; then
            ok "1.1 GiB object stored byte-identical; core peak RSS $hwm MiB"
        else
            fail "core peak RSS $hwm MiB after a 1.1 GiB object (memory grows with object size?)"
        fi
    else
        fail "storescu of the 1.1 GiB object"
        cat "$T/big.out"
    fi
    rm -rf "$T/big"
    find "$A/store" -name '*.dcm' -size +1000M -delete
fi

# SIGHUP during a live association: the association goes on, the reload is logged
gen "$T/hup" --count 60 --modality CT --ts explicit --seed 9
storescu -v -aet HUP -aec DICOM_CORE 127.0.0.1 "$P" "$T"/hup/*.dcm >"$T/hup.out" 2>&1 &
scu=$!
pids+=("$scu")
for _ in $(seq 200); do grep -q "Received Store Response (Success)" "$T/hup.out" && break; sleep 0.02; done
kill -HUP "$core"
if wait "$scu"; then
    ok "storescu unaffected by SIGHUP"
else
    fail "storescu failed across a SIGHUP"
    cat "$T/hup.out"
fi
for _ in $(seq 50); do grep -q '"ev":"reloaded"' "$T/main.log" && break; sleep 0.1; done
grep -q '"ev":"reloaded"' "$T/main.log" || fail "no reload logged after SIGHUP"
if ! grep -E '"ev":"reloaded"|"ev":"assoc_end".*"calling_ae":"HUP"' "$T/main.log" | head -1 | grep -q reloaded; then
    echo "note: the HUP association ended before the reload (not a live-association reload)"
fi
kill -0 "$core" || fail "core died on SIGHUP"
wait_drained "$A" || fail "ready/ not drained"
$PY "$T/dscmp.py" compare "$A/store" HUP "$T"/hup/*.dcm || fail "objects sent across SIGHUP differ"
rm -rf "$T/hup"

# SIGTERM while storescu is busy: exits 0; every acknowledged object is durable and intact
gen "$T/term" --count 40 --modality CT --ts explicit --seed 11
storescu -v -aet TERM -aec DICOM_CORE 127.0.0.1 "$P" "$T"/term/*.dcm >"$T/term.out" 2>&1 &
scu=$!
pids+=("$scu")
for _ in $(seq 200); do grep -q "Received Store Response (Success)" "$T/term.out" && break; sleep 0.02; done
kill -TERM "$core"
wait "$core"
st=$?
wait "$scu" 2>/dev/null
[[ $st -eq 0 ]] || fail "core exited $st after SIGTERM during stores"
acked=$(grep -c "Received Store Response (Success)" "$T/term.out")
# the acknowledged ones are the first $acked files storescu sent (it sends in argument order)
mapfile -t acked_files < <(ls "$T"/term/*.dcm | head -n "$acked")
in_spool=0
for f in "${acked_files[@]}"; do
    u=$($PY "$T/dscmp.py" uids "$f")
    if find "$A/store" "$A/spool/ready" -name "$u.dcm" | grep -q .; then
        in_spool=$((in_spool + 1))
    else
        fail "acknowledged object $u lost over SIGTERM"
    fi
done
ls "$A/spool/tmp" 2>/dev/null | grep -q . && fail "partial objects left in tmp/ after drain"
ok "SIGTERM during stores: exit $st, $acked acknowledged, $in_spool of them durable"
# the rest of the acknowledged objects reach the store on the next start
start_core main
if ((acked > 0)); then
    wait_drained "$A" || fail "ready/ not drained after restart"
    $PY "$T/dscmp.py" compare "$A/store" TERM "${acked_files[@]}" || fail "acknowledged objects not in the store after restart"
fi
stop_core

# ---------------------------------------------------------------- crash: SIGKILL mid-stream
# Every object storescu saw acknowledged before the core was killed is, after a restart, in the
# store exactly once and intact; nothing partial survives; sending an object twice stores it once.
start_core crash
C=$T/crash
gen "$T/crashd" --count 40 --modality CT --ts explicit --seed 21
storescu -v -aet CRASH -aec DICOM_CORE 127.0.0.1 "$P" "$T"/crashd/*.dcm >"$T/crash.out" 2>&1 &
scu=$!
pids+=("$scu")
for _ in $(seq 300); do
    [[ $(grep -c "Received Store Response (Success)" "$T/crash.out") -ge 5 ]] && break
    sleep 0.01
done
kill -KILL "$core"
wait "$core" 2>/dev/null
wait "$scu" 2>/dev/null
acked=$(grep -c "Received Store Response (Success)" "$T/crash.out")
mapfile -t acked_files < <(ls "$T"/crashd/*.dcm | head -n "$acked")
start_core crash
wait_drained "$C" || fail "crash: ready/ not drained after restart"
for _ in $(seq 50); do find "$C/spool/tmp" -type f | grep -q . || break; sleep 0.1; done
find "$C/spool/tmp" -type f | grep -q . && fail "crash: partial objects left in tmp/ after restart"
if ((acked > 0)) && $PY "$T/dscmp.py" compare "$C/store" CRASH "${acked_files[@]}"; then
    ok "SIGKILL mid-stream: all $acked acknowledged objects in the store once, intact, after restart"
else
    fail "SIGKILL mid-stream: acknowledged objects lost or damaged ($acked acknowledged)"
fi
# the same objects again: acknowledged, still one copy each
storescu -aet CRASH -aec DICOM_CORE 127.0.0.1 "$P" "${acked_files[@]}" >"$T/dup.out" 2>&1 ||
    fail "resending stored objects: $(cat "$T/dup.out")"
wait_drained "$C" || true
sleep 0.3
$PY "$T/dscmp.py" compare "$C/store" CRASH "${acked_files[@]}" && ok "resent objects: one copy each" ||
    fail "resent objects stored twice"
stop_core
# entries a crash left in ready/ with a sidecar and no data: one whose object is in the store
# (its release was cut between the two unlinks) is released quietly as a duplicate; one whose
# object is not (never acknowledged: its data never reached the disk) is dropped as torn
$PY - "$C/store/journal.jsonl" "$C/spool/ready" <<'EOF2' || fail "crash: could not plant entries"
import json, os, sys, time
rec = [json.loads(l) for l in open(sys.argv[1]) if '"ev":"stored"' in l][-1]
for k in ("ev", "key"):
    rec.pop(k, None)
old = time.time() - 3600
for ident, sha in (("00000000000000aa-1", rec["sha256"]), ("00000000000000bb-1", "0" * 64)):
    side = dict(rec, id=ident, sha256=sha)
    path = os.path.join(sys.argv[2], ident + ".json")
    with open(path, "w") as f:
        json.dump(side, f)
    os.utime(path, (old, old))
EOF2
start_core crash
wait_drained "$C" || fail "crash: planted entries not released"
if ! grep '"spool_torn_entry_dropped"' "$T/crash.log" | grep -q 00000000000000aa-1 &&
    grep '"spool_torn_entry_dropped"' "$T/crash.log" | grep -q 00000000000000bb-1 &&
    grep '"ev":"duplicate"' "$C/store/journal.jsonl" | grep -q 00000000000000aa-1; then
    ok "restart: a half-released entry of a stored object released as a duplicate, a torn one dropped"
else
    fail "restart: half-released/torn entries: $(grep -c spool_torn_entry_dropped "$T/crash.log") torn lines"
fi
stop_core
rm -rf "$T/crashd"

# ---------------------------------------------------------------- disk under min_free_bytes
# (larger than any disk's free space: 2^62 bytes)
MIN_FREE=4611686018427387904 start_core full '"ack": "spool",'
storescu -v -aet FULL -aec DICOM_CORE 127.0.0.1 "$P" "$T"/d/sc/*.dcm >"$T/full.out" 2>&1
if grep -Eqi "OutOfResources|Out of Resources|0xa7" "$T/full.out" && ! grep -q "Store Response (Success)" "$T/full.out"; then
    ok "free disk under min_free_bytes: 0xA700 (out of resources)"
else
    fail "min_free_bytes: no 0xA700"
    cat "$T/full.out"
fi
code=$(curl -s -o "$T/hz.out" -w '%{http_code}' "http://127.0.0.1:$H/healthz")
if [[ $code == 503 ]] && grep -q spool_full "$T/hz.out"; then
    ok "/healthz 503 spool_full under min_free_bytes"
else
    fail "/healthz under min_free_bytes: $code $(cat "$T/hz.out")"
fi
sleep 0.5
[[ $(stored_count "$T/full") -eq 0 ]] || fail "objects stored while under min_free_bytes"
ls "$T/full/spool/ready" 2>/dev/null | grep -q . && fail "objects in ready/ while under min_free_bytes"
stop_core

# ---------------------------------------------------------------- calling AE allow-list
start_core allow '"calling_ae_allow": ["GOOD_AE"],'
storescu -aet BAD_AE -aec DICOM_CORE 127.0.0.1 "$P" "$T"/d/sc/*.dcm >"$T/cal.out" 2>&1
st=$?
if [[ $st -eq 1 ]] && grep -qi "Calling AE Title Not Recognized" "$T/cal.out"; then
    ok "calling AE title not on the allow-list rejected (Calling AE Title Not Recognized)"
else
    fail "calling AE allow-list: storescu exit $st"
    cat "$T/cal.out"
fi
storescu -aet GOOD_AE -aec DICOM_CORE 127.0.0.1 "$P" "$T"/d/sc/*.dcm >"$T/cal.out" 2>&1 ||
    fail "allowed calling AE refused: $(cat "$T/cal.out")"
stop_core

# ---------------------------------------------------------------- store on another file system
# link(2) fails with EXDEV there: the backend copies (copy_file_range), fsyncs, renames
if [[ -d /dev/shm && $(stat -c %d /dev/shm) != $(stat -c %d "$T") ]]; then
    STORE_DIR=$XDEV start_core xdev
    storescu -aet SENDER1 -aec DICOM_CORE 127.0.0.1 "$P" "$T"/d/ct-explicit/*.dcm >"$T/xdev.out" 2>&1 ||
        fail "storescu to a core whose store is on another file system: $(cat "$T/xdev.out")"
    for _ in $(seq 300); do
        [[ $(find "$XDEV" -name '*.dcm' | wc -l) -ge $n_small ]] && wait_drained "$T/xdev" && break
        sleep 0.1
    done
    if [[ $(find "$XDEV" -name '*.dcm' | wc -l) -eq $n_small ]] && ! find "$XDEV" -name '*.tmp' | grep -q . &&
        $PY "$T/dscmp.py" compare "$XDEV" SENDER1 "$T"/d/ct-explicit/*.dcm; then
        ok "store on another file system: $n_small objects copied byte-identical, ready/ emptied"
    else
        fail "store on another file system: $(find "$XDEV" -type f | wc -l) files; $(tail -3 "$T/xdev.log")"
    fi
    stop_core
    rm -rf "$XDEV"
else
    echo "skip store on another file system: /dev/shm is not a separate file system here"
fi

# ---------------------------------------------------------------- PROXY protocol v2
# trusted source (127.0.0.1): the header's address and certificate identity reach the sidecar;
# a connection from a trusted source without a header is closed
cat >"$T/proxy.py" <<EOF2
import socket, struct, sys
sys.path.insert(0, "$src/tests/support")
import pdu_peer as pp
mode, port = sys.argv[1], int(sys.argv[2])
SIG = b"\r\n\r\n\0\r\nQUIT\n"
def tlv(t, v): return bytes([t]) + struct.pack(">H", len(v)) + v
body = bytes([10, 1, 2, 3, 10, 9, 8, 7]) + struct.pack(">HH", 40000, 11112)
body += tlv(0x20, bytes([0x03]) + b"\0\0\0\0" + tlv(0x22, b"modality-ct1.example"))
body += tlv(0xE0, bytes(range(32))) + tlv(0xE1, b"ct-room-1")
hdr = SIG + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body
p = pp.Peer("127.0.0.1", port)
if mode == "noheader":
    p.send(pp.assoc_rq("DICOM_CORE"))
    r = p.recv_pdu()
    sys.exit(0 if (r is None or r[0] == 0x07) and p.expect_closed() else f"answered {r!r}")
p.send(hdr + pp.assoc_rq("DICOM_CORE"))
r = p.recv_pdu()
if mode == "untrusted":  # the header is not a PDU: A-ABORT, closed
    sys.exit(0 if r is not None and r[0] == 0x07 and p.expect_closed() else f"answered {r!r}")
if r is None or r[0] != 0x02:
    sys.exit(f"association through PROXY v2 not accepted: {r!r}")
inst = b"1.2.826.0.1.3680043.9.7433.77.1"
ui = lambda g, e, v: struct.pack("<HH2sH", g, e, b"UI", len(v)) + v
ds = (ui(8, 0x16, pp.CT_STORAGE + b"\0") + ui(8, 0x18, inst + b"\0") + ui(0x20, 0x0D, b"1.2.3.4\0") +
      ui(0x20, 0x0E, b"1.2.3.5\0"))
p.send(pp.pdata(3, 3, pp.command(0x0001, 1, pp.CT_STORAGE, has_ds=True, sop_inst=inst)))
p.send(pp.pdata(3, 2, ds))
r = p.recv_pdu()
st = pp.dimse_status(r[1]) if r and r[0] == 0x04 else None
p.send(pp.pdu(0x05, b"\0" * 4))
p.recv_pdu()
sys.exit(0 if st == 0 else f"C-STORE through PROXY v2: status {st}")
EOF2
start_core proxy '"proxy_protocol": { "trusted": ["127.0.0.1/32"] },'
if $PY "$T/proxy.py" store "$P"; then
    proxy_rec() {
        grep '"ev":"stored"' "$T/proxy/store/journal.jsonl" 2>/dev/null | grep '"peer":"10.1.2.3:40000"' |
            grep '"subject_cn":"modality-ct1.example"' | grep '"client_id":"ct-room-1"' |
            grep -q '"fingerprint_sha256":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"'
    }
    for _ in $(seq 100); do proxy_rec && break; sleep 0.1; done
    if proxy_rec; then
        ok "PROXY v2 from a trusted source: original peer and certificate identity recorded"
    else
        fail "PROXY v2 identity not in the sidecar: $(grep stored "$T/proxy/store/journal.jsonl")"
    fi
else
    fail "C-STORE through a PROXY v2 header"
fi
$PY "$T/proxy.py" noheader "$P" && ok "trusted source without a PROXY header: closed" ||
    fail "trusted source without a PROXY header was served"
stop_core
start_core untrusted '"proxy_protocol": { "trusted": ["10.0.0.0/8"] },'
$PY "$T/proxy.py" untrusted "$P" && ok "PROXY header from an untrusted source: aborted" ||
    fail "PROXY header from an untrusted source accepted"
echoscu -aet PLAIN -aec DICOM_CORE 127.0.0.1 "$P" || fail "untrusted source without header refused"
stop_core

# SIGHUP applies a changed configuration to new associations and refuses an invalid one
start_core reload
sed -i 's/"ae_title": "DICOM_CORE"/"ae_title": "NEW_CORE"/' "$T/reload.json"
kill -HUP "$core"
for _ in $(seq 50); do grep -q '"ev":"reloaded"' "$T/reload.log" && break; sleep 0.1; done
if echoscu -aet R -aec NEW_CORE 127.0.0.1 "$P" && ! echoscu -aet R -aec DICOM_CORE 127.0.0.1 "$P" 2>/dev/null; then
    ok "SIGHUP: the new AE title applies to new associations"
else
    fail "SIGHUP did not apply the new AE title"
fi
echo '{ "ae_title": ' >"$T/reload.json"
kill -HUP "$core"
for _ in $(seq 50); do grep -q '"ev":"reload_refused"' "$T/reload.log" && break; sleep 0.1; done
if grep -q '"ev":"reload_refused"' "$T/reload.log" && echoscu -aet R -aec NEW_CORE 127.0.0.1 "$P"; then
    ok "SIGHUP with an invalid file: refused, the running configuration stays"
else
    fail "invalid configuration on SIGHUP not refused cleanly"
fi
stop_core

# every log line is one JSON object, even with AE titles full of JSON metacharacters
start_core logs
$PY - "$P" <<EOF2 || fail "association with a quoting AE title"
import sys
sys.path.insert(0, "$src/tests/support")
import pdu_peer as pp
p, _ = pp.associate("127.0.0.1", int(sys.argv[1]), "DICOM_CORE", calling='Q"{}[]:,<x>')
p.send(pp.pdu(0x05, b"\0" * 4))
p.recv_pdu()
q = pp.Peer("127.0.0.1", int(sys.argv[1]))
q.send(pp.assoc_rq('NOT"CORE}'))
q.recv_pdu()
EOF2
stop_core
if $PY - "$T"/*.log "$T"/*/store/journal.jsonl <<'EOF2'; then
import json, sys
bad, seen = 0, False
for path in sys.argv[1:]:
    for n, line in enumerate(open(path, errors="replace"), 1):
        try:
            j = json.loads(line)
            if not isinstance(j, dict):
                raise ValueError("not an object")
            seen |= j.get("calling_ae") == 'Q"{}[]:,<x>'
        except ValueError as e:
            print(f"{path}:{n}: not a JSON object ({e}): {line[:120]!r}")
            bad += 1
if not seen:
    print("the quoting calling AE title was not logged as itself")
sys.exit(1 if bad or not seen else 0)
EOF2
    ok "every log and journal line is a JSON object (AE titles with quotes escaped)"
else
    fail "log or journal lines that are not JSON"
fi

if [[ $rc -ne 0 ]]; then
    for l in "$T"/*.log; do
        echo "--- $l (tail)"
        tail -30 "$l"
    done
fi
exit $rc
