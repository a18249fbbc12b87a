#!/usr/bin/env bash
# The onboarding workflow end to end, through a running dicom-edge and dicom-core, with DCMTK
# storescu +tls as the modality and every certificate and policy entry made by certs/pki:
# onboard (device CSR) -> store succeeds -> revoke -> refused -> onboard again with a new key ->
# store succeeds; a certificate used with an AE title it is not bound to -> A-ASSOCIATE-RJ
# permanent, reason 3 (and a wrong called AE title -> reason 7); the edge -> core hop over TLS
# with the edge's client certificate from the same PKI (to storescp +tls as the TLS-terminating
# upstream), refused once that certificate is revoked.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
PKI_BIN=$src/certs/pki
T=$(mktemp -d /tmp/gw-certs-edge.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    [[ -n ${KEEP:-} ]] && { echo "kept $T"; return; }
    rm -rf "$T"
}
trap cleanup EXIT
export TCP_NODELAY=1
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
pki() { "$PKI_BIN" --dir "$T/pki" "$@"; }

# until edge/ is part of the source tree there is nothing to run against; once it is, a missing
# binary is a failure
if [[ ! -f $src/edge/CMakeLists.txt ]]; then
    echo "SKIP: no edge/ in this source tree yet (dicom-edge not merged)"
    exit 0
fi
for b in "$build/edge/dicom-edge" "$build/core/dicom-core"; do
    [[ -x $b ]] || { echo "FAIL - $b is not built"; exit 1; }
done

# synthetic objects (no patient data): Secondary Capture, 2x2 pixels, one UID per file
mkobj() { # out uid-suffix
    cat >"$T/obj.dump" <<EOF
(0008,0016) UI =SecondaryCaptureImageStorage
(0008,0018) UI [1.2.826.0.1.3680043.8.498.99.$2]
(0008,0060) CS [OT]
(0010,0010) PN [SYNTHETIC^TEST]
(0020,000d) UI [1.2.826.0.1.3680043.8.498.99]
(0020,000e) UI [1.2.826.0.1.3680043.8.498.99.0]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US 2
(0028,0011) US 2
(0028,0100) US 8
(0028,0101) US 8
(0028,0102) US 7
(0028,0103) US 0
(7fe0,0010) OB 00\01\02\03
EOF
    dump2dcm +te -g "$T/obj.dump" "$1" || { echo "dump2dcm failed"; exit 1; }
}

CP=$(port)  # dicom-core, plain TCP
SP=$(port)  # storescp +tls: a TLS upstream that checks the edge's client certificate
EP=$(port)  # dicom-edge
HP=$(port)  # edge's /healthz, /metrics

# ---------------------------------------------------------------------------- PKI and programs
pki init --org "Test Hospital" --edge-host 127.0.0.1 --edge-port "$EP" >/dev/null 2>&1 || { echo "FAIL - pki init"; exit 1; }
pki server --name edge --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || { echo "FAIL - pki server edge"; exit 1; }
pki server --name core --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || { echo "FAIL - pki server core"; exit 1; }
pki edge-client --name edge >/dev/null 2>&1 || { echo "FAIL - pki edge-client"; exit 1; }
K=$T/pki

cat >"$T/policy.json" <<JSON
{ "clients": [],
  "routes": {
    "core": { "upstream": "127.0.0.1:$CP" },
    "tlscore": { "upstream": "127.0.0.1:$SP",
                 "tls": { "cert": "$K/edge-clients/edge/chain.pem", "key": "$K/edge-clients/edge/key.pem",
                          "ca": "$K/trust/infra-ca-chain.pem", "server_name": "localhost" } } } }
JSON
cat >"$T/edge.json" <<JSON
{ "listen": "127.0.0.1:$EP", "http_listen": "127.0.0.1:$HP",
  "tls": { "cert": "$K/servers/edge/chain.pem", "key": "$K/servers/edge/key.pem",
           "client_ca": "$K/trust/modality-ca-chain.pem", "crl": "$K/crl/modality.crl.pem",
           "crl_check": "chain" },
  "policy": "$T/policy.json" }
JSON
cat >"$T/core.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$CP", "http_listen": "",
  "spool_dir": "$T/spool", "min_free_bytes": 0, "fsync": false,
  "backend": { "type": "file", "dir": "$T/store", "batch_max_age_ms": 200 } }
