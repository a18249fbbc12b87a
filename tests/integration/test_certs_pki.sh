#!/usr/bin/env bash
# certs/pki without a network: the issued certificates verify with `openssl verify` (chain, name
# constraints, EKU, CRL), PKCS#12 bundles open, keys are 0600 and never printed, policy.json edits
# are valid JSON, atomic (a reader never sees a broken file) and keep the previous version, the
# edge gets its SIGHUP, revoke/renew/list do what they say, and bad input changes nothing.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PKI_BIN=$src/certs/pki
T=$(mktemp -d /tmp/gw-certs.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # description command...
    local d=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
OUT=$T/all-output.txt # everything the tool prints, checked for key material at the end
pki() { "$PKI_BIN" --dir "$T/pki" "$@" 2>&1 | tee -a "$OUT"; return "${PIPESTATUS[0]}"; }

# ---------------------------------------------------------------------------- init (EC default)
pki init --org "Test Hospital" --edge-host edge.test.local --edge-port 2762 >/dev/null || { echo "init failed"; exit 1; }
R=$T/pki/ca/root/ca.crt
MCA=$T/pki/ca/modality/ca.crt
ICA=$T/pki/ca/infra/ca.crt
check "init refuses to overwrite an existing PKI" bash -c "! '$PKI_BIN' --dir '$T/pki' init"
check "root key is EC P-256" bash -c "openssl pkey -in '$T/pki/ca/root/private/ca.key' -noout -text | grep -q 'NIST CURVE: P-256'"
check "modality CA chains to the root" openssl verify -x509_strict -CAfile "$R" "$MCA"
check "infra CA chains to the root" openssl verify -x509_strict -CAfile "$R" "$ICA"
check "modality CA is name-constrained and clientAuth only" bash -c \
    "openssl x509 -in '$MCA' -noout -text | grep -q 'Name Constraints: critical' &&
     openssl x509 -in '$MCA' -noout -ext extendedKeyUsage | grep -q 'Client Authentication' &&
     ! openssl x509 -in '$MCA' -noout -ext extendedKeyUsage | grep -q 'Server Authentication' &&
     openssl x509 -in '$MCA' -noout -text | grep -q 'pathlen:0'"

echo '{"clients":[],"routes":{"vpc":{"upstream":"127.0.0.1:11112"}},"comment":"kept as is"}' >"$T/policy.json"
chmod 640 "$T/policy.json"

# a stand-in for a running edge: records each SIGHUP it gets
cat >"$T/fake_edge.sh" <<'EOF'
trap 'echo hup >>"$1"' HUP
while :; do sleep 0.2; done
EOF
bash "$T/fake_edge.sh" "$T/hups" &
pids+=("$!")
echo "${pids[0]}" >"$T/edge.pid"
hups() { [[ -f $T/hups ]] && wc -l <"$T/hups" || echo 0; }

# ---------------------------------------------------------------------------- issue
pki server --name edge --dns edge.test.local --dns localhost --ip 127.0.0.1 --ip ::1 >/dev/null || bad "server edge"
pki server --name core --dns core.internal --ip 10.0.0.5 >/dev/null || bad "server core"
pki edge-client --name edge >/dev/null || bad "edge-client"
E=$T/pki/servers/edge
check "edge server cert verifies for its DNS name" openssl verify -x509_strict -CAfile "$R" -untrusted "$ICA" \
    -purpose sslserver -verify_hostname edge.test.local -crl_check_all -CRLfile "$T/pki/crl/infra.crl.pem" "$E/cert.pem"
check "edge server cert verifies for its IPv4 and IPv6 SANs" bash -c \
    "openssl verify -CAfile '$R' -untrusted '$ICA' -purpose sslserver -verify_ip 127.0.0.1 '$E/cert.pem' &&
     openssl verify -CAfile '$R' -untrusted '$ICA' -purpose sslserver -verify_ip ::1 '$E/cert.pem'"
check "edge server cert does not verify for another name" bash -c \
    "! openssl verify -CAfile '$R' -untrusted '$ICA' -verify_hostname evil.test.local '$E/cert.pem'"
check "server cert is not a client cert (EKU)" bash -c \
    "! openssl verify -CAfile '$R' -untrusted '$ICA' -purpose sslclient '$E/cert.pem'"
check "core server cert has its SANs" bash -c \
    "openssl x509 -in '$T/pki/servers/core/cert.pem' -noout -ext subjectAltName | grep -q 'DNS:core.internal, IP Address:10.0.0.5'"
check "edge's client cert for the core hop: clientAuth, verifies with CRL" openssl verify -x509_strict -CAfile "$R" \
    -untrusted "$ICA" -purpose sslclient -crl_check_all -CRLfile "$T/pki/crl/infra.crl.pem" "$T/pki/edge-clients/edge/cert.pem"
check "server chain.pem is leaf + infra CA" bash -c "[[ \$(grep -c 'BEGIN CERTIFICATE' '$E/chain.pem') == 2 ]]"

# onboard with a generated key
pki onboard --name ct-room-1 --calling-ae CT_ROOM1 --route vpc --policy "$T/policy.json" --generate-key \
    --edge-pid-file "$T/edge.pid" >"$T/onboard1.txt" || bad "onboard ct-room-1"
M1=$T/pki/modalities/ct-room-1
check "modality cert verifies: chain, sslclient purpose, CRLs of the whole chain" openssl verify -x509_strict \
    -CAfile "$T/pki/trust/root.pem" -untrusted "$MCA" -purpose sslclient -crl_check_all \
    -CRLfile "$T/pki/crl/modality.crl.pem" "$M1/cert.pem"
check "modality cert verifies against the published edge client_ca file" openssl verify \
    -CAfile "$T/pki/trust/modality-ca-chain.pem" -purpose sslclient "$M1/cert.pem"
check "modality cert is not a server cert (EKU clientAuth only)" bash -c \
    "! openssl verify -CAfile '$R' -untrusted '$MCA' -purpose sslserver '$M1/cert.pem'"
check "modality cert: CA:FALSE, digitalSignature, clientAuth, CN=name" bash -c \
    "t=\$(openssl x509 -in '$M1/cert.pem' -noout -text); grep -q 'CA:FALSE' <<<\"\$t\" &&
     grep -q 'Digital Signature' <<<\"\$t\" && grep -q 'TLS Web Client Authentication' <<<\"\$t\" &&
     openssl x509 -in '$M1/cert.pem' -noout -subject | grep -q 'CN = ct-room-1'"
check "modality cert lifetime is bounded (default 365 days)" bash -c \
    "openssl x509 -in '$M1/cert.pem' -noout -checkend $((366 * 86400)) | grep -q 'will expire' &&
     openssl x509 -in '$M1/cert.pem' -noout -checkend $((363 * 86400))"
check "PKCS#12 opens with its password and holds the key and the cert" bash -c \
    "openssl pkcs12 -in '$M1/bundle.p12' -passin 'file:$M1/bundle.p12.pass' -nodes -out '$T/p12.pem' 2>/dev/null &&
     [[ \$(openssl pkey -in '$T/p12.pem' -pubout) == \$(openssl x509 -in '$M1/cert.pem' -noout -pubkey) ]] &&
     grep -q 'CN = ct-room-1' '$T/p12.pem'"
rm -f "$T/p12.pem"
check "PKCS#12 does not open with a wrong password" bash -c \
    "! openssl pkcs12 -in '$M1/bundle.p12' -passin pass:wrong -noout"
fp1=$(openssl x509 -in "$M1/cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
check "policy has the fingerprint-bound entry" jq -e --arg fp "$fp1" \
    '.clients == [{id:"ct-room-1", match:{subject_cn:"ct-room-1", fingerprint_sha256:$fp},
      calling_ae:["CT_ROOM1"], called_ae:["DICOM_CORE"], route:"vpc", max_associations:4}]
     and .comment == "kept as is" and .routes.vpc.upstream == "127.0.0.1:11112"' "$T/policy.json"
