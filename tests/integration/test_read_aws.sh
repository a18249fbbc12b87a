#!/usr/bin/env bash
# The read path's AWS half, without the DICOM services: the DICOMweb client (gw-aws qido/wado)
# and the aws backend's read operations (gw-aws read: scope, find, get, share) against moto and
# THE HealthImaging EMULATOR (tests/support/aws_env.py; not AWS), with IAM and SigV4 checks on
# and the reader role of cloudformation/ (tests/support/task_policy.py):
#   - the task's own credentials read nothing; the reader role's sessions read;
#   - QIDO-RS: every page followed (page size 3 over 7 instances), a wild card signed as %2A, the
#     10,000 cap (lowered by the emulator's knob) reported as the cap, not truncated;
#   - scopes: each client's own studies from DynamoDB (GSI client_index), a scoped STS session
#     whose policy names exactly those studies, a fetch outside the scope refused at once, a
#     scoped session refused (403) by HealthImaging for another study;
#   - an expired scoped session (ExpiredTokenException) replaced by a new one, the read goes on;
#   - throttling retried; throttling and an outage (503, refused connections) past the deadline
#     end as failures in bounded time;
#   - sharing: a grant widens a SHARED scope, a revoked or expired one no longer does;
#     `share --credentials` gives keys that read their study and nothing else;
#   - WADO-RS: single part and multipart/related, the dataset byte-identical without its File
#     Meta Information, a slow reader (backpressure), and a 1 GiB instance with bounded RSS.
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
G=$build/forwarder/gw-aws
[[ -x $G ]] || { echo "FAIL $G not built"; exit 1; }
command -v moto_server >/dev/null || { echo "FAIL moto_server missing (pyenv python3)"; exit 1; }
/usr/bin/python3 -c 'import pydicom' 2>/dev/null || { echo "FAIL Debian's pydicom missing"; exit 1; }
tmp=$(mktemp -d)
aws=$tmp/aws
stop() {
    python3 "$src/tests/support/aws_env.py" stop --dir "$aws" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap stop EXIT
failed=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failed=1; }
# expect NAME WANT_EXIT COMMAND...: run, keep its output in $tmp/out, compare the exit status
expect() {
    local name=$1 want=$2 rc=0
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    if [[ $rc == "$want" ]]; then
        pass "$name"
    else
        fail "$name (exit $rc, wanted $want)"
        sed 's/^/    /' "$tmp/out" "$tmp/err" | tail -20
    fi
}
has() { grep -q -- "$1" "$tmp/out" || fail "$2: '$1' not in the output"; }

python3 "$src/tests/support/aws_env.py" start --dir "$aws" >"$tmp/env.log" 2>&1 ||
    { cat "$tmp/env.log"; echo "FAIL aws_env start"; exit 1; }
. "$aws/env.sh"
ctl() { curl -sf -X POST "$HI_ENDPOINT/_emulator/$1" -d "$2" >/dev/null || fail "emulator $1"; }
O=(--region "$REGION" --mi-dicom-endpoint "$HI_ENDPOINT" --sts-endpoint "$STS_ENDPOINT"
   --ddb-endpoint "$MOTO_ENDPOINT")
R=(--assume "$READER_ROLE_ARN")

# ---- data: study A (7 instances, ct-1's), B (2, implicit VR, mr-1's), C (1, nobody's)
gen() { /usr/bin/python3 "$src/tests/support/gen_data.py" --out "$tmp/$1" --rows 8 --cols 8 "${@:2}" >/dev/null; }
gen a --count 7 --modality CT --ts explicit
gen b --count 2 --modality MR --ts implicit
gen c --count 1 --modality US --ts explicit
for d in a b c; do
    curl -sf -X POST "$HI_ENDPOINT/_emulator/load" -d "{\"dir\": \"$tmp/$d\"}" >"$tmp/load-$d.json" ||
        { echo "FAIL load $d"; exit 1; }