JSON
"$build/core/dicom-core" --config "$T/core.json" 2>"$T/core.log" &
pids+=("$!")
wait_port "$CP" || { echo "FAIL - dicom-core did not start"; cat "$T/core.log"; exit 1; }
"$build/edge/dicom-edge" --check-config --config "$T/edge.json" >"$T/check.out" 2>&1 ||
    bad "dicom-edge --check-config refuses the PKI's files: $(cat "$T/check.out")"
"$build/edge/dicom-edge" --config "$T/edge.json" 2>"$T/edge.log" &
EDGE_PID=$!
pids+=("$EDGE_PID")
wait_port "$EP" || { echo "FAIL - dicom-edge did not start"; cat "$T/edge.log"; exit 1; }

mkdir -p "$T/tlsout"
start_tls_upstream() { # storescp +tls with the core's server cert; trusts the infra CA, checks its CRL
    storescp +tls "$K/servers/core/key.pem" "$K/servers/core/cert.pem" +cf "$K/trust/infra-ca-chain.pem" \
        +crl "$K/crl/infra.crl.pem" +cra +uf -od "$T/tlsout" -aet DICOM_CORE "$SP" 2>>"$T/scp.log" &
    SCP_PID=$!
    pids+=("$SCP_PID")
    wait_port "$SP" || { echo "FAIL - storescp did not start"; cat "$T/scp.log"; exit 1; }
}
start_tls_upstream

# ---------------------------------------------------------------------------- helpers
reloads() { grep -c '"ev":"reloaded"' "$T/edge.log" 2>/dev/null || true; }
wait_reload() { # count-before: the edge logged one more reload
    for _ in $(seq 100); do (($(reloads) > $1)) && return 0; sleep 0.05; done
    return 1
}
stored() { find "$T/store" -name '*.dcm' 2>/dev/null | wc -l; }
wait_stored() { # n
    for _ in $(seq 100); do (($(stored) >= $1)) && return 0; sleep 0.1; done
    return 1
}
n_obj=0
store() { # key cert trust calling called out -> storescu status; one new object each time
    n_obj=$((n_obj + 1))
    mkobj "$T/o$n_obj.dcm" "$n_obj"
    storescu +tls "$1" "$2" +cf "$3" -aet "$4" -aec "$5" 127.0.0.1 "$EP" "$T/o$n_obj.dcm" >"$6" 2>&1
}
onboard() { # name calling route csr
    local before
    before=$(reloads)
    pki onboard --name "$1" --calling-ae "$2" --route "$3" --policy "$T/policy.json" --csr "$4" \
        --edge-pid "$EDGE_PID" >"$T/onboard-$1.txt" 2>&1 || { bad "onboard $1: $(tail -2 "$T/onboard-$1.txt")"; return 1; }
    wait_reload "$before" || bad "the edge did not log a reload after onboarding $1"
}
device_key() { # dir: a device makes its own key and CSR
    mkdir -p "$1"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/key.pem" 2>/dev/null
    openssl req -new -key "$1/key.pem" -subj /CN=device -out "$1/req.csr"
}

# ---------------------------------------------------------------------------- the cycle
device_key "$T/dev1"
onboard ct-room-1 CT_ROOM1 core "$T/dev1/req.csr"
M=$K/modalities/ct-room-1
before=$(stored)
if store "$T/dev1/key.pem" "$M/cert.pem" "$M/ca.pem" CT_ROOM1 DICOM_CORE "$T/s1.out" && wait_stored $((before + 1)); then
    ok "onboarded modality stores through the edge into the core"
else
    bad "onboarded modality could not store: $(tail -3 "$T/s1.out")"
fi

before_r=$(reloads)
pki revoke --name ct-room-1 --edge-pid "$EDGE_PID" >"$T/revoke.txt" 2>&1 || bad "revoke: $(cat "$T/revoke.txt")"
wait_reload "$before_r" || bad "the edge did not log a reload after the revoke"
R=$(ls -d "$K/revoked/ct-room-1."*)
before=$(stored)
if store "$T/dev1/key.pem" "$R/cert.pem" "$R/ca.pem" CT_ROOM1 DICOM_CORE "$T/s2.out"; then
    bad "a revoked certificate still stores"
