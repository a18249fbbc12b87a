#!/usr/bin/env bash
# Builds and runs the gateway on its embedded defaults: dicom-edge (mutual TLS, port 2762) in
# front of dicom-core (0.0.0.0:11112, AE title DICOM_CORE, spool /var/lib/dicom-core/spool,
# objects in the local `file` store /var/lib/dicom-core/store), metrics on
# http://127.0.0.1:9111/metrics (edge) and http://127.0.0.1:9112/metrics (core).
#
# The first run makes a local PKI with certs/pki in /var/lib/dicom-gateway/pki, writes the
# edge's configuration and policy beside it, onboards one demo modality (demo-modality, calling
# AE title DEMO_MODALITY) and prints what `certs/pki onboard` prints, with the `storescu +tls`
# line to try. Later runs reuse all of it (the configuration is rewritten, the PKI and the
# policy's clients are kept) and print the same instructions again.
#
#   bash tools/run-gateway.sh [ARGS...]             edge + core; ARGS go to dicom-core
#   bash tools/run-gateway.sh --core-only [ARGS...] dicom-core alone, as before the edge existed
#   bash tools/run-gateway.sh status|failed|redrive|--version|--help|--check-config|...
#                                                   a one-shot dicom-core command
#
# Ctrl-C (SIGINT) or SIGTERM drains and stops both (a second Ctrl-C aborts what is left); the
# script exits 0 when both programs did. Environment overrides (tests use them; the defaults
# are the embedded ones):
#   GW_STATE_DIR      /var/lib/dicom-gateway   PKI, edge.json, policy.json, edge.pid, demo files
#   GW_CORE_DATA_DIR  (embedded: /var/lib/dicom-core)  spool/ and store/ of the core
#   GW_CORE_LISTEN    (embedded: 0.0.0.0:11112)        the core's DICOM listener
#   GW_CORE_HTTP      (embedded: 127.0.0.1:9112)       the core's /healthz and /metrics
#   GW_EDGE_LISTEN    0.0.0.0:2762             the edge's DICOM/TLS listener
#   GW_EDGE_HTTP      127.0.0.1:9111           the edge's /healthz and /metrics
#   GW_EDGE_HOST      127.0.0.1                the host name the printed instructions use
#   GW_PREBUILT       (unset)                  a build directory to run from: skips installing
#                                              packages and building
# With your own core configuration (--config FILE), set GW_CORE_LISTEN and GW_CORE_HTTP to its
# addresses so that the edge's route and the start-up check follow it.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
say() { echo "run-gateway: $*" >&2; }
die() { say "error: $*"; exit 1; }

core_only=0
args=()
oneshot=0
for a in "$@"; do
    case $a in
    --core-only) core_only=1 ;;
    --version | --help | -h | --check-config | --print-default-config) oneshot=1; args+=("$a") ;;
    *) args+=("$a") ;;
    esac
done
case "${args[0]:-}" in status | failed | redrive) oneshot=1 ;; esac

if [[ -n ${GW_PREBUILT:-} ]]; then
    build=$(cd "$GW_PREBUILT" && pwd)
else
    bash tools/install-deps.sh --gateway
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
    cmake --build build -j"$(nproc)" --target dicom-core dicom-edge >/dev/null
    build=$src/build
fi
core=$build/core/dicom-core
edge=$build/edge/dicom-edge
[[ -x $core ]] || die "$core is not built"

# the core's settings: the embedded default unless overridden (env wins over a file, so only
# what the caller set is exported)
[[ -z ${GW_CORE_LISTEN:-} ]] || export DICOM_CORE_LISTEN=$GW_CORE_LISTEN
[[ -z ${GW_CORE_HTTP+x} ]] || export DICOM_CORE_HTTP_LISTEN=$GW_CORE_HTTP
core_listen=${GW_CORE_LISTEN:-0.0.0.0:11112}
core_http=${GW_CORE_HTTP-127.0.0.1:9112}
core_args=()
if [[ -n ${GW_CORE_DATA_DIR:-} ]]; then
    # the store directory has no environment override: a configuration file that differs from
    # the embedded default in the two directories only
    state=${GW_STATE_DIR:-/var/lib/dicom-gateway}
    mkdir -p "$state"
    "$core" --print-default-config |
        jq --arg d "$GW_CORE_DATA_DIR" '.spool_dir = ($d + "/spool") | .backend.dir = ($d + "/store")' \
            >"$state/core.json.new"
    mv -f "$state/core.json.new" "$state/core.json"
    core_args=(--config "$state/core.json")
