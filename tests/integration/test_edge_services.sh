#!/usr/bin/env bash
# Who may do what (issue 15): a policy client's services and read scope, enforced at the edge
# and carried to the core, with real peers:
#  - a client without `find` proposing only Study Root FIND (DCMTK findscu +tls) is refused at
#    the edge: A-ASSOCIATE-RJ permanent, service-user, no-reason-given (findscu exits 2 and
#    prints "Reason: No Reason"); the audit line names the service;
#  - a client with store only proposing store and Storage Commitment is admitted, and the core
#    rejects the commitment context while it accepts the storage one (defence in depth);
#  - a client with only `store` is refused a C-ECHO; the default (no services key) still echoes
#    and stores, as before;
#  - the grants TLV (PROXY v2, 0xE2) carries the entry's services and read scope: read by a
#    PROXY v2 listener standing in for the core; the core reads the same header (client id).
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-edge-services.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }
PROBE="/usr/bin/python3 $src/tests/support/assoc_probe.py"
STUDY_FIND=1.2.840.10008.5.1.4.1.2.2.1
COMMIT=1.2.840.10008.1.20.1
CT=1.2.840.10008.5.1.4.1.1.2

bash "$src/tests/support/test_pki.sh" "$T/pki"
CP=$(port)
EP=$(port)
HP=$(port)
XP=$(port)
start_core c1 "$CP" ', "proxy_protocol": { "trusted": ["127.0.0.1/32"] }'
cat >"$T/policy.json" <<JSON
{ "clients": [
    { "id": "ct-room-1", "match": { "subject_cn": "ct-room-1" },
      "calling_ae": ["CT_ROOM1"], "called_ae": ["DICOM_CORE"], "route": "core" },
    { "id": "mr-store-only", "match": { "subject_cn": "mr-room-2" },
      "calling_ae": ["MR_ROOM2"], "called_ae": ["DICOM_CORE"], "route": "core",
      "services": ["store"] },
    { "id": "us-reader", "match": { "subject_cn": "us-room-3" },
      "calling_ae": ["US_ROOM3"], "called_ae": ["DICOM_CORE"], "route": "core",
      "services": ["find", "move", "echo"], "read_scope": "shared" },
    { "id": "us-probe", "match": { "subject_cn": "us-room-3" },
      "calling_ae": ["US_PROBE"], "called_ae": ["PROBE"], "route": "probe",
      "services": ["get", "find", "commit"], "read_scope": "own" } ],
  "routes": {
    "core": { "upstream": "127.0.0.1:$CP", "proxy_protocol": true },
    "probe": { "upstream": "127.0.0.1:$XP", "proxy_protocol": true } } }
JSON
write_edge_config "$EP" "$HP"
start_edge "$EP"
make_dicom "$T/data" 2 64 64

# 1. no `find`: findscu (Study Root FIND only) is refused at the edge
TCP_NODELAY=1 findscu +tls "$T/pki/ct1.key" "$T/pki/ct1.crt" +cf "$T/pki/ca.crt" -S \
    -aet CT_ROOM1 -aec DICOM_CORE -k QueryRetrieveLevel=STUDY -k StudyInstanceUID \
    127.0.0.1 "$EP" >"$T/find.out" 2>&1
find_rc=$?
[[ $find_rc -eq 2 ]] || fail "findscu without find: exit $find_rc, want 2 (association rejected)"
grep -q "Association Rejected" "$T/find.out" || fail "findscu did not see a rejection: $(tail -3 "$T/find.out")"
grep -qi "Rejected Permanent" "$T/find.out" && grep -qi "Service User" "$T/find.out" &&
    grep -qi "Reason: No Reason" "$T/find.out" ||
    fail "findscu's rejection is not permanent/service-user/no-reason: $(grep -i -A4 rejected "$T/find.out" | head -5)"
echo "findscu exit $find_rc: $(grep -m1 -i 'reason' "$T/find.out")"
wait_log "$T/edge.log" '"reason":"service_not_allowed".*"services_asked":"find".*"services_denied":"find"' 50 ||
    fail "no admission line naming the refused service"
