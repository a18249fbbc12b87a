#!/usr/bin/env bash
# dicom-edge, TLS and admission: DCMTK echoscu/storescu +tls through the edge to dicom-core.
# A bound certificate stores byte-identical objects; every wrong certificate or TLS offer is
# refused in the handshake with its reason in the log (no certificate, another CA, expired, not
# yet valid, revoked, wrong extended key usage, TLS 1.1 only, a weak cipher only); wrong calling
# and called AE titles get A-ASSOCIATE-RJ permanent with reason 3 / 7; a client over its
# association limit gets a transient rejection; a first PDU that is not an A-ASSOCIATE-RQ gets
# an A-ABORT; and the edge still serves afterwards.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-edge-tls.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }

bash "$src/tests/support/test_pki.sh" "$T/pki"
CP=$(port)
EP=$(port)
HP=$(port)
DEAD=$(port) # nothing listens there
start_core c1 "$CP"
cat >"$T/policy.json" <<JSON
{ "clients": [
    { "id": "ct-room-1", "match": { "subject_cn": "ct-room-1", "san_dns": "ct1.modality.test" },
      "calling_ae": ["CT_ROOM1"], "called_ae": ["DICOM_CORE"], "route": "core" },
    { "id": "mr-room-2", "match": { "subject_cn": "mr-room-2" },
      "calling_ae": ["MR_ROOM2"], "called_ae": ["DICOM_CORE"], "route": "core",
      "max_associations": 1 },
    { "id": "expired", "match": { "subject_cn": "expired-1" }, "calling_ae": ["*"],
      "called_ae": ["*"], "route": "core" },
    { "id": "notyet", "match": { "subject_cn": "notyet-1" }, "calling_ae": ["*"],
      "called_ae": ["*"], "route": "core" },
    { "id": "revoked", "match": { "subject_cn": "revoked-1" }, "calling_ae": ["*"],
      "called_ae": ["*"], "route": "core" },
    { "id": "wrongeku", "match": { "subject_cn": "wrongeku-1" }, "calling_ae": ["*"],
      "called_ae": ["*"], "route": "core" },
    { "id": "us-room-3", "match": { "subject_cn": "us-room-3" }, "calling_ae": ["US_ROOM3"],
      "called_ae": ["*"], "route": "dead" } ],
  "routes": { "core": { "upstream": "127.0.0.1:$CP" },
              "dead": { "upstream": "127.0.0.1:$DEAD" } } }
JSON
write_edge_config "$EP" "$HP"
"$build/edge/dicom-edge" --check-config --config "$T/edge.json" >"$T/check.out" 2>&1 ||
    fail "--check-config refused a valid configuration: $(cat "$T/check.out")"
start_edge "$EP"

# 1. a bound certificate stores, byte-identical
make_dicom "$T/data" 5 128 128
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >"$T/echo.out" 2>&1 || fail "C-ECHO through the edge"
scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" "$T"/data/*.dcm >"$T/store.out" 2>&1 ||
    fail "C-STORE through the edge: $(tail -3 "$T/store.out")"
for _ in $(seq 50); do
    [[ $(find "$T/c1/store" -name '*.dcm' 2>/dev/null | wc -l) -ge 5 ]] && break
    sleep 0.1
done
same_objects "$T/data" "$T/c1/store" || fail "stored objects differ from the sent ones"
grep -q '"ev":"assoc_end".*"end":"released"' "$T/edge.log" || fail "no assoc_end released line"

# 2. TLS refusals, each with its reason in the log
refused() { # name reason command...
    local name=$1 reason=$2
    shift 2
    local before
    before=$(grep -c "\"reason\":\"$reason\"" "$T/edge.log")
    if "$@" >"$T/$name.out" 2>&1; then
        fail "$name: the client succeeded"
        return
    fi
    wait_log "$T/edge.log" "zzz_never" 5 || true
    local after
    after=$(grep -c "\"ev\":\"tls_refused\".*\"reason\":\"$reason\"" "$T/edge.log")
    [[ $after -gt $before ]] || fail "$name: no tls_refused line with reason $reason"
}
refused nocert no_certificate \
    env TCP_NODELAY=1 echoscu +tla +cf "$T/pki/ca.crt" -aet CT_ROOM1 -aec DICOM_CORE 127.0.0.1 "$EP"