fi

if ((core_only || oneshot)); then
    exec "$core" "${core_args[@]}" "${args[@]}"
fi
[[ -x $edge ]] || die "$edge is not built"

# ---------------------------------------------------------------- the local PKI (first run)
state=${GW_STATE_DIR:-/var/lib/dicom-gateway}
pki_dir=$state/pki
edge_listen=${GW_EDGE_LISTEN:-0.0.0.0:2762}
edge_http=${GW_EDGE_HTTP-127.0.0.1:9111}
edge_host=${GW_EDGE_HOST:-127.0.0.1}
edge_port=${edge_listen##*:}
demo=demo-modality
demo_ae=DEMO_MODALITY
pki() { PKI_DIR=$pki_dir "$src/certs/pki" "$@"; }
mkdir -p "$state" || die "cannot create $state (run as root, or set GW_STATE_DIR)"
log=$state/pki.log
if [[ ! -f $pki_dir/pki.json ]]; then
    if [[ -e $pki_dir ]] && [[ -n $(ls -A "$pki_dir") ]]; then
        die "$pki_dir holds an incomplete PKI (an earlier first run was interrupted): remove it and run again"
    fi
    say "first run: making a local PKI in $pki_dir"
    pki init --org "DICOM Gateway Demo" --edge-host "$edge_host" --edge-port "$edge_port" \
        --called-ae DICOM_CORE --policy "$state/policy.json" --edge-pid-file "$state/edge.pid" \
        >"$log" 2>&1 || { cat "$log" >&2; die "certs/pki init failed"; }
fi
if [[ ! -f $pki_dir/servers/edge/chain.pem ]]; then
    sans=(--dns localhost --ip 127.0.0.1)
    h=$(hostname 2>/dev/null || true)
    [[ ! $h =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$ || $h == localhost ]] || sans+=(--dns "$h")
    pki server --name edge "${sans[@]}" >>"$log" 2>&1 ||
        { cat "$log" >&2; die "certs/pki server failed"; }
fi

# the policy: its clients are kept across runs; its one route follows the core's address
core_port=${core_listen##*:}
core_host=${core_listen%:*}
case $core_host in "" | 0.0.0.0 | "*" | "[::]" | ::) core_host=127.0.0.1 ;; esac
upstream=$core_host:$core_port
[[ -f $state/policy.json ]] || echo '{ "clients": [], "routes": {} }' >"$state/policy.json"
jq --arg u "$upstream" '.routes.core = ((.routes.core // {}) + {upstream: $u})' \
    "$state/policy.json" >"$state/policy.json.new" || die "$state/policy.json is not valid JSON"
mv -f "$state/policy.json.new" "$state/policy.json"
jq -n --arg listen "$edge_listen" --arg http "$edge_http" --arg p "$pki_dir" '{
    listen: $listen, http_listen: $http,
    tls: { cert: ($p + "/servers/edge/chain.pem"), key: ($p + "/servers/edge/key.pem"),
           client_ca: ($p + "/trust/modality-ca-chain.pem"), crl: ($p + "/crl/modality.crl.pem") },
    policy: "policy.json" }' >"$state/edge.json.new"
mv -f "$state/edge.json.new" "$state/edge.json"

# the demo modality, once: its instructions are kept to print again on later runs
instructions=$state/$demo.txt
if [[ ! -f $instructions ]]; then
    # --edge-pid-file /dev/null: the edge is not running yet (and an old pid file may be stale)
    pki onboard --name "$demo" --calling-ae "$demo_ae" --called-ae DICOM_CORE --route core \
        --policy "$state/policy.json" --generate-key --edge-pid-file /dev/null \
        --edge-host "$edge_host" --edge-port "$edge_port" >"$instructions.new" 2>>"$log" ||
        { cat "$log" >&2; rm -f "$instructions.new"; die "certs/pki onboard failed"; }
    mv -f "$instructions.new" "$instructions"
