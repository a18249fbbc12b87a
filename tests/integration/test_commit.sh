#!/usr/bin/env bash
# Storage Commitment (PS3.4 Annex J) on the file backend, against a real SCU we did not write:
# dcmjs-dimse (tests/support/commit_scu.js; tests/support/node, installed by
# tools/install-deps.sh --test), DCMTK storescu for the objects.
#  - all committed at the spool point and at the file store point, reported on the N-ACTION's
#    own association (Event Type 1, every reference in the Referenced SOP Sequence);
#  - never sent (0112H), another SOP class (0119H), not a storage class (0122H): Event Type 2 at
#    the deadline, on a new association to the modality's ae_peers entry;
#  - N-ACTION failures: duplicate Transaction UID and no Transaction UID (0115H), Action Type 2
#    (0123H), another requested instance (0112H), more references than commit.max_refs (0213H);
#    a modality without the commit grant has its context rejected;
#  - the modality refuses the report's association twice: retried with backoff, delivered once;
#  - kill -9 of the core between the N-ACTION and the report, then a restart: `dicom-core
#    status` shows the transaction open; the same N-ACTION repeated is accepted as the same
#    transaction, other references under its UID are not (0115H); the report still comes once
#    the object is there, once;
#  - metrics.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
core_bin=$build/core/dicom-core
SCU=(node "$src/tests/support/commit_scu.js")
PY=/usr/bin/python3
T=$(mktemp -d /tmp/gw-commit.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [[ ${KEEP_TMP:-0} == 1 ]] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
export TCP_NODELAY=1
rc=0
fail() {
    echo "FAIL: $*"
    rc=1
}
ok() { echo "ok   $*"; }
die() {
    echo "FAIL: $*"
    tail -30 "$T/core.log" 2>/dev/null
    exit 1
}

[[ -x $core_bin ]] || die "no $core_bin"
command -v node >/dev/null || die "node missing (tools/install-deps.sh --test)"
[[ -d $src/tests/support/node/node_modules/dcmjs-dimse ]] ||
    die "dcmjs-dimse missing: tools/install-deps.sh --test installs tests/support/node"
command -v storescu >/dev/null || die "DCMTK storescu missing"
port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }

MOD_PORT=$(port)
# start_core POINT [extra json members]: one spool and store for the whole test
P=$(port)
H=$(port)
start_core() {
    cat >"$T/core.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$P", "http_listen": "127.0.0.1:$H",
  "spool_dir": "$T/spool", "min_free_bytes": 0, "drain_ms": 3000,
  "clients": [ { "calling_ae": ["MODALITY", "OTHER_MOD"], "services": ["store", "echo", "commit"] } ],
  "ae_peers": { "MODALITY": { "host": "127.0.0.1", "port": $MOD_PORT } },
  "commit": { "point": "$1", "deadline_ms": ${DEADLINE_MS:-3000}, "max_refs": 20,
              "poll_initial_ms": 50, "poll_max_ms": 400,
              "retry_initial_ms": 300, "retry_max_ms": 1000, "report_timeout_ms": 5000 },
  "backend": { "type": "file", "dir": "$T/store", "batch_max_age_ms": 200 } }
JSON
    "$core_bin" --config "$T/core.json" 2>>"$T/core.log" &
    core=$!
    pids+=("$core")
    wait_port "$P" || die "core did not listen"
}
stop_core() {
    kill -TERM "$core" 2>/dev/null
    wait "$core"
    local st=$?
    [[ $st == 0 ]] || fail "core exited $st on SIGTERM"
}

