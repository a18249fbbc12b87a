#!/usr/bin/env bash
# The whole read chain (issue 15): DCMTK findscu, getscu and movescu through dicom-edge (mutual
# TLS) to dicom-core with the aws backend, against moto and THE HealthImaging EMULATOR of
# tests/support (not AWS), the reader role's scoped STS sessions on. Data goes in through our
# own store path first (storescu +tls through the edge; ack healthimaging: answered once
# imported). Then:
#  - C-FIND at STUDY, SERIES and IMAGE level (with matching), more than one QIDO-RS page;
#  - C-GET of a study: every instance byte-identical to what was sent (dataset without meta);
#  - C-MOVE to a DCMTK storescp; an unknown move destination answered 0xA801;
#  - two clients each seeing and getting only their own studies (scope own / shared);
#  - `dicom-core share` granting a study to the other client, then --revoke;
#  - HealthImaging down: a failure status in bounded time, not a hang.
# Debian's getscu and movescu lack TLS: they reach the edge through stunnel4 (as in
# test_core_qr_edge.sh); findscu and storescu use their own +tls.
set -euo pipefail
source "$(dirname "$0")/lib_forwarder.sh"
src=$GW_SRC
build=$GW_BUILD
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap 'KEEP_TMP=1 fwd_cleanup 2>/dev/null; edge_cleanup' EXIT
skip_unless_ready
for tool in findscu getscu movescu storescp stunnel4; do
    command -v "$tool" >/dev/null || die "$tool missing"
done
export TCP_NODELAY=1
ok() { echo "ok: $* [${SECONDS}s]"; }
bash "$src/tests/support/test_pki.sh" "$T/pki" >/dev/null 2>&1 || die "no test PKI"
aws_up
ok "moto and the HealthImaging emulator up"
ctl() { curl -sf -X POST "$HI_ENDPOINT/_emulator/$1" -d "$2" >/dev/null || die "emulator $1"; }

# ---- the core (aws backend, TLS + PROXY v2 from the edge), the edge -----------------------------
EP=$(port) HP=$(port) DP=$(port)
# the move destination binds its port at once: a port picked now and bound later can be taken by
# a port picked in between (a tunnel), and the core's C-MOVE would then reach the wrong peer
start_storescp dst "$DP"
write_core_config "$T/core.json" healthimaging ', "mode": "stow"'
python3 - "$T/core.json" "$T/pki" "$DP" "$STS_ENDPOINT" "$READER_ROLE_ARN" <<'EOF'
import json, sys
f, pki, dp, sts, reader = sys.argv[1:]
c = json.load(open(f))
c["proxy_protocol"] = {"trusted": ["127.0.0.1/32"]}
c["tls"] = {"cert": f"{pki}/server.crt", "key": f"{pki}/server.key",
            "client_ca": f"{pki}/ca.crt", "crl": f"{pki}/crl.pem"}
rw = ["store", "echo", "find", "get", "move"]
c["clients"] = [{"calling_ae": ["CT_ROOM1"], "services": rw, "read_scope": "own"},
                {"calling_ae": ["MR_ROOM2"], "services": rw, "read_scope": "shared"}]
c["ae_peers"] = {"DEST": {"host": "127.0.0.1", "port": int(dp)}}
b = c["backend"]
b["endpoints"]["sts"] = sts
b["read"] = {"reader_role_arn": reader, "page_size": 2, "deadline_ms": 3000}
json.dump(c, open(f, "w"))
EOF
core_start
CP=$CORE_PORT
ALL='"store", "echo", "find", "get", "move"'
cat >"$T/policy.json" <<JSON
{ "clients": [
    { "id": "ct-room-1", "match": { "subject_cn": "ct-room-1" }, "calling_ae": ["CT_ROOM1"],
      "called_ae": ["DICOM_CORE"], "route": "core", "services": [$ALL], "read_scope": "own" },
    { "id": "mr-room-2", "match": { "subject_cn": "mr-room-2" }, "calling_ae": ["MR_ROOM2"],
      "called_ae": ["DICOM_CORE"], "route": "core", "services": [$ALL], "read_scope": "shared" } ],
  "routes": { "core": { "upstream": "127.0.0.1:$CP", "proxy_protocol": true,
                        "tls": { "ca": "$T/pki/ca.crt", "cert": "$T/pki/edge-client.crt",
                                 "key": "$T/pki/edge-client.key" } } } }
