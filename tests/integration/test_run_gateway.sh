#!/usr/bin/env bash
# tools/run-gateway.sh, the README's "run the gateway" command, with its state redirected to a
# temporary directory and free ports (GW_* overrides; GW_PREBUILT runs the tested build): the
# first run makes a PKI, onboards the demo modality and prints the `storescu +tls` line; a
# synthetic study (tests/support/gen_data.py, with numpy hidden) sent with that line over
# mutual TLS lands in the core's file store; another calling AE title is refused; SIGINT stops
# both programs with status 0. A second run reuses the PKI and onboards nobody new, and stops on
# SIGTERM. --core-only runs dicom-core alone; a core that cannot start stops the script.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
tmp=$(mktemp -d)
source "$src/tests/support/deploy_lib.sh" # check, expect_fail, free_port
source "$src/tests/integration/lib_gateway.sh" # gw_start, gw_cleanup, started
trap gw_cleanup EXIT
[[ -x $build/core/dicom-core && -x $build/edge/dicom-edge ]] || { echo "FAIL dicom-core or dicom-edge not built in $build"; exit 1; }

pc=$(free_port) ph=$(free_port) pe=$(free_port) peh=$(free_port)
run_env=(GW_PREBUILT="$build" GW_STATE_DIR="$tmp/state" GW_CORE_DATA_DIR="$tmp/core"
         GW_CORE_LISTEN="127.0.0.1:$pc" GW_CORE_HTTP="127.0.0.1:$ph"
         GW_EDGE_LISTEN="127.0.0.1:$pe" GW_EDGE_HTTP="127.0.0.1:$peh")

# stop_gateway SIGNAL TAG: signal the script only; -> GW_RC (its exit status)
stop_gateway() {
    kill "-$1" "$GW_PID"
    for _ in $(seq 600); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
    GW_RC=0
    wait "$GW_PID" || GW_RC=$?
}

# send DIR [calling AE]: the printed storescu line, '+sd DIR' in place of its 'test.dcm'
send() {
    local w
    read -ra w <<<"$LINE"
    [[ ${w[-1]} == test.dcm ]] || { echo "the printed line does not end in test.dcm: $LINE"; return 1; }
    unset 'w[-1]'
    if [[ -n ${2:-} ]]; then w=("${w[@]/DEMO_MODALITY/$2}"); fi
    TCP_NODELAY=1 "${w[@]}" +sd "$1"
}

