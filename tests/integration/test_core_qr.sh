#!/usr/bin/env bash
# dicom-core as a Query/Retrieve SCP (C-FIND, C-GET, C-MOVE) on the file backend, against DCMTK
# findscu, getscu and movescu (storescp as the move destination, plain and +tls), direct to the
# core with its "clients" grants. Data goes in through the store path first (storescu).
#  - C-FIND at each level (PATIENT, STUDY, SERIES, IMAGE) and each matching type (single value,
#    wild card, date range, UID list, universal), exactly the requested keys back, the request's
#    character set (ISO_IR 100 and ISO_IR 192) answered in kind;
#  - more than one page of the backend's search; its cap told with A700; C-CANCEL mid-search
#    (FE00) and mid-retrieve (C-MOVE and C-GET);
#  - C-GET and C-MOVE byte-identical to what was stored; Explicit VR transcoded to Implicit VR
#    for a receiver that takes only that; an unknown move destination (A801); an unreachable one
#    (A702 with the failed list); a TLS destination reached with client_tls;
#  - two clients each seeing and retrieving only their own studies (0124 outside), a share
#    that grants, expires and is revoked (shares.json), a client without "find" refused;
#  - hostile identifiers (malformed, relational, unsupported character set, no level) each get
#    their documented status and the association goes on;
#  - the index survives a restart and is rebuilt from the store when its file is lost;
#  - the audit trail (over UDP syslog to a listener of ours): Query (110112) for C-FIND, Begin
#    Transferring (110102) and DICOM Instances Transferred (110104) for C-GET and C-MOVE, the
#    move destination in the Destination role;
#  - a large instance (128 MiB; 16 MiB under sanitizers; GW_QR_LARGE_BYTES to choose, e.g. 1 GiB
#    in tests/bench/retrieve_large.sh) retrieved with C-GET, with the core's peak RSS below the
#    object's size (not under sanitizers).
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-qr.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
export TCP_NODELAY=1
PY=/usr/bin/python3
rc=0
fail() { echo "FAIL: $*"; rc=1; }
ok() { echo "ok   $*"; }
sanitized=${GW_SANITIZED:-}
[[ -x $build/core/dicom-core ]] || { echo "no dicom-core in $build"; exit 1; }

CP=$(port) DP=$(port) TP=$(port) SP=$(port) GONE=$(port) AP=$(port)
bash "$src/tests/support/test_pki.sh" "$T/pki" >/dev/null 2>&1 || { echo "no test PKI"; exit 1; }
# the audit repository: every syslog datagram on a line of $T/audit.log
$PY -u -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", int(sys.argv[1])))
out = open(sys.argv[2], "ab", buffering=0)
while True: out.write(s.recv(65536).replace(b"\n", b" ") + b"\n")' "$AP" "$T/audit.log" &
remember $!
(umask 077; openssl rand -hex 32 >"$T/site.key")
hmac() { printf '%s' "$1" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(cat "$T/site.key")" | awk '{print $NF}'; }
# audited EVENT PATTERN: a message of event EVENT matching PATTERN arrived within 5 s
audited() {
    for _ in $(seq 50); do
        grep -a "<EventID csd-code=\"$1\"" "$T/audit.log" 2>/dev/null | grep -aq -- "$2" && return 0
        sleep 0.1
    done
    return 1
}
ALL='"store","echo","find","get","move"'

# core READ_KNOBS: (re)start the core on $CP with the file backend's "read" object as given
core() {
    cat >"$T/core.json" <<JSON
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$CP", "http_listen": "",
  "spool_dir": "$T/spool", "min_free_bytes": 0, "fsync": false, "idle_ms": ${IDLE:-60000},
  "client_tls": { "cert": "$T/pki/edge-client.crt", "key": "$T/pki/edge-client.key",
                  "ca": "$T/pki/ca.crt" },
  "clients": [
    { "calling_ae": ["READER"], "services": [$ALL], "read_scope": "all" },
    { "calling_ae": ["CLIENT_A"], "services": [$ALL], "read_scope": "own" },
    { "calling_ae": ["CLIENT_B"], "services": [$ALL], "read_scope": "own" },
    { "calling_ae": ["CLIENT_C"], "services": [$ALL], "read_scope": "shared" },
    { "calling_ae": ["NOSCOPE"], "services": [$ALL], "read_scope": "none" },
    { "calling_ae": ["NOFIND"], "services": ["store", "echo"], "read_scope": "all" } ],
  "ae_peers": { "DEST": { "host": "127.0.0.1", "port": $DP },
                "DEST_TLS": { "host": "127.0.0.1", "port": $TP, "tls": true,
                              "server_name": "localhost" },
                "SLOW": { "host": "127.0.0.1", "port": $SP },
                "GONE": { "host": "127.0.0.1", "port": $GONE } },
  "audit": { "repositories": [ { "transport": "udp", "host": "127.0.0.1", "port": $AP } ],
             "queue_dir": "$T/audit", "hash_key_file": "$T/site.key", "source_id": "gw-qr-test" },
  "backend": { "type": "file", "dir": "$T/store", "batch_max_age_ms": 100, "read": $1 } }
JSON
    [[ -n ${CORE_PID:-} ]] && { kill -TERM "$CORE_PID"; wait "$CORE_PID" 2>/dev/null; }
    local ready
    ready=$(grep -ac backend_file_index_ready "$T/core.log" 2>/dev/null)
    "$build/core/dicom-core" --config "$T/core.json" 2>>"$T/core.log" &
    CORE_PID=$!
    remember "$CORE_PID"
    wait_port "$CP" || { echo "core did not start"; tail "$T/core.log"; exit 1; }
    for _ in $(seq 200); do
        (($(grep -ac backend_file_index_ready "$T/core.log") > ${ready:-0})) && return 0
        sleep 0.1
    done
    fail "index not ready"
}

