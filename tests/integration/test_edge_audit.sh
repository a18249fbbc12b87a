#!/usr/bin/env bash
# The edge's audit trail (issue 17): dicom-edge with an "audit" object sends DICOM audit
# messages (PS3.15 A.5) to a real rsyslog over mutual TLS (tests/support/rsyslog_lib.sh), each
# valid against the A.5.1 RELAX NG schema:
#  - start and stop: Application Activity (110100, 110120 / 110121);
#  - a store through the edge: User Authentication (110114, 110122 Login, outcome 0) with the
#    certificate's fingerprint;
#  - a refusal by policy: a Security Alert, Use of Restricted Function (110113, 110132);
#  - a revoked certificate: User Authentication outcome 8 and a Security Alert, Node
#    Authentication (110126);
#  - a reload, and a reload refused: Security Alert, Security Configuration (110129), 0 and 4;
#  - fail_closed with a full queue (its repository away): the next association is refused
#    (transient, local limit) and the refusal is logged;
#  - the audit metrics on /metrics (dicom_edge_audit_*, the names the shipped rules use) and the
#    audit queue in `dicom-edge status`.
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-edge-audit.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
# shellcheck source=../support/rsyslog_lib.sh
source "$src/tests/support/rsyslog_lib.sh"
trap 'rsyslog_cleanup; edge_cleanup' EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }
CHECK="/usr/bin/python3 $src/tests/support/audit_check.py"
RNG=$src/tests/support/audit/audit-message.rng
for tool in /usr/sbin/rsyslogd xmllint ss; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (tools/deps/audit.txt)"; exit 1; }
done

bash "$src/tests/support/test_pki.sh" "$T/pki"
P=$T/pki
openssl rand -hex 32 >"$T/site.key"
chmod 600 "$T/site.key"
rsyslog_start c1 "$T/c1" "$P/ca.crt" "$P/server.crt" "$P/server.key" || exit 1
LOG=$T/c1/tls.log
CP=$(port)
EP=$(port)
HP=$(port)
start_core c1 "$CP"
cat >"$T/policy.json" <<JSON
{ "clients": [
    { "id": "ct-room-1", "match": { "subject_cn": "ct-room-1" },
      "calling_ae": ["CT_ROOM1"], "called_ae": ["DICOM_CORE"] },
    { "id": "revoked-1", "match": { "subject_cn": "revoked-1" },
      "calling_ae": ["REVOKED"], "called_ae": ["DICOM_CORE"] } ],
  "routes": { "core": { "upstream": "127.0.0.1:$CP" } } }
JSON
audit() { # repository port, queue dir [extra members]
    echo "\"audit\": { \"repositories\": [ { \"transport\": \"tls\", \"host\": \"127.0.0.1\", \"port\": $1,
        \"ca\": \"$P/ca.crt\", \"cert\": \"$P/edge-client.crt\", \"key\": \"$P/edge-client.key\",
        \"server_name\": \"localhost\" } ], \"queue_dir\": \"$2\", \"hash_key_file\": \"$T/site.key\",
        \"source_id\": \"edge-test\", \"ack_grace_ms\": 200, \"retry_min_ms\": 100, \"retry_max_ms\": 400,
        \"connect_timeout_ms\": 2000 ${3:-} }"
}
write_edge_config "$EP" "$HP" ", $(audit "$RSYSLOG_TCP_c1" "$T/queue")"
"$build/edge/dicom-edge" --check-config --config "$T/edge.json" >"$T/check.out" 2>&1 ||
    fail "check-config: $(cat "$T/check.out")"
grep -q "audit on" "$T/check.out" || fail "check-config does not say audit is on: $(cat "$T/check.out")"
start_edge "$EP"
make_dicom "$T/data" 2 64 64
lines() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }
wait_lines() { # file count
    for _ in $(seq 100); do (($(lines "$1") >= $2)) && return 0; sleep 0.1; done
    return 1
}

wait_lines "$LOG" 1 || fail "no Application Start message"
scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" "$T"/data/*.dcm >"$T/store.out" 2>&1 ||
    fail "store through the edge: $(tail -3 "$T/store.out")"
wait_lines "$LOG" 2 || fail "no message for the store's authentication"
scu echoscu ct1 NOT_BOUND DICOM_CORE "$EP" >/dev/null 2>&1 && fail "an unbound calling AE title was admitted"
wait_lines "$LOG" 4 || fail "no messages for the refusal"
scu echoscu revoked REVOKED DICOM_CORE "$EP" >/dev/null 2>&1 && fail "a revoked certificate was admitted"
wait_lines "$LOG" 6 || fail "no messages for the revoked certificate"
kill -HUP "$EDGE_PID"
wait_lines "$LOG" 7 || fail "no message for the reload"
cp "$T/policy.json" "$T/policy.good"
echo '{ "clients": [ { "id": "x" } ] }' >"$T/policy.json"
kill -HUP "$EDGE_PID"
wait_lines "$LOG" 8 || fail "no message for the refused reload"
cp "$T/policy.good" "$T/policy.json"