check "previous policy kept as policy.json.bak" jq -e '.clients == [] and .comment == "kept as is"' "$T/policy.json.bak"
check "policy file mode kept (640)" bash -c "[[ \$(stat -c %a '$T/policy.json') == 640 ]]"
sleep 0.5
check "onboard sent SIGHUP to the edge" bash -c "[[ \$(wc -l <'$T/hups') == 1 ]]"
check "onboard prints the engineer's settings and the storescu +tls line" bash -c \
    "grep -q 'Remote (destination) host:   edge.test.local' '$T/onboard1.txt' &&
     grep -q 'Called AE title:             DICOM_CORE' '$T/onboard1.txt' &&
     grep -q 'storescu +tls $M1/key.pem $M1/cert.pem +cf $M1/ca.pem -aet CT_ROOM1 -aec DICOM_CORE edge.test.local 2762' '$T/onboard1.txt'"

# onboard from the device's own CSR (the key never leaves the "device" directory)
mkdir -p "$T/device"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/device/key.pem" 2>/dev/null
openssl req -new -key "$T/device/key.pem" -subj "/CN=whatever the device puts" -out "$T/device/req.csr"
pki onboard --name us-3 --calling-ae US_3 --calling-ae US_3_ALT --called-ae DICOM_CORE --called-ae ARCHIVE \
    --route vpc --policy "$T/policy.json" --csr "$T/device/req.csr" --max-associations 2 --days 30 \
    --edge-pid "${pids[0]}" >"$T/onboard2.txt" || bad "onboard us-3 from CSR"