JSON
write_edge_config "$EP" "$HP"
start_edge "$EP" || die "edge did not start: $(tail "$T/edge.log")"

# ---- data in through our store path ---------------------------------------------------------------
gen() { /usr/bin/python3 "$src/tests/support/qr_data.py" "$@"; }
S1=$(gen --out "$T/in/ct" --patient-id AWS1 --patient-name "AWS^ONE" --study-date 20230101 \
    --series 2 --instances 3)
S2=$(gen --out "$T/in/mr" --patient-id AWS2 --patient-name "AWS^TWO" --study-date 20230202 \
    --modality MR --instances 2)
t0=$SECONDS
scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" "$T"/in/ct/*.dcm >"$T/s1.out" 2>&1 ||
    die "store ct1: $(tail -3 "$T/s1.out")"
scu storescu mr2 MR_ROOM2 DICOM_CORE "$EP" "$T"/in/mr/*.dcm >"$T/s2.out" 2>&1 ||
    die "store mr2: $(tail -3 "$T/s2.out")"
ok "8 instances stored through the edge, acknowledged once in HealthImaging (STOW-RS) ($((SECONDS - t0)) s)"

# ---- C-FIND ------------------------------------------------------------------------------------------
qfind() { # OUT CERT AET LEVEL [args]: the number of pending responses
    local out=$1 cert=$2 aet=$3 lvl=$4
    shift 4
    scu findscu "$cert" "$aet" DICOM_CORE "$EP" -v -S -k QueryRetrieveLevel="$lvl" "$@" \
        >"$T/$out.out" 2>&1 || true
    grep -ac 'Find Response:.*(Pending)' "$T/$out.out" || true
}
searches() { curl -s "$HI_ENDPOINT/_emulator/state" | jq "[.counters.requests | to_entries[] |
    select(.key | startswith(\"SearchDICOM\")) | .value] | add // 0"; }
n=$(qfind f1 ct1 CT_ROOM1 STUDY -k StudyInstanceUID -k PatientName -k StudyDate=20230101-20230131)
[[ $n == 1 ]] && grep -aq "$S1" "$T/f1.out" && grep -aq 'AWS^ONE' "$T/f1.out" ||
    die "STUDY level, date range: $n results: $(grep -a 'Final\|Response' "$T/f1.out" | tail -3)"
ok "C-FIND STUDY (date range) over +tls through the edge: ct-room-1's study with its name"
n=$(qfind f2 ct1 CT_ROOM1 SERIES -k StudyInstanceUID="$S1" -k SeriesInstanceUID -k Modality)
[[ $n == 2 ]] || die "SERIES level: $n results (want 2)"
n=$(qfind f3 ct1 CT_ROOM1 SERIES -k StudyInstanceUID="$S1" -k SeriesInstanceUID -k Modality=MR)
[[ $n == 1 ]] || die "SERIES level Modality=MR: $n results (want 1)"
ok "C-FIND SERIES: 2 series, 1 with Modality=MR"
SE1=$(dcmdump +P SeriesInstanceUID "$T/in/ct/s1_i0001.dcm" | sed 's/.*\[\(.*\)\].*/\1/')
before=$(searches)
n=$(qfind f4 ct1 CT_ROOM1 IMAGE -k StudyInstanceUID="$S1" -k SeriesInstanceUID="$SE1" \
    -k SOPInstanceUID -k InstanceNumber)