# qfind OUT AET [findscu args]: runs findscu -v; prints the number of pending responses
qfind() {
    local out=$1 aet=$2
    shift 2
    findscu -v -aet "$aet" -aec DICOM_CORE 127.0.0.1 "$CP" "$@" >"$T/$out.out" 2>&1
    grep -ac 'Find Response:.*(Pending)' "$T/$out.out"
}
final() { grep -a 'Final' "$T/$1.out" | tail -1; }
uid_of() { dcmdump +P "$1" "$2" | sed 's/.*\[\(.*\)\].*/\1/'; }
stored() { # wait until the file backend indexed N instances more than before
    for _ in $(seq 100); do
        [[ $(grep -ac '"sop"' "$T/store/qr_index.jsonl" 2>/dev/null) -ge $1 ]] && return 0
        sleep 0.1
    done
    return 1
}

core '{"page_size": 2, "max_results": 1000}'

# ---- data, through the store path ----------------------------------------------------------
gen() { $PY "$src/tests/support/qr_data.py" "$@"; }
SA=$(gen --out "$T/in/a" --patient-id PA1 --patient-name $'M\xc3\x9cLLER^HANS' --study-date 20200315 \
    --series 2 --instances 3 --charset latin1)
SB=$(gen --out "$T/in/b" --patient-id PB1 --patient-name "SMITH^JOHN" --study-date 20210620 --instances 2)
SD=$(gen --out "$T/in/d" --patient-id PD1 --patient-name "DOE^BIG" --study-date 20190102 --instances 24)
for i in 1 2 3 4; do
    gen --out "$T/in/c$i" --patient-id PC$i --patient-name "DOE^JANE$i" --study-date 2019010$i >/dev/null
done
storescu -aet CLIENT_A -aec DICOM_CORE 127.0.0.1 "$CP" "$T"/in/a/*.dcm || fail "store A"
storescu -aet CLIENT_B -aec DICOM_CORE 127.0.0.1 "$CP" "$T"/in/b/*.dcm || fail "store B"
storescu -aet READER -aec DICOM_CORE 127.0.0.1 "$CP" "$T"/in/d/*.dcm "$T"/in/c*/*.dcm || fail "store"
stored 36 || fail "the index has not got all 36 instances"
SERIES_A1=$(uid_of SeriesInstanceUID "$T/in/a/s1_i0001.dcm")
SOP_A12=$(uid_of SOPInstanceUID "$T/in/a/s1_i0002.dcm")
SOP_A13=$(uid_of SOPInstanceUID "$T/in/a/s1_i0003.dcm")

