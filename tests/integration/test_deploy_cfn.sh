#!/usr/bin/env bash
# cloudformation/: the template lints clean with cfn-lint (and cfn-lint does catch a broken copy),
# it agrees with CONTRACTS.md and the programs (tests/support/deploy_checks.py cfn: DynamoDB table
# = forwarder/schema/dynamodb-table.json, task role = exactly the contract's actions on exact
# resources, reader role = exactly the DICOMweb read actions trusted by the task role alone,
# bucket, network, container vs compose/core.Dockerfile), a policy with one excess action (in
# the task or the reader role) is caught, and the core configuration the task definition renders for several parameter
# sets passes `dicom-core --check-config`.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
py=python3 # pyenv's: PyYAML, cfn-lint
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/support/deploy_lib.sh"

command -v cfn-lint >/dev/null || { echo "FAIL cfn-lint is not installed (pyenv python3 -m pip list | grep cfn-lint)"; exit 1; }
echo "cfn-lint $(cfn-lint --version 2>&1 | awk '{print $2}')"
for t in "$src"/cloudformation/*.yaml; do
    check "cfn-lint $(basename "$t")" cfn-lint "$t"
done

# the linter is live: a wrong property type and an unknown attribute must be reported
tpl=$src/cloudformation/dicom-gateway.yaml
sed 's/^      Port: 11112$/      Port: eleven/; s/!GetAtt Nlb.DNSName/!GetAtt Nlb.NoSuchAttribute/' "$tpl" >"$tmp/broken.yaml"
cmp -s "$tpl" "$tmp/broken.yaml" && { echo "FAIL could not make the broken copy"; exit 1; }
expect_fail "cfn-lint rejects a broken copy" cfn-lint "$tmp/broken.yaml"

check "template vs CONTRACTS.md and the image" $py "$src/tests/support/deploy_checks.py" cfn "$src"

# one excess action in the task role must be caught
mkdir -p "$tmp/src/cloudformation" "$tmp/src/compose"
cp "$src"/compose/*.Dockerfile "$src"/compose/*.sh "$tmp/src/compose/"
[[ -d $src/forwarder ]] && ln -s "$src/forwarder" "$tmp/src/forwarder"
sed 's/Action: \[s3:PutObject, s3:GetObject, s3:AbortMultipartUpload\]/Action: [s3:PutObject, s3:GetObject, s3:AbortMultipartUpload, s3:DeleteObject]/' \
    "$tpl" >"$tmp/src/cloudformation/dicom-gateway.yaml"
cmp -s "$tpl" "$tmp/src/cloudformation/dicom-gateway.yaml" && { echo "FAIL could not add an action"; exit 1; }
expect_fail "an excess action (s3:DeleteObject) in the task role is caught" \
    $py "$src/tests/support/deploy_checks.py" cfn "$tmp/src"
sed 's/, dynamodb:Query\]/]/' "$tpl" >"$tmp/src/cloudformation/dicom-gateway.yaml"
expect_fail "a missing action (dynamodb:Query) in the task role is caught" \
    $py "$src/tests/support/deploy_checks.py" cfn "$tmp/src"
# the reader role (read path): a store action in it, or the task role allowed to assume any role
sed 's/medical-imaging:GetDICOMBulkdata\]/medical-imaging:GetDICOMBulkdata, medical-imaging:StoreDICOM]/' \
    "$tpl" >"$tmp/src/cloudformation/dicom-gateway.yaml"
cmp -s "$tpl" "$tmp/src/cloudformation/dicom-gateway.yaml" && { echo "FAIL could not add a reader action"; exit 1; }
expect_fail "an excess action (StoreDICOM) in the reader role is caught" \
    $py "$src/tests/support/deploy_checks.py" cfn "$tmp/src"
sed '/Sid: AssumeReader/,+3 s/Resource: !GetAtt ReaderRole.Arn/Resource: "*"/' \
    "$tpl" >"$tmp/src/cloudformation/dicom-gateway.yaml"
cmp -s "$tpl" "$tmp/src/cloudformation/dicom-gateway.yaml" && { echo "FAIL could not widen AssumeRole"; exit 1; }
expect_fail "sts:AssumeRole on any role (not the reader role) is caught" \
    $py "$src/tests/support/deploy_checks.py" cfn "$tmp/src"

# the core configuration the task definition builds (GW_CONFIG_JSON) is valid for dicom-core
core=$build/core/dicom-core
if [[ ! -x $core ]]; then
    echo "FAIL $core not built"
    exit 1
fi
mkdir -p "$tmp/env" "$tmp/run/tls" "$tmp/data"
check "render GW_CONFIG_JSON" $py "$src/tests/support/deploy_checks.py" core-env "$src" "$tmp/env"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=core -days 2 \
    -keyout "$tmp/run/tls/key.pem" -out "$tmp/run/tls/cert.pem" 2>/dev/null
cp "$tmp/run/tls/cert.pem" "$tmp/run/tls/client_ca.pem"
n=0
for f in "$tmp"/env/*.json; do
    $py "$src/tests/support/deploy_checks.py" rewrite "$f" "$f.local" \
        "/var/lib/dicom-core=$tmp/data" "/run/gw=$tmp/run" >/dev/null
    check "dicom-core --check-config on the task's config ($(basename "$f" .json))" \
        "$core" --check-config --config "$f.local"
    n=$((n + 1))
done
((n >= 3)) || { echo "FAIL only $n rendered configurations"; failed=1; }
# and a wrong one is refused, so the step above can fail
sed 's/"ack": "s3"/"ack": "sometimes"/' "$tmp/env/default.json.local" >"$tmp/bad.json"
expect_fail "dicom-core --check-config refuses a broken task config" "$core" --check-config --config "$tmp/bad.json"

exit $failed