M2=$T/pki/modalities/us-3
check "CSR path: no key and no PKCS#12 on the CA side" bash -c "[[ ! -e '$M2/key.pem' && ! -e '$M2/bundle.p12' ]]"
check "CSR path: cert carries the device's key and our subject" bash -c \
    "[[ \$(openssl pkey -in '$T/device/key.pem' -pubout) == \$(openssl x509 -in '$M2/cert.pem' -noout -pubkey) ]] &&
     openssl x509 -in '$M2/cert.pem' -noout -subject | grep -q 'O = Test Hospital, OU = Modalities, CN = us-3'"
check "CSR path: cert verifies" openssl verify -CAfile "$R" -untrusted "$MCA" -purpose sslclient "$M2/cert.pem"
check "policy: two entries, the second with both AE lists and limits" jq -e \
    '(.clients | length) == 2 and .clients[1].calling_ae == ["US_3","US_3_ALT"] and
     .clients[1].called_ae == ["DICOM_CORE","ARCHIVE"] and .clients[1].max_associations == 2' "$T/policy.json"

# RSA on request
pki onboard --name mr-4 --calling-ae MR_4 --route vpc --policy "$T/policy.json" --generate-key --key-type rsa \
    --edge-pid-file "$T/edge.pid" >/dev/null || bad "onboard mr-4 (RSA)"
check "RSA on request is 3072 bits and verifies" bash -c \
    "openssl pkey -in '$T/pki/modalities/mr-4/key.pem' -noout -text | grep -q 'Private-Key: (3072 bit' &&
     openssl verify -CAfile '$R' -untrusted '$MCA' -purpose sslclient '$T/pki/modalities/mr-4/cert.pem'"

# PKCS#12 for old devices: 3DES/SHA-1, with a password the team chose
printf 'chosen-by-team\n' >"$T/p12pw"
pki onboard --name old-9 --calling-ae OLD_9 --route vpc --policy "$T/policy.json" --generate-key --p12-legacy \
    --p12-pass-file "$T/p12pw" >/dev/null || bad "onboard old-9 (--p12-legacy)"
check "--p12-legacy gives a 3DES bundle that opens with the chosen password" bash -c \
    "openssl pkcs12 -in '$T/pki/modalities/old-9/bundle.p12' -passin 'file:$T/p12pw' -noout -info 2>&1 | grep -q 'TripleDES' &&
     [[ ! -e '$T/pki/modalities/old-9/bundle.p12.pass' ]]"
pki revoke --name old-9 >/dev/null || bad "revoke old-9"

# name constraints do their job: the modality CA's key cannot mint an infrastructure identity
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/rogue.key" 2>/dev/null
openssl req -new -key "$T/rogue.key" -subj "/O=Test Hospital/OU=Infrastructure/CN=edge" -out "$T/rogue.csr"
openssl x509 -req -in "$T/rogue.csr" -CA "$MCA" -CAkey "$T/pki/ca/modality/private/ca.key" -days 1 \
    -set_serial 7 -out "$T/rogue.crt" 2>/dev/null
check "a cert outside the modality CA's name constraints does not verify" bash -c \
    "openssl verify -CAfile '$R' -untrusted '$MCA' '$T/rogue.crt' 2>&1 | grep -qi 'name constraint\|permitted subtree'"
rm -f "$T/rogue."*