done
uids() { python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["loaded"]; l.sort(key=lambda x: x["path"]); print(l[0]["StudyInstanceUID"], l[0]["SeriesInstanceUID"], l[0]["SOPInstanceUID"], l[0]["path"])' "$1"; }
read -r SA SEA IA PA < <(uids "$tmp/load-a.json")
read -r SB SEB IB PB < <(uids "$tmp/load-b.json")
read -r SC SEC IC PC < <(uids "$tmp/load-c.json")
item() { # client study sop
    "$G" "${O[@]}" ddb-put "$TABLE" "{\"pk\":{\"S\":\"INSTANCE#$3\"},\"sk\":{\"S\":\"SHA256#$(printf %064d 0)\"},\"study_uid\":{\"S\":\"$2\"},\"client_id\":{\"S\":\"$1\"},\"state\":{\"S\":\"IMPORTED\"}}" >/dev/null
}
item ct-1 "$SA" "$IA"
item ct-1 "$SA" "$IA.1" # a study's several instances: one study in the scope
item mr-1 "$SB" "$IB"
cat >"$tmp/core.json" <<EOF
{"backend": {"type": "aws", "region": "$REGION",
  "s3": {"bucket": "$BUCKET"}, "healthimaging": {"mode": "stow", "datastore_id": "$DATASTORE_ID"},
  "dynamodb": {"table": "$TABLE"},
  "endpoints": {"s3": "$MOTO_ENDPOINT", "dynamodb": "$MOTO_ENDPOINT", "medical_imaging": "$HI_ENDPOINT",
                "medical_imaging_dicom": "$HI_ENDPOINT", "sts": "$STS_ENDPOINT"},
  "read": {"reader_role_arn": "$READER_ROLE_ARN", "page_size": 3, "deadline_ms": 3000}}}
EOF
sed 's/"page_size": 3,/"page_size": 3, "max_results": 5,/' "$tmp/core.json" >"$tmp/core-cap.json"
sed 's/"page_size": 3,/"page_size": 3, "multipart": true,/' "$tmp/core.json" >"$tmp/core-mp.json"
RD=("$G" "${O[@]}" read "$tmp/core.json")
# the dataset's SHA-256 and size: the Part-10 file without its preamble and File Meta group
ds_sha() {
    python3 - "$1" <<'EOF'
import hashlib, struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(132 + 65536)
    p = 132
    while struct.unpack("<H", head[p:p + 2])[0] == 2:
        vr = head[p + 4:p + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            p += 12 + struct.unpack("<I", head[p + 8:p + 12])[0]
        else:
            p += 8 + struct.unpack("<H", head[p + 6:p + 8])[0]
    f.seek(p)
    h, n = hashlib.sha256(), 0
    while chunk := f.read(1 << 20):
        h.update(chunk)
        n += len(chunk)
print(h.hexdigest(), n)
EOF
}

# ---- least privilege: the task's credentials cannot read, the reader role's can
expect "the task's own credentials are refused a search (403)" 5 \
    "$G" "${O[@]}" qido "$DATASTORE_ID" studies
expect "QIDO-RS follows every page: 7 instances in pages of 3" 0 \
    "$G" "${O[@]}" qido "$DATASTORE_ID" instances --study "$SA" --page-size 3 "${R[@]}" --pause-each
[[ $(grep -c '^result ' "$tmp/out") == 7 ]] || fail "7 results: $(grep -c '^result ' "$tmp/out")"
expect "a wild card goes signed as %2A (the emulator checks the signature)" 0 \
    "$G" "${O[@]}" qido "$DATASTORE_ID" studies --key PatientName='SYN*' --key StudyInstanceUID="$SA,$SB" \
    --include 00100010 "${R[@]}"
[[ $(grep -c '^result ' "$tmp/out") == 2 ]] || fail "2 studies by UID list: $(cat "$tmp/out")"

# ---- the cap
ctl config '{"qido_max_results": 5}'
expect "the 10,000 cap (lowered to 5) is reported, not truncated (qido)" 4 \
    "$G" "${O[@]}" qido "$DATASTORE_ID" instances --study "$SA" --max-results 5 --page-size 3 "${R[@]}"
has "at most 5 results" "the cap's why"
expect "the cap reaches the read side's done as ERR_LIMIT" 4 \
    "$G" "${O[@]}" read "$tmp/core-cap.json" find ct-1 all IMAGE 0020000D="$SA" 0020000E="$SEA" 00080018=
ctl reset '{}'

# ---- scopes
expect "scope own: the studies ct-1's certificate sent (GSI client_index)" 0 "${RD[@]}" scope ct-1 own
has "study $SA" "ct-1's study"
[[ $(grep -c '^study ' "$tmp/out") == 1 ]] || fail "one study for ct-1"
expect "find under own: only the client's study" 0 "${RD[@]}" find ct-1 own STUDY 0020000D= 00100010=
[[ $(grep -c '^result ' "$tmp/out") == 1 ]] && has "study=$SA" "ct-1's find" || fail "ct-1 find: $(cat "$tmp/out")"
expect "find of another client: only its own" 0 "${RD[@]}" find mr-1 own STUDY 0020000D=
has "study=$SB" "mr-1's find"
expect "series search under own, with the scoped session" 0 "${RD[@]}" find ct-1 own SERIES 0020000D="$SA" 0020000E=
has "series=$SEA" "series"
expect "get under own" 0 "${RD[@]}" get ct-1 own "$SA" "$SEA" "$IA" "$tmp/ia"
read -r want n < <(ds_sha "$PA")
has "sha256=$want" "get's bytes"
expect "get of a study outside the scope is refused at once" 5 "${RD[@]}" get ct-1 own "$SB" "$SEB" "$IB" -
expect "get under scope none is refused" 5 "${RD[@]}" get ct-1 none "$SA" "$SEA" "$IA" -
python3 - "$HI_ENDPOINT" "$SA" "$SB" <<'EOF' || fail "the scoped session's policy"
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1] + "/_emulator/sessions"))["sessions"]
pol = [json.loads(v["SessionPolicy"]) for v in s.values()
       if v["RoleSessionName"] == "dicom-core-ct-1" and v["SessionPolicy"]]
