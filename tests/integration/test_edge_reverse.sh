#!/usr/bin/env bash
# The reverse path (issue 16 "Through the edge", used by C-MOVE in issue 15) and the edge's
# status (issue 17), with the PKI of certs/pki and real DCMTK peers standing in for the core and
# for the devices on the hospital LAN:
#  - the core's client certificate (`pki core-client`, infrastructure CA) calling a device's AE
#    title on the reverse port: echoscu reaches the device's storescp at its return address
#    (`pki onboard --return-address`), plain TCP; storescu (what the core sends as C-MOVE
#    sub-operations) lands byte-identical files there; a device whose return address says TLS is
#    reached over mutual TLS (the policy's device_tls);
#  - refused: a modality certificate at TLS (its CA is not the infrastructure CA), an unknown
#    called AE title and a device without a return address (A-ASSOCIATE-RJ called AE title not
#    recognised), a device whose services do not cover what is asked, an infrastructure
#    certificate not in reverse.allow_cn (calling AE title not recognised), a second association
#    to a device past reverse.max_per_device (transient, local limit);
#  - `dicom-edge status` (JSON and text) shows the live reverse association by client, the last
#    hour's refusals by reason, the reverse listener's certificate and CRL dates, and the policy
#    generation before and after a SIGHUP.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-edge-reverse.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }
EDGE=$build/edge/dicom-edge
P=$T/pki
pki() { "$src/certs/pki" --dir "$P" "$@"; }

EP=$(port)
HP=$(port)
RP=$(port)
DP=$(port)  # the plain device
TDP=$(port) # the device with TLS
pki init --org "Test Org" --edge-host 127.0.0.1 --edge-port "$EP" >/dev/null || exit 1
pki server --name edge --dns localhost --ip 127.0.0.1 >/dev/null || exit 1
pki core-client --name dicom-core >/dev/null || exit 1
pki edge-client --name stray >/dev/null || exit 1 # infrastructure, but not the core
bash "$src/tests/support/test_pki.sh" "$T/dev" # the devices' own PKI (hospital's)
cat >"$T/policy.json" <<JSON
{ "clients": [], "routes": { "core": { "upstream": "127.0.0.1:9" } },
  "device_tls": { "ca": "$T/dev/ca.crt", "cert": "$T/dev/edge-client.crt",
                  "key": "$T/dev/edge-client.key" } }
JSON
onboard() { pki onboard --route core --policy "$T/policy.json" --generate-key "$@" >"$T/onboard.out" 2>&1 ||
    fail "onboard $*: $(tail -3 "$T/onboard.out")"; }
onboard --name ct1 --calling-ae CT_ROOM1 --services store,echo,commit --return-address "127.0.0.1:$DP"
grep -q "It listens on:               127.0.0.1 port $DP" "$T/onboard.out" ||
    fail "onboard does not tell the engineer the device's SCP: $(cat "$T/onboard.out")"
onboard --name mod2 --calling-ae MOD2 --services commit --return-address "localhost:$DP"
# a device without a return address: an entry as any onboarding writes it (test_certs_pki covers that)
jq '.clients += [{ id: "ws3", match: { subject_cn: "ws3" }, calling_ae: ["WS3"], called_ae: ["DICOM_CORE"],
    route: "core" }]' "$T/policy.json" >"$T/policy.new" && mv "$T/policy.new" "$T/policy.json"
onboard --name tls4 --calling-ae TLS4 --return-address "127.0.0.1:$TDP" --return-tls
jq -e --argjson p "$DP" '.clients[0].return_address == {host: "127.0.0.1", port: $p} and
    .clients[0].services == ["commit", "echo", "store"] and (.clients[2] | has("return_address") | not) and
    .clients[3].return_address.tls == true' "$T/policy.json" >/dev/null ||
    fail "policy entries: $(jq -c .clients "$T/policy.json")"

mkdir -p "$T/dev1/out" "$T/dev4/out"
TCP_NODELAY=1 storescp -v -aet CT_ROOM1 -od "$T/dev1/out" +B "$DP" >"$T/dev1/scp.log" 2>&1 &
remember $!
TCP_NODELAY=1 storescp -v -aet TLS4 -od "$T/dev4/out" +B +tls "$T/dev/server.key" "$T/dev/server.crt" \
    +cf "$T/dev/ca.crt" "$TDP" >"$T/dev4/scp.log" 2>&1 &
remember $!
wait_port "$DP"
wait_port "$TDP"

