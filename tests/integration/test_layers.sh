#!/usr/bin/env bash
# The layer rule holds on this tree (tests/support/check_layers.py), and the check catches what it
# is for: planted violations in a copy of the sources (a pure module that includes the SCP, the
# SCP reaching into a backend, the edge into the spool, two modules including each other) each
# fail it.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
py=python3
chk=$src/tests/support/check_layers.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failed=1; }

if $py "$chk" "$src" >"$tmp/out"; then pass "the tree keeps the layer rule"; else
    cat "$tmp/out"; fail "the tree breaks the layer rule"; fi

plant() { # name file line-to-add expected-pattern
    rm -rf "$tmp/t"
    mkdir -p "$tmp/t"
    (cd "$src" && git ls-files core edge forwarder | tar -cf - -T -) | tar -xf - -C "$tmp/t"
    printf '%s\n' "$3" >>"$tmp/t/$2"
    if $py "$chk" "$tmp/t" >"$tmp/out"; then
        fail "$1: not caught"
    elif grep -q -- "$4" "$tmp/out"; then
        pass "$1: caught ($(grep -m1 -- "$4" "$tmp/out"))"
    else
        cat "$tmp/out"; fail "$1: failed for another reason"
    fi
}
plant "common includes the SCP" core/common/rd.c '#include "assoc.h"' "core/common/rd.c (common) includes core/assoc.h (scp)"
plant "the SCP includes a backend" core/store.c '#include "backend_file/file_backend.h"' "core/store.c (scp) includes"
plant "the edge includes the spool" edge/policy.c '#include "spool/spool.h"' "edge/policy.c (edge) includes core/spool/spool.h"
plant "a circle between two SCP modules" core/ts.c '#include "store.h"' "circle"
exit $failed