after=$(searches)
[[ $n == 3 ]] || die "IMAGE level: $n results (want 3): $(grep -a 'Final\|Error' "$T/f4.out" | tail -3)"
((after - before >= 2)) || die "IMAGE level: $((after - before)) QIDO-RS searches (pages of 2: want >= 2)"
ok "C-FIND IMAGE: 3 instances over $((after - before)) QIDO-RS searches (page size 2: every page followed)"
n=$(qfind f5 ct1 CT_ROOM1 IMAGE -k StudyInstanceUID="$S1" -k SeriesInstanceUID="$SE1" \
    -k SOPInstanceUID -k InstanceNumber=2)
[[ $n == 1 ]] || die "IMAGE level InstanceNumber=2: $n results (want 1)"
ok "C-FIND IMAGE matched on a key QIDO-RS does not filter (InstanceNumber=2): 1"
n=$(qfind f5b ct1 CT_ROOM1 STUDY -k StudyInstanceUID -k PatientID='AWS*')
[[ $n == 1 ]] || die "STUDY level PatientID=AWS*: $n results (want 1)"
ok "C-FIND STUDY with a wild card (PatientID=AWS*): 1"

# ---- scope: each client its own ------------------------------------------------------------------
n=$(qfind f6 mr2 MR_ROOM2 STUDY -k StudyInstanceUID)
[[ $n == 1 ]] && grep -aq "$S2" "$T/f6.out" || die "mr-room-2 sees $n studies (want its own only)"
n=$(qfind f7 ct1 CT_ROOM1 STUDY -k StudyInstanceUID)
[[ $n == 1 ]] && grep -aq "$S1" "$T/f7.out" || die "ct-room-1 sees $n studies (want its own only)"
ok "two clients each find only their own study"

tunnel() { # tunnel NAME CERT -> TUN_NAME: a local TLS client to the edge with CERT
    local p
    p=$(port)
    printf 'foreground = yes\npid =\n[t]\nclient = yes\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s
cert = %s\nkey = %s\nCAfile = %s\nverifyChain = yes\n' "$p" "$EP" "$T/pki/$2.crt" \
        "$T/pki/$2.key" "$T/pki/ca.crt" >"$T/$1.stunnel"
    stunnel4 "$T/$1.stunnel" 2>"$T/$1.stunnel.log" &
    remember $!
    wait_port "$p"
    eval "TUN_$1=$p"
}
tunnel ct ct1
tunnel mr mr2
qget() { # OUT TUN AET STUDY
    mkdir -p "$T/$1"
    getscu -v -S -aet "$3" -aec DICOM_CORE -od "$T/$1" 127.0.0.1 "$2" -k QueryRetrieveLevel=STUDY \
        -k StudyInstanceUID="$4" >"$T/$1.out" 2>&1 || true
}

# ---- C-GET, C-MOVE -------------------------------------------------------------------------------------
qget g1 "$TUN_ct" CT_ROOM1 "$S1"
same_objects "$T/in/ct" "$T/g1" >"$T/same.out" || die "C-GET: $(cat "$T/same.out"); $(tail -3 "$T/g1.out")"
[[ $(find "$T/g1" -type f | wc -l) == 6 ]] || die "C-GET: $(find "$T/g1" -type f | wc -l) files (want 6)"
ok "C-GET of a study from HealthImaging: 6 instances, datasets byte-identical to what was sent"
qget g2 "$TUN_mr" MR_ROOM2 "$S1"
[[ -z $(ls "$T/g2") ]] && grep -aq '0x124\|Refused' "$T/g2.out" ||
    die "mr-room-2 got ct-room-1's study: $(grep -a Response "$T/g2.out")"
ok "C-GET of another client's study refused"

movescu -v -S -aet CT_ROOM1 -aec DICOM_CORE -aem DEST 127.0.0.1 "$TUN_ct" \
    -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$S1" >"$T/m1.out" 2>&1 || true
same_objects "$T/in/ct" "$T/dst/out" >"$T/same.out" ||
    die "C-MOVE: $(cat "$T/same.out"); $(grep -a 'Final\|Response' "$T/m1.out" | tail -3)"