# ---- C-FIND: levels and matching -----------------------------------------------------------
S=(-S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID)
check() { # name expected got [final]
    if [[ $2 == "$3" ]]; then ok "$1 ($3)"; else fail "$1: $3 results, want $2"; fi
}
check "STUDY universal, 7 studies over pages of 2" 7 "$(qfind u READER "${S[@]}")"
[[ $(final u) == *Success* ]] || fail "universal: $(final u)"
check "STUDY single value PatientID=PB1" 1 "$(qfind sv READER "${S[@]}" -k PatientID=PB1)"
check "STUDY wild card PatientName=DOE^JANE*" 4 "$(qfind wc READER "${S[@]}" -k 'PatientName=DOE^JANE*')"
check "STUDY wild card with ? (DOE^JANE?)" 4 "$(qfind wq READER "${S[@]}" -k 'PatientName=DOE^JANE?')"
check "STUDY case-insensitive PN (doe^big)" 1 "$(qfind pn READER "${S[@]}" -k 'PatientName=doe^big')"
check "STUDY date range 2020" 1 "$(qfind dr READER "${S[@]}" -k StudyDate=20200101-20201231)"
check "STUDY open range -20191231" 5 "$(qfind dro READER "${S[@]}" -k StudyDate=-20191231)"
check "STUDY UID list A\\B" 2 "$(qfind ul READER -S -k QueryRetrieveLevel=STUDY -k "StudyInstanceUID=$SA\\$SB")"
check "STUDY ModalitiesInStudy=MR" 1 "$(qfind mis READER "${S[@]}" -k ModalitiesInStudy=MR)"
check "PATIENT level, DOE* patients" 5 "$(qfind pl READER -P -k QueryRetrieveLevel=PATIENT -k 'PatientName=DOE*' -k PatientID -k NumberOfPatientRelatedStudies)"
check "SERIES level under A" 2 "$(qfind sl READER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID="$SA" -k SeriesInstanceUID -k NumberOfSeriesRelatedInstances)"
check "SERIES Modality=MR" 1 "$(qfind sm READER -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID="$SA" -k SeriesInstanceUID -k Modality=MR)"
IMG=(-S -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID="$SA" -k SeriesInstanceUID="$SERIES_A1")
check "IMAGE universal" 3 "$(qfind il READER "${IMG[@]}" -k SOPInstanceUID)"
check "IMAGE InstanceNumber=2" 1 "$(qfind in READER "${IMG[@]}" -k SOPInstanceUID -k InstanceNumber=2)"
check "IMAGE SOP Instance UID list" 2 "$(qfind iu READER "${IMG[@]}" -k "SOPInstanceUID=$SOP_A12\\$SOP_A13")"
check "patient root STUDY under PatientID" 1 "$(qfind pr READER -P -k QueryRetrieveLevel=STUDY -k PatientID=PA1 -k StudyInstanceUID)"

# exactly the requested keys, in the request's character set
mkdir -p "$T/x1" "$T/x2"
(cd "$T/x1" && findscu -X -S -aet READER -aec DICOM_CORE 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k SpecificCharacterSet="ISO_IR 100" -k $'PatientName=M\xdcLLER*' -k StudyDate -k StudyInstanceUID >/dev/null 2>&1)
(cd "$T/x2" && findscu -X -S -aet READER -aec DICOM_CORE 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k SpecificCharacterSet="ISO_IR 192" -k $'PatientName=M\xc3\x9cLLER*' -k StudyInstanceUID >/dev/null 2>&1)
$PY - "$T/x1/rsp0001.dcm" "$T/x2/rsp0001.dcm" <<'PY' && ok "return keys exact, ISO_IR 100 and ISO_IR 192 answered in kind" || fail "return keys or character set"
import sys, pydicom
a, b = pydicom.dcmread(sys.argv[1], force=True), pydicom.dcmread(sys.argv[2], force=True)
want = {0x00080005, 0x00080020, 0x00080052, 0x00080054, 0x00100010, 0x0020000D}
got = {int(e.tag) for e in a}
assert got == want, sorted(hex(t) for t in got ^ want)
assert a.SpecificCharacterSet == "ISO_IR 100" and str(a.PatientName) == "M\u00dcLLER^HANS", a
raw = open(sys.argv[1], "rb").read()
assert b"M\xdcLLER" in raw, raw  # Latin-1 on the wire
assert b.SpecificCharacterSet == "ISO_IR 192" and str(b.PatientName) == "M\u00dcLLER^HANS", b
PY

