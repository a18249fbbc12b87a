#!/usr/bin/env bash
# dicom-core's audit trail against a real audit repository: Debian's rsyslogd with
# rsyslog-gnutls on loopback, receiving RFC 5425 syslog over mutual TLS
# (tests/support/rsyslog_lib.sh), and DCMTK's storescu/echoscu over TLS to the core's own TLS
# listener (certificates from tests/support/test_pki.sh):
#  1. --check-config checks the audit object's files (a missing key file is a problem);
#  2. a store of a two-study set (generated; Patient IDs and name made up per run): User
#     Authentication (accepted, with the certificate's subject, serial and fingerprint), Begin
#     Transferring at each study's first object and DICOM Instances Transferred per study at the
#     association's end, with the AE titles, the certificate identity, SOP classes and counts;
#  3. a refusal (wrong called AE title): a Security Alert (Use of Restricted Function);
#  4. a TLS handshake with a certificate from the wrong CA: User Authentication refused
#     (unknown_ca) naming that certificate;
#  5. reloads (SIGHUP): refused (invalid file), accepted with a changed audit object
#     (reload_partial names audit): Security Alerts (Security Configuration), outcome 4 then 0;
#  6. the collector stopped and restarted while refusals go on: nothing lost, order kept;
#  7. SIGTERM: Application Stop last; every message validates against the PS3.15 A.5.1 RELAX NG
#     schema with the A.6 header; the Patient IDs appear only as their keyed hash (HMAC-SHA256
#     with the site key), never the name; the core's JSON log holds neither;
#  8. fail_closed with a tiny queue and the collector away: new associations are refused
#     (A-ASSOCIATE-RJ transient, logged), /metrics says blocking; once the collector is back and
#     the queue drained, an association is accepted again, and the loss is reported (Audit
#     Recording Stopped, MessagesLost).
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-audit-core.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
# shellcheck source=../support/rsyslog_lib.sh
source "$src/tests/support/rsyslog_lib.sh"
trap 'rsyslog_cleanup; edge_cleanup' EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }
CHECK="/usr/bin/python3 $src/tests/support/audit_check.py"
RNG=$src/tests/support/audit/audit-message.rng
CORE=$build/core/dicom-core

for tool in /usr/sbin/rsyslogd xmllint ss storescu echoscu dcmodify curl; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (tools/deps/audit.txt, tools/install-deps.sh)"; exit 1; }
done
[[ -x $CORE ]] || { echo "FAIL: $CORE not built"; exit 1; }

bash "$src/tests/support/test_pki.sh" "$T/pki" >/dev/null
P=$T/pki
openssl rand -hex 32 >"$T/site.key"
chmod 600 "$T/site.key"
rsyslog_start c1 "$T/c1" "$P/ca.crt" "$P/server.crt" "$P/server.key" || exit 1
LOG=$T/c1/tls.log