else
    sleep 0.3
    # refused in the TLS handshake (the CRL), not by the policy (which would be A-ASSOCIATE-RJ)
    if (($(stored) == before)) && ! grep -q 'Association Rejected' "$T/s2.out"; then
        ok "revoked certificate refused in the TLS handshake ($(grep -m1 -oE 'Peer aborted Association|TLS error[^:]*' "$T/s2.out"))"
    else
        bad "revoked: $(tail -2 "$T/s2.out")"
    fi
fi
if grep -qE '"ev":"tls_[a-z_]+".*"reason":"revoked"' "$T/edge.log"; then
    ok "the edge logged the TLS refusal with reason revoked"
else
    bad "no TLS refusal with reason revoked in the edge log"
fi
# the policy entry alone would refuse it too: the CRL is what the TLS layer used; both are gone
jq -e '.clients == []' "$T/policy.json" >/dev/null && ok "revoke removed the policy entry" || bad "policy entry still there"

device_key "$T/dev2"
onboard ct-room-1 CT_ROOM1 core "$T/dev2/req.csr"
before=$(stored)
if store "$T/dev2/key.pem" "$M/cert.pem" "$M/ca.pem" CT_ROOM1 DICOM_CORE "$T/s3.out" && wait_stored $((before + 1)); then
    ok "onboarded again with a new key: stores"
else
    bad "re-onboarded modality could not store: $(tail -3 "$T/s3.out")"
fi
if store "$T/dev1/key.pem" "$R/cert.pem" "$R/ca.pem" CT_ROOM1 DICOM_CORE "$T/s4.out"; then
    bad "the old, revoked certificate stores again after re-onboarding"
else
    ok "the old certificate stays refused"
fi

# ---------------------------------------------------------------------------- AE title binding
device_key "$T/dev3"
onboard mr-2 MR_2 core "$T/dev3/req.csr"
M2=$K/modalities/mr-2
before=$(stored)
store "$T/dev3/key.pem" "$M2/cert.pem" "$M2/ca.pem" CT_ROOM1 DICOM_CORE "$T/s5.out"
if grep -q 'Association Rejected' "$T/s5.out" && grep -q 'Rejected Permanent' "$T/s5.out" &&
    grep -q 'Calling AE Title Not Recognized' "$T/s5.out" && (($(stored) == before)); then
    ok "a certificate used with another modality's calling AE title: A-ASSOCIATE-RJ permanent, reason 3"
    grep -qE '"ev":"admission".*"calling_ae":"CT_ROOM1".*"decision":"reject".*"rj_reason":3' "$T/edge.log" ||
        bad "the edge did not log the reason-3 rejection"
else
    bad "wrong calling AE title: $(grep -A3 'Association Rejected' "$T/s5.out" | tr '\n' ' ')"
fi
store "$T/dev3/key.pem" "$M2/cert.pem" "$M2/ca.pem" MR_2 NOT_OUR_CORE "$T/s6.out"
if grep -q 'Rejected Permanent' "$T/s6.out" && grep -q 'Called AE Title Not Recognized' "$T/s6.out"; then
    ok "a called AE title the certificate is not bound to: A-ASSOCIATE-RJ permanent, reason 7"
else
    bad "wrong called AE title: $(grep -A3 'Association Rejected' "$T/s6.out" | tr '\n' ' ')"
fi
if store "$T/dev3/key.pem" "$M2/cert.pem" "$M2/ca.pem" MR_2 DICOM_CORE "$T/s7.out" && wait_stored $((before + 1)); then
    ok "the same certificate with its own AE titles stores"
else
    bad "mr-2 with its own AE titles: $(tail -3 "$T/s7.out")"
fi

# ---------------------------------------------------------------------------- the core's own TLS listener
# The core trusts trust/infra-ca.pem alone (partial chain): the edge's client certificate gets in,
# a modality's (a sibling CA under the same root) never does, not even with its CA chain sent.
TP=$(port)
cat >"$T/core-tls.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$TP", "http_listen": "",
  "spool_dir": "$T/spool-tls", "min_free_bytes": 0, "fsync": false,
  "tls": { "cert": "$K/servers/core/chain.pem", "key": "$K/servers/core/key.pem",
           "client_ca": "$K/trust/infra-ca.pem", "crl": "$K/crl/infra.crl.pem" },
  "backend": { "type": "file", "dir": "$T/store-tls", "batch_max_age_ms": 200 } }
