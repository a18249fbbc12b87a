#!/usr/bin/env bash
# PS3.8 conformance under hostile input: tests/support/pdu_peer.py crafts PDUs byte by byte and
# checks each answer against the state table (A-ABORT source/reason, A-ASSOCIATE-RJ result/
# source/reason, release, ARTIM); then DCMTK echoscu must still be served.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-ul.XXXXXX)
pid=
cleanup() {
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
P=$(port)
H=$(port)
cat >"$T/core.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$P", "http_listen": "127.0.0.1:$H",
  "spool_dir": "$T/spool", "min_free_bytes": 0, "artim_ms": 1000, "idle_ms": 4000, "max_associations": 8,
  "preassoc_max": 64, "preassoc_per_source": 8, "max_pdu": 65536, "backend": { "type": "file", "dir": "$T/store" } }
JSON
"$build/core/dicom-core" --config "$T/core.json" 2>"$T/core.log" &
pid=$!
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break
    sleep 0.1
done
rc=0
/usr/bin/python3 "$src/tests/support/pdu_peer.py" 127.0.0.1 "$P" DICOM_CORE || rc=1
TCP_NODELAY=1 echoscu -aet AFTER -aec DICOM_CORE 127.0.0.1 "$P" || { echo "echoscu failed after the hostile cases"; rc=1; }
kill -0 "$pid" || { echo "dicom-core died"; rc=1; }
# nothing half-received may be in the ready area
if ls "$T/spool/ready" | grep -q .; then
    echo "unexpected entries in ready/: $(ls "$T/spool/ready")"
    rc=1
fi
grep -q '"ev":"assoc_abort_sent"' "$T/core.log" || { echo "no abort was logged"; rc=1; }
kill -TERM "$pid"
wait "$pid" || { echo "dicom-core exited non-zero on SIGTERM"; rc=1; }
pid=
# SIGTERM drain: the core releases an idle association itself (A-RELEASE-RQ), then exits 0;
# and a release collision (we answer with our own A-RELEASE-RQ) ends the same way.
for mode in release collision; do
    "$build/core/dicom-core" --config "$T/core.json" 2>>"$T/core.log" &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && break; sleep 0.1; done
    /usr/bin/python3 "$src/tests/support/drain_peer.py" 127.0.0.1 "$P" DICOM_CORE "$pid" "$mode" || rc=1
    wait "$pid" || { echo "dicom-core exited non-zero after drain ($mode)"; rc=1; }
    pid=
done
if [[ $rc -ne 0 ]]; then
    echo "--- core log (tail)"
    tail -40 "$T/core.log"
fi
exit $rc