audited 110112 '1.2.840.10008.5.1.4.1.2.2.1' && ok "C-FIND audited: Query (110112) with the information model" ||
    fail "no Query audit message for C-FIND"

# ---- hostile identifiers: status, and the association goes on -------------------------------
for c in malformed relational charset level; do
    $PY "$src/tests/support/qr_peer.py" 127.0.0.1 "$CP" DICOM_CORE READER $c >"$T/peer.$c" 2>&1 &&
        ok "hostile identifier: $(tr '\n' ' ' <"$T/peer.$c")" || fail "hostile $c: $(cat "$T/peer.$c")"
done

# ---- scope ---------------------------------------------------------------------------------
check "CLIENT_A sees its own study only" 1 "$(qfind oa CLIENT_A "${S[@]}")"
grep -aq "$SA" "$T/oa.out" || fail "CLIENT_A's study missing"
check "CLIENT_B sees its own study only" 1 "$(qfind ob CLIENT_B "${S[@]}")"
grep -aq "$SB" "$T/ob.out" || fail "CLIENT_B's study missing"
check "CLIENT_A: B's series invisible" 0 "$(qfind oas CLIENT_A -S -k QueryRetrieveLevel=SERIES -k StudyInstanceUID="$SB" -k SeriesInstanceUID)"
mkdir -p "$T/g_ab"
getscu -v -S -aet CLIENT_A -aec DICOM_CORE -od "$T/g_ab" 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$SB" >"$T/g_ab.out" 2>&1
[[ -z $(ls "$T/g_ab") ]] && grep -aq '0x124' "$T/g_ab.out" && ok "C-GET of another client's study refused (0124)" ||
    fail "C-GET outside the scope: $(grep -a Response "$T/g_ab.out")"
movescu -v -S -aet CLIENT_A -aec DICOM_CORE -aem DEST 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$SB" >"$T/m_ab.out" 2>&1
grep -aq '0x124' "$T/m_ab.out" && ok "C-MOVE of another client's study refused (0124)" || fail "C-MOVE outside the scope"
qfind ns NOSCOPE "${S[@]}" >/dev/null
grep -aq '0x124' "$T/ns.out" && ok "find granted, scope none: refused (0124)" || fail "scope none: $(final ns)"
qfind nf NOFIND "${S[@]}" >/dev/null
grep -aq 'No Acceptable Presentation Contexts' "$T/nf.out" && ok "a client without find: context refused" ||
    fail "client without find: $(tail -2 "$T/nf.out")"
future=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ) past=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
cat >"$T/store/shares.json" <<JSON
{ "shares": [ { "study": "$SB", "to": "ae:CLIENT_C", "expires": "$future" },
              { "study": "$SA", "to": "ae:CLIENT_C", "expires": "$past" } ] }
JSON
check "shared: the study shared with CLIENT_C (the expired grant not)" 1 "$(qfind sh CLIENT_C "${S[@]}")"
grep -aq "$SB" "$T/sh.out" || fail "the shared study is not the one granted"
echo '{ "shares": [] }' >"$T/store/shares.json"
check "shared: revoked, the next query sees nothing" 0 "$(qfind shr CLIENT_C "${S[@]}")"

# ---- C-GET, C-MOVE -------------------------------------------------------------------------
mkdir -p "$T/got_a" "$T/dest" "$T/dest_tls" "$T/got_i"
getscu -S -aet CLIENT_A -aec DICOM_CORE -od "$T/got_a" 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$SA" >"$T/get.out" 2>&1 || fail "getscu: $(tail -3 "$T/get.out")"
same_objects "$T/in/a" "$T/got_a" >/dev/null && [[ $(ls "$T/got_a" | wc -l) -eq 6 ]] &&
    ok "C-GET study A: 6 instances byte-identical" || fail "C-GET: $(ls "$T/got_a" | wc -l) instances"
$PY "$src/tests/support/qr_peer.py" 127.0.0.1 "$CP" DICOM_CORE READER get_implicit "$SA" "$T/got_i" \
    >"$T/geti.out" 2>&1 || fail "C-GET Implicit only: $(cat "$T/geti.out")"
