#!/usr/bin/env bash
# The audit trail against a real audit repository: Debian's rsyslogd with rsyslog-gnutls on
# loopback, receiving RFC 5425 syslog over mutual TLS and RFC 5426 syslog over UDP, driven by
# gw-audit (the audit library's driver):
#  1. every event type's message validates against the RELAX NG schema of PS3.15 A.5.1, offline;
#  2. every event type reaches the repository over mTLS and over UDP, in order, with the A.6
#     header; each validates; the Patient ID is only its keyed hash (HMAC-SHA256, site key) and
#     never in our JSON logs; patient_id "include" sends the real one (still not logged);
#  3. the repository stopped and restarted mid-run: nothing lost, order kept (duplicates are
#     allowed: delivery is at least once);
#  4. the sender killed (-9) mid-run: every message it had queued arrives on the next run;
#  5. a full queue, drop_oldest: the newest messages arrive, then an alert counting the lost ones;
#  6. a full queue, fail_closed: appends refused, the queue blocking, then the queued ones and an
#     alert counting the refused ones arrive, and it is not blocking any more;
#  7. no delivery to a repository whose certificate does not match server_name, nor without a
#     client certificate (the repository demands one).
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-audit.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
# shellcheck source=../support/rsyslog_lib.sh
source "$src/tests/support/rsyslog_lib.sh"
trap 'rsyslog_cleanup; edge_cleanup' EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }
GA=$build/core/audit/gw-audit
CHECK="/usr/bin/python3 $src/tests/support/audit_check.py"
RNG=$src/tests/support/audit/audit-message.rng
PATIENT=GWTEST-PATIENT-1

for tool in /usr/sbin/rsyslogd xmllint ss; do
    command -v "$tool" >/dev/null || { echo "SKIP-FAIL: $tool missing (tools/deps/audit.txt)"; exit 1; }
done
[[ -x $GA ]] || { echo "FAIL: $GA not built"; exit 1; }

bash "$src/tests/support/test_pki.sh" "$T/pki"
P=$T/pki
openssl rand -hex 32 >"$T/site.key"
chmod 600 "$T/site.key"
rsyslog_start c1 "$T/c1" "$P/ca.crt" "$P/server.crt" "$P/server.key" || exit 1
TLS_PORT=$RSYSLOG_TCP_c1
UDP_PORT=$RSYSLOG_UDP_c1
LOG=$T/c1/tls.log
ULOG=$T/c1/udp.log

tls_repo() { # [server_name] [with_cert]
    local sn=${1:-localhost} cert=""
    [[ ${2:-yes} == yes ]] && cert="\"cert\": \"$P/edge-client.crt\", \"key\": \"$P/edge-client.key\","
    echo "{ \"transport\": \"tls\", \"host\": \"127.0.0.1\", \"port\": $TLS_PORT, $cert
            \"ca\": \"$P/ca.crt\", \"server_name\": \"$sn\" }"
}
udp_repo() { echo "{ \"transport\": \"udp\", \"host\": \"127.0.0.1\", \"port\": $UDP_PORT }"; }