fi

# ---------------------------------------------------------------- run both
healthy() { # http_listen: GET /healthz answers 200
    local h=${1%:*} p=${1##*:}
    case $h in "" | 0.0.0.0 | "*") h=127.0.0.1 ;; esac
    curl -fs --max-time 1 "http://$h:$p/healthz" >/dev/null 2>&1
}
wait_up() { # name pid http_listen
    local i
    for i in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        if [[ -z $3 ]]; then ((i < 10)) || return 0; elif healthy "$3"; then return 0; fi
        sleep 0.1
    done
    say "$1 did not answer on http://$3/healthz within 10 s"
    return 1
}

core_pid='' edge_pid='' stopping=0 start_failed=0 asked=0
on_signal() { # first signal: drain both (SIGTERM); a second one: abort what is left (SIGINT)
    local p
    for p in $core_pid $edge_pid; do
        if ((stopping)); then kill -INT "$p" 2>/dev/null || true; else kill -TERM "$p" 2>/dev/null || true; fi
    done
    stopping=1
}
trap 'asked=1; on_signal' INT TERM

"$core" "${core_args[@]}" "${args[@]}" &
core_pid=$!
if wait_up dicom-core "$core_pid" "$core_http" && ((!stopping)); then
    "$edge" --config "$state/edge.json" &
    edge_pid=$!
    echo "$edge_pid" >"$state/edge.pid"
    wait_up dicom-edge "$edge_pid" "$edge_http" || { ((stopping)) || start_failed=1; on_signal; }
elif ((!stopping)); then
    start_failed=1
    on_signal
fi

if ((!stopping)); then
    say "dicom-core pid $core_pid, dicom-edge pid $edge_pid (state in $state)"
    cat <<EOF

==> The gateway runs: dicom-edge on $edge_listen (mutual TLS) -> dicom-core on $core_listen.
    Metrics: http://$edge_http/metrics (edge), http://$core_http/metrics (core).
    Stop with Ctrl-C. A demo modality is onboarded (certs/pki onboard printed this):

EOF
    if [[ -f $pki_dir/modalities/$demo/meta.json ]]; then
        cat "$instructions"
    else
        echo "    (the demo modality was revoked; onboard your own: docs/onboarding.md)"
    fi
    cat <<EOF

==> Send a synthetic study through the edge: make one, then run the storescu line above with
    '+sd /tmp/study' in place of 'test.dcm':
      /usr/bin/python3 tests/support/gen_data.py --out /tmp/study --count 20 --modality CT
    Objects land in ${GW_CORE_DATA_DIR:-/var/lib/dicom-core}/store/dicom/<batch>/.
    Onboard a real modality (the edge reloads its policy by itself):
      certs/pki --dir $pki_dir onboard --name NAME --calling-ae AE --route core --generate-key

EOF
fi

# wait for both (by PID); when one ends on its own, stop the other
status=0
live=("$core_pid")
[[ -z $edge_pid ]] || live+=("$edge_pid")
while ((${#live[@]})); do
    done_pid=''
    rc=0
    wait -n -p done_pid "${live[@]}" || rc=$?
    [[ -n ${done_pid:-} ]] || continue # a trapped signal interrupted the wait (-p unsets it)
    name=dicom-core
    [[ $done_pid != "$edge_pid" ]] || name=dicom-edge
    say "$name (pid $done_pid) exited with status $rc"
    ((rc == 0 || status != 0)) || status=$rc
    next=()
    for p in "${live[@]}"; do [[ $p == "$done_pid" ]] || next+=("$p"); done
    live=("${next[@]}")
    if ((!stopping && ${#live[@]})); then
        say "$name stopped: stopping the other one too"
        on_signal
    fi
done
trap - INT TERM
[[ -z $edge_pid ]] || rm -f "$state/edge.pid"
# a failed start, or an end nobody asked for, is a failure even with status 0
if ((status == 0 && (start_failed || !asked))); then status=1; fi
exit "$status"