# ---------------------------------------------------------------------------- permissions, secrecy
perm_bad=$(find "$T/pki" \( -name '*.key' -o -name 'key.pem' -o -name '*.p12' -o -name '*.pass' \) ! -perm 600)
check "every private key, bundle and password file is 0600" test -z "$perm_bad"
check "CA private directories are 0700" bash -c "[[ \$(stat -c %a '$T/pki/ca/root/private') == 700 ]]"
check "trust files and CRLs are world-readable (0644)" bash -c \
    "[[ \$(stat -c %a '$T/pki/trust/modality-ca-chain.pem') == 644 && \$(stat -c %a '$T/pki/crl/modality.crl.pem') == 644 ]]"

# ---------------------------------------------------------------------------- atomic policy edits
# A reader parses policy.json as fast as it can while onboards and revokes replace it: every
# read must be complete, valid JSON.
cat >"$T/reader.sh" <<'EOF'
n=0
while [[ ! -e "$2" ]]; do
    jq -e '.clients | type == "array"' "$1" >/dev/null 2>&1 || { echo "broken read" >>"$3"; }
    n=$((n + 1))
done
echo "$n" >"$3.count"
EOF
: >"$T/reader.err"
bash "$T/reader.sh" "$T/policy.json" "$T/reader.stop" "$T/reader.err" &
rpid=$!
pids+=("$rpid")
for i in 1 2 3 4 5; do
    pki onboard --name px-$i --calling-ae PX_$i --route vpc --policy "$T/policy.json" --generate-key >/dev/null 2>&1 ||
        bad "onboard px-$i"
done
for i in 1 2 3 4 5; do pki revoke --name px-$i >/dev/null 2>&1 || bad "revoke px-$i"; done
touch "$T/reader.stop"
wait "$rpid"
check "a concurrent reader never saw a broken policy.json ($(cat "$T/reader.err.count" 2>/dev/null) reads)" \
    bash -c "[[ ! -s '$T/reader.err' && \$(cat '$T/reader.err.count') -gt 0 ]]"
check "no temporary files left next to policy.json" bash -c "[[ -z \$(ls -A '$T' | grep '^\\.policy') ]]"
check "policy back to three clients after the px-* revokes" jq -e '[.clients[].id] == ["ct-room-1","us-3","mr-4"]' "$T/policy.json"

# ---------------------------------------------------------------------------- bad input
snap() { (cd "$T" && find pki policy.json policy.json.bak -printf '%p %m %s\n' | sort &&
    find pki policy.json policy.json.bak -type f -print0 | sort -z | xargs -0 sha256sum); }
refused() { # description expected-message-regex args...
    local d=$1 re=$2 before after rc out
    shift 2
    before=$(snap)
    out=$("$PKI_BIN" --dir "$T/pki" "$@" 2>&1)
    rc=$?
    after=$(snap)
    echo "$out" >>"$OUT"
    if ((rc == 0)); then
        bad "$d: exit 0"
    elif ! grep -qiE -- "$re" <<<"$out"; then
        bad "$d: message '$out' does not match /$re/"
    elif [[ $before != "$after" ]]; then
        bad "$d: files changed"
        diff <(echo "$before") <(echo "$after") | head -5
    else
        ok "$d (exit $rc: $(head -1 <<<"$out"))"
    fi
}
base=(onboard --route vpc --policy "$T/policy.json" --generate-key)
refused "missing --name" "--name is required" "${base[@]}" --calling-ae X1
refused "missing --calling-ae" "calling-ae is required" "${base[@]}" --name n1
refused "missing --route" "--route is required" onboard --name n1 --calling-ae X1 --policy "$T/policy.json" --generate-key
refused "missing --policy" "--policy is required" onboard --name n1 --calling-ae X1 --route vpc --generate-key
refused "neither --csr nor --generate-key" "--csr FILE .*or --generate-key" onboard --name n1 --calling-ae X1 --route vpc --policy "$T/policy.json"
refused "option without value" "needs a value" "${base[@]}" --name n1 --calling-ae
refused "unknown option" "unknown option" "${base[@]}" --name n1 --calling-ae X1 --bogus
refused "calling AE title of 17 characters" "at most 16" "${base[@]}" --name n1 --calling-ae ABCDEFGHIJKLMNOPQ
refused "called AE title of 17 characters" "at most 16" "${base[@]}" --name n1 --calling-ae X1 --called-ae ABCDEFGHIJKLMNOPQ
refused "AE title with a backslash" "backslash" "${base[@]}" --name n1 --calling-ae 'CT\1'
refused "AE title with a non-ASCII character" "repertoire" "${base[@]}" --name n1 --calling-ae 'CTÉ1'
refused "AE title with a control character" "repertoire" "${base[@]}" --name n1 --calling-ae $'CT\t1'
refused "AE title with a leading space" "leading or trailing" "${base[@]}" --name n1 --calling-ae ' CT1'
refused "empty AE title" "needs a value|empty" "${base[@]}" --name n1 --calling-ae ''
refused "invalid name" "not valid" "${base[@]}" --name '../etc' --calling-ae X1
refused "duplicate name" "already onboarded" "${base[@]}" --name ct-room-1 --calling-ae X1
jq '.clients += [{"id":"manual-1","match":{"subject_cn":"manual-1"},"calling_ae":["M1"],"called_ae":["DICOM_CORE"],"route":"vpc"}]' \
    "$T/policy.json" >"$T/p.tmp" && cat "$T/p.tmp" >"$T/policy.json" && rm -f "$T/p.tmp"