ok "C-MOVE to a storescp: 6 instances byte-identical"
movescu -v -S -aet CT_ROOM1 -aec DICOM_CORE -aem NOWHERE 127.0.0.1 "$TUN_ct" \
    -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$S1" >"$T/m2.out" 2>&1 || true
grep -aiq '0xa801\|MoveDestinationUnknown' "$T/m2.out" ||
    die "unknown destination: $(grep -a 'Response\|Status' "$T/m2.out" | tail -3)"
ok "C-MOVE to an unknown destination: 0xA801"

# ---- sharing -------------------------------------------------------------------------------------------
share() { "$CORE" share --config "$T/core.json" "$@" >"$T/share.out" 2>&1 || die "share $*: $(cat "$T/share.out")"; }
share --study "$S1" --to mr-room-2 --hours 1
n=$(qfind f8 mr2 MR_ROOM2 STUDY -k StudyInstanceUID)
[[ $n == 2 ]] && grep -aq "$S1" "$T/f8.out" || die "shared: mr-room-2 sees $n studies (want 2)"
qget g3 "$TUN_mr" MR_ROOM2 "$S1"
same_objects "$T/in/ct" "$T/g3" >/dev/null || die "shared C-GET: $(tail -3 "$T/g3.out")"
n=$(qfind f9 ct1 CT_ROOM1 STUDY -k StudyInstanceUID)
[[ $n == 1 ]] || die "ct-room-1 (scope own) sees $n studies after the share (want 1)"
ok "dicom-core share: mr-room-2 finds and gets the shared study; ct-room-1 still only its own"
share --revoke --study "$S1" --to mr-room-2
n=$(qfind f10 mr2 MR_ROOM2 STUDY -k StudyInstanceUID)
[[ $n == 1 ]] && ! grep -aq "$S1" "$T/f10.out" || die "revoked: mr-room-2 sees $n studies"
qget g4 "$TUN_mr" MR_ROOM2 "$S1"
[[ -z $(ls "$T/g4") ]] || die "revoked: mr-room-2 still gets the study"
ok "share --revoke: the next query and retrieve no longer see it"

# ---- HealthImaging down: failure status, bounded ---------------------------------------------------
ctl down '{"seconds": 60, "mode": "503"}'
t0=$SECONDS
timeout 60 findscu +tls "$T/pki/ct1.key" "$T/pki/ct1.crt" +cf "$T/pki/ca.crt" -aet CT_ROOM1 \
    -aec DICOM_CORE 127.0.0.1 "$EP" -v -S -k QueryRetrieveLevel=STUDY -k StudyInstanceUID \
    >"$T/fd.out" 2>&1 || true
el=$((SECONDS - t0))
grep -aq 'Final Find Response (Failed' "$T/fd.out" ||
    die "HealthImaging down: $(grep -a 'Response\|Error' "$T/fd.out" | tail -3)"
((el < 30)) || die "HealthImaging down: the failure took $el s"
t0=$SECONDS
mkdir -p "$T/gd"
timeout 60 getscu -v -S -aet CT_ROOM1 -aec DICOM_CORE -od "$T/gd" 127.0.0.1 "$TUN_ct" \
    -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$S1" >"$T/gd.out" 2>&1 || true
el2=$((SECONDS - t0))
grep -aiq 'Get Response (Failed' "$T/gd.out" && [[ -z $(ls "$T/gd") ]] ||
    die "HealthImaging down, C-GET: $(grep -a 'Response' "$T/gd.out" | tail -3)"
((el2 < 30)) || die "HealthImaging down: the C-GET failure took $el2 s"
ctl reset '{}'
ok "HealthImaging down (503): C-FIND failed in $el s, C-GET failed in $el2 s, no hang"
n=$(qfind f11 ct1 CT_ROOM1 STUDY -k StudyInstanceUID)
[[ $n == 1 ]] || die "after the outage: $n results"
ok "back up: C-FIND answers again"

grep -ai 'AWS^ONE\|AWS^TWO' "$T/core.log" "$T/edge.log" && die "patient data in a log"
core_stop
echo "test_qr_aws: all passed"
