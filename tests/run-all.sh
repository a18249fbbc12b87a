#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine (as root): installs what it needs, then
#   1. a normal build with -Werror: unit tests (Criterion) and integration tests (real peers);
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer (except the tests labelled
#      no_c_code, which run none of our programs: tests/CMakeLists.txt);
#   3. the libFuzzer targets (clang), briefly;
#   4. source checks (banned functions).
# Ends with one summary line: "N passed, N failed". Tests run as many at a time as there are cores
# (ctest -j): every test picks free loopback ports and its own temporary directories.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash tools/install-deps.sh --test || exit 1
jobs=$(nproc)
passed=0
failed=0
failures=()

record() { # name rc
    if [[ $2 -eq 0 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

# ctest in dir; counts each ctest test
run_ctest() { # label builddir [ctest args]
    local label=$1 dir=$2
    shift 2
    local log
    log=$(mktemp)
    (cd "$dir" && ctest --output-on-failure --timeout 1500 -j"$jobs" "$@") 2>&1 | tee "$log"
    local p f
    p=$(grep -Ec '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* +Passed' "$log")
    f=$(grep -Ec '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(\*\*\*|Failed|Timeout|Not Run|Exception)' "$log")
    passed=$((passed + p))
    failed=$((failed + f))
    while read -r t; do failures+=("$label:$t"); done < <(grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(\*\*\*|Failed|Timeout|Not Run|Exception)' "$log" | sed -E 's/.*Test +#[0-9]+: ([^ ]+).*/\1/')
    rm -f "$log"
}

build() { # dir [cmake args]
    local dir=$1
    shift
    cmake -S "$root" -B "$dir" -DWERROR=ON "$@" >/dev/null || return 1
    cmake --build "$dir" -j"$jobs" 2>&1 | grep -Ev '^\[ *[0-9]+%\]'
    local rc=${PIPESTATUS[0]}
    [[ $rc -eq 0 && -x "$dir/core/dicom-core" ]]
}

echo "== source checks"
banned=$(grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|sscanf)\s*\(' core edge forwarder 2>/dev/null | grep -v '^\S*:\s*//' || true)
if [[ -n "$banned" ]]; then echo "banned functions used:"; echo "$banned"; fi
record "source:banned-functions" "$([[ -z "$banned" ]] && echo 0 || echo 1)"

echo "== normal build (-Werror)"
if build "$root/build-ci" -DCMAKE_BUILD_TYPE=RelWithDebInfo; then
    record "build:normal" 0
    run_ctest normal "$root/build-ci"
else
    record "build:normal" 1
fi

echo "== ASan + UBSan build"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if build "$root/build-ci-asan" -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined; then
    record "build:asan" 0
    GW_SANITIZED=1 run_ctest asan "$root/build-ci-asan" -LE no_c_code
else
    record "build:asan" 1
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "== fuzz targets (clang, libFuzzer)"
if CC=clang build "$root/build-ci-fuzz" -DFUZZ=ON -DCMAKE_BUILD_TYPE=Debug; then
    record "build:fuzz" 0
    run_ctest fuzz "$root/build-ci-fuzz" -L fuzz
else
    record "build:fuzz" 1
fi

echo
if ((failed)); then
    echo "failed:"
    printf '  %s\n' "${failures[@]}"
fi
echo "${passed} passed, ${failed} failed"
((failed == 0))