refused "duplicate id already in the policy" "already has a client with id" "${base[@]}" --name manual-1 --calling-ae X1
refused "route not in the policy" "route 'nowhere' is not defined" onboard --name n1 --calling-ae X1 --route nowhere --policy "$T/policy.json" --generate-key
refused "policy file missing" "does not exist" onboard --name n1 --calling-ae X1 --route vpc --policy "$T/nope.json" --generate-key
cp "$T/policy.json" "$T/policy.good"
echo '{"clients": [' >"$T/broken.json"
refused "policy file not valid JSON" "not valid JSON" onboard --name n1 --calling-ae X1 --route vpc --policy "$T/broken.json" --generate-key
refused "lifetime over 825 days" "1 to 825" "${base[@]}" --name n1 --calling-ae X1 --days 3650
refused "unknown key type" "key type" "${base[@]}" --name n1 --calling-ae X1 --key-type dsa
csr_with() { # out ext-lines...
    local out=$1
    shift
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/csrkey.pem" 2>/dev/null
    local a=()
    for e in "$@"; do a+=(-addext "$e"); done
    openssl req -new -key "$T/csrkey.pem" -subj /CN=x "${a[@]}" -out "$out"
    rm -f "$T/csrkey.pem"
}
csr_with "$T/ku.csr" "keyUsage=critical,keyEncipherment"
csr_with "$T/eku.csr" "extendedKeyUsage=serverAuth"
csr_with "$T/ca.csr" "basicConstraints=critical,CA:TRUE"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$T/weak.key" 2>/dev/null
openssl req -new -key "$T/weak.key" -subj /CN=x -out "$T/weak.csr" 2>/dev/null
rm -f "$T/weak.key"
sed 's/^MI/AA/' "$T/device/req.csr" >"$T/garbage.csr"
cbase=(onboard --name n1 --calling-ae X1 --route vpc --policy "$T/policy.json")
refused "CSR with a key usage without digitalSignature" "key usage without digitalSignature" "${cbase[@]}" --csr "$T/ku.csr"
refused "CSR asking for serverAuth only" "without clientAuth" "${cbase[@]}" --csr "$T/eku.csr"
refused "CSR asking for a CA" "CA certificate" "${cbase[@]}" --csr "$T/ca.csr"
refused "CSR with a 1024-bit RSA key" "1024-bit" "${cbase[@]}" --csr "$T/weak.csr"
refused "not a CSR" "not a valid PEM certificate request" "${cbase[@]}" --csr "$T/garbage.csr"
refused "CSR file missing" "not readable" "${cbase[@]}" --csr "$T/none.csr"
refused "--csr together with --generate-key" "exclude each other" "${cbase[@]}" --csr "$T/device/req.csr" --generate-key
refused "revoke without --name" "--name is required" revoke
refused "revoke an unknown name" "no modality named" revoke --name nobody
refused "server without SANs" "at least one --dns or --ip" server --name s1
refused "server with a bad IP" "not an IPv4" server --name s1 --ip 300.1.1.1
refused "server duplicate" "already exists" server --name edge --dns x.test
refused "unknown command" "unknown command" frobnicate
refused "a command without a PKI" "no PKI in" --dir "$T/empty" list
# a failure after every change (CA database, CRL, files, policy) rolls all of it back
before=$(snap)
PKI_TEST_FAIL_BEFORE_COMMIT=1 "$PKI_BIN" --dir "$T/pki" onboard --name late-1 --calling-ae LATE1 --route vpc \
    --policy "$T/policy.json" --generate-key >>"$OUT" 2>&1 && bad "late failure: exit 0"