# The patient data of this run: made up, and looked for where it must not be.
tag=$(openssl rand -hex 4)
PID_A="AUDPID-$tag-A" PID_B="AUDPID-$tag-B" NAME="AUDNAME^SYNTHETIC$tag"
gen() { # dir modality count patient_id
    /usr/bin/python3 "$src/tests/support/gen_data.py" --out "$1" --count "$3" --modality "$2" \
        --rows 16 --cols 16 >/dev/null || fail "gen_data.py $2"
    dcmodify -nb -q -m "(0010,0020)=$4" -m "(0010,0010)=$NAME" "$1"/*.dcm || fail "dcmodify"
}
gen "$T/set/a" CT 2 "$PID_A"
gen "$T/set/b" MR 1 "$PID_B"
study_of() { dcmdump +P 0020,000d "$1" | sed 's/.*\[\(.*\)\].*/\1/'; }
STUDY_A=$(study_of "$(ls "$T"/set/a/*.dcm | head -1)")
STUDY_B=$(study_of "$(ls "$T"/set/b/*.dcm | head -1)")
hmac() { printf '%s' "$1" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(cat "$T/site.key")" | awk '{print $NF}'; }
fp_of() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr 'A-F' 'a-f'; }

# write_core NAME PORT HTTP_PORT [extra audit members]
write_core() {
    mkdir -p "$T/$1"
    cat >"$T/$1/core.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$2", "http_listen": "127.0.0.1:$3",
  "spool_dir": "$T/$1/spool", "min_free_bytes": 0, "fsync": false, "drain_ms": 3000,
  "tls": { "cert": "$P/server.crt", "key": "$P/server.key", "client_ca": "$P/ca.crt" },
  "backend": { "type": "file", "dir": "$T/$1/store", "batch_max_age_ms": 200 },
  "audit": { "repositories": [ { "transport": "tls", "host": "127.0.0.1", "port": $RSYSLOG_TCP_c1,
                                 "ca": "$P/ca.crt", "server_name": "localhost",
                                 "cert": "$P/edge-client.crt", "key": "$P/edge-client.key" } ],
             "queue_dir": "$T/$1/audit", "hash_key_file": "$T/site.key", "source_id": "gw-core-test",
             "ack_grace_ms": 200, "retry_min_ms": 100, "retry_max_ms": 400,
             "connect_timeout_ms": 2000 ${4:-} } }
JSON
}
start() { # NAME
    "$CORE" --config "$T/$1/core.json" 2>"$T/$1/core.log" &
    CPID=$!
    remember "$CPID"
}
stop_core() { # pid: SIGTERM, wait (bounded)
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    fail "dicom-core $1 did not stop"
}
# One line per message: EventID types action outcome users=... pos=... desc=...
summary() {
    /usr/bin/python3 - "$1" <<'PY'
import re, sys
for ln in open(sys.argv[1], 'rb'):
    x = ln.decode('utf-8', 'replace')
    if '<AuditMessage>' not in x:
        continue
    ev = re.search(r'<EventID csd-code="([^"]+)"', x)
    ty = re.findall(r'<EventTypeCode csd-code="([^"]+)"', x)
    act = re.search(r'EventActionCode="(.)"', x)
    out = re.search(r'EventOutcomeIndicator="(\d+)"', x)
    desc = re.search(r'<EventOutcomeDescription>([^<]*)<', x)
    users = re.findall(r'<ActiveParticipant UserID="([^"]*)"', x)
    pos = re.findall(r'ParticipantObjectID="([^"]*)"', x)
    print('%s %s %s %s users=%s pos=%s desc=%s' % (
        ev.group(1) if ev else '?', ','.join(ty) or '-', act.group(1) if act else '?',
        out.group(1) if out else '?', ','.join(users), ','.join(pos),
        (desc.group(1) if desc else '-').replace(' ', '_')))
PY
}
metric() { curl -fs "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {v = $2} END {print v + 0}'; }

# 1. --check-config reads the audit trail's files
PC=$(port) PH=$(port)
write_core core "$PC" "$PH"
"$CORE" --config "$T/core/core.json" --check-config >"$T/check.out" 2>&1 || fail "check-config: $(cat "$T/check.out")"
sed "s#$T/site.key#$T/no-such.key#" "$T/core/core.json" >"$T/nokey.json"
if "$CORE" --config "$T/nokey.json" --check-config >"$T/check2.out" 2>&1; then
    fail "--check-config accepted a missing audit key file"
fi
grep -q 'audit.hash_key_file' "$T/check2.out" || fail "--check-config did not name audit.hash_key_file: $(cat "$T/check2.out")"
echo "1. --check-config checks the audit object's files"

start core
wait_port "$PC" || { fail "core did not start: $(tail -3 "$T/core/core.log")"; exit 1; }
CORE1=$CPID
rsyslog_wait_lines "$LOG" 1 50 || fail "no Application Start from the core"

# 2. a store of a two-study set over TLS
export TCP_NODELAY=1
scu storescu ct1 MOD1 DICOM_CORE "$PC" +sd +r "$T/set" >"$T/store.out" 2>&1 || fail "storescu: $(tail -3 "$T/store.out")"
rsyslog_wait_lines "$LOG" 6 100 || fail "store: $(rsyslog_lines "$LOG") messages, want 6"
# 3. a refusal: the wrong called AE title
scu echoscu ct1 MOD1 WRONG_AE "$PC" >"$T/refused.out" 2>&1 && fail "a wrong called AE title was accepted"
# 4. a certificate from a CA the core does not trust
scu echoscu otherca MOD1 DICOM_CORE "$PC" >"$T/otherca.out" 2>&1 && fail "a certificate from the wrong CA was accepted"
rsyslog_wait_lines "$LOG" 9 100 || fail "refusals: $(rsyslog_lines "$LOG") messages, want 9"
# 5. reloads: an invalid file is refused, a changed audit object needs a restart
cp "$T/core/core.json" "$T/core/core.json.good"
echo '{ "listen": ' >"$T/core/core.json"
kill -HUP "$CORE1"
wait_log "$T/core/core.log" '"reload_refused"' 50 || fail "no reload_refused logged"
sed 's/"source_id": "gw-core-test"/"source_id": "gw-core-test-2"/' "$T/core/core.json.good" >"$T/core/core.json"
kill -HUP "$CORE1"
wait_log "$T/core/core.log" '"ev":"reloaded"' 50 || fail "no reloaded logged"
grep '"reload_partial"' "$T/core/core.log" | grep -q audit || fail "reload_partial does not say that audit needs a restart"
rsyslog_wait_lines "$LOG" 11 100 || fail "reloads: $(rsyslog_lines "$LOG") messages, want 11"

# 6. the collector stopped and restarted while refusals go on
for i in $(seq -w 1 12); do
    ((10#$i == 4)) && rsyslog_stop c1
    ((10#$i == 9)) && { rsyslog_restart c1 || fail "rsyslog did not restart"; }
    scu echoscu ct1 "R$i" WRONG_AE "$PC" >/dev/null 2>&1 && fail "R$i was accepted"
done
for _ in $(seq 100); do
    [[ $(summary "$LOG" | grep -c '^110113 110132 .*users=dicom-core,R[0-9]') -ge 12 ]] && break
    sleep 0.1
done

# 7. SIGTERM: Application Stop, then the checks of everything received
stop_core "$CORE1"
wait_log "$LOG" 'csd-code="110121"' 50 || fail "no Application Stop"
sleep 0.3
summary "$LOG" >"$T/summary.txt"
rm -rf "$T/x"
n=$($CHECK split "$LOG" "$T/x" 2>"$T/split.err") || fail "syslog header (A.6): $(head -3 "$T/split.err")"
xmllint --noout --relaxng "$RNG" "$T"/x/*.xml >"$T/xmllint.out" 2>&1 ||
    fail "schema: $(grep -v validates "$T/xmllint.out" | head -5)"
echo "   $n messages received, every one valid against the A.5.1 schema"
first=$(head -1 "$T/summary.txt") last=$(tail -1 "$T/summary.txt")
[[ $first == "110100 110120 "* ]] || fail "first message is not Application Start: $first"
[[ $last == "110100 110121 "* ]] || fail "last message is not Application Stop: $last"

ct1_fp=$(fp_of "$P/ct1.crt") other_fp=$(fp_of "$P/otherca.crt")
ha=$(hmac "$PID_A") hb=$(hmac "$PID_B")
# the store: authentication, Begin A and B, Transferred A and B (storescu sends the set in order)
grep -q "^110114 110122 E 0 .*pos=$ct1_fp" "$T/summary.txt" || fail "no accepted User Authentication with ct1's fingerprint"
auth=$(grep -m1 "ParticipantObjectID=\"$ct1_fp\"" "$LOG")
[[ $auth == *'CN=ct-room-1'* && $auth == *'type="SerialNumber"'* ]] || fail "the authentication does not name ct1's subject and serial"
for s in A B; do
    st=STUDY_$s h=h${s,,}
    grep -q "^110102 - E 0 users=MOD1,dicom-core pos=${!st},${!h},$ct1_fp" "$T/summary.txt" ||
        fail "no Begin Transferring for study $s (study, patient hash, certificate): $(grep '^110102' "$T/summary.txt")"
    grep -q "^110104 - C 0 users=MOD1,dicom-core pos=${!st},${!h},$ct1_fp" "$T/summary.txt" ||
        fail "no DICOM Instances Transferred for study $s: $(grep '^110104' "$T/summary.txt")"
done
xa=$(grep '<EventID csd-code="110104"' "$LOG" | grep -m1 "ParticipantObjectID=\"$STUDY_A\"")
[[ $xa == *'<SOPClass UID="1.2.840.10008.5.1.4.1.1.2" NumberOfInstances="2"'* ]] || fail "study A: not 2 CT instances"
[[ $xa == *'<Encrypted>true</Encrypted>'* && $xa == *'AETITLES=DICOM_CORE'* && $xa == *'UserName="ct-room-1"'* ]] ||
    fail "study A: Encrypted, our AE title or the client's name missing"
xb=$(grep '<EventID csd-code="110104"' "$LOG" | grep -m1 "ParticipantObjectID=\"$STUDY_B\"")
[[ $xb == *'<SOPClass UID="1.2.840.10008.5.1.4.1.1.4" NumberOfInstances="1"'* ]] || fail "study B: not 1 MR instance"
order=$(grep -E '^1101(02|04) ' "$T/summary.txt" | awk '{print $1}' | tr '\n' ' ')
[[ $order == "110102 110102 110104 110104 " ]] || fail "store messages: $order (want Begin, Begin, Transferred, Transferred)"
echo "2. store of two studies: authentication, Begin and Transferred per study, hashed Patient IDs"
grep -q '^110113 110132 E 4 users=dicom-core,MOD1 pos=127.0.0.1,.* desc=' "$T/summary.txt" ||
    fail "no Security Alert for the wrong called AE title"
grep "Use of Restricted Function" "$LOG" | grep -q "Y2FsbGVkIEFFIHRpdGxlIG5vdCByZWNvZ25pemVk" ||
    fail "the alert does not say 'called AE title not recognized': $(grep "Use of Restricted Function" "$LOG" | grep -o 'ParticipantObjectDetail[^/]*' | head -5)"
echo "3. refusal (wrong called AE title): Security Alert"
grep -q "^110114 110122 E 4 .*pos=$other_fp desc=unknown_ca" "$T/summary.txt" ||
    fail "no refused User Authentication naming the wrong CA's certificate: $(grep '^110114' "$T/summary.txt")"
echo "4. certificate from the wrong CA: User Authentication refused (unknown_ca) with its fingerprint"
grep -q '^110113 110129 E 4 ' "$T/summary.txt" || fail "no Security Alert for the refused reload"
grep -q '^110113 110129 E 0 ' "$T/summary.txt" || fail "no Security Alert for the reload"
echo "5. reloads: refused and accepted, each a Security Configuration alert"
got=$(grep '^110113 110132 .*users=dicom-core,R[0-9]' "$T/summary.txt" | sed 's/.*users=dicom-core,R\([0-9]*\) .*/\1/' | awk '!seen[$0]++' | tr '\n' ' ')
[[ $got == "01 02 03 04 05 06 07 08 09 10 11 12 " ]] || fail "restart mid-run: refusals arrived as: $got"
dups=$(($(grep -c '^110113 110132 .*users=dicom-core,R[0-9]' "$T/summary.txt") - 12))
echo "6. collector restarted mid-run: 12 refusals in order, none lost ($dups duplicates)"
for secret in "$PID_A" "$PID_B" "$NAME" "AUDNAME"; do
    grep -qF "$secret" "$LOG" && fail "'$secret' reached the audit repository"
    grep -qF "$secret" "$T/core/core.log" && fail "'$secret' is in the core's JSON log"
done
grep -c "$ha" "$LOG" | grep -qv '^0$' || fail "the keyed hash of Patient ID A is not in the messages"
grep -qF "$PID_A" "$T/set/a/"*.dcm 2>/dev/null || fail "(the test data does not hold the Patient ID)"
echo "7. Application Stop last; Patient IDs only hashed; no patient data in the JSON log"

# 8. fail_closed with a tiny queue while the collector is away
rsyslog_stop c1
PC2=$(port) PH2=$(port)
write_core core2 "$PC2" "$PH2" ', "on_full": "fail_closed", "queue_max_messages": 4'
start core2
CORE2=$CPID
wait_port "$PC2" || { fail "core2 did not start: $(tail -3 "$T/core2/core.log")"; exit 1; }
one=$(ls "$T"/set/b/*.dcm | head -1)
scu storescu ct1 MOD1 DICOM_CORE "$PC2" "$one" >"$T/fc1.out" 2>&1 || fail "first store to core2: $(tail -3 "$T/fc1.out")"
for _ in $(seq 50); do [[ $(metric "$PH2" dicom_core_audit_blocking) == 1 ]] && break; sleep 0.1; done
[[ $(metric "$PH2" dicom_core_audit_blocking) == 1 ]] || fail "the full queue is not blocking: $(curl -fs "http://127.0.0.1:$PH2/metrics" | grep audit)"
[[ $(metric "$PH2" dicom_core_audit_queue_messages) == 4 ]] || fail "queue holds $(metric "$PH2" dicom_core_audit_queue_messages) messages, want 4"
scu storescu ct1 MOD1 DICOM_CORE "$PC2" "$one" >"$T/fc2.out" 2>&1 && fail "an association was accepted while the audit queue is full"
grep -q 'Association Rejected' "$T/fc2.out" && grep -qi 'transient' "$T/fc2.out" ||
    fail "not a transient A-ASSOCIATE-RJ: $(grep -i reject "$T/fc2.out" | head -3)"
grep '"assoc_reject"' "$T/core2/core.log" | grep -q 'audit queue full' || fail "the refusal is not logged"
rsyslog_restart c1 || fail "rsyslog did not restart"
for _ in $(seq 100); do
    [[ $(metric "$PH2" dicom_core_audit_blocking) == 0 && $(metric "$PH2" dicom_core_audit_queue_messages) == 0 ]] && break
    sleep 0.1
done
[[ $(metric "$PH2" dicom_core_audit_blocking) == 0 ]] || fail "still blocking after the collector came back"
scu storescu ct1 MOD1 DICOM_CORE "$PC2" "$one" >"$T/fc3.out" 2>&1 || fail "not accepted again after the queue drained: $(tail -3 "$T/fc3.out")"
for _ in $(seq 50); do [[ -n $($CHECK lost "$LOG") ]] && break; sleep 0.1; done
lost=$($CHECK lost "$LOG" | tail -1)
[[ ${lost:-0} -ge 1 ]] || fail "no Audit Recording Stopped alert counting the refused messages"
[[ $(metric "$PH2" dicom_core_audit_messages_refused_total) -ge 1 ]] || fail "dicom_core_audit_messages_refused_total not counted"
grep -q '^dicom_core_audit_repository_up{repository="tls-127.0.0.1-'"$RSYSLOG_TCP_c1"'"} 1' <<<"$(curl -fs "http://127.0.0.1:$PH2/metrics")" ||
    fail "dicom_core_audit_repository_up is not 1"
stop_core "$CORE2"
echo "8. fail_closed: refused while full (transient, logged, blocking metric), accepted again after the drain; $lost lost reported"

# a sanitizer build (ASan/UBSan) reports on stderr: none may have spoken
if grep -l 'Sanitizer\|runtime error:' "$T"/core*/core.log >/dev/null 2>&1; then
    fail "sanitizer report: $(grep -h -m3 'Sanitizer\|runtime error:' "$T"/core*/core.log)"
fi

[[ $rc == 0 ]] && echo "PASS: audit core"
exit $rc
