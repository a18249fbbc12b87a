#!/usr/bin/env bash
# TLS on dicom-core's own DICOM listener (core.json "tls"), alone and behind dicom-edge:
#  - storescu +tls straight to the core (mutual TLS): byte-identical, the core names the
#    association by the client certificate's CN; a client without a certificate is refused with
#    a tls_refused line;
#  - storescu +tls -> edge -> core over TLS with the edge's client certificate and a PROXY v2
#    header (in clear before the TLS records): byte-identical, the core names the association by
#    the modality's CN (from the header), not the edge's;
#  - SIGHUP on the core with a broken TLS key keeps the old TLS set.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-edge-ctls.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }
if [[ -n "${GW_SANITIZED:-}" ]]; then big_n=20; else big_n=60; fi

bash "$src/tests/support/test_pki.sh" "$T/pki"
cp "$T/pki/server.key" "$T/core.key"
CP=$(port)
EP=$(port)
HP=$(port)
start_core c1 "$CP" ", \"proxy_protocol\": { \"trusted\": [\"127.0.0.1/32\"] },
  \"tls\": { \"cert\": \"$T/pki/server.crt\", \"key\": \"$T/core.key\",
             \"client_ca\": \"$T/pki/ca.crt\", \"crl\": \"$T/pki/crl.pem\" }"
CORE=$CORE_PID_c1
grep -q '"tls":true' "$T/c1/core.log" || fail "the core does not say it listens with TLS"
make_dicom "$T/data" 5 256 256
make_dicom "$T/big" "$big_n" 512 512

# direct, mutual TLS (the core expects PROXY v2 from 127.0.0.1: direct clients come from
# elsewhere in real life, so here a second core without proxy_protocol takes them)
CP2=$(port)
start_core c2 "$CP2" ", \"tls\": { \"cert\": \"$T/pki/server.crt\", \"key\": \"$T/pki/server.key\",
             \"client_ca\": \"$T/pki/ca.crt\", \"crl\": \"$T/pki/crl.pem\" }"
scu storescu ct1 CT_ROOM1 DICOM_CORE "$CP2" "$T"/data/*.dcm >"$T/d.out" 2>&1 ||
    fail "storescu +tls straight to the core: $(tail -3 "$T/d.out")"
for _ in $(seq 50); do
    [[ $(find "$T/c2/store" -name '*.dcm' 2>/dev/null | wc -l) -ge 5 ]] && break
    sleep 0.1
done
same_objects "$T/data" "$T/c2/store" || fail "direct TLS copy differs"
grep -q '"cert_cn":"ct-room-1"' "$T/c2/core.log" || fail "the core did not name the client by its CN"
TCP_NODELAY=1 echoscu +tla +cf "$T/pki/ca.crt" -aet X -aec DICOM_CORE 127.0.0.1 "$CP2" \
    >/dev/null 2>&1 && fail "a client without certificate was admitted by the core"
wait_log "$T/c2/core.log" '"ev":"tls_refused".*"reason":"no_certificate"' 50 ||
    fail "no tls_refused line in the core's log"

# through the edge: TLS + PROXY v2 to the core
cat >"$T/policy.json" <<JSON
{ "clients": [ { "id": "ct-room-1", "match": { "subject_cn": "ct-room-1" },
                 "calling_ae": ["CT_ROOM1"], "called_ae": ["DICOM_CORE"], "route": "core" } ],
  "routes": { "core": { "upstream": "127.0.0.1:$CP", "proxy_protocol": true,
                        "tls": { "ca": "$T/pki/ca.crt", "cert": "$T/pki/edge-client.crt",
                                 "key": "$T/pki/edge-client.key" } } } }
JSON
write_edge_config "$EP" "$HP"
start_edge "$EP"
scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" "$T"/data/*.dcm "$T"/big/*.dcm >"$T/e.out" 2>&1 ||
    fail "storescu through edge to core over TLS: $(tail -3 "$T/e.out")"
mkdir -p "$T/all"
for f in "$T"/data/*.dcm; do cp "$f" "$T/all/d_${f##*/}"; done
for f in "$T"/big/*.dcm; do cp "$f" "$T/all/b_${f##*/}"; done
total=$((5 + big_n))
for _ in $(seq 100); do
    [[ $(find "$T/c1/store" -name '*.dcm' 2>/dev/null | wc -l) -ge $total ]] && break
    sleep 0.1
done
same_objects "$T/all" "$T/c1/store" || fail "edge -> core TLS copy differs"
grep -q '"cert_cn":"ct-room-1"' "$T/c1/core.log" || fail "the core did not get the modality's CN"
grep -q '"cert_cn":"dicom-edge"' "$T/c1/core.log" && fail "the core named the edge, not the modality"

# reload with a broken key keeps the old TLS set
echo "not a key" >"$T/core.key"
kill -HUP "$CORE"
wait_log "$T/c1/core.log" '"ev":"reload_refused"' 50 || fail "the core accepted a broken TLS key"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >/dev/null 2>&1 || fail "C-ECHO after the refused reload"

kill -TERM "$EDGE_PID"
wait "$EDGE_PID" || fail "dicom-edge exited non-zero on SIGTERM"
kill -TERM "$CORE"
wait "$CORE" || fail "dicom-core exited non-zero on SIGTERM"
if [[ $rc -ne 0 ]]; then
    echo "--- edge log (tail)"
    tail -20 "$T/edge.log"
    echo "--- core log (tail)"
    tail -20 "$T/c1/core.log"
fi
exit $rc