[[ $before == "$(snap)" ]] && ok "a late onboard failure rolls everything back" || bad "late onboard failure left changes"
PKI_TEST_FAIL_BEFORE_COMMIT=1 "$PKI_BIN" --dir "$T/pki" revoke --name us-3 >>"$OUT" 2>&1 && bad "late failure: exit 0"
[[ $before == "$(snap)" ]] && ok "a late revoke failure rolls everything back" || bad "late revoke failure left changes"
PKI_TEST_FAIL_BEFORE_COMMIT=1 "$PKI_BIN" --dir "$T/pki" renew --name ct-room-1 >>"$OUT" 2>&1 && bad "late failure: exit 0"
[[ $before == "$(snap)" ]] && ok "a late renew failure rolls everything back" || bad "late renew failure left changes"
check "no staging or transaction directories left" bash -c "[[ -z \$(ls -A '$T/pki' | grep -E '^\\.(stage|txn|ext)') ]]"

# ---------------------------------------------------------------------------- revoke
h0=$(hups)
serial2=$(openssl x509 -in "$M2/cert.pem" -noout -serial | sed 's/.*=//')
cp "$M2/cert.pem" "$T/us3.crt"
pki revoke --name us-3 --reason keyCompromise --edge-pid-file "$T/edge.pid" >/dev/null || bad "revoke us-3"
check "revoked: the CRL lists the serial" bash -c \
    "openssl crl -in '$T/pki/ca/modality/crl.pem' -noout -text | grep -q 'Serial Number: $serial2'"
check "revoked: openssl verify with the published CRL says revoked" bash -c \
    "openssl verify -CAfile '$R' -untrusted '$MCA' -crl_check -CRLfile '$T/pki/crl/modality.crl.pem' '$T/us3.crt' 2>&1 | grep -q 'certificate revoked'"
check "revoked: CRL is signed by the modality CA and fresh" bash -c \
    "openssl crl -in '$T/pki/ca/modality/crl.pem' -CAfile '$MCA' -noout 2>&1 | grep -q 'verify OK'"
check "revoked: policy entry removed, the rest kept" jq -e '[.clients[].id] == ["ct-room-1","mr-4","manual-1"]' "$T/policy.json"
check "revoked: CA database marks it R" grep -q "^R.*$serial2" "$T/pki/ca/modality/index.txt"
sleep 0.5
check "revoke reloaded the edge" bash -c "[[ \$(wc -l <'$T/hups') -gt $h0 ]]"
check "other modalities still verify with the new CRL" openssl verify -CAfile "$R" -untrusted "$MCA" -crl_check_all \
    -CRLfile "$T/pki/crl/modality.crl.pem" "$M1/cert.pem"
# the name can be onboarded again, with a new key from the device
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/device/key2.pem" 2>/dev/null
openssl req -new -key "$T/device/key2.pem" -subj /CN=us-3 -out "$T/device/req2.csr"
pki onboard --name us-3 --calling-ae US_3 --route vpc --policy "$T/policy.json" --csr "$T/device/req2.csr" >/dev/null ||
    bad "onboard us-3 again"
check "re-onboarded us-3 verifies with the CRL" openssl verify -CAfile "$R" -untrusted "$MCA" -crl_check \
    -CRLfile "$T/pki/crl/modality.crl.pem" "$M2/cert.pem"