$PY - "$T/in/a" "$T/got_i" <<'PY' && ok "C-GET to an Implicit-only receiver: transcoded, same values" || fail "transcoding"
import io, os, sys, pydicom
from pydicom.filereader import read_dataset
src = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(os.path.join(sys.argv[1], f)) for f in os.listdir(sys.argv[1]))}
got = [read_dataset(io.BytesIO(open(os.path.join(sys.argv[2], f), "rb").read()), True, True)
       for f in os.listdir(sys.argv[2])]
assert len(got) == 6, len(got)
for g in got:
    s = src[str(g.SOPInstanceUID)]
    for e in s:
        assert g[e.tag].value == e.value, (e.tag, g[e.tag].value, e.value)
PY
start_storescp dst "$DP"
movescu -v -S -aet READER -aec DICOM_CORE -aem DEST 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$SA" >"$T/move.out" 2>&1 || fail "movescu: $(tail -3 "$T/move.out")"
same_objects "$T/in/a" "$T/dst/out" >/dev/null && ok "C-MOVE study A to storescp: byte-identical" ||
    fail "C-MOVE: $(ls "$T/dst/out" | wc -l) instances"
storescp +tls "$T/pki/server.key" "$T/pki/server.crt" +cf "$T/pki/ca.crt" -aet DEST_TLS \
    -od "$T/dest_tls" "$TP" 2>"$T/scp_tls.log" &
remember $!
wait_port "$TP"
movescu -v -S -aet READER -aec DICOM_CORE -aem DEST_TLS 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$SB" >"$T/movet.out" 2>&1
same_objects "$T/in/b" "$T/dest_tls" >/dev/null && ok "C-MOVE to a TLS destination (client_tls)" ||
    fail "C-MOVE over TLS: $(grep -a Response "$T/movet.out" | tail -2)"
movescu -v -S -aet READER -aec DICOM_CORE -aem NOWHERE 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$SA" >"$T/mu.out" 2>&1
grep -aq 'MoveDestinationUnknown' "$T/mu.out" && ok "unknown move destination: A801" || fail "unknown destination"
movescu -d -S -aet READER -aec DICOM_CORE -aem GONE 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$SB" >"$T/mg.out" 2>&1
grep -aq 'Move response with error status (Refused: OutOfResourcesSubOperations)' "$T/mg.out" &&
    grep -aq 'FailedSOPInstanceUIDList' "$T/mg.out" &&
    ok "unreachable move destination: A702 with the failed list" || fail "unreachable: $(cat "$T/mg.out")"

audited 110104 "ParticipantObjectID=\"$SA\"" &&
    grep -a '<EventID csd-code="110104"' "$T/audit.log" | grep -a "ParticipantObjectID=\"$SA\"" |
    grep -a 'UserID="DEST"' | grep -a 'csd-code="110152"' | grep -aq "ParticipantObjectID=\"$(hmac PA1)\"" &&
    ok "C-GET and C-MOVE audited: Instances Transferred (110104), DEST as the Destination, the patient's hash" ||
    { cp "$T/audit.log" /tmp/qr-audit.log; fail "no DICOM Instances Transferred naming DEST as Destination"; }

# ---- C-CANCEL mid-retrieve -----------------------------------------------------------------
$PY "$src/tests/support/qr_peer.py" store_scp "$SP" 0.2 >"$T/slow.out" 2>&1 &
remember $!
wait_port "$SP"
movescu -v -S -aet READER -aec DICOM_CORE -aem SLOW --cancel 2 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
    -k StudyInstanceUID="$SD" >"$T/mc.out" 2>&1
wait_log "$T/slow.out" 'store_scp:' 50
n=$(sed -n 's/store_scp: \([0-9]*\) stores/\1/p' "$T/slow.out" | tail -1)
grep -a 'Final Move Response' "$T/mc.out" | grep -aq Cancel && ((${n:-99} < 24)) &&
    ok "C-MOVE cancelled mid-retrieve (a slow destination): FE00 after ${n} of 24" ||
    fail "C-MOVE cancel: $(grep -a Final "$T/mc.out"), ${n:-?} sent"
$PY "$src/tests/support/qr_peer.py" 127.0.0.1 "$CP" DICOM_CORE READER get_cancel "$SD" >"$T/gc.out" 2>&1 &&
    ok "$(cat "$T/gc.out")" || fail "C-GET cancel: $(cat "$T/gc.out")"

