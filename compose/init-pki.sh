#!/bin/bash
# compose/init-pki.sh: the compose file's "pki" init service. On the first start it makes the
# local chain's PKI with certs/pki in the volume mounted at /pki, and exits 0; on later starts
# it finds the PKI there and changes nothing.
#   /pki/data/          certs/pki's directory (CAs, server certificates, modalities)
#   /pki/policy.json    the edge's policy: routes from compose/config/policy-routes.json plus
#                       the onboarded modalities (certs/pki onboard adds them)
# Modalities made here, with generated keys (to copy out: docs/operations.md, "Local chain"):
#   modality1     calling AE MODALITY1     -> route "local" (core, file backend)
#   modality-aws  calling AE MODALITY_AWS  -> route "aws"   (core-aws, profile aws)
set -euo pipefail
pki=${PKI_TOOL:-/opt/gw/certs/pki}
root=${GW_PKI_ROOT:-/pki}
routes=${GW_POLICY_ROUTES:-/opt/gw/compose/config/policy-routes.json}
data=$root/data

if [[ -f $data/pki.json && -f $root/policy.json ]]; then
    echo "init-pki: PKI already in $data; nothing to do"
    exit 0
fi
if [[ -e $data ]]; then
    echo "init-pki: $data holds an incomplete PKI (an earlier init was interrupted); remove the volume and start again" >&2
    exit 1
fi

"$pki" --dir "$data" init --org "DICOM Gateway Local" --edge-host localhost --edge-port 2762 \
    --called-ae DICOM_CORE
"$pki" --dir "$data" server --name edge --dns edge --dns localhost --ip 127.0.0.1
"$pki" --dir "$data" server --name core --dns core --dns core-aws --dns localhost --ip 127.0.0.1
"$pki" --dir "$data" edge-client --name edge
cp "$routes" "$root/policy.json.new"
mv -f "$root/policy.json.new" "$root/policy.json"
"$pki" --dir "$data" onboard --name modality1 --calling-ae MODALITY1 --called-ae DICOM_CORE \
    --route local --policy "$root/policy.json" --generate-key
"$pki" --dir "$data" onboard --name modality-aws --calling-ae MODALITY_AWS --called-ae DICOM_CORE \
    --route aws --policy "$root/policy.json" --generate-key
echo "init-pki: done; modality files in $data/modalities/"