curl -fs "http://127.0.0.1:$HP/metrics" >"$T/metrics.txt"
for m in dicom_edge_audit_queue_messages dicom_edge_audit_queue_bytes dicom_edge_audit_blocking \
    dicom_edge_audit_messages_dropped_total 'dicom_edge_audit_repository_up{repository=' \
    dicom_edge_audit_messages_refused_total 'dicom_edge_audit_messages_sent_total{repository='; do
    grep -qF "$m" "$T/metrics.txt" || fail "/metrics lacks $m"
done
"$build/edge/dicom-edge" status --config "$T/edge.json" --json >"$T/status.json" 2>&1
jq -e '.audit.enabled and (.audit.repositories | length == 1) and .audit.repositories[0].up and
    (.audit.blocking | not)' "$T/status.json" >/dev/null || fail "status audit: $(jq -c .audit "$T/status.json")"

kill -TERM "$EDGE_PID"
wait "$EDGE_PID" || fail "dicom-edge exited non-zero on SIGTERM"
wait_lines "$LOG" 9 || fail "no Application Stop message"

# every message: the A.6 header and the A.5.1 schema
rm -rf "$T/x"
$CHECK split "$LOG" "$T/x" >"$T/split.out" 2>&1 || fail "syslog header: $(head -3 "$T/split.out")"
xmllint --noout --relaxng "$RNG" "$T"/x/*.xml >"$T/lint.out" 2>&1 ||
    fail "schema: $(grep -v validates "$T/lint.out" | head -5)"
# EventID, EventTypeCodes and outcome of each message, in order
/usr/bin/python3 - "$T/x" >"$T/summary.txt" <<'PY'
import glob, re, sys
for f in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    x = open(f, encoding="utf-8").read()
    ev = re.search(r'<EventIdentification [^>]*EventOutcomeIndicator="(\d+)"', x)
    eid = re.search(r'<EventID csd-code="([^"]+)"', x)
    types = re.findall(r'<EventTypeCode csd-code="([^"]+)"', x)
    print(eid.group(1), ",".join(types) or "-", ev.group(1) if ev else "?")
PY
echo "messages:"; sed 's/^/    /' "$T/summary.txt"
want="110100 110120 0
110114 110122 0
110114 110122 0
110113 110132 4
110114 110122 8
110113 110126 8
110113 110129 0
110113 110129 4
110100 110121 0"
[[ $(cat "$T/summary.txt") == "$want" ]] || fail "messages differ from: $(echo "$want" | tr '\n' '|')"
fp=$(openssl x509 -in "$P/ct1.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
grep -q "ParticipantObjectID=\"$fp\"" "$LOG" || fail "the store's certificate fingerprint is not in the messages"
grep -q 'NOT_BOUND' "$LOG" || fail "the refused calling AE title is not in the refusal's messages"
rfp=$(openssl x509 -in "$P/revoked.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
grep -q "ParticipantObjectID=\"$rfp\"" "$LOG" || fail "the revoked certificate's fingerprint is not in its messages"

# fail_closed: the repository away, a queue of 3 messages: Application Start (1), the first
# echo's authentication (2), the second's (3) fills it: the second association is refused
DP=$(port)
EP2=$(port)
HP2=$(port)
write_edge_config "$EP2" "$HP2" ", $(audit "$DP" "$T/queue2" ', "queue_max_messages": 3, "on_full": "fail_closed"')"
start_edge "$EP2"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP2" >/dev/null 2>&1 || fail "fail_closed: first echo refused"
scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP2" >"$T/closed.out" 2>&1 && fail "fail_closed: admitted with a full queue"
grep -q "Local Limit Exceeded" "$T/closed.out" || fail "fail_closed refusal: $(grep -A3 Rejected "$T/closed.out")"
wait_log "$T/edge.log" '"reason":"audit_queue_full"' 20 || fail "no audit_queue_full refusal logged"
# (the whole page first: grep -q ending early would kill curl with SIGPIPE, and pipefail would
# count the match as a failure)
blocking() { grep -q '^dicom_edge_audit_blocking 1$' <<<"$(curl -fs "http://127.0.0.1:$HP2/metrics")"; }
for _ in $(seq 300); do blocking && break; sleep 0.1; done # the audit thread sets it on its tick
blocking || fail "dicom_edge_audit_blocking is not 1: $(curl -fs "http://127.0.0.1:$HP2/metrics" | grep '^dicom_edge_audit_' | tr '\n' ' ')"
kill -TERM "$EDGE_PID"
wait "$EDGE_PID" || fail "the fail_closed edge exited non-zero"

if [[ $rc -ne 0 ]]; then
    echo "--- edge log (tail)"
    tail -20 "$T/edge.log"
fi
exit $rc
