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
