#!/usr/bin/env bash
# Every shell block in README.md, SECURITY.md and docs/*.md parses and names commands that exist;
# every block marked ```sh test is run from a fresh copy of the repository against this build
# (the convention: docs/operations.md, "Commands in these documents"). Negative controls show
# that a syntax error, an unknown command and a failing `sh test` block are each caught.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
py=python3 # pyenv's
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/support/deploy_lib.sh"
dc=$src/tests/support/docs_commands.py

check "every shell block parses and names existing commands" env GW_BUILD="$build" $py "$dc" check "$src"
grep -E '^(FAIL|[0-9]+ blocks)' "$tmp/out" || true
check "every 'sh test' block runs" $py "$dc" run "$src" "$build"
grep -E '^(FAIL|PASS|[0-9]+ blocks)' "$tmp/out" | sed 's/^/    /'
runs=$(awk '/blocks run/ {print $1}' "$tmp/out")
check "at least the deployment's runnable blocks exist" test "${runs:-0}" -ge 3

# negative controls
mkdir -p "$tmp/neg"
cat >"$tmp/neg/syntax.md" <<'EOM'
```sh
if true; then echo unclosed
```
EOM
cat >"$tmp/neg/unknown.md" <<'EOM'
```sh
dicom-core --version && dicom-coer --check-config --config core.json
```
EOM
cat >"$tmp/neg/fails.md" <<'EOM'
```sh test
./build/core/dicom-core --check-config --config does-not-exist.json
```
EOM
expect_fail "a block that does not parse is caught" env GW_BUILD="$build" $py "$dc" check "$src" "$tmp/neg/syntax.md"
expect_fail "an unknown command (dicom-coer) is caught" env GW_BUILD="$build" $py "$dc" check "$src" "$tmp/neg/unknown.md"
expect_fail "a failing 'sh test' block is caught" $py "$dc" run "$src" "$build" "$tmp/neg/fails.md"

exit $failed