JSON
"$build/core/dicom-core" --config "$T/core-tls.json" 2>"$T/core-tls.log" &
pids+=("$!")
if wait_port "$TP"; then
    if echoscu +tls "$K/edge-clients/edge/key.pem" "$K/edge-clients/edge/chain.pem" +cf "$K/trust/infra-ca-chain.pem" \
        -aet EDGE -aec DICOM_CORE 127.0.0.1 "$TP" >"$T/ct1.out" 2>&1; then
        ok "the core's TLS listener admits the edge's client certificate (infra CA anchor)"
    else
        bad "the core's TLS listener refused the edge's certificate: $(tail -2 "$T/ct1.out"); $(tail -2 "$T/core-tls.log")"
    fi
    cat "$M2/cert.pem" "$K/trust/modality-ca-chain.pem" >"$T/m2-fullchain.pem"
    if echoscu +tls "$T/dev3/key.pem" "$T/m2-fullchain.pem" +cf "$K/trust/infra-ca-chain.pem" \
        -aet MR_2 -aec DICOM_CORE 127.0.0.1 "$TP" >"$T/ct2.out" 2>&1; then
        bad "a modality certificate (sent with its CA chain) reached the core directly, around the edge"
    else
        grep -q '"ev":"tls_refused"' "$T/core-tls.log" &&
            ok "a modality certificate cannot reach the core directly: refused in the TLS handshake" ||
            bad "modality certificate at the core: refused, but no tls_refused line in the core log"
    fi
else
    bad "dicom-core with TLS did not start: $(tail -3 "$T/core-tls.log")"
fi

# ---------------------------------------------------------------------------- edge -> core over TLS
device_key "$T/dev4"
onboard us-3 US_3 tlscore "$T/dev4/req.csr"
M3=$K/modalities/us-3
n=$(find "$T/tlsout" -type f | wc -l)
if store "$T/dev4/key.pem" "$M3/cert.pem" "$M3/ca.pem" US_3 DICOM_CORE "$T/s8.out" &&
    (($(find "$T/tlsout" -type f | wc -l) == n + 1)); then
    ok "edge -> TLS upstream with the edge's client certificate from the PKI: stores"
else
    bad "edge -> TLS upstream: $(tail -3 "$T/s8.out"); storescp: $(tail -2 "$T/scp.log")"
fi
pki revoke --kind edge-client --name edge >/dev/null 2>&1 || bad "revoke the edge's client certificate"
kill "$SCP_PID" 2>/dev/null
wait "$SCP_PID" 2>/dev/null
start_tls_upstream # storescp reads its CRL at start
n=$(find "$T/tlsout" -type f | wc -l)
if store "$T/dev4/key.pem" "$M3/cert.pem" "$M3/ca.pem" US_3 DICOM_CORE "$T/s9.out" ||
    (($(find "$T/tlsout" -type f | wc -l) != n)); then
    bad "the upstream accepted a revoked edge client certificate"
else
    ok "the upstream refuses the edge once its client certificate is revoked"
fi

kill -0 "$EDGE_PID" 2>/dev/null && ok "dicom-edge still running" || bad "dicom-edge died"
# after every reload, the edge still stops cleanly (and, under ASan, without leaks)
kill -TERM "$EDGE_PID"
for _ in $(seq 150); do kill -0 "$EDGE_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$EDGE_PID" 2>/dev/null; then
    bad "dicom-edge did not stop within 15 s of SIGTERM"
else
    wait "$EDGE_PID" 2>/dev/null
    erc=$?
    ((erc == 0)) && ok "dicom-edge exits 0 on SIGTERM after the reloads" || bad "dicom-edge exited $erc on SIGTERM"
fi
if ((fails)); then
    echo "--- edge log (tail)"; tail -30 "$T/edge.log"
    echo "--- core log (tail)"; tail -10 "$T/core.log"
fi
echo "$fails failure(s)"
((fails == 0))
