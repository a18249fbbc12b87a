#!/usr/bin/env bash
# Benchmark (not a pass/fail test): what the dataset walk of core/dsscan costs per ~0.5 MB
# object in each encoding the core accepts, against a memcpy of the same bytes (the machine's
# reference), plus the decompression-bomb worst case the inflate cap bounds. Objects are made
# by tests/support/gen_data.py (pydicom; DCMTK for the compressed syntaxes): 512x512 int16 CT
# in explicit, implicit and deflated VR LE, RLE and JPEG lossless (one fragment each), and an
# 8-frame RLE object (eight fragments).
# Usage: tests/bench/dsscan_walk.sh [seconds per figure, default 1]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${GW_BUILD:-$src/build}
secs=${1:-1}
tool=$build/tests/dsscan_walk
[[ -x "$tool" ]] || { echo "build it first: cmake --build build --target dsscan_walk"; exit 1; }
T=$(mktemp -d /tmp/gw-dsscan.XXXXXX)
trap 'rm -rf "$T"' EXIT
gen() { # name, then gen_data.py options
    local name=$1
    shift
    /usr/bin/python3 "$src/tests/support/gen_data.py" --out "$T/$name" --count 1 --modality CT \
        "$@" >/dev/null
    mv "$T/$name"/*.dcm "$T/$name.dcm"
}
gen explicit --ts explicit
gen implicit --ts implicit
gen deflated --ts deflated
gen rle --ts rle
gen jpeg-lossless --ts jpeg-lossless
gen rle-8frames --ts rle --rows 256 --cols 256 --frames 8
echo "dsscan walk, fed in 16372-byte pieces (a 16 KiB PDU's PDV), CPU of one thread; bytes are"
echo "the dataset as sent (deflated: compressed), per-object figures include the scanner's setup"
"$tool" --seconds "$secs" --bomb 256 \
    "$T"/{explicit,implicit,deflated,rle,jpeg-lossless,rle-8frames}.dcm