assert pol, s
st = pol[0]["Statement"][0]
assert st["Condition"]["StringEquals"]["medical-imaging:StudyInstanceUID"] == [sys.argv[2]], st
assert "medical-imaging:SearchDICOMStudies" not in st["Action"], st
print("PASS the scoped session's policy allows ct-1's study only")
EOF
expect "a session scoped to A reads A" 0 \
    "$G" "${O[@]}" wado "$DATASTORE_ID" "$SA" "$SEA" "$IA" - "${R[@]}" --studies "$SA"
expect "a session scoped to A is refused B by HealthImaging (403)" 5 \
    "$G" "${O[@]}" wado "$DATASTORE_ID" "$SB" "$SEB" "$IB" - "${R[@]}" --studies "$SA"
has "AccessDeniedException" "403 code"

# ---- an expired session is replaced: the read goes on
expire_ct1=$(cat <<EOF
python3 -c 'import json,urllib.request as u; s=json.load(u.urlopen("$HI_ENDPOINT/_emulator/sessions"))["sessions"]; k=[a for a,v in s.items() if v["RoleSessionName"]=="dicom-core-ct-1"]; u.urlopen(u.Request("$HI_ENDPOINT/_emulator/expire", json.dumps({"access_key_ids": k}).encode(), method="POST"))'
EOF
)
before=$(curl -s "$HI_ENDPOINT/_emulator/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["expired_tokens"])')
expect "ExpiredTokenException: the session is assumed again and the read goes on" 0 \
    "${RD[@]}" get ct-1 own "$SA" "$SEA" "$IA" - --repeat 2 --between "$expire_ct1"
[[ $(grep -c '^done err=ok' "$tmp/out") == 2 ]] || fail "two reads: $(cat "$tmp/out")"
after=$(curl -s "$HI_ENDPOINT/_emulator/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["expired_tokens"])')
((after > before)) || fail "the expired key was used ($before -> $after)"

# ---- faults
ctl throttle '{"count": 3, "operations": ["GetDICOMInstance"]}'
expect "throttling is retried" 0 "${RD[@]}" get ct-1 all "$SA" "$SEA" "$IA" -
ctl throttle '{"seconds": 60, "operations": ["GetDICOMInstance"]}'
t0=$SECONDS
expect "throttled past the deadline: a failure" 1 "${RD[@]}" get ct-1 all "$SA" "$SEA" "$IA" -
has "throttled or unavailable" "throttle why"
((SECONDS - t0 < 30)) || fail "throttled failure took $((SECONDS - t0)) s"
ctl reset '{}'
ctl down '{"seconds": 60, "mode": "503"}'
t0=$SECONDS
expect "HealthImaging down (503): the search fails within the deadline" 1 "${RD[@]}" find ct-1 all STUDY 0020000D=
((SECONDS - t0 < 30)) || fail "503 failure took $((SECONDS - t0)) s"
ctl reset '{}'
"$G" "${O[@]}" qido "$DATASTORE_ID" studies "${R[@]}" >/dev/null # a session in the cache
ctl down '{"seconds": 8, "mode": "refuse"}'
t0=$SECONDS
expect "HealthImaging refusing connections: a failure, not a hang" 1 \
    "$G" "${O[@]}" --attempts 3 qido "$DATASTORE_ID" studies --deadline-ms 2000 "${R[@]}"
((SECONDS - t0 < 30)) || fail "refused-connection failure took $((SECONDS - t0)) s"
sleep 8
ctl reset '{}'

# ---- sharing
expect "share grants a study" 0 "${RD[@]}" share --study "$SC" --to ct-1 --hours 2
expect "scope shared: own plus the grant" 0 "${RD[@]}" scope ct-1 shared
has "study $SC" "the shared study"
expect "get a shared study" 0 "${RD[@]}" get ct-1 shared "$SC" "$SEC" "$IC" -
expect "share --list" 0 "${RD[@]}" share --list --json
has "\"state\":\"active\"" "listed grant"
expect "share --revoke" 0 "${RD[@]}" share --revoke --study "$SC" --to ct-1
expect "a revoked grant stops the next query" 0 "${RD[@]}" scope ct-1 shared
grep -q "study $SC" "$tmp/out" && fail "revoked study still in scope"
expect "a revoked study is refused" 5 "${RD[@]}" get ct-1 shared "$SC" "$SEC" "$IC" -
"$G" "${O[@]}" ddb-put "$TABLE" "{\"pk\":{\"S\":\"GRANT\"},\"sk\":{\"S\":\"mr-1#$SC\"},\"grantee\":{\"S\":\"mr-1\"},\"grant_study\":{\"S\":\"$SC\"},\"expires_at\":{\"N\":\"$(($(date +%s) - 5))\"}}" >/dev/null
expect "an expired grant is not in the scope" 0 "${RD[@]}" scope mr-1 shared
grep -q "study $SC" "$tmp/out" && fail "expired grant still in scope"
expect "revoking a grant that does not exist fails" 1 "${RD[@]}" share --revoke --study 1.2.3 --to ct-1
expect "share refuses a bad study UID" 2 "${RD[@]}" share --study 1.2.x --to ct-1 --hours 1
expect "share --credentials" 0 "${RD[@]}" share --credentials --study "$SA" --hours 1
cp "$tmp/out" "$tmp/creds.json"
python3 - "$tmp/creds.json" "$HI_ENDPOINT" "$DATASTORE_ID" "$REGION" "$SA/series/$SEA/instances/$IA" "$SB/series/$SEB/instances/$IB" <<'EOF' || fail "share credentials"
import json, sys, urllib.request, urllib.error
import botocore.auth, botocore.awsrequest, botocore.credentials
c = json.load(open(sys.argv[1]))
ep, ds, region = sys.argv[2], sys.argv[3], sys.argv[4]
creds = botocore.credentials.Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
def get(path):
    url = f"{ep}/datastore/{ds}/studies/{path}"
    req = botocore.awsrequest.AWSRequest("GET", url, headers={"Accept": "application/dicom"})
    botocore.auth.SigV4Auth(creds, "medical-imaging", region).add_auth(req)
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=dict(req.prepare().headers))).status
    except urllib.error.HTTPError as e:
        return e.code
