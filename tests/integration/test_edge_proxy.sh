#!/usr/bin/env bash
# dicom-edge, proxying and operations, with real peers on every side:
#  - storescu +tls -> edge -> dicom-core with a PROXY v2 header (the core logs the certificate
#    CN and policy client id it carries), byte-identical;
#  - storescu +tls -> edge -> DCMTK storescp over TLS (the edge's own client certificate), and
#    the called AE title rewritten per route, byte-identical;
#  - SIGHUP adds a client while a large transfer runs (which completes); revoking a
#    certificate and reloading refuses its next connection; a broken policy is refused and the
#    old one kept;
#  - many idle TLS connections are closed by their timeout while a C-ECHO still passes;
#  - the upstream killed mid-transfer: the modality gets an abort and the edge goes on serving;
#  - a client that floods KeyUpdates and never reads is closed, the edge's memory bounded.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-edge-proxy.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }
if [[ -n "${GW_SANITIZED:-}" ]]; then idle_n=100; big_n=30; else idle_n=200; big_n=120; fi

bash "$src/tests/support/test_pki.sh" "$T/pki"
CP=$(port)
SP=$(port)
VP=$(port)
EP=$(port)
HP=$(port)
start_core c1 "$CP" ', "proxy_protocol": { "trusted": ["127.0.0.1/32"] }'
mkdir -p "$T/scp/out"
TCP_NODELAY=1 storescp -aet DICOM_CORE -od "$T/scp/out" +B +tls "$T/pki/server.key" \
    "$T/pki/server.crt" +cf "$T/pki/ca.crt" "$SP" 2>"$T/scp/scp.log" &
remember $!
wait_port "$SP"
start_storescp victim "$VP"
VICTIM=$SCP_PID_victim

policy() { # extra client entries
    cat >"$T/policy.json" <<JSON
{ "clients": [
    { "id": "ct-room-1", "match": { "subject_cn": "ct-room-1", "san_uri": "urn:dicom:ct-room-1" },
      "calling_ae": ["CT_ROOM1"], "called_ae": ["DICOM_CORE"], "route": "core" },
    { "id": "mr-room-2", "match": { "subject_cn": "mr-room-2" },
      "calling_ae": ["MR_ROOM2"], "called_ae": ["ARCHIVE"], "route": "scp-tls" } $1 ],
  "routes": {
    "core": { "upstream": "127.0.0.1:$CP", "proxy_protocol": true },
    "scp-tls": { "upstream": "127.0.0.1:$SP", "called_ae_rewrite": "DICOM_CORE",
                 "tls": { "ca": "$T/pki/ca.crt", "cert": "$T/pki/edge-client.crt",
                          "key": "$T/pki/edge-client.key" } },
    "victim": { "upstream": "localhost:$VP" } } }
JSON
}
policy ""
# the pre-association budget is widened: case 6 holds hundreds of idle connections from this one
# address (the budget itself is test_edge_preassoc's)
write_edge_config "$EP" "$HP" ', "limits": { "assoc_rq_ms": 3000, "handshake_ms": 3000, "high_water": 262144, "low_water": 65536, "preassoc_max": 1024, "preassoc_per_source": 1024 }'
start_edge "$EP"
make_dicom "$T/data" 5 256 256
make_dicom "$T/big" "$big_n" 512 512

# 1. to the core with PROXY v2
scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" "$T"/data/*.dcm >"$T/s1.out" 2>&1 ||
    fail "store to core: $(tail -3 "$T/s1.out")"
for _ in $(seq 50); do
    [[ $(find "$T/c1/store" -name '*.dcm' 2>/dev/null | wc -l) -ge 5 ]] && break
    sleep 0.1
done
same_objects "$T/data" "$T/c1/store" || fail "core copy differs"
grep -q '"cert_cn":"ct-room-1"' "$T/c1/core.log" || fail "the core did not get the CN by PROXY v2"
grep -q '"client_id":"ct-room-1"' "$T/c1/core.log" || fail "the core did not get the client id"

