# Helpers sourced by tests/integration/test_deploy_*.sh and test_docs_commands.sh.
# Needs $tmp (a scratch directory); sets failed=1 when a step fails.
failed=0
# check NAME COMMAND...: the command must succeed; its output is shown only when it does not
check() {
    local name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        echo "PASS $name"
    else
        echo "FAIL $name"
        sed 's/^/    /' "$tmp/out"
        failed=1
    fi
}
# expect_fail NAME COMMAND...: the command must fail (a negative control: the check can fail)
expect_fail() {
    local name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        echo "FAIL $name (not caught)"
        sed 's/^/    /' "$tmp/out"
        failed=1
    else
        echo "PASS $name"
    fi
}
# background processes a test started (by PID) and its scratch directory go at exit:
# append to pids, and `trap deploy_cleanup EXIT`
pids=()
deploy_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
