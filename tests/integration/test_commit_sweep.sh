#!/usr/bin/env bash
# Storage Commitment with a shared (DynamoDB) store whose sweep takes longer than sweep_ms: the
# core must keep answering. The endpoints point at a listener that accepts and never answers, so
# the start-up sweep stays in flight (20 s request timeout) over many sweep periods; a C-ECHO
# meanwhile must be answered (it once was not: the commit timer spun at 0 ms, libuv < 1.45 never
# polled, and the A-ASSOCIATE-RQ waited forever). No moto needed.
set -euo pipefail
source "$(dirname "$0")/lib_forwarder.sh"
[[ -x $CORE ]] || die "no $CORE"
command -v echoscu >/dev/null || die "DCMTK echoscu missing"
"$CORE" status --config /dev/null 2>&1 | grep -q "not built" &&
    die "dicom-core was built without the aws backend"

python3 - "$T/hole.port" <<'EOF_PY' &
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
__import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
while True:
    held.append(s.accept()[0])  # accepted, never answered
EOF_PY
HOLE_PID=$!
trap 'kill -KILL $HOLE_PID 2>/dev/null; wait $HOLE_PID 2>/dev/null || true; fwd_cleanup' EXIT
for _ in $(seq 100); do [[ -s $T/hole.port ]] && break; sleep 0.1; done
[[ -s $T/hole.port ]] || die "the silent listener did not start"
HOLE="http://127.0.0.1:$(cat "$T/hole.port")"

CORE_PORT=$(free_port)
HTTP_PORT=$(free_port)
mkdir -p "$T/spool"
cat >"$T/core.json" <<EOF_CFG
{ "ae_title": "DICOM_CORE", "listen": "127.0.0.1:$CORE_PORT", "http_listen": "127.0.0.1:$HTTP_PORT",
  "spool_dir": "$T/spool",
  "ack": "spool", "min_free_bytes": 0, "log_level": "info",
  "clients": [{"calling_ae": ["MODALITY"], "services": ["store", "echo", "commit"]}],
  "commit": {"point": "s3", "sweep_ms": 100, "lease_ms": 10000, "report_timeout_ms": 4000},
  "backend": { "type": "aws", "region": "us-east-1",
    "s3": { "bucket": "dicom-gw-test", "prefix": "dicom", "output_prefix": "import-output" },
    "healthimaging": { "datastore_id": "0123456789abcdef0123456789abcdef",
                       "data_access_role_arn": "arn:aws:iam::123456789012:role/gw-test" },
    "dynamodb": { "table": "dicom-gw-test" },
    "endpoints": { "s3": "$HOLE", "dynamodb": "$HOLE", "medical_imaging": "$HOLE",
                   "medical_imaging_dicom": "$HOLE" } } }
EOF_CFG
CORE_ENV=(-u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=test-secret)
core_start
grep -q '"ev":"commit_started".*"store":"shared"' "$T/core.log" || die "no shared commit store"
sleep 1 # ten sweep periods, the first sweep still waiting for its answer
echoscu -ta 20 -to 20 -aet MODALITY -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" >"$T/echo.out" 2>&1 ||
    die "C-ECHO while a sweep is in flight: $(cat "$T/echo.out")"
echo "ok: answered while the commit sweep waits for DynamoDB"
core_stop
echo "test_commit_sweep: all passed"