refused otherca unknown_ca scu echoscu otherca CT_ROOM1 DICOM_CORE "$EP"
refused expired expired scu echoscu expired CT_ROOM1 DICOM_CORE "$EP"
refused notyet not_yet_valid scu echoscu notyet CT_ROOM1 DICOM_CORE "$EP"
refused revoked revoked scu echoscu revoked CT_ROOM1 DICOM_CORE "$EP"
refused wrongeku wrong_usage scu echoscu wrongeku CT_ROOM1 DICOM_CORE "$EP"
refused tls11 protocol_version \
    openssl s_client -connect "127.0.0.1:$EP" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' \
    -cert "$T/pki/ct1.crt" -key "$T/pki/ct1.key" -CAfile "$T/pki/ca.crt" </dev/null
refused weakcipher no_shared_cipher \
    openssl s_client -connect "127.0.0.1:$EP" -tls1_2 -cipher 'AES128-SHA:@SECLEVEL=0' \
    -cert "$T/pki/ct1.crt" -key "$T/pki/ct1.key" -CAfile "$T/pki/ca.crt" </dev/null
refused nullcipher no_shared_cipher scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" +pn

# 3. AE titles: A-ASSOCIATE-RJ permanent, service user, reason 3 / 7
scu echoscu ct1 WRONG_AE DICOM_CORE "$EP" >"$T/calling.out" 2>&1 && fail "wrong calling AE admitted"
grep -q "Rejected Permanent" "$T/calling.out" && grep -q "Calling AE Title Not Recognized" \
    "$T/calling.out" || fail "wrong calling AE: $(cat "$T/calling.out")"
scu echoscu ct1 CT_ROOM1 OTHER_SCP "$EP" >"$T/called.out" 2>&1 && fail "wrong called AE admitted"
grep -q "Rejected Permanent" "$T/called.out" && grep -q "Called AE Title Not Recognized" \
    "$T/called.out" || fail "wrong called AE: $(cat "$T/called.out")"
# another client's AE title with our certificate is refused too
scu echoscu ct1 MR_ROOM2 DICOM_CORE "$EP" >"$T/steal.out" 2>&1 && fail "AE title of another client admitted"
grep -q '"decision":"reject","reason":"calling_ae_not_allowed"' "$T/edge.log" ||
    fail "no audit line for the calling AE rejection"
grep -q '"decision":"reject","reason":"called_ae_not_allowed"' "$T/edge.log" ||
    fail "no audit line for the called AE rejection"

# 4. over the association limit: transient (mr-room-2 may hold 1)
/usr/bin/python3 "$src/tests/support/edge_peer.py" hold "$EP" "$T/pki" mr2 MR_ROOM2 DICOM_CORE \
    "$T/release" >"$T/hold.out" 2>&1 &
holder=$!
wait_log "$T/hold.out" held 100 || fail "mr2 could not open its one association: $(cat "$T/hold.out")"
scu echoscu mr2 MR_ROOM2 DICOM_CORE "$EP" >"$T/limit.out" 2>&1 && fail "second association admitted"
grep -q "Rejected Transient" "$T/limit.out" && grep -q "Local Limit Exceeded" "$T/limit.out" ||
    fail "over the limit: $(cat "$T/limit.out")"
grep -q '"decision":"reject","reason":"max_associations"' "$T/edge.log" ||
    fail "no audit line for the limit"
touch "$T/release"
wait "$holder" || fail "the association holding the slot failed: $(cat "$T/hold.out")"
scu echoscu mr2 MR_ROOM2 DICOM_CORE "$EP" >/dev/null 2>&1 || fail "slot not given back"

# 4b. upstream unreachable before the association: transient rejection
scu echoscu us3 US_ROOM3 DICOM_CORE "$EP" >"$T/dead.out" 2>&1 && fail "admitted to a dead upstream"
grep -q "Rejected Transient" "$T/dead.out" || fail "dead upstream: $(cat "$T/dead.out")"
grep -q '"ev":"upstream_failed".*"reason":"upstream_unreachable"' "$T/edge.log" ||
    fail "no upstream_failed line"

