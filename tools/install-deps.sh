#!/usr/bin/env bash
# Installs what building, running and testing need on Debian 12, as root. Idempotent: packages
# already present are not fetched again.
#   install-deps.sh            build and run dicom-core and dicom-edge
#   install-deps.sh --gateway  ... plus what tools/run-gateway.sh and the README's client-side
#                              commands use (tools/run-gateway.sh calls this)
#   install-deps.sh --test     ... plus everything the tests need (tests/run-all.sh calls this)
set -euo pipefail

runtime=(libuv1 libssl3 libcjson1 zlib1g ca-certificates)
build=(build-essential cmake pkg-config libuv1-dev libssl-dev libcjson-dev zlib1g-dev
       libcurl4-openssl-dev)
# tools/run-gateway.sh: certs/pki (openssl, jq, flock from util-linux) makes the local PKI; the
# README's client side: DCMTK (storescu, echoscu), Debian's pydicom for tests/support/gen_data.py,
# curl for /metrics
gateway=(openssl jq util-linux dcmtk python3-pydicom curl)
test=(libcriterion-dev dcmtk python3-pydicom python3-numpy clang libclang-rt-14-dev jq
      openssl procps psmisc iproute2 bc curl)

want=("${runtime[@]}" "${build[@]}")
case "${1:-}" in
"" | --gateway | --test) ;;
*) echo "usage: install-deps.sh [--gateway | --test]" >&2; exit 2 ;;
esac
[[ -z "${1:-}" ]] || want+=("${gateway[@]}")
if [[ "${1:-}" == "--test" ]]; then
    want+=("${test[@]}")
    # each area lists the extra Debian packages its tests need, one per line (# comments)
    here=$(cd "$(dirname "$0")" && pwd)
    for f in "$here"/deps/*.txt; do
        [[ -e "$f" ]] || continue
        while read -r p _; do
            [[ -n "$p" && "$p" != \#* ]] && want+=("$p")
        done <"$f"
    done
fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ "${1:-}" == "--test" ]]; then
    # npm test peers (tests/support/node/package-lock.json pins them): dcmjs-dimse
    here=$(cd "$(dirname "$0")" && pwd)
    if ! command -v npm >/dev/null; then
        [[ $(id -u) -eq 0 ]] || { echo "install-deps: npm missing (run as root)" >&2; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    node_dir="$here/../tests/support/node"
    if [[ ! -d "$node_dir/node_modules/dcmjs-dimse" ]]; then
        echo "install-deps: npm ci in tests/support/node" >&2
        npm ci --prefix "$node_dir" --no-audit --no-fund --ignore-scripts >/dev/null
    fi
fi