# ---------------------------------------------------------------------------- renew
old_fp=$(jq -r '.clients[] | select(.id == "ct-room-1") | .match.fingerprint_sha256' "$T/policy.json")
old_serial=$(openssl x509 -in "$M1/cert.pem" -noout -serial | sed 's/.*=//')
pki renew --name ct-room-1 >/dev/null || bad "renew ct-room-1"
new_fp=$(openssl x509 -in "$M1/cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
check "renew: policy entry now bound to the new fingerprint" jq -e --arg fp "$new_fp" \
    '.clients[] | select(.id == "ct-room-1") | .match.fingerprint_sha256 == $fp and .calling_ae == ["CT_ROOM1"]' "$T/policy.json"
check "renew: fingerprint changed" test "$old_fp" != "$new_fp"
check "renew: old certificate revoked (superseded) in the CRL" bash -c \
    "openssl crl -in '$T/pki/ca/modality/crl.pem' -noout -text | grep -A5 'Serial Number: $old_serial' | grep -q 'Superseded'"
check "renew: new cert and PKCS#12 valid" bash -c \
    "openssl verify -CAfile '$R' -untrusted '$MCA' -purpose sslclient -crl_check -CRLfile '$T/pki/crl/modality.crl.pem' '$M1/cert.pem' &&
     openssl pkcs12 -in '$M1/bundle.p12' -passin 'file:$M1/bundle.p12.pass' -noout"

# ---------------------------------------------------------------------------- list
pki onboard --name short-5 --calling-ae SHORT_5 --route vpc --policy "$T/policy.json" --generate-key --days 10 >/dev/null ||
    bad "onboard short-5"
pki list >"$T/list.txt"
check "list shows names, AE titles, serial, fingerprint and days" bash -c \
    "grep -E '^ct-room-1 +modality +CT_ROOM1 +DICOM_CORE +[0-9A-F]+ +$new_fp +36[45] +ok +modality' '$T/list.txt'"
check "list flags a certificate that expires soon" grep -qE '^short-5 .* (9|10) EXPIRING +modality$' "$T/list.txt"
check "list --json is valid and complete" jq -e \
    'length == 4 and (map(.name) | sort) == ["ct-room-1","mr-4","short-5","us-3"] and
     (.[] | select(.name == "short-5") | .status == "EXPIRING")' <(pki list --json)
"$PKI_BIN" --dir "$T/pki" list --check >/dev/null 2>&1
check "list --check exits 3 when something expires soon" test $? -eq 3
check "list --all includes the servers and the edge's client cert" bash -c \
    "'$PKI_BIN' --dir '$T/pki' list --all | grep -qE '^edge +edge-client'"

check "list --check is quiet about fresh CRLs" bash -c "! '$PKI_BIN' --dir '$T/pki' list 2>&1 >/dev/null | grep -q CRL"
# ---------------------------------------------------------------------------- crl, server replace
pki crl >/dev/null || bad "crl"
check "crl: fresh CRLs still list the revoked serials" bash -c \
    "openssl crl -in '$T/pki/crl/modality.crl.pem' -noout -text | grep -q '$serial2'"
mv "$T/pki/ca/root/private/ca.key" "$T/root.key.offline"
check "crl works with the root key offline" "$PKI_BIN" --dir "$T/pki" crl
check "onboarding works with the root key offline" "$PKI_BIN" --dir "$T/pki" onboard --name offline-6 \
    --calling-ae OFF_6 --route vpc --policy "$T/policy.json" --generate-key
mv "$T/root.key.offline" "$T/pki/ca/root/private/ca.key"
old_edge_serial=$(openssl x509 -in "$E/cert.pem" -noout -serial | sed 's/.*=//')
pki server --name edge --dns edge.test.local --replace >/dev/null || bad "server --replace"
check "server --replace revokes the old server certificate" bash -c \
    "openssl crl -in '$T/pki/crl/infra.crl.pem' -noout -text | grep -q '$old_edge_serial'"

# ---------------------------------------------------------------------------- rotate the modality CA
cp "$M1/cert.pem" "$T/ct1-before-rotation.pem"
pki rotate-ca --ca modality >/dev/null || bad "rotate-ca"
check "after rotate-ca the trust file holds the new CA, the old one and the root" bash -c \
    "[[ \$(grep -c 'BEGIN CERTIFICATE' '$T/pki/trust/modality-ca-chain.pem') == 3 ]]"
check "a certificate of the old CA still verifies (trust file + CRL bundle, whole chain)" openssl verify \
    -CAfile "$T/pki/trust/modality-ca-chain.pem" -purpose sslclient -crl_check_all -CRLfile "$T/pki/crl/modality.crl.pem" \
    "$M1/cert.pem"
pki onboard --name new-7 --calling-ae NEW_7 --route vpc --policy "$T/policy.json" --generate-key >/dev/null || bad "onboard new-7"
check "new certificates come from the new CA" bash -c \
    "openssl verify -no-CAfile -partial_chain -trusted '$T/pki/ca/modality/ca.crt' '$T/pki/modalities/new-7/cert.pem' &&
     ! openssl verify -no-CAfile -partial_chain -trusted '$T/pki/ca/modality/ca.crt' '$M1/cert.pem'"
check "the new CA keeps the name constraints" bash -c \
    "openssl x509 -in '$T/pki/ca/modality/ca.crt' -noout -text | grep -q 'DirName:O = Test Hospital, OU = Modalities'"
check "list shows which CA issued each certificate" bash -c \
    "'$PKI_BIN' --dir '$T/pki' list | grep -qE '^new-7 .* modality\$' &&
     '$PKI_BIN' --dir '$T/pki' list | grep -qE '^ct-room-1 .* modality\.old-[0-9TZ]+\$'"
cp "$M2/cert.pem" "$T/us3-old-ca.pem"
pki revoke --name us-3 >/dev/null || bad "revoke us-3 (old CA)"
check "revoking a certificate of the old CA: the bundle's CRL says revoked" bash -c \
    "openssl verify -CAfile '$T/pki/trust/modality-ca-chain.pem' -crl_check -CRLfile '$T/pki/crl/modality.crl.pem' \
     '$T/us3-old-ca.pem' 2>&1 | grep -q 'certificate revoked'"
refused "retire-ca while the old CA has valid certificates" "still has valid certificates" retire-ca --ca modality
for n in ct-room-1 mr-4 short-5 offline-6; do pki renew --name "$n" >/dev/null || bad "renew $n"; done
pki retire-ca --ca modality >/dev/null || bad "retire-ca"
check "after retire-ca the trust file holds the new CA and the root only" bash -c \
    "[[ \$(grep -c 'BEGIN CERTIFICATE' '$T/pki/trust/modality-ca-chain.pem') == 2 ]]"
check "a certificate of the retired CA no longer verifies" bash -c \
    "! openssl verify -CAfile '$T/pki/trust/modality-ca-chain.pem' '$T/ct1-before-rotation.pem'"
check "renewed certificates verify with the new CA and CRLs" openssl verify -CAfile "$T/pki/trust/modality-ca-chain.pem" \
    -purpose sslclient -crl_check_all -CRLfile "$T/pki/crl/modality.crl.pem" "$M1/cert.pem"
check "rotate-ca without the root key is refused" bash -c \
    "mv '$T/pki/ca/root/private/ca.key' '$T/rk' && ! '$PKI_BIN' --dir '$T/pki' rotate-ca --ca infra 2>/dev/null;
     rc=\$?; mv '$T/rk' '$T/pki/ca/root/private/ca.key'; exit \$rc"

# ---------------------------------------------------------------------------- RSA PKI
echo '{"clients":[],"routes":{"r":{}}}' >"$T/rsa-policy.json"
"$PKI_BIN" --dir "$T/rsa" init --key-type rsa --crl-days 3 --policy "$T/rsa-policy.json" --edge-pid-file "$T/edge.pid" \
    >/dev/null 2>>"$OUT" || bad "init --key-type rsa"
check "RSA PKI: root and issuing keys are RSA 3072" bash -c \
    "openssl pkey -in '$T/rsa/ca/root/private/ca.key' -noout -text | grep -q '(3072 bit' &&
     openssl pkey -in '$T/rsa/ca/modality/private/ca.key' -noout -text | grep -q '(3072 bit'"
h0=$(hups)
"$PKI_BIN" --dir "$T/rsa" onboard --name r1 --calling-ae R1 --route r --generate-key >>"$OUT" 2>&1 ||
    bad "RSA onboard"
sleep 0.5
check "init's --policy and --edge-pid-file are onboard's defaults" bash -c \
    "jq -e '.clients[0].id == \"r1\"' '$T/rsa-policy.json' && [[ \$(wc -l <'$T/hups') -gt $h0 ]]"
check "RSA PKI: client cert verifies, keyEncipherment added for RSA" bash -c \
    "openssl verify -CAfile '$T/rsa/ca/root/ca.crt' -untrusted '$T/rsa/ca/modality/ca.crt' -purpose sslclient '$T/rsa/modalities/r1/cert.pem' &&
     openssl x509 -in '$T/rsa/modalities/r1/cert.pem' -noout -ext keyUsage | grep -q 'Key Encipherment'"

"$PKI_BIN" --dir "$T/rsa" list --check >/dev/null 2>"$T/crlwarn"
check "list --check flags CRLs that expire within a week (exit 3)" bash -c \
    "[[ $? == 3 ]] && grep -q 'CRL of the modality CA expires in' '$T/crlwarn'"

# ---------------------------------------------------------------------------- never printed
check "no private key material in anything the tool printed" bash -c "! grep -q 'PRIVATE KEY' '$OUT'"
check "no PKCS#12 password printed" bash -c "! grep -qF \"\$(cat '$M1/bundle.p12.pass')\" '$OUT'"

echo "$fails failure(s)"
((fails == 0))