assert c["DICOMwebStudyURL"].endswith(sys.argv[5].split("/")[0]), c["DICOMwebStudyURL"]
a, b = get(sys.argv[5]), get(sys.argv[6])
assert (a, b) == (200, 403), (a, b)
print("PASS share --credentials: a viewer's keys read their study (200) and not another (403)")
EOF

# ---- WADO-RS forms, bytes, backpressure
read -r want n < <(ds_sha "$PB")
expect "an implicit VR instance comes back in Explicit VR LE" 0 \
    "$G" "${O[@]}" wado "$DATASTORE_ID" "$SB" "$SEB" "$IB" - "${R[@]}"
has "ts=1.2.840.10008.1.2.1 " "transcoded"
expect "as stored (transfer-syntax=*): Implicit VR LE, byte-identical" 0 \
    "$G" "${O[@]}" wado "$DATASTORE_ID" "$SB" "$SEB" "$IB" - "${R[@]}" --ts '*'
has "ts=1.2.840.10008.1.2 " "stored syntax"
has "sha256=$want" "the dataset byte-identical"
expect "the read side negotiates: only Implicit VR LE accepted, the stored one is used" 0 \
    "${RD[@]}" get mr-1 own "$SB" "$SEB" "$IB" - 1.2.840.10008.1.2