# 2. to storescp over TLS, called AE rewritten ARCHIVE -> DICOM_CORE
scu storescu mr2 MR_ROOM2 ARCHIVE "$EP" "$T"/data/*.dcm >"$T/s2.out" 2>&1 ||
    fail "store to storescp over TLS: $(tail -3 "$T/s2.out")"
same_objects "$T/data" "$T/scp/out" || fail "storescp copy differs"

# 3. SIGHUP adds a client while a large transfer runs
scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" "$T"/big/*.dcm >"$T/big.out" 2>&1 &
bigpid=$!
# an association held open across the reload, whatever the machine's speed
/usr/bin/python3 "$src/tests/support/edge_peer.py" hold "$EP" "$T/pki" ct1 CT_ROOM1 DICOM_CORE \
    "$T/release" >"$T/hold.out" 2>&1 &
holdpid=$!
wait_log "$T/hold.out" held 100 || fail "could not hold an association: $(cat "$T/hold.out")"
scu echoscu us3 US_ROOM3 DICOM_CORE "$EP" >/dev/null 2>&1 && fail "us3 admitted before the reload"
policy ', { "id": "us-room-3", "match": { "subject_cn": "us-room-3" },
            "calling_ae": ["US_ROOM3"], "called_ae": ["DICOM_CORE", "VICTIM"], "route": "core" },
          { "id": "us-room-3-victim", "match": { "subject_cn": "us-room-3" },
            "calling_ae": ["US_VICTIM"], "called_ae": ["*"], "route": "victim" }'
kill -HUP "$EDGE_PID"
wait_log "$T/edge.log" '"ev":"reloaded"' 100 || fail "no reloaded line"
kill -0 "$bigpid" 2>/dev/null || echo "note: the large transfer ended before the reload"
scu echoscu us3 US_ROOM3 DICOM_CORE "$EP" >"$T/us3.out" 2>&1 || fail "us3 refused after reload: $(cat "$T/us3.out")"
wait "$bigpid" || fail "the large transfer across the reload failed: $(tail -3 "$T/big.out")"
touch "$T/release"
wait "$holdpid" || fail "the association held across the reload did not release: $(cat "$T/hold.out")"

# 4. revoke + reload refuses the next connection, and one that shook hands before the reload
# but asks for its association after it (judged by the new CRL: an A-ABORT)
bash "$src/tests/support/test_pki.sh" revoke mr2 "$T/pki"
/usr/bin/python3 "$src/tests/support/edge_peer.py" late "$EP" "$T/pki" mr2 MR_ROOM2 ARCHIVE \
    "$T/late.flag" >"$T/late.out" 2>&1 &
latepid=$!
wait_log "$T/late.out" connected 100 || fail "late peer did not connect: $(cat "$T/late.out")"
kill -HUP "$EDGE_PID"
wait_log "$T/edge.log" '"ev":"reloaded".*"ev":"reloaded"' 1 # (single line log: count below)
for _ in $(seq 100); do [[ $(grep -c '"ev":"reloaded"' "$T/edge.log") -ge 2 ]] && break; sleep 0.1; done
touch "$T/late.flag"
wait "$latepid"
late_rc=$?
[[ $late_rc == 3 ]] || fail "a connection made before the reload was not refused after it: $(cat "$T/late.out")"
scu echoscu mr2 MR_ROOM2 ARCHIVE "$EP" >/dev/null 2>&1 && fail "revoked mr2 still admitted"
wait_log "$T/edge.log" '"reason":"revoked"' 50 || fail "no revoked refusal after the reload"

# 5. a broken policy is refused; the old one stays
echo '{ "clients": [ { "id": "x" } ] }' >"$T/policy.json"
kill -HUP "$EDGE_PID"
wait_log "$T/edge.log" '"ev":"reload_refused"' 100 || fail "broken policy not refused"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >/dev/null 2>&1 || fail "old policy lost after a broken reload"

# 6. idle TLS connections closed by the timeout while a C-ECHO passes
/usr/bin/python3 "$src/tests/support/edge_peer.py" idle "$EP" "$T/pki" ct1 "$idle_n" 30 \
    >"$T/idle.out" 2>&1 &
idlepid=$!
wait_log "$T/idle.out" "^open" 300 || fail "could not open $idle_n idle connections"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >/dev/null 2>&1 || fail "C-ECHO beside idle connections"
wait "$idlepid" || fail "idle connections not all closed: $(cat "$T/idle.out")"
[[ $(grep -c '"ev":"assoc_rq_timeout"' "$T/edge.log") -ge "$idle_n" ]] ||
    fail "fewer than $idle_n assoc_rq_timeout lines"

# 7. upstream killed mid-transfer
scu storescu us3 US_VICTIM VICTIM "$EP" "$T"/big/*.dcm >"$T/victim.out" 2>&1 &
vpid=$!
for _ in $(seq 200); do
    [[ $(find "$T/victim/out" -type f 2>/dev/null | wc -l) -ge 2 ]] && break
    sleep 0.05
done
kill -KILL "$VICTIM"
if wait "$vpid"; then
    fail "storescu succeeded although its upstream died"
fi
wait_log "$T/edge.log" '"ev":"upstream_lost"' 50 || fail "no upstream_lost line"
# The modality sees an A-ABORT; only when the kill cut a response PDU in half (the edge then
# cannot put an A-ABORT in the stream and logs abort_not_injected) is a closed transport right.
if ! grep -qiE "abort|Peer" "$T/victim.out"; then
    grep -q '"ev":"abort_not_injected".*"why":"mid_pdu"' "$T/edge.log" ||
        fail "storescu did not see an abort: $(tail -3 "$T/victim.out")"
fi
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >/dev/null 2>&1 || fail "edge not serving after upstream loss"
kill -0 "$EDGE_PID" 2>/dev/null || fail "dicom-edge died"

# 8. a client that makes OpenSSL answer (KeyUpdate after KeyUpdate) and never reads: the edge
# closes it once its queue to that client passes twice high_water, instead of growing with it
# (an admitted client: no admission timeout ends it first). The flood stops as soon as the edge
# closes it; 180 s is a watchdog for a sanitizer build on a loaded machine, where the answers
# come slowly and the kernel's socket buffers take megabytes of them before the edge's queue grows
hwm0=$(awk '/VmHWM/ {print $2}' "/proc/$EDGE_PID/status")
"$build/tests/tls_keyupdate_flood" "$EP" "$T/pki/ct1.crt" "$T/pki/ct1.key" 180 CT_ROOM1 DICOM_CORE \
    >"$T/flood.out" 2>&1 || fail "KeyUpdate flood: $(cat "$T/flood.out")"
wait_log "$T/edge.log" '"ev":"client_not_reading"' 50 || fail "no client_not_reading line"
hwm1=$(awk '/VmHWM/ {print $2}' "/proc/$EDGE_PID/status")
# (not under ASan: its quarantine of freed memory grows RSS by itself)
[[ -n "${GW_SANITIZED:-}" ]] || ((hwm1 - hwm0 < 16384)) ||
    fail "edge peak RSS grew by $(((hwm1 - hwm0) / 1024)) MiB under a KeyUpdate flood"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >/dev/null 2>&1 || fail "edge not serving after the flood"

kill -TERM "$EDGE_PID"
wait "$EDGE_PID" || fail "dicom-edge exited non-zero on SIGTERM"
if [[ $rc -ne 0 ]]; then
    echo "--- edge log (tail)"
    tail -30 "$T/edge.log"
fi
exit $rc
