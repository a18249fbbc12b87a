#!/usr/bin/env bash
# Query/Retrieve through dicom-edge: findscu, getscu and movescu with +tls (mutual TLS) to the
# edge, the edge to the core over TLS with a PROXY v2 header (the modality's certificate identity
# and policy client id), the file backend behind.
#  - two clients (certificates ct-room-1 and mr-room-2) each store a study through the edge and
#    each sees, gets and moves only its own ("own" is the policy client id the edge vouches for);
#  - a client whose services do not include find is refused (by the core's grants today; by the
#    edge once its policy carries services: either answer is accepted);
#  - C-MOVE's destination is a storescp on the core's side (the edge's reverse path towards the
#    hospital network is tested with it, by the edge's own tests).
# Debian's getscu and movescu are built without TLS: they reach the edge through a local
# stunnel4 client holding the modality's certificate (findscu uses its own +tls).
# The policy already carries "services" and "read_scope" (the edge's grants, issue 15); until the
# edge sends them in its PROXY v2 grants TLV, the core's "clients" entries (by calling AE title)
# give the same grants, so the test means the same before and after.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-qr-edge.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
export TCP_NODELAY=1
PY=/usr/bin/python3
rc=0
fail() { echo "FAIL: $*"; rc=1; }
ok() { echo "ok   $*"; }

bash "$src/tests/support/test_pki.sh" "$T/pki" >/dev/null 2>&1 || { echo "no test PKI"; exit 1; }
CP=$(port) EP=$(port) HP=$(port) DP=$(port)
ALL='"store", "echo", "find", "get", "move"'
start_core c "$CP" ", \"proxy_protocol\": { \"trusted\": [\"127.0.0.1/32\"] },
  \"tls\": { \"cert\": \"$T/pki/server.crt\", \"key\": \"$T/pki/server.key\",
             \"client_ca\": \"$T/pki/ca.crt\", \"crl\": \"$T/pki/crl.pem\" },
  \"clients\": [ { \"calling_ae\": [\"CT_ROOM1\", \"MR_ROOM2\"], \"services\": [$ALL],
                   \"read_scope\": \"own\" },
                 { \"calling_ae\": [\"US_ROOM3\"], \"services\": [\"store\", \"echo\"] } ],
  \"ae_peers\": { \"DEST\": { \"host\": \"127.0.0.1\", \"port\": $DP } }" ||
    { echo "core did not start"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": [
    { "id": "ct-room-1", "match": { "subject_cn": "ct-room-1" }, "calling_ae": ["CT_ROOM1"],
      "called_ae": ["DICOM_CORE"], "route": "core", "services": [$ALL], "read_scope": "own" },
    { "id": "mr-room-2", "match": { "subject_cn": "mr-room-2" }, "calling_ae": ["MR_ROOM2"],
      "called_ae": ["DICOM_CORE"], "route": "core", "services": [$ALL], "read_scope": "own" },
    { "id": "us-room-3", "match": { "subject_cn": "us-room-3" }, "calling_ae": ["US_ROOM3"],
      "called_ae": ["DICOM_CORE"], "route": "core", "services": ["store", "echo"] } ],
  "routes": { "core": { "upstream": "127.0.0.1:$CP", "proxy_protocol": true,
                        "tls": { "ca": "$T/pki/ca.crt", "cert": "$T/pki/edge-client.crt",
                                 "key": "$T/pki/edge-client.key" } } } }
JSON
write_edge_config "$EP" "$HP"
start_edge "$EP" || { echo "edge did not start"; tail "$T/edge.log"; exit 1; }