# objects: DIR/refs.txt lists "class instance" per object
gen() { # gen DIR COUNT
    $PY "$src/tests/support/gen_data.py" --out "$1" --count "$2" --modality CT --rows 32 --cols 32 \
        --seed "$RANDOM" >/dev/null || die "gen_data"
    for f in "$1"/*.dcm; do
        dcmdump -Un +P 0008,0016 +P 0008,0018 "$f" | sed 's/.*\[\(.*\)\].*/\1/' | paste -sd' '
    done >"$1/refs.txt"
}
store() { storescu -aet MODALITY -aec DICOM_CORE 127.0.0.1 "$P" "$1"/*.dcm || fail "storescu $1"; }
uid() { echo "2.25.$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')$RANDOM"; }
# request TUID REFS LINGER_MS [more args]: output JSON lines in $T/rq.out
request() {
    local tuid=$1 refs=$2 linger=$3
    shift 3
    "${SCU[@]}" request --host 127.0.0.1 --port "$P" --calling "${CALLING:-MODALITY}" \
        --called DICOM_CORE --tuid "$tuid" --refs "$refs" --linger "$linger" "$@" >"$T/rq.out" 2>&1
}
jq_out() { grep '^{' "$T/rq.out" | jq -c "$1"; }
action_status() { grep '^{' "$T/rq.out" | jq -r 'select(.ev=="n_action_rsp") | .status' | head -1; }
reports_for() { jq -c "select(.ev==\"report\" and .transaction_uid==\"$1\")" "$T/reports.jsonl"; }
wait_report() { # wait_report TUID SECONDS
    for _ in $(seq $((${2} * 10))); do
        [[ -n $(reports_for "$1") ]] && return 0
        sleep 0.1
    done
    return 1
}

"${SCU[@]}" listen --port "$MOD_PORT" --ae MODALITY --out "$T/reports.jsonl" >/dev/null 2>&1 &
listener=$!
pids+=("$listener")
for _ in $(seq 50); do [[ -s $T/reports.jsonl ]] && break; sleep 0.1; done

gen "$T/a" 5
gen "$T/b" 3

# ---- 1. spool point, same association ----------------------------------------------------------
start_core spool
store "$T/a"
t1=$(uid)
request "$t1" "$T/a/refs.txt" 4000
[[ $(action_status) == 0 ]] || fail "N-ACTION not answered with success: $(cat "$T/rq.out")"
rep=$(jq_out 'select(.ev=="report")')
if [[ $(jq -r .path <<<"$rep") == same && $(jq -r .event_type <<<"$rep") == 1 &&
      $(jq -r .transaction_uid <<<"$rep") == "$t1" &&
      $(jq -r '.referenced | length' <<<"$rep") == 5 && $(jq -r '.failed | length' <<<"$rep") == 0 ]]; then
    ok "spool point: Event Type 1 with all 5 references on the N-ACTION's association"
else
    fail "spool point: report $rep"
fi
stop_core

# ---- 2. the file store point (the default for file), same association ---------------------------
start_core auto
store "$T/b"
t2=$(uid)
request "$t2" "$T/b/refs.txt" 4000
rep=$(jq_out 'select(.ev=="report")')
[[ $(jq -r .event_type <<<"$rep") == 1 && $(jq -r '.referenced | length' <<<"$rep") == 3 &&
   $(jq -r .path <<<"$rep") == same ]] &&
    ok "store point: Event Type 1 on the same association" || fail "store point: $rep"
grep -q '"ev":"commit_started","point":"stored"' "$T/core.log" || fail "default point is not the store"

# ---- 3. failures in the report: 0112H, 0119H, 0122H at the deadline, new association ------------
t3=$(uid)
{
    head -2 "$T/a/refs.txt"
    echo "1.2.840.10008.5.1.4.1.1.2 2.25.999$RANDOM"                          # never sent
    echo "1.2.840.10008.5.1.4.1.1.4 $(tail -1 "$T/a/refs.txt" | cut -d' ' -f2)" # sent as CT
    echo "1.2.3.4.5 2.25.5$RANDOM"                                             # not storage
} >"$T/mixed.txt"
request "$t3" "$T/mixed.txt" 0
[[ $(action_status) == 0 ]] || fail "mixed N-ACTION: $(cat "$T/rq.out")"
if wait_report "$t3" 60; then
    rep=$(reports_for "$t3")
    got=$(jq -c '[.event_type, .path, (.referenced|length), ([.failed[][1]]|sort)]' <<<"$rep")
    [[ $got == '[2,"new",2,[274,281,290]]' ]] &&
        ok "Event Type 2: 0112H never received, 0119H class conflict, 0122H class not supported (new association)" ||
        fail "mixed report: $got"
else
    fail "no report for the mixed transaction"
fi

# ---- 4. N-ACTION failure statuses ------------------------------------------------------------------
request "$t2" "$T/b/refs.txt" 0
[[ $(action_status) == 277 ]] && ok "duplicate Transaction UID: 0115H" || fail "duplicate: $(cat "$T/rq.out")"
request - "$T/b/refs.txt" 0
[[ $(action_status) == 277 ]] && ok "no Transaction UID: 0115H" || fail "no tuid: $(cat "$T/rq.out")"
request "$(uid)" "$T/b/refs.txt" 0 --action-type 2
[[ $(action_status) == 291 ]] && ok "Action Type ID 2: 0123H" || fail "action type: $(cat "$T/rq.out")"
request "$(uid)" "$T/b/refs.txt" 0 --instance 1.2.3
[[ $(action_status) == 274 ]] && ok "another requested instance: 0112H" || fail "instance: $(cat "$T/rq.out")"
for _ in $(seq 7); do cat "$T/a/refs.txt"; done >"$T/many.txt" # 35 > max_refs 20
request "$(uid)" "$T/many.txt" 0
[[ $(action_status) == 531 ]] && ok "more references than max_refs: 0213H" || fail "too many: $(cat "$T/rq.out")"
CALLING=NO_COMMIT request "$(uid)" "$T/b/refs.txt" 0
[[ -z $(action_status) ]] && ok "a modality without the commit grant gets no commitment" ||
    fail "no-grant modality: $(cat "$T/rq.out")"
stop_core

# ---- 5. the modality unreachable for a while on the new-association path ------------------------
kill -KILL "$listener" 2>/dev/null
wait "$listener" 2>/dev/null
"${SCU[@]}" listen --port "$MOD_PORT" --ae MODALITY --out "$T/reports.jsonl" --refuse 2 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 600); do [[ $(grep -c '"ev":"listening"' "$T/reports.jsonl") -ge 2 ]] && break; sleep 0.1; done
start_core auto
t5=$(uid)
request "$t5" "$T/b/refs.txt" 0
[[ $(action_status) == 0 ]] || fail "modality away: N-ACTION $(cat "$T/rq.out")"
if wait_report "$t5" 90; then
    refused=$(grep -c '"ev":"refused"' "$T/reports.jsonl")
    [[ $refused -ge 2 && $(grep -c '"ev":"commit_report_failed".*"'"$t5"'"' "$T/core.log") -ge 2 ]] &&
        ok "report refused twice, retried, then delivered" ||
        fail "retries: refused=$refused"
else
    fail "no report after the modality came back"
fi

# ---- 6. kill -9 between the N-ACTION and the report, restart --------------------------------------
gen "$T/c" 2
t6=$(uid)
DEADLINE_MS=60000
stop_core
start_core auto
request "$t6" "$T/c/refs.txt" 0 # not sent yet: the transaction waits
[[ $(action_status) == 0 ]] || fail "kill -9 case: N-ACTION $(cat "$T/rq.out")"
kill -KILL "$core"
wait "$core" 2>/dev/null
"$core_bin" status --config "$T/core.json" >"$T/status.out" 2>&1
grep -q "1 open transaction" "$T/status.out" && ok "dicom-core status shows the open transaction" ||
    fail "status: $(cat "$T/status.out")"
start_core auto
for _ in $(seq 600); do grep -q '"ev":"commit_resumed","transaction_uid":"'"$t6"'"' "$T/core.log" && break; sleep 0.1; done
request "$t6" "$T/c/refs.txt" 0
[[ $(action_status) == 0 ]] && ok "the same N-ACTION again while open: success (the same transaction)" ||
    fail "repeated N-ACTION: $(cat "$T/rq.out")"
request "$t6" "$T/b/refs.txt" 0
[[ $(action_status) == 277 ]] && ok "its Transaction UID with other references: 0115H" ||
    fail "reused Transaction UID: $(cat "$T/rq.out")"
store "$T/c"
if wait_report "$t6" 90; then
    sleep 2
    n=$(reports_for "$t6" | wc -l)
    ev=$(reports_for "$t6" | jq -r .event_type | head -1)
    [[ $n == 1 && $ev == 1 ]] && ok "after kill -9 and restart the report came, once, all committed" ||
        fail "after restart: $n report(s), event $ev"
else
    fail "no report after kill -9 and restart"
fi

# ---- exactly once overall, metrics -----------------------------------------------------------------
for t in "$t3" "$t5"; do
    [[ $(reports_for "$t" | wc -l) == 1 ]] || fail "transaction $t reported $(reports_for "$t" | wc -l) times"
done
curl -sf "http://127.0.0.1:$H/metrics" >"$T/metrics.out" || fail "no /metrics"
grep -q '^dicom_core_commit_reports_total{path="new"} [1-9]' "$T/metrics.out" &&
    grep -q '^dicom_core_commit_transactions_open 0' "$T/metrics.out" &&
    ok "metrics: reports by path, transactions open" || fail "metrics: $(grep commit "$T/metrics.out")"
grep -q '"ev":"commit_reported"' "$T/core.log" || fail "no commit_reported log line"
if grep '"ev":"\(commit\|n_action\)' "$T/core.log" | grep -qi 'SYNTHETIC'; then
    fail "patient data in commitment logs"
fi
stop_core
[[ $rc == 0 ]] && echo "test_commit: all passed" || tail -40 "$T/core.log"
exit $rc