has "sha256=$want" "negotiated bytes"
expect "the read side asks for multipart/related when configured" 0 \
    "$G" "${O[@]}" read "$tmp/core-mp.json" get ct-1 own "$SA" "$SEA" "$IA" -
read -r want n < <(ds_sha "$PA")
has "sha256=$want" "multipart bytes"
expect "a slow reader (50 KB/s) pauses the transfer and gets every byte" 0 \
    "$G" "${O[@]}" wado "$DATASTORE_ID" "$SA" "$SEA" "$IA" - "${R[@]}" --multipart --rate 50000
has "sha256=$want" "slow reader's bytes"

# ---- a 1 GiB instance, streamed: the reader's memory stays bounded
if [[ ${READ_AWS_SKIP_BIG:-0} != 1 ]]; then
    /usr/bin/python3 "$src/tests/support/gen_data.py" --out "$tmp/big" --count 1 --modality CT \
        --ts explicit --big-bytes 1073741824 >/dev/null
    curl -sf -X POST "$HI_ENDPOINT/_emulator/load" -d "{\"dir\": \"$tmp/big\"}" >"$tmp/load-big.json"
    read -r SG SEG IG PG < <(uids "$tmp/load-big.json")
    item big-1 "$SG" "$IG"
    read -r want n < <(ds_sha "$PG")
    rm -f "$PG"
    expect "a 1 GiB instance through the read side (scoped session), streamed" 0 \
        "${RD[@]}" get big-1 own "$SG" "$SEG" "$IG" -
    has "sha256=$want" "1 GiB bytes"
    has "bytes=$n " "1 GiB size"
    rss=$(sed -n 's/.*peak_rss_kb=\([0-9]*\).*/\1/p' "$tmp/out")
    if [[ -n $rss ]] && ((rss < 100 * 1024)); then
        pass "peak RSS ${rss} KiB while 1 GiB went through (bounded)"
    else
        fail "peak RSS ${rss:-?} KiB for a 1 GiB instance"
    fi
fi
exit $failed