# write_cfg NAME REPOS_JSON [extra members]
write_cfg() {
    cat >"$T/$1.json" <<JSON
{ "audit": { "repositories": [ $2 ], "queue_dir": "$T/q-$1", "hash_key_file": "$T/site.key",
             "enterprise_site_id": "Test Hospital", "source_id": "gw-test",
             "ack_grace_ms": 200, "retry_min_ms": 100, "retry_max_ms": 400, "connect_timeout_ms": 2000 ${3:-} } }
JSON
}
lines() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }
wait_lines() { # file count [tenths]
    for _ in $(seq "${3:-100}"); do
        (($(lines "$1") >= $2)) && return 0
        sleep 0.1
    done
    return 1
}
validate() { # log label
    rm -rf "$T/x"
    if ! $CHECK split "$1" "$T/x" >"$T/split.out" 2>&1; then
        fail "$2: syslog header: $(head -3 "$T/split.out")"
    fi
    if ! xmllint --noout --relaxng "$RNG" "$T"/x/*.xml >"$T/xmllint.out" 2>&1; then
        fail "$2: schema: $(grep -v validates "$T/xmllint.out" | head -5)"
    fi
}

# 1. offline: every event, both patient modes, against the schema
write_cfg xml "$(tls_repo)"
"$GA" --config "$T/xml.json" check >/dev/null 2>"$T/check.err" || fail "check: $(cat "$T/check.err")"
mkdir -p "$T/xml"
"$GA" --config "$T/xml.json" xml all >"$T/xml/all.txt" 2>"$T/xml/err" || fail "xml all: $(cat "$T/xml/err")"
sed 's/"hash_key_file"/"patient_id": "include", "hash_key_file"/' "$T/xml.json" >"$T/xml-inc.json"
"$GA" --config "$T/xml-inc.json" xml all >>"$T/xml/all.txt" 2>>"$T/xml/err" || fail "xml all (include)"
n=0
while IFS= read -r line; do
    n=$((n + 1))
    printf '%s' "$line" >"$T/xml/$n.xml"
done <"$T/xml/all.txt"
((n == 32)) || fail "xml all printed $n messages, want 2 x 16"
xmllint --noout --relaxng "$RNG" "$T"/xml/[0-9]*.xml >"$T/xml/lint" 2>&1 ||
    fail "offline schema check: $(grep -v validates "$T/xml/lint" | head -5)"
echo "1. offline schema check: $n messages"

# 2. every event over mTLS and UDP
write_cfg all "$(tls_repo), $(udp_repo)"
"$GA" --config "$T/all.json" send all 2>"$T/all.err" || fail "send all: $(tail -3 "$T/all.err")"
want=19 # 16 events; auth-revoked adds an alert, each partial event a second message
wait_lines "$LOG" $want 50 || fail "TLS repository got $(lines "$LOG") messages, want $want"
wait_lines "$ULOG" $want 50 || fail "UDP repository got $(lines "$ULOG") messages, want $want"
sleep 0.3
(($(lines "$LOG") == want && $(lines "$ULOG") == want)) ||
    fail "got $(lines "$LOG") (TLS) and $(lines "$ULOG") (UDP) messages, want $want each"
validate "$LOG" "TLS"
validate "$ULOG" "UDP"
tls_ev=$($CHECK events "$LOG" | tr '\n' ' ')
udp_ev=$($CHECK events "$ULOG" | tr '\n' ' ')
[[ $tls_ev == "$udp_ev" ]] || fail "TLS and UDP orders differ: $tls_ev / $udp_ev"
for code in 110100 110102 110103 110104 110112 110113 110114; do
    [[ " $tls_ev " == *" $code "* ]] || fail "no EventID $code among: $tls_ev"
done
[[ $tls_ev == "110100 "*" 110100 " ]] || fail "not application start first and stop last: $tls_ev"
[[ $($CHECK types "$LOG") == *1.2.840.10008.1.20.1* ]] || fail "no storage commitment message"
grep -q '^<85>1 ' "$LOG" || fail "no <85> (authpriv.notice) message"
grep -q '^<84>1 ' "$LOG" || fail "no <84> (authpriv.warning) message for a minor failure"
grep -q '^<83>1 ' "$LOG" || fail "no <83> (authpriv.err) message for a revoked certificate"
hash=$(printf '%s' "$PATIENT" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(cat "$T/site.key")" | awk '{print $NF}')
grep -q "ParticipantObjectID=\"$hash\"" "$LOG" || fail "the keyed hash of the Patient ID is not in the messages"
grep -q "$PATIENT" "$LOG" "$ULOG" && fail "the Patient ID itself reached the repository in hash mode"
grep -q "$PATIENT" "$T/all.err" && fail "the Patient ID is in our JSON logs"
before=$(lines "$LOG")
sed 's/"hash_key_file"/"patient_id": "include", "hash_key_file"/' "$T/all.json" >"$T/inc.json"
sed -i "s#q-all#q-inc#" "$T/inc.json"
"$GA" --config "$T/inc.json" send transferred 2>"$T/inc.err" || fail "send (include)"
wait_lines "$LOG" $((before + 1)) 50 || fail "include: nothing arrived"
tail -n 1 "$LOG" | grep -q "ParticipantObjectID=\"$PATIENT\"" || fail "include mode: the Patient ID is not in the message"
grep -q "$PATIENT" "$T/inc.err" && fail "include mode: the Patient ID is in our JSON logs"
echo "2. all events over mTLS and UDP: $want messages each, valid, patient ID hashed"

# 3. the repository restarted mid-run
write_cfg rs "$(tls_repo)"
: >"$LOG"
"$GA" --config "$T/rs.json" --prefix r --interval-ms 15 --drain-ms 30000 seq 200 >"$T/rs.out" 2>"$T/rs.err" &
ga=$!
remember "$ga"
sleep 1
rsyslog_stop c1
sleep 1
rsyslog_restart c1 || fail "rsyslog did not restart"
wait "$ga" || fail "seq run did not deliver everything: $(tail -3 "$T/rs.err")"
res=$($CHECK order "$LOG" r 200 2>&1) || fail "restart mid-run: $res"
grep -q '"audit_repository_down"' "$T/rs.err" || fail "the outage was not logged"
echo "3. repository restarted mid-run: 200 delivered in order, $res"

# 4. the sender killed mid-run, the repository away
write_cfg crash "$(tls_repo)"
rsyslog_stop c1
: >"$LOG"
"$GA" --config "$T/crash.json" --prefix k --interval-ms 5 --drain-ms 0 seq 100000 >"$T/crash.out" 2>"$T/crash.err" &
ga=$!
remember "$ga"
sleep 1.5
kill -KILL "$ga"
wait "$ga" 2>/dev/null
q=$(grep -c '^queued' "$T/crash.out")
((q > 10)) || fail "the killed sender queued only $q messages"
rsyslog_restart c1 || fail "rsyslog did not restart"
"$GA" --config "$T/crash.json" --drain-ms 30000 drain 2>"$T/crash2.err" || fail "drain after the kill: $(tail -3 "$T/crash2.err")"
res=$($CHECK order "$LOG" k "$q" 2>&1) || fail "after kill -9: $res"
echo "4. sender killed after queueing $q: all delivered on the next run, $res"

# 5. drop_oldest: 25 into a queue of 10 while the repository is away
write_cfg drop "$(tls_repo)" ', "queue_max_messages": 10, "on_full": "drop_oldest"'
rsyslog_stop c1
: >"$LOG"
"$GA" --config "$T/drop.json" --prefix d --drain-ms 0 seq 25 >"$T/drop.out" 2>"$T/drop.err" || fail "drop_oldest refused an append"
st=$("$GA" --config "$T/drop.json" status 2>/dev/null)
[[ $st == *'"queued":10,'* && $st == *'"pending_lost":15,'* ]] || fail "drop_oldest status: $st"
rsyslog_restart c1 || fail "rsyslog did not restart"
"$GA" --config "$T/drop.json" --drain-ms 20000 drain 2>"$T/drop2.err" || fail "drop_oldest drain"
got=$($CHECK seq "$LOG" d | tr '\n' ' ')
[[ $got == "16 17 18 19 20 21 22 23 24 25 " ]] || fail "drop_oldest delivered: $got (want 16..25)"
[[ $($CHECK lost "$LOG") == 15 ]] || fail "drop_oldest: lost alert: '$($CHECK lost "$LOG")', want 15"
validate "$LOG" "drop_oldest"
echo "5. drop_oldest: 16..25 delivered and an alert counting 15 lost"

# 6. fail_closed: 15 into a queue of 10 while the repository is away
write_cfg closed "$(tls_repo)" ', "queue_max_messages": 10, "on_full": "fail_closed"'
rsyslog_stop c1
: >"$LOG"
"$GA" --config "$T/closed.json" --prefix f --drain-ms 0 seq 15 >"$T/closed.out" 2>"$T/closed.err" && fail "fail_closed accepted everything"
[[ $(grep -c '^queued' "$T/closed.out") == 10 && $(grep -c '^refused' "$T/closed.out") == 5 ]] ||
    fail "fail_closed: $(tr '\n' ' ' <"$T/closed.out")"
st=$("$GA" --config "$T/closed.json" status 2>/dev/null)
[[ $st == *'"blocking":true'* ]] || fail "fail_closed: a full queue is not blocking: $st"
rsyslog_restart c1 || fail "rsyslog did not restart"
"$GA" --config "$T/closed.json" --drain-ms 20000 drain 2>"$T/closed2.err" || fail "fail_closed drain"
got=$($CHECK seq "$LOG" f | tr '\n' ' ')
[[ $got == "1 2 3 4 5 6 7 8 9 10 " ]] || fail "fail_closed delivered: $got (want 1..10)"
[[ $($CHECK lost "$LOG") == 5 ]] || fail "fail_closed: lost alert: '$($CHECK lost "$LOG")', want 5"
st=$("$GA" --config "$T/closed.json" status 2>/dev/null)
[[ $st == *'"blocking":false'* && $st == *'"queued":0,'* ]] || fail "fail_closed after drain: $st"
echo "6. fail_closed: 10 queued, 5 refused, blocking; then 1..10 and an alert counting 5"

# 7. the repository is verified, and it verifies us
: >"$LOG"
write_cfg badname "$(tls_repo wrong.example)"
"$GA" --config "$T/badname.json" --drain-ms 2000 send app-start 2>"$T/badname.err" &&
    fail "delivered to a repository whose certificate does not name server_name"
grep -q 'tls_handshake_failed' "$T/badname.err" || fail "no tls_handshake_failed logged: $(tail -2 "$T/badname.err")"
write_cfg nocert "$(tls_repo localhost no)"
"$GA" --config "$T/nocert.json" --drain-ms 2000 send app-start 2>"$T/nocert.err" &&
    fail "delivered without a client certificate"
sleep 0.3
(($(lines "$LOG") == 0)) || fail "the repository received $(lines "$LOG") messages it should not have"
echo "7. wrong server name and missing client certificate: nothing delivered"

[[ $rc == 0 ]] && echo "PASS: audit syslog"
exit $rc