cat >"$T/edge.json" <<JSON
{ "listen": "127.0.0.1:$EP", "http_listen": "127.0.0.1:$HP",
  "tls": { "cert": "$P/servers/edge/chain.pem", "key": "$P/servers/edge/key.pem",
           "client_ca": "$P/trust/modality-ca-chain.pem", "crl": "$P/crl/modality.crl.pem" },
  "policy": "$T/policy.json",
  "reverse": { "listen": "127.0.0.1:$RP",
               "tls": { "client_ca": "$P/trust/infra-ca.pem", "crl": "$P/crl/infra.crl.pem" },
               "allow_cn": ["dicom-core"], "max_per_device": 1 } }
JSON
"$EDGE" --check-config --config "$T/edge.json" >"$T/check.out" 2>&1 || fail "check-config: $(cat "$T/check.out")"
grep -q "4 clients, 1 routes, 3 devices; reverse path 127.0.0.1:$RP" "$T/check.out" ||
    fail "check-config summary: $(cat "$T/check.out")"
start_edge "$EP"
wait_port "$RP"
make_dicom "$T/data" 4 128 128

CORE_KEY=$P/core-clients/dicom-core/key.pem
CORE_CERT=$P/core-clients/dicom-core/chain.pem
INFRA=$P/trust/infra-ca-chain.pem
as_core() { # tool called-ae [args...]: a DCMTK client with the core's certificate, reverse port
    local tool=$1 called=$2
    shift 2
    TCP_NODELAY=1 "$tool" +tls "$CORE_KEY" "$CORE_CERT" +cf "$INFRA" -aet DICOM_CORE -aec "$called" \
        127.0.0.1 "$RP" "$@"
}

# 1. C-ECHO through the reverse path reaches the device at its return address
as_core echoscu CT_ROOM1 >"$T/echo.out" 2>&1 || fail "reverse echo: $(tail -3 "$T/echo.out")"
wait_log "$T/dev1/scp.log" "Received Echo Request" 50 || fail "the device's storescp saw no C-ECHO"
grep -q '"path":"reverse".*"calling_ae":"DICOM_CORE","called_ae":"CT_ROOM1","decision":"admit".*"client":"ct1","route":"device:ct1"' \
    "$T/edge.log" || fail "no reverse admission line"