# stored DIR: every SOP Instance UID of DIR's files is a file in the core's store (30 s)
stored() {
    local uids missing
    uids=$(/usr/bin/python3 -c 'import sys, glob, pydicom
for p in sorted(glob.glob(sys.argv[1] + "/*.dcm")): print(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)' "$1")
    for _ in $(seq 300); do
        missing=0
        for u in $uids; do compgen -G "$tmp/core/store/dicom/*/$u.dcm" >/dev/null || missing=$((missing + 1)); done
        ((missing)) || return 0
        sleep 0.1
    done
    echo "$missing of $(wc -w <<<"$uids") objects not in $tmp/core/store/dicom/*/"
    find "$tmp/core" -type f | head -20
    return 1
}

metric() { # port name{labels} -> value (0 when absent)
    curl -fs "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {v = $2} END {print v + 0}'
}

exited_zero() { # tag name pid: the script reported the program's exit status 0, and it is gone
    grep -q "^run-gateway: $2 (pid $3) exited with status 0$" "$tmp/$1.err" && ! kill -0 "$3" 2>/dev/null
}

# ---------------------------------------------------------------- first run
gw_start run1
check "first run: the script runs (dicom-core and dicom-edge PIDs printed)" test -n "$CORE_PID" -a -n "$EDGE_PID"
check "first run: it prints the onboarding's storescu +tls line" test -n "$LINE"
check "first run: the PKI and the edge's files are under GW_STATE_DIR" \
    test -f "$tmp/state/pki/pki.json" -a -f "$tmp/state/edge.json" -a -f "$tmp/state/policy.json"
check "first run: the generated edge.json passes dicom-edge --check-config" \
    "$build/edge/dicom-edge" --check-config --config "$tmp/state/edge.json"
check "first run: the policy binds demo-modality to DEMO_MODALITY on the route to this core" jq -e \
    --arg u "127.0.0.1:$pc" '.clients == [.clients[0]] and .clients[0].id == "demo-modality" and
    .clients[0].calling_ae == ["DEMO_MODALITY"] and .routes.core.upstream == $u' "$tmp/state/policy.json"

# the README's synthetic-study command, with numpy made unimportable
mkdir -p "$tmp/nonumpy"
echo 'raise ModuleNotFoundError("numpy hidden by test_run_gateway.sh")' >"$tmp/nonumpy/numpy.py"
check "gen_data.py makes a study without numpy" env PYTHONPATH="$tmp/nonumpy" /usr/bin/python3 \
    "$src/tests/support/gen_data.py" --out "$tmp/study1" --count 5 --modality CT --ts explicit
check "storescu +tls (the printed line) sends the study through the edge" send "$tmp/study1"
check "the study's objects landed in the core's file store" stored "$tmp/study1"
check "the edge admitted one association (its /metrics)" \
    test "$(metric "$peh" 'dicom_edge_associations_total{decision="admit",reason="policy_match"}')" = 1
check "the core stored 5 objects (its /metrics)" test "$(metric "$ph" dicom_core_objects_stored_total)" = 5
refused() { ! send "$@" >"$tmp/refused.log" 2>&1 && grep -q 'Calling AE Title Not Recognized' "$tmp/refused.log"; }
check "the same certificate with another calling AE title is refused ('Calling AE Title Not Recognized')" \
    refused "$tmp/study1" OTHER_AE
stop_gateway INT run1
check "SIGINT: the script exits 0" test "$GW_RC" = 0
check "SIGINT: dicom-core drained and exited 0" exited_zero run1 dicom-core "$CORE_PID"
check "SIGINT: dicom-edge drained and exited 0" exited_zero run1 dicom-edge "$EDGE_PID"
check "SIGINT: the edge's pid file is removed" test ! -e "$tmp/state/edge.pid"

# ---------------------------------------------------------------- second run: same PKI
ca_sum=$(sha256sum "$tmp/state/pki/ca/root/ca.crt" "$tmp/state/pki/servers/edge/cert.pem")
serial=$(jq -r .serial "$tmp/state/pki/modalities/demo-modality/meta.json")
first_line=$LINE
gw_start run2
check "second run: it starts and prints the same storescu line" test -n "$EDGE_PID" -a "$LINE" = "$first_line"
check "second run: no new PKI (the same root CA and edge certificate)" \
    test "$(sha256sum "$tmp/state/pki/ca/root/ca.crt" "$tmp/state/pki/servers/edge/cert.pem")" = "$ca_sum"
check "second run: the demo modality was not onboarded again" \
    test "$(ls "$tmp/state/pki/modalities")" = demo-modality -a \
    "$(jq -r .serial "$tmp/state/pki/modalities/demo-modality/meta.json")" = "$serial" -a \
    "$(jq '.clients | length' "$tmp/state/policy.json")" = 1
expect_fail "second run: it does not say 'first run'" grep -q 'first run' "$tmp/run2.err"
/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$tmp/study2" --count 3 --modality MR --seed 2 >/dev/null
check "second run: the same certificate sends another study" send "$tmp/study2"
check "second run: its objects landed in the store" stored "$tmp/study2"
stop_gateway TERM run2
check "SIGTERM: the script exits 0" test "$GW_RC" = 0
check "SIGTERM: dicom-core exited 0" exited_zero run2 dicom-core "$CORE_PID"
check "SIGTERM: dicom-edge exited 0" exited_zero run2 dicom-edge "$EDGE_PID"

# ---------------------------------------------------------------- --core-only, one-shot, failure
set -m
env "${run_env[@]}" bash "$src/tools/run-gateway.sh" --core-only >"$tmp/core-only.out" 2>"$tmp/core-only.err" &
GW_PID=$!
set +m
started+=("$GW_PID")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ph/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
check "--core-only: the core answers C-ECHO directly" echoscu -aet ECHO_TEST -aec DICOM_CORE 127.0.0.1 "$pc"
expect_fail "--core-only: no edge listens" curl -fs "http://127.0.0.1:$peh/healthz"
stop_gateway TERM core-only
check "--core-only: SIGTERM stops it with status 0" test "$GW_RC" = 0
version_ok() { env "${run_env[@]}" bash "$src/tools/run-gateway.sh" --version | grep -q '^dicom-core '; }
check "extra arguments go to dicom-core (--version)" version_ok

run_env+=(GW_CORE_LISTEN=127.0.0.1:not-a-port)
gw_start bad
stop_rc=0
for _ in $(seq 300); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
wait "$GW_PID" || stop_rc=$?
check "a core that cannot start: the script exits non-zero" test "$stop_rc" -ne 0
expect_fail "a core that cannot start: no edge was started" grep -q 'dicom-edge pid' "$tmp/bad.err"

exit $failed