# 5. not an A-ASSOCIATE-RQ first: A-ABORT, then close
/usr/bin/python3 - "$EP" "$T/pki" >"$T/abort.out" 2>&1 <<'PY' || fail "non-RQ first PDU: $(cat "$T/abort.out")"
import socket, ssl, sys
port, pki = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
ctx.load_cert_chain(pki + "/ct1.crt", pki + "/ct1.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
s.sendall(bytes([0x04, 0, 0, 0, 0, 6, 0, 0, 0, 2, 1, 3]))  # a P-DATA-TF
got = b""
while True:
    try:
        d = s.recv(100)
    except (ssl.SSLError, ConnectionError):
        break
    if not d:
        break
    got += d
assert got[:1] == b"\x07" and len(got) == 10, got
assert got[8] == 2, "source must be service provider"
print("abort ok", got.hex())
PY

# 6. still serving
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >/dev/null 2>&1 || fail "C-ECHO after the refusals"
kill -0 "$EDGE_PID" 2>/dev/null || fail "dicom-edge died"
curl -sf "http://127.0.0.1:$HP/metrics" >"$T/metrics" || fail "/metrics"
grep -q 'dicom_edge_handshakes_total{result="failed",reason="revoked"} 1' "$T/metrics" ||
    fail "metrics lack the revoked handshake"
grep -q '"status":"ok"' <<<"$(curl -sf "http://127.0.0.1:$HP/healthz")" || fail "/healthz"

# 7. --check-config lists each problem and fails
sed 's/"route": "core"/"route": "nowhere"/' "$T/policy.json" >"$T/bad-policy.json"
sed "s|$T/policy.json|$T/bad-policy.json|; s|server.key|mr2.key|" "$T/edge.json" >"$T/bad-edge.json"
if "$build/edge/dicom-edge" --check-config --config "$T/bad-edge.json" >"$T/bad.out" 2>&1; then
    fail "--check-config accepted a broken configuration"
fi
grep -q "names no route" "$T/bad.out" || fail "--check-config did not name the missing route"
grep -q "tls:" "$T/bad.out" || fail "--check-config did not report the key that does not match"

# 8. privileges dropped after binding: a second edge as "nobody" still serves
EP2=$(port)
sed "s|127.0.0.1:$EP|127.0.0.1:$EP2|; s|\"http_listen\": \"127.0.0.1:$HP\"|\"http_listen\": \"\"|" \
    "$T/edge.json" | sed 's|"policy"|"user": "nobody", "policy"|' >"$T/edge2.json"
"$build/edge/dicom-edge" --config "$T/edge2.json" 2>"$T/edge2.log" &
EDGE2=$!
remember $EDGE2
wait_port "$EP2" || fail "second edge did not start: $(cat "$T/edge2.log")"
grep -q '"ev":"privileges_dropped","user":"nobody"' "$T/edge2.log" || fail "no privileges_dropped line"
[[ $(awk '/^Uid:/ {print $2}' "/proc/$EDGE2/status") != 0 ]] || fail "the edge still runs as root"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP2" >/dev/null 2>&1 || fail "C-ECHO through the unprivileged edge"
kill -TERM "$EDGE2"
wait "$EDGE2" || fail "unprivileged edge exited non-zero"

# 9. SIGTERM drains: no new connection, the live association finishes, then exit 0
rm -f "$T/release"
/usr/bin/python3 "$src/tests/support/edge_peer.py" hold "$EP" "$T/pki" mr2 MR_ROOM2 DICOM_CORE \
    "$T/release" >"$T/hold2.out" 2>&1 &
holder=$!
wait_log "$T/hold2.out" held 100 || fail "could not open the association to drain"
kill -TERM "$EDGE_PID"
wait_log "$T/edge.log" '"ev":"draining"' 50 || fail "no draining line"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >/dev/null 2>&1 && fail "a new association during the drain"
kill -0 "$EDGE_PID" 2>/dev/null || fail "the edge did not wait for the live association"
touch "$T/release"
wait "$holder" || fail "the live association did not finish during the drain: $(cat "$T/hold2.out")"
wait "$EDGE_PID" || fail "dicom-edge exited non-zero after draining"
if [[ $rc -ne 0 ]]; then
    echo "--- edge log (tail)"
    tail -40 "$T/edge.log"
fi
exit $rc