# 2. C-STORE as C-MOVE sub-operations would come: files land at the device, identical
as_core storescu CT_ROOM1 "$T"/data/*.dcm >"$T/store.out" 2>&1 || fail "reverse store: $(tail -3 "$T/store.out")"
same_objects "$T/data" "$T/dev1/out" || fail "the device's copies differ"

# 3. a device over TLS (device_tls, mutual)
as_core echoscu TLS4 >"$T/echo4.out" 2>&1 || fail "reverse echo to a TLS device: $(tail -3 "$T/echo4.out")"
wait_log "$T/dev4/scp.log" "Received Echo Request" 50 || fail "the TLS device saw no C-ECHO"

# 4. refusals
TCP_NODELAY=1 echoscu +tls "$P/modalities/ct1/key.pem" "$P/modalities/ct1/cert.pem" +cf "$INFRA" \
    -aet CT_ROOM1 -aec CT_ROOM1 127.0.0.1 "$RP" >"$T/mod.out" 2>&1 &&
    fail "a modality certificate passed the reverse listener's TLS"
wait_log "$T/edge.log" '"ev":"tls_refused".*"reason":"unknown_ca"' 50 ||
    fail "no tls_refused unknown_ca line for the modality certificate"
rj() { # label want-reason-text called [cert key]: echoscu refused with that text
    local label=$1 want=$2 called=$3 cert=${4:-$CORE_CERT} key=${5:-$CORE_KEY}
    TCP_NODELAY=1 echoscu +tls "$key" "$cert" +cf "$INFRA" -aet DICOM_CORE -aec "$called" 127.0.0.1 "$RP" \
        >"$T/rj.out" 2>&1 && { fail "$label: admitted"; return; }
    grep -q "$want" "$T/rj.out" || fail "$label: $(grep -A3 Rejected "$T/rj.out" | head -4)"
}
rj "unknown called AE" "Called AE Title Not Recognized" NOBODY
rj "device without a return address" "Called AE Title Not Recognized" WS3
rj "echo to a commit-only device" "Called AE Title Not Recognized" MOD2
rj "infrastructure certificate not in allow_cn" "Calling AE Title Not Recognized" CT_ROOM1 \
    "$P/edge-clients/stray/chain.pem" "$P/edge-clients/stray/key.pem"
grep -q '"path":"reverse".*"decision":"reject","reason":"reverse_service_not_allowed".*"services_asked":"echo"' \
    "$T/edge.log" || fail "no reverse_service_not_allowed line"

# 5. one association per device at most here: a held one, then a second is refused (transient)
mkdir -p "$T/hp"
ln -s "$INFRA" "$T/hp/ca.crt"
ln -s "$CORE_CERT" "$T/hp/core.crt"
ln -s "$CORE_KEY" "$T/hp/core.key"
/usr/bin/python3 "$src/tests/support/edge_peer.py" hold "$RP" "$T/hp" core DICOM_CORE CT_ROOM1 \
    "$T/release" >"$T/hold.out" 2>&1 &
holdpid=$!
wait_log "$T/hold.out" held 100 || fail "could not hold a reverse association: $(cat "$T/hold.out")"
rj "second association to one device" "Local Limit Exceeded" CT_ROOM1

# 6. dicom-edge status, while the association is held
"$EDGE" status --config "$T/edge.json" --json >"$T/status.json" 2>"$T/status.err" ||
    fail "status --json: $(cat "$T/status.err")"
jq -e '.reverse.enabled and .reverse.associations == 1 and .associations == 0 and
    any(.clients[]; .client == "ct1" and .path == "reverse" and .associations == 1) and
    any(.refusals_last_hour[]; .path == "reverse" and .reason == "called_ae_not_recognized" and .count == 2) and
    any(.refusals_last_hour[]; .path == "reverse" and .reason == "unknown_ca" and .count == 1) and
    any(.refusals_last_hour[]; .reason == "max_associations" and .count == 1) and
    .refused_last_hour >= 6 and
    any(.certificates[]; .what == "reverse.tls.client_ca" and .days_left > 300) and
    any(.certificates[]; .what == "tls.cert" and .days_left > 300) and
    any(.crls[]; .what == "reverse.tls.crl" and .next_update > .now) and
    .policy.generation == 1 and .policy.devices == 3 and .policy.clients == 4 and
    (.audit.enabled | not)' "$T/status.json" >/dev/null || fail "status: $(jq -c . "$T/status.json")"
infra_end=$(date -d "$(openssl x509 -in "$P/trust/infra-ca.pem" -noout -enddate | cut -d= -f2)" +%s)
jq -e --argjson e "$infra_end" 'any(.certificates[]; .what == "reverse.tls.client_ca" and .not_after == $e)' \
    "$T/status.json" >/dev/null || fail "reverse.tls.client_ca date is not the infrastructure CA's notAfter"
"$EDGE" status --config "$T/edge.json" >"$T/status.txt" 2>&1 || fail "status: $(cat "$T/status.txt")"
grep -qE '^  ct1 +reverse +1$' "$T/status.txt" || fail "status text has no live ct1 line: $(cat "$T/status.txt")"
grep -q "^Policy: generation 1," "$T/status.txt" || fail "status text: no policy generation"
grep -qE '^  reverse +called_ae_not_recognized +2$' "$T/status.txt" || fail "status text: refusals"
touch "$T/release"
wait "$holdpid" || fail "the held reverse association did not release: $(cat "$T/hold.out")"

# 7. a reload: a new policy generation, the file's hash, the devices still reached
kill -HUP "$EDGE_PID"
for _ in $(seq 50); do
    "$EDGE" status --config "$T/edge.json" --json 2>/dev/null | jq -e '.policy.generation == 2' >/dev/null && break
    sleep 0.1
done
"$EDGE" status --config "$T/edge.json" --json >"$T/status2.json" 2>&1
jq -e --arg h "$(sha256sum "$T/policy.json" | cut -d' ' -f1)" \
    '.policy.generation == 2 and .policy.sha256 == $h and .reverse.associations == 0' "$T/status2.json" \
    >/dev/null || fail "status after SIGHUP: $(jq -c .policy "$T/status2.json")"
as_core echoscu CT_ROOM1 >/dev/null 2>&1 || fail "reverse echo after the reload"
curl -fs "http://127.0.0.1:$HP/metrics" >"$T/metrics.txt"
grep -q '^dicom_edge_reverse_handshakes_total{result="failed",reason="unknown_ca"} 1$' "$T/metrics.txt" ||
    fail "reverse handshake failure not counted: $(grep reverse_handshakes "$T/metrics.txt")"
grep -q '^dicom_edge_reverse_associations_total{decision="reject",reason="called_ae_not_recognized"} 2$' \
    "$T/metrics.txt" || fail "reverse rejections not counted"

# 8. status with the edge gone: a clear error, exit 1
kill -TERM "$EDGE_PID"
wait "$EDGE_PID" || fail "dicom-edge exited non-zero on SIGTERM"
"$EDGE" status --config "$T/edge.json" >"$T/status3.out" 2>&1
st=$?
[[ $st == 1 ]] && grep -q "cannot reach the edge" "$T/status3.out" ||
    fail "status without an edge: exit $st: $(cat "$T/status3.out")"
if [[ $rc -ne 0 ]]; then
    echo "--- edge log (tail)"
    tail -25 "$T/edge.log"
fi
exit $rc