grep -q '"calling_ae":"CT_ROOM1"' "$T/c1/core.log" && fail "the refused FIND reached the core"

# 2. store only, proposing store + commitment: admitted; the core rejects the commitment context
$PROBE rq "$EP" "$T/pki/mr2.key" "$T/pki/mr2.crt" "$T/pki/ca.crt" MR_ROOM2 DICOM_CORE \
    "$CT" "$COMMIT:1:0" >"$T/mixed.out" 2>&1 || fail "store+commit proposal refused: $(cat "$T/mixed.out")"
grep -q "^ctx 1 $CT 0$" "$T/mixed.out" || fail "the storage context was not accepted: $(cat "$T/mixed.out")"
# 1: user-rejection (the grants), 3: abstract syntax not supported (a core without commitment)
grep -qE "^ctx 3 $COMMIT [13]$" "$T/mixed.out" ||
    fail "the core did not reject the commitment context: $(cat "$T/mixed.out")"
grep -q '"decision":"admit".*"services_asked":"store,commit".*"services_denied":"commit"' "$T/edge.log" ||
    fail "the edge did not admit the mixed proposal naming the denied service"
wait_log "$T/c1/core.log" '"calling_ae":"MR_ROOM2".*"contexts":2,"accepted":1' 50 ||
    fail "the core's assoc_accept does not show 2 contexts, 1 accepted: $(grep MR_ROOM2 "$T/c1/core.log" | head -2)"
scu storescu mr2 MR_ROOM2 DICOM_CORE "$EP" "$T"/data/*.dcm >"$T/mr-store.out" 2>&1 ||
    fail "store-only client cannot store: $(tail -3 "$T/mr-store.out")"

# 3. store only: a C-ECHO is refused at the edge; the default entry still echoes
scu echoscu mr2 MR_ROOM2 DICOM_CORE "$EP" >"$T/mr-echo.out" 2>&1 && fail "C-ECHO admitted without echo"
grep -q "Reason: No Reason" "$T/mr-echo.out" || fail "echo refusal: $(tail -3 "$T/mr-echo.out")"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >/dev/null 2>&1 || fail "default services: C-ECHO refused"
scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" "$T"/data/*.dcm >"$T/ct-store.out" 2>&1 ||
    fail "default services: store refused: $(tail -3 "$T/ct-store.out")"
wait_log "$T/c1/core.log" '"client_id":"mr-store-only"' 20 || fail "the core did not get the client id"

# 4. the grants TLV: a PROXY v2 listener in the core's place reads what the edge sends
$PROBE proxy2 "$XP" "$T/tlv.json" >"$T/probe.out" 2>&1 &
probe=$!
remember "$probe"
wait_log "$T/probe.out" listening 50 || fail "the PROXY v2 listener did not start"
# a granted service (FIND); the listener closes after the header: the edge refuses (transient)
# or aborts its client, whichever the upstream's close comes before
$PROBE rq "$EP" "$T/pki/us3.key" "$T/pki/us3.crt" "$T/pki/ca.crt" US_PROBE PROBE "$STUDY_FIND" \
    >"$T/probe-rq.out" 2>&1
wait "$probe" || fail "PROXY v2 listener: $(cat "$T/probe.out")"
grep -qE "^(rj 2 |abort )" "$T/probe-rq.out" ||
    fail "the probe's client was neither refused transient nor aborted: $(cat "$T/probe-rq.out")"
jq -e '.grants == "services=find,get,commit;scope=own" and .client_id == "us-probe" and .cn == "us-room-3"' \
    "$T/tlv.json" >/dev/null || fail "grants TLV: $(cat "$T/tlv.json")"
echo "grants TLV: $(jq -c . "$T/tlv.json")"

kill -TERM "$EDGE_PID"
wait "$EDGE_PID" || fail "dicom-edge exited non-zero on SIGTERM"
if [[ $rc -ne 0 ]]; then
    echo "--- edge log (tail)"
    tail -20 "$T/edge.log"
fi
exit $rc
