#!/usr/bin/env bash
# The local chain of compose/docker-compose.yml, natively (no Docker): compose/init-pki.sh makes
# the PKI with certs/pki; dicom-core runs compose/config/core.json and dicom-edge
# compose/config/edge.json with the policy init-pki wrote, each with its addresses moved to free
# loopback ports (the core trusts PROXY v2 from 127.0.0.1, where the edge now is). storescu +tls
# with modality1's files stores a study through the edge into the core's file store, and the
# core records the modality's certificate identity from the edge's PROXY header; the other
# modality's certificate used with MODALITY1's AE title is refused by the edge (reason 3).
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
py=python3
tmp=$(mktemp -d)
source "$src/tests/support/deploy_lib.sh"
trap deploy_cleanup EXIT
core=$build/core/dicom-core
edge=$build/edge/dicom-edge
for x in "$core" "$edge" "$src/certs/pki"; do [[ -x $x ]] || { echo "FAIL $x missing"; exit 1; }; done
command -v storescu >/dev/null || { echo "FAIL DCMTK storescu missing"; exit 1; }
checks=$src/tests/support/deploy_checks.py
export TCP_NODELAY=1

pki=$tmp/pki
mkdir -p "$pki"
PKI_TOOL=$src/certs/pki GW_PKI_ROOT=$pki GW_POLICY_ROUTES=$src/compose/config/policy-routes.json \
    bash "$src/compose/init-pki.sh" >"$tmp/init.log" 2>&1 || { echo "FAIL init-pki"; cat "$tmp/init.log"; exit 1; }

cp1=$(free_port); cp2=$(free_port); ep1=$(free_port); ep2=$(free_port)
$py "$checks" rewrite "$src/compose/config/core.json" "$tmp/core0.json" "/pki=$pki" "/var/lib/dicom-core=$tmp/core" >/dev/null
jq --arg l "127.0.0.1:$cp1" --arg h "127.0.0.1:$cp2" \
    '.listen = $l | .http_listen = $h | .proxy_protocol.trusted = ["127.0.0.1/32"]' "$tmp/core0.json" >"$tmp/core.json"
$py "$checks" rewrite "$pki/policy.json" "$tmp/policy0.json" "/pki=$pki" >/dev/null
jq --arg u "127.0.0.1:$cp1" '.routes.local.upstream = $u' "$tmp/policy0.json" >"$pki/policy.json"
$py "$checks" rewrite "$src/compose/config/edge.json" "$tmp/edge0.json" "/pki=$pki" >/dev/null
jq --arg l "127.0.0.1:$ep1" --arg h "127.0.0.1:$ep2" '.listen = $l | .http_listen = $h' "$tmp/edge0.json" >"$tmp/edge.json"

start() { # name port-to-wait command...
    local name=$1 port=$2
    shift 2
    "$@" 2>"$tmp/$name.log" &
    pids+=($!)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "FAIL $name did not become healthy"; tail -5 "$tmp/$name.log"; exit 1
}
# does this build's core terminate TLS on its listener (compose's core.json asks it to)? Probe a
# copy without PROXY v2 (a bare TLS client sends no PROXY header)
pp1=$(free_port); pp2=$(free_port)
jq --arg l "127.0.0.1:$pp1" --arg h "127.0.0.1:$pp2" --arg sp "$tmp/probe" \
    'del(.proxy_protocol) | .listen = $l | .http_listen = $h | .spool_dir = $sp | .backend.dir = $sp + "/store"' \
    "$tmp/core.json" >"$tmp/probe.json"
start probe "$pp2" "$core" --config "$tmp/probe.json"
hello=$(timeout 5 openssl s_client -connect "127.0.0.1:$pp1" -cert "$pki/data/edge-clients/edge/chain.pem" \
    -key "$pki/data/edge-clients/edge/key.pem" -CAfile "$pki/data/trust/infra-ca-chain.pem" </dev/null 2>&1 || true)
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset "pids[-1]"
if [[ $hello =~ New,\ TLSv1\.[23],\ Cipher\ is\ [A-Z] ]]; then
    echo "core terminates TLS on its listener: compose's core.json and route TLS as they are"
    start core "$cp2" "$core" --config "$tmp/core.json"
else
    echo "note: this core does not terminate TLS yet (its tls keys are ignored): the edge-to-core hop runs plain here"
    jq 'del(.tls)' "$tmp/core.json" >"$tmp/core-plain.json"
    jq 'del(.routes.local.tls)' "$pki/policy.json" >"$tmp/p" && mv "$tmp/p" "$pki/policy.json"
    start core "$cp2" "$core" --config "$tmp/core-plain.json"
fi
start edge "$ep2" "$edge" --config "$tmp/edge.json"

/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$tmp/study" --count 3 --modality CT >/dev/null
m=$pki/data/modalities
check "storescu +tls (modality1, MODALITY1) through the edge stores the study" \
    storescu +tls "$m/modality1/key.pem" "$m/modality1/cert.pem" +cf "$m/modality1/ca.pem" \
    -aet MODALITY1 -aec DICOM_CORE 127.0.0.1 "$ep1" "$tmp"/study/*.dcm
stored() {
    local f uid
    for f in "$tmp"/study/*.dcm; do
        uid=$(/usr/bin/python3 -c 'import sys,pydicom; print(pydicom.dcmread(sys.argv[1]).SOPInstanceUID)' "$f")
        ls "$tmp"/core/store/dicom/*/"$uid.dcm" >/dev/null 2>&1 || return 1
    done
}
for _ in $(seq 100); do stored && break; sleep 0.1; done
check "every object is in the core's file store" stored
check "the core knows the modality's certificate from the edge's PROXY header" \
    grep -q '"cert_cn":"modality1"' "$tmp/core.log"
expect_fail "modality-aws's certificate with MODALITY1's AE title is refused" \
    storescu +tls "$m/modality-aws/key.pem" "$m/modality-aws/cert.pem" +cf "$m/modality-aws/ca.pem" \
    -aet MODALITY1 -aec DICOM_CORE 127.0.0.1 "$ep1" "$tmp"/study/*.dcm
check "... by the edge: A-ASSOCIATE-RJ reason 3, with an audit line" \
    grep -q '"decision":"reject","reason":"calling_ae_not_allowed".*"rj_reason":3' "$tmp/edge.log"
((failed == 0)) || { echo "--- core"; tail -5 "$tmp/core.log"; echo "--- edge"; tail -5 "$tmp/edge.log"; }
exit $failed