gen() { $PY "$src/tests/support/qr_data.py" "$@"; }
S1=$(gen --out "$T/in/ct" --patient-id E1 --patient-name "EDGE^ONE" --study-date 20220101 --instances 3)
S2=$(gen --out "$T/in/mr" --patient-id E2 --patient-name "EDGE^TWO" --study-date 20220202 --instances 2)
scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" "$T"/in/ct/*.dcm >"$T/s1.out" 2>&1 || fail "store ct1: $(tail -2 "$T/s1.out")"
scu storescu mr2 MR_ROOM2 DICOM_CORE "$EP" "$T"/in/mr/*.dcm >"$T/s2.out" 2>&1 || fail "store mr2: $(tail -2 "$T/s2.out")"
for _ in $(seq 100); do
    [[ $(grep -c '"sop"' "$T/c/store/qr_index.jsonl" 2>/dev/null) -ge 5 ]] && break
    sleep 0.1
done

qfind() { # OUT CERT AET [args]: pending count
    local out=$1 cert=$2 aet=$3
    shift 3
    scu findscu "$cert" "$aet" DICOM_CORE "$EP" -v -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID \
        "$@" >"$T/$out.out" 2>&1
    grep -ac 'Find Response:.*(Pending)' "$T/$out.out"
}
n=$(qfind f1 ct1 CT_ROOM1)
[[ $n -eq 1 ]] && grep -aq "$S1" "$T/f1.out" && ok "ct-room-1 finds its own study only, over +tls through the edge" ||
    fail "ct-room-1: $n results $(grep -a Final "$T/f1.out")"
n=$(qfind f2 mr2 MR_ROOM2)
[[ $n -eq 1 ]] && grep -aq "$S2" "$T/f2.out" && ok "mr-room-2 finds its own study only" ||
    fail "mr-room-2: $n results $(grep -a Final "$T/f2.out")"
grep -aq '"ev":"c_find".*"client_id":"ct-room-1"' "$T/c/core.log" || fail "the core did not name the client by its policy id"

# tunnel NAME CERT: a TLS client on 127.0.0.1:$TUN_NAME with the certificate CERT, to the edge
tunnel() {
    local p
    p=$(port)
    cat >"$T/$1.stunnel" <<CONF
foreground = yes
pid =
[t]
client = yes
accept = 127.0.0.1:$p
connect = 127.0.0.1:$EP
cert = $T/pki/$2.crt
key = $T/pki/$2.key
CAfile = $T/pki/ca.crt
verifyChain = yes
CONF
    stunnel4 "$T/$1.stunnel" 2>"$T/$1.stunnel.log" &
    remember $!
    wait_port "$p"
    eval "TUN_$1=$p"
}
tunnel ct ct1
tunnel mr mr2
mkdir -p "$T/got1" "$T/got_x"
getscu -S -aet CT_ROOM1 -aec DICOM_CORE -od "$T/got1" 127.0.0.1 "$TUN_ct" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$S1" >"$T/g1.out" 2>&1
same_objects "$T/in/ct" "$T/got1" >/dev/null && ok "C-GET over TLS through the edge: byte-identical" ||
    fail "C-GET through the edge: $(tail -3 "$T/g1.out")"
getscu -v -S -aet MR_ROOM2 -aec DICOM_CORE -od "$T/got_x" 127.0.0.1 "$TUN_mr" \
    -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$S1" >"$T/gx.out" 2>&1
[[ -z $(ls "$T/got_x") ]] && grep -aq '0x124' "$T/gx.out" && ok "mr-room-2 cannot C-GET ct-room-1's study (0124)" ||
    fail "C-GET across clients: $(grep -a Response "$T/gx.out")"

start_storescp dst "$DP"
movescu -v -S -aet CT_ROOM1 -aec DICOM_CORE -aem DEST 127.0.0.1 "$TUN_ct" \
    -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$S1" >"$T/m1.out" 2>&1
same_objects "$T/in/ct" "$T/dst/out" >/dev/null && ok "C-MOVE over TLS through the edge to a storescp" ||
    fail "C-MOVE through the edge: $(grep -a Final "$T/m1.out")"

scu findscu us3 US_ROOM3 DICOM_CORE "$EP" -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID \
    >"$T/f3.out" 2>&1
grep -aq 'No Acceptable Presentation Contexts\|Association Rejected' "$T/f3.out" &&
    ok "a client without find is refused ($(grep -ao 'No Acceptable Presentation Contexts\|Association Rejected' "$T/f3.out" | head -1))" ||
    fail "client without find: $(tail -2 "$T/f3.out")"
grep -ai 'EDGE^ONE\|EDGE^TWO' "$T/c/core.log" "$T/edge.log" && fail "patient data in a log"
if [[ $rc -ne 0 ]]; then
    tail -5 "$T/g1.out" "$T/m1.out" "$T"/*.stunnel.log
    tail -20 "$T/c/core.log"
    tail -10 "$T/edge.log"
fi
exit $rc
