# Shared by test_run_gateway.sh and test_monitoring.sh (sourced, not run): tools/run-gateway.sh
# in the background with its state and ports redirected (run_env), and the PIDs to stop.
# Needs: src, tmp (a scratch directory, removed by gw_cleanup), run_env (an array of VAR=value).

started=() # every PID the test started or learnt (run-gateway.sh's children), stopped at exit

# SIGTERM to every recorded PID, then SIGKILL to what is left after 15 s; removes $tmp
gw_cleanup() {
    local p alive
    for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 150); do
        alive=0
        for p in "${started[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "${started[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}

# gw_start TAG [ARGS...]: runs the script in the background as a terminal would (job control on,
# so SIGINT is not ignored in it), output in $tmp/TAG.out and $tmp/TAG.err; waits for the
# `storescu +tls` line (90 s: the first run makes the PKI's keys) or the script's end. Sets
# GW_PID, CORE_PID, EDGE_PID (empty if they did not start) and LINE (the storescu line).
gw_start() {
    local tag=$1
    shift
    set -m
    env "${run_env[@]}" bash "$src/tools/run-gateway.sh" "$@" >"$tmp/$tag.out" 2>"$tmp/$tag.err" &
    GW_PID=$!
    set +m
    started+=("$GW_PID")
    for _ in $(seq 900); do
        grep -q 'storescu +tls' "$tmp/$tag.out" 2>/dev/null && break
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.1
    done
    CORE_PID='' EDGE_PID=''
    read -r CORE_PID EDGE_PID < <(sed -n 's/^run-gateway: dicom-core pid \([0-9]*\), dicom-edge pid \([0-9]*\).*/\1 \2/p' "$tmp/$tag.err") || true
    [[ -z $CORE_PID ]] || started+=("$CORE_PID" "$EDGE_PID")
    LINE=$(grep -m1 '^  storescu +tls' "$tmp/$tag.out" || true)
}