# ---- pages, the cap, C-CANCEL mid-search, restart --------------------------------------------
core '{"page_size": 1, "max_results": 3}' # a restart: the index comes back from its file
n=$(qfind r1 READER "${S[@]}")
[[ $n -eq 3 ]] && final r1 | grep -aq 'OutOfResources' &&
    ok "after a restart, 7 studies past a cap of 3: 3 pending, then A700 (out of resources)" ||
    fail "cap: $n pending, $(final r1)"
grep -aq 'c_find.*"status":"A700"' "$T/core.log" || fail "cap: no A700 in the log"
core '{"page_size": 1, "page_delay_ms": 300}'
qfind cs READER "${S[@]}" --cancel 1 >/dev/null
final cs | grep -aq 'Cancel' && ok "C-CANCEL mid-search: FE00 after $(grep -ac 'Pending)' "$T/cs.out") of 7" ||
    fail "cancel mid-search: $(final cs)"
kill -TERM "$CORE_PID"; wait "$CORE_PID" 2>/dev/null; CORE_PID=
rm -f "$T/store/qr_index.jsonl"
core '{"page_size": 100}'
grep -a backend_file_index_ready "$T/core.log" | tail -1 | grep -aq '"read_from_store":36' &&
    ok "index file lost: rebuilt from the store (36 instances)" || fail "rebuild: $(grep -a index_ready "$T/core.log" | tail -1)"
check "after the rebuild, every study" 7 "$(qfind r2 READER "${S[@]}")"
IDLE=2000 core '{"page_size": 100}'
$PY "$src/tests/support/qr_peer.py" 127.0.0.1 "$CP" DICOM_CORE READER get_mute "$SD" >"$T/mute.out" 2>&1
grep -q 'ended it after' "$T/mute.out" && grep -aq '"why":"idle timeout"' "$T/core.log" &&
    ok "a C-GET receiver that never answers is aborted after idle_ms ($(sed 's/.*after \([0-9.]*\) s.*/\1/' "$T/mute.out") s)" ||
    fail "mute C-GET receiver: $(cat "$T/mute.out")"
check "and the core goes on" 7 "$(qfind r3 READER "${S[@]}")"
grep -ai 'MÜLLER\|HANS\|SMITH\|DOE' "$T/core.log" && fail "patient data in the core's log"

# ---- a large instance, bounded memory --------------------------------------------------------
if [[ ${GW_QR_SKIP_LARGE:-} != 1 ]]; then
    big=${GW_QR_LARGE_BYTES:-$([[ -n $sanitized ]] && echo 16777216 || echo 134217728)}
    core '{"page_size": 100}' # idle_ms back to a minute: getscu writes it all before it answers
    $PY "$src/tests/support/gen_data.py" --out "$T/big" --big-bytes "$big" >/dev/null
    storescu -aet READER -aec DICOM_CORE 127.0.0.1 "$CP" "$T"/big/*.dcm || fail "store $big bytes"
    stored 37 || fail "the large instance not indexed"
    BIG=$(uid_of StudyInstanceUID "$T"/big/*.dcm)
    rss0=$(awk '/VmHWM/ {print $2}' /proc/"$CORE_PID"/status)
    mkdir -p "$T/got_big"
    getscu -S -aet READER -aec DICOM_CORE -od "$T/got_big" 127.0.0.1 "$CP" -k QueryRetrieveLevel=STUDY \
        -k StudyInstanceUID="$BIG" >"$T/big.out" 2>&1 || fail "getscu $big bytes"
    rss1=$(awk '/VmHWM/ {print $2}' /proc/"$CORE_PID"/status)
    cmp <(tail -c "$big" "$T"/big/*.dcm) <(tail -c "$big" "$T"/got_big/*) &&
        ok "C-GET of $((big >> 20)) MiB: pixel data identical" || fail "C-GET of $big bytes: content differs"
    if [[ -z $sanitized ]]; then # the object is larger than the bound: it was streamed
        ((rss1 < 96 * 1024)) && ok "C-GET of $((big >> 20)) MiB: core peak RSS $((rss1 / 1024)) MiB (was $((rss0 / 1024)) before)" ||
            fail "core peak RSS $((rss1 / 1024)) MiB during a retrieve of $((big >> 20)) MiB"
    fi
    rm -rf "$T/big" "$T/got_big"
fi
exit $rc
