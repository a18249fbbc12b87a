#!/usr/bin/env bash
# spool_checksum: every sidecar carries the CRC-64/NVME of its object; "crc64nvme" skips the
# SHA-256 (the file backend keys its copies on the CRC then), which the aws backend refuses
# (it keys DynamoDB on the SHA-256). Objects stored either way are byte-identical, and the CRC
# recorded is the object file's own (checked by an independent CRC-64/NVME in Python).
set -euo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
core=$build/core/dicom-core
T=$(mktemp -d /tmp/gw-crc.XXXXXX)
pid=
cleanup() {
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
failed=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failed=1; }
port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$T/data" --count 6 --modality CT \
    --ts explicit >/dev/null

run() { # name checksum
    local p
    p=$(port)
    cat >"$T/$1.json" <<JSON
{ "listen": "127.0.0.1:$p", "http_listen": "", "spool_dir": "$T/$1/spool", "min_free_bytes": 0,
  "spool_checksum": "$2", "backend": { "type": "file", "dir": "$T/$1/store",
  "batch_max_age_ms": 200 } }
JSON
    "$core" --config "$T/$1.json" 2>"$T/$1.log" &
    pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
    TCP_NODELAY=1 storescu -aet CRC -aec DICOM_CORE +sd 127.0.0.1 "$p" "$T/data" >/dev/null 2>&1 ||
        fail "$1: storescu failed"
    for _ in $(seq 100); do
        [[ $(grep -c '"ev":"stored"' "$T/$1/store/journal.jsonl" 2>/dev/null || true) -ge 6 ]] && break
        sleep 0.1
    done
    kill -TERM "$pid"
    wait "$pid" || fail "$1: exit status"
    pid=
}

check() { # name want_sha
    /usr/bin/python3 - "$T/$1/store" "$2" <<'EOF2'
import json, os, sys
store, want_sha = sys.argv[1], sys.argv[2] == "yes"
POLY = 0x9A6C9329AC4BC9B5  # CRC-64/NVME, reflected
table = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    table.append(c)
def crc64(data):
    c = 0xFFFFFFFFFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFFFFFFFFF
recs = [json.loads(l) for l in open(os.path.join(store, "journal.jsonl")) if '"stored"' in l]
assert len(recs) == 6, f"{len(recs)} stored records"
for r in recs:
    assert ("sha256" in r) == want_sha, f"sha256 present: {'sha256' in r}"
    data = open(os.path.join(store, r["key"]), "rb").read()
    assert r["crc64nvme"] == "%016x" % crc64(data), f"crc of {r['key']}"
EOF2
}

run sha sha256
check sha yes && ok "spool_checksum sha256: SHA-256 and CRC-64/NVME recorded, the CRC the file's own" ||
    fail "spool_checksum sha256"
run crc crc64nvme
check crc no && ok "spool_checksum crc64nvme: no SHA-256, the CRC the file's own" ||
    fail "spool_checksum crc64nvme"
cat >"$T/aws.json" <<JSON
{ "spool_dir": "$T/aws/spool", "spool_checksum": "crc64nvme", "ack": "spool",
  "backend": { "type": "aws", "region": "us-east-1", "s3": { "bucket": "b" },
  "dynamodb": { "table": "t" }, "healthimaging": { "datastore_id": "0123456789abcdef0123456789abcdef",
  "data_access_role_arn": "arn:aws:iam::123456789012:role/r" } } }
JSON
if out=$("$core" --check-config --config "$T/aws.json" 2>&1); then
    fail "the aws backend accepted spool_checksum crc64nvme"
elif grep -q "spool_checksum: the aws backend keys its records on SHA-256" <<<"$out"; then
    ok "the aws backend refuses spool_checksum crc64nvme, naming why"
else
    fail "unexpected refusal: $out"
fi
exit $failed
