#!/usr/bin/env bash
# The certificates of certs/pki in real DICOM TLS, DCMTK on both ends (no gateway program):
# storescp +tls with the server certificate, the modality CA chain and its CRL (whole chain
# checked, +cra); storescu +tls with onboarded modalities. Onboard (CSR and generated key, PEM
# and PKCS#12) -> store succeeds -> revoke -> refused -> onboard again with a new key -> succeeds.
# Also: an unknown CA is refused, the client refuses a server it cannot verify, and the edge's
# client certificate reaches a "core" that trusts the infrastructure CA.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PKI_BIN=$src/certs/pki
T=$(mktemp -d /tmp/gw-certs-dcmtk.XXXXXX)
scp_pid=
cleanup() {
    [[ -n $scp_pid ]] && kill "$scp_pid" 2>/dev/null && wait "$scp_pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
export TCP_NODELAY=1
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
pki() { "$PKI_BIN" --dir "$T/pki" "$@"; }

# a tiny synthetic object (no patient data): Secondary Capture, 2x2 pixels
cat >"$T/sc.dump" <<'EOF'
(0008,0016) UI =SecondaryCaptureImageStorage
(0008,0018) UI [1.2.826.0.1.3680043.8.498.77.1]
(0008,0060) CS [OT]
(0010,0010) PN [SYNTHETIC^TEST]
(0020,000d) UI [1.2.826.0.1.3680043.8.498.77]
(0020,000e) UI [1.2.826.0.1.3680043.8.498.77.0]
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
dump2dcm +te -g "$T/sc.dump" "$T/sc.dcm" || { echo "dump2dcm failed"; exit 1; }

pki init --org "Test Hospital" --edge-host 127.0.0.1 >/dev/null 2>&1 || { echo "pki init failed"; exit 1; }
pki server --name edge --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || { echo "pki server failed"; exit 1; }
pki edge-client --name edge >/dev/null 2>&1 || { echo "pki edge-client failed"; exit 1; }
echo '{"clients":[],"routes":{"vpc":{"upstream":"127.0.0.1:11112"}}}' >"$T/policy.json"
S=$T/pki/servers/edge
P=$(port)

# storescp as the TLS server: modality CA chain as trust, the CRLs of the whole chain
start_scp() { # trust crl [extra storescp args]
    local trust=$1 crl=$2
    shift 2
    [[ -n $scp_pid ]] && kill "$scp_pid" 2>/dev/null && wait "$scp_pid" 2>/dev/null
    mkdir -p "$T/in"
    [[ -f $T/scp.log ]] && cat "$T/scp.log" >>"$T/scp.old.log"
    : >"$T/scp.log" # per run, so a log check sees only this storescp's refusals
    storescp +tls "$S/key.pem" "$S/cert.pem" +cf "$trust" +crl "$crl" +cra -od "$T/in" +uf -aet STORESCP "$@" \
        "$P" >>"$T/scp.log" 2>&1 &
    scp_pid=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$P") 2>/dev/null && return 0; sleep 0.1; done
    echo "storescp did not start"; cat "$T/scp.log"; exit 1
}
start_modality_scp() { start_scp "$T/pki/trust/modality-ca-chain.pem" "$T/pki/crl/modality.crl.pem"; }
received() { find "$T/in" -type f | wc -l; }
store() { # key cert trust aet -> storescu's exit status
    storescu +tls "$1" "$2" +cf "$3" -aet "$4" -aec STORESCP 127.0.0.1 "$P" "$T/sc.dcm" >>"$T/scu.log" 2>&1
}
expect_store() { # description key cert trust aet
    local d=$1 n
    n=$(received)
    if store "$2" "$3" "$4" "$5" && (($(received) == n + 1)); then ok "$d"; else bad "$d"; tail -3 "$T/scu.log"; fi
}
expect_refused() { # description key cert trust aet
    local d=$1 n rc
    n=$(received)
    store "$2" "$3" "$4" "$5"
    rc=$?
    if ((rc != 0)) && (($(received) == n)); then ok "$d (storescu exit $rc)"; else bad "$d (exit $rc)"; fi
}

# 1. onboard from the device's CSR, and one with a key made here
mkdir -p "$T/device"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/device/key.pem" 2>/dev/null
openssl req -new -key "$T/device/key.pem" -subj /CN=ct-room-1 -out "$T/device/req.csr"
pki onboard --name ct-room-1 --calling-ae CT_ROOM1 --route vpc --policy "$T/policy.json" \
    --csr "$T/device/req.csr" >"$T/onboard.txt" 2>&1 || { bad "onboard ct-room-1"; cat "$T/onboard.txt"; }
pki onboard --name mr-2 --calling-ae MR_2 --route vpc --policy "$T/policy.json" --generate-key >/dev/null 2>&1 ||
    bad "onboard mr-2"
M1=$T/pki/modalities/ct-room-1
M2=$T/pki/modalities/mr-2
start_modality_scp
expect_store "onboarded from a CSR: storescu +tls stores" "$T/device/key.pem" "$M1/cert.pem" "$M1/ca.pem" CT_ROOM1
expect_store "onboarded with a generated key (PEM): stores" "$M2/key.pem" "$M2/cert.pem" "$M2/ca.pem" MR_2
# the PKCS#12 bundle is what many devices import: unpack it as a device would and use it
openssl pkcs12 -in "$M2/bundle.p12" -passin "file:$M2/bundle.p12.pass" -nocerts -nodes -out "$T/p12key.pem" 2>/dev/null &&
    openssl pkcs12 -in "$M2/bundle.p12" -passin "file:$M2/bundle.p12.pass" -clcerts -nokeys -out "$T/p12cert.pem" 2>/dev/null ||
    bad "PKCS#12 does not unpack"
expect_store "the PKCS#12 bundle's key and certificate store" "$T/p12key.pem" "$T/p12cert.pem" "$M2/ca.pem" MR_2
rm -f "$T/p12key.pem"
# the storescu line onboarding printed, with our host/port/file, works as printed
line=$(grep -E '^  storescu \+tls ' "$T/onboard.txt" | sed "s#DEVICE_KEY.pem#$T/device/key.pem#; s# 2762 test.dcm# $P $T/sc.dcm#; s#-aec DICOM_CORE#-aec STORESCP#")
n=$(received)
if [[ -n $line ]] && eval "$line" >>"$T/scu.log" 2>&1 && (($(received) == n + 1)); then
    ok "the printed storescu +tls line works"
else
    bad "the printed storescu +tls line: '$line'"
fi

# 2. refusals that need no policy: unknown CA, server not trusted by the client
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/rogue.key" -subj /CN=ct-room-1 \
    -days 1 -addext extendedKeyUsage=clientAuth -out "$T/rogue.crt" 2>/dev/null
expect_refused "a self-signed client certificate is refused" "$T/rogue.key" "$T/rogue.crt" "$M1/ca.pem" CT_ROOM1
expect_refused "the client refuses a server whose CA it does not trust" "$M2/key.pem" "$M2/cert.pem" \
    "$T/pki/trust/modality-ca-chain.pem" MR_2
# a modality's certificate is not a server certificate: storescp with it as server is refused
# by the client (EKU)
mkdir -p "$T/bad"
kill "$scp_pid" 2>/dev/null; wait "$scp_pid" 2>/dev/null; scp_pid=
storescp +tls "$M2/key.pem" "$M2/cert.pem" +cf "$T/pki/trust/modality-ca-chain.pem" -od "$T/bad" -aet STORESCP "$P" \
    >>"$T/scp.log" 2>&1 &
scp_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$P") 2>/dev/null && break; sleep 0.1; done
if store "$M2/key.pem" "$M2/cert.pem" "$T/pki/trust/modality-ca-chain.pem" MR_2; then
    bad "a client certificate used as a server certificate was accepted"
else
    ok "a client certificate used as a server certificate is refused (EKU)"
fi

# 3. revoke -> refused (storescp reads the CRL at start: restart it, as SIGHUP does for the edge)
pki revoke --name ct-room-1 >/dev/null 2>&1 || bad "revoke ct-room-1"
start_modality_scp
R1=$(ls -d "$T/pki/revoked/ct-room-1."*)
expect_refused "revoked certificate is refused (CRL)" "$T/device/key.pem" "$R1/cert.pem" "$R1/ca.pem" CT_ROOM1
if grep -q 'certificate verify failed\|certificate revoked' "$T/scp.log"; then
    ok "storescp logged the verification failure of the revoked certificate"
else
    bad "no verification failure in the storescp log"
fi
expect_store "other modalities still store" "$M2/key.pem" "$M2/cert.pem" "$M2/ca.pem" MR_2

# 4. onboard again with a new key from the device -> succeeds
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/device/key2.pem" 2>/dev/null
openssl req -new -key "$T/device/key2.pem" -subj /CN=ct-room-1 -out "$T/device/req2.csr"
pki onboard --name ct-room-1 --calling-ae CT_ROOM1 --route vpc --policy "$T/policy.json" \
    --csr "$T/device/req2.csr" >/dev/null 2>&1 || bad "onboard ct-room-1 again"
expect_store "re-onboarded with a new key: stores" "$T/device/key2.pem" "$M1/cert.pem" "$M1/ca.pem" CT_ROOM1
expect_refused "the old key with the old certificate stays refused" "$T/device/key.pem" "$R1/cert.pem" "$R1/ca.pem" CT_ROOM1

# 5. the edge -> core hop: a "core" trusting the infrastructure CA admits the edge's client cert
start_scp "$T/pki/trust/infra-ca-chain.pem" "$T/pki/crl/infra.crl.pem"
EC=$T/pki/edge-clients/edge
expect_store "the edge's client certificate reaches a core that trusts the infra CA" "$EC/key.pem" "$EC/cert.pem" \
    "$T/pki/trust/infra-ca-chain.pem" EDGE
pki revoke --kind edge-client --name edge >/dev/null 2>&1 || bad "revoke the edge client cert"
start_scp "$T/pki/trust/infra-ca-chain.pem" "$T/pki/crl/infra.crl.pem"
revoked_ec=$(ls -d "$T/pki/revoked/edge-client-edge."*)
expect_refused "a revoked edge client certificate is refused by the core" "$revoked_ec/key.pem" "$revoked_ec/cert.pem" \
    "$T/pki/trust/infra-ca-chain.pem" EDGE

if ((fails)); then
    echo "--- storescp log (tail)"; tail -20 "$T/scp.log"
    echo "--- storescu log (tail)"; tail -20 "$T/scu.log"
fi
echo "$fails failure(s)"
((fails == 0))
