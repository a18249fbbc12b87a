#!/usr/bin/env bash
# Benchmark (not a pass/fail test), against moto (S3, DynamoDB, IAM: signatures checked) and THE
# HealthImaging EMULATOR (tests/support/hi_emulator.py, not AWS), all on loopback:
#   A. objects/s from the spool to S3: N objects (~0.5 MB CT) are put in the spool by a core
#      whose S3 endpoint is unreachable, then a core with the real endpoint drains it; measured
#      from its start to an empty spool (per object: DynamoDB RECEIVED (the claim), S3 PUT with
#      SHA-256, journal, unlink: two requests). Peer in the same run: `aws s3 cp --recursive` of the
#      same files to the same moto (PUT only). Ratio = ours / theirs. Both run on a quiet moto:
#      each waits until the emulator runs no import job, and the core is stopped before the
#      CLI runs (its open batch waits, batch age 10 min), so neither pays for the emulator
#      reading objects. (A batch left open by the filling core closes when the draining core
#      resumes it, and its job starts as its last member is stored: that is part of the drain.)
#      ROUNDS (default 2) alternating rounds, fresh objects each; the best of each is kept
#      (this VM's page cache and moto's GIL make single runs vary).
#   B. time from the last C-STORE success of a 100-object study (ack "spool") to every item
#      IMPORTED, with batch_max_age_ms 1000, polls 200..1000 ms and the emulator's job steps of
#      0.3 s (three steps): the floor is about batch age + job time. Each round of A ends with
#      its objects imported (not timed), so the next round and B start on a quiet moto too.
#   The requests per object of each side are printed (ours from the forwarder's own counters
#   in status.json; the CLI sends one PutObject per file below its 8 MB multipart threshold),
#   with a probe of the machine's limit for our request mix in the same run: a Python client
#   (boto3, 10 threads, like the CLI) doing per object exactly what the forwarder does, one
#   conditional PutItem and one PutObject with x-amz-checksum-sha256, against the same moto.
#   With PIN=1 (needs 2+ CPUs and taskset) moto runs on CPU 1 and everything else on CPU 0, so
#   that neither client's CPU competes with moto's; on a machine that other work shares, CPU 1
#   is not moto's own and every rate drops (the default, PIN=0, lets the scheduler place them).
# Usage: [ROUNDS=2] [PIN=0|1] tests/bench/forwarder_vs_awscli.sh [N=300] [STUDY=100]
src=$(cd "$(dirname "$0")/../.." && pwd)
export GW_SRC=${GW_SRC:-$src} GW_BUILD=${GW_BUILD:-$src/build}
N=${1:-300}
STUDY=${2:-100}
ROUNDS=${ROUNDS:-2}
# shellcheck source=../integration/lib_forwarder.sh
source "$src/tests/integration/lib_forwarder.sh"
skip_unless_ready
aws_up --job-delay 0.3
export TCP_NODELAY=1
now() { date +%s.%N; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
MOTO_PID=$(head -1 "$T/aws/pids")
best() { echo "if ($1 > $2) $1 else $2" | bc -l; }
PIN=${PIN:-0}
ON0=()
if [[ $PIN == 1 ]] && [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    taskset -apc 1 "$MOTO_PID" >/dev/null # every thread of moto on CPU 1
    ON0=(taskset -c 0)
    CORE_ENV=(taskset -c 0)
    echo "moto pinned to CPU 1; the core, the CLI and the probe to CPU 0"
fi
# status.json of the last core: "name" counter
stat_of() {
    python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))[sys.argv[2]]))' \
        "$T/spool/forwarder/status.json" "$1"
}
# the machine's limit for the forwarder's request mix: PutItem (conditional) + PutObject per file
probe() {
    "${ON0[@]}" python3 - "$1" "$2" <<'PYEOF'
import base64, concurrent.futures, hashlib, os, sys, time
import boto3
from botocore.config import Config
d, tag = sys.argv[1], sys.argv[2]
ep, region = os.environ["MOTO_ENDPOINT"], os.environ["REGION"]
cfg = Config(max_pool_connections=16)
s3 = boto3.client("s3", endpoint_url=ep, region_name=region, config=cfg)
ddb = boto3.client("dynamodb", endpoint_url=ep, region_name=region, config=cfg)
files = sorted(f for f in os.listdir(d) if f.endswith(".dcm"))
def one(f):
    b = open(os.path.join(d, f), "rb").read()
    h = hashlib.sha256(b)
    ddb.put_item(TableName=os.environ["TABLE"],
                 Item={"pk": {"S": f"PROBE#{tag}#{f}"}, "sk": {"S": "SHA256#" + h.hexdigest()},
                       "state": {"S": "RECEIVED"}, "state_rank": {"N": "1"},
                       "bytes": {"N": str(len(b))}},
                 ConditionExpression="attribute_not_exists(pk)")
    s3.put_object(Bucket=os.environ["BUCKET"], Key=f"probe/{tag}/{f}", Body=b,
                  ChecksumSHA256=base64.b64encode(h.digest()).decode())
t0 = time.time()
with concurrent.futures.ThreadPoolExecutor(10) as ex:
    list(ex.map(one, files))
print(len(files) / (time.time() - t0))
PYEOF
}
# wait until the emulator runs no import job (its reads of the input load moto)
emulator_idle() {
    python3 - <<'PYEOF' || die "the emulator's import jobs did not end"
import json, os, time, urllib.request
end = time.time() + 300
while time.time() < end:
    with urllib.request.urlopen(os.environ["HI_ENDPOINT"] + "/_emulator/jobs", timeout=30) as r:
        jobs = json.load(r)["jobs"]
    if all(j["jobStatus"] in ("COMPLETED", "FAILED") for j in jobs):
        raise SystemExit(0)
    time.sleep(0.2)
raise SystemExit(1)
PYEOF
}

# ---- A. per round: fill the spool with S3 unreachable, drain it, then the CLI on the same files
ours=0 theirs=0
for r in $(seq "$ROUNDS"); do
    echo "round $r: generating $N objects of 512x512 int16 ..."
    gen_objects "$T/in$r" "$N" 512 "r$r"
    bytes=$(du -sb --exclude=uids.txt "$T/in$r" | cut -f1)
    BATCH_AGE_MS=600000 write_core_config "$T/core.json" spool
    set_s3_endpoint "$T/core.json" http://127.0.0.1:9
    core_start
    storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T/in$r"/*.dcm >/dev/null 2>&1 ||
        die "storescu fill"
    core_stop
    depth=$(find "$T/spool/ready" -name '*.dcm' | wc -l)
    [[ $depth == "$N" ]] || die "spool holds $depth entries, expected $N"
    BATCH_AGE_MS=600000 write_core_config "$T/core.json" spool # the real endpoint, same spool
    emulator_idle
    m0=$(cpu "$MOTO_PID")
    t0=$(now)
    core_start
    while [[ -n "$(find "$T/spool/ready" -name '*.dcm' -print -quit)" ]]; do sleep 0.05; done
    t1=$(now)
    m1=$(cpu "$MOTO_PID")
    c1=$(cpu "$CORE_PID")
    core_stop
    rq_d=$(stat_of ddb_requests)
    rq_s=$(stat_of s3_requests)
    rate=$(echo "$N / ($t1 - $t0)" | bc -l)
    printf '   forwarder        %7.1f objects/s  (%.2f s; moto CPU %.2f s, core CPU %.2f s;' \
        "$rate" "$(echo "$t1 - $t0" | bc -l)" "$(echo "($m1 - $m0) / 100" | bc -l)" \
        "$(echo "$c1 / 100" | bc -l)"
    printf ' per object: %.2f DynamoDB + %.2f S3 requests)\n' "$(echo "$rq_d / $N" | bc -l)" \
        "$(echo "$rq_s / $N" | bc -l)"
    ours=$(best "$ours" "$rate")
    emulator_idle
    m2=$(cpu "$MOTO_PID")
    t2=$(now)
    TIMEFORMAT='%U %S'
    { time "${ON0[@]}" aws --endpoint-url "$MOTO_ENDPOINT" s3 cp --recursive --quiet --exclude uids.txt \
        "$T/in$r" "s3://$BUCKET/awscli/r$r/" 2>&3 || die "aws s3 cp"; } 3>&2 2>"$T/cli.time"
    t3=$(now)
    m3=$(cpu "$MOTO_PID")
    rate=$(echo "$N / ($t3 - $t2)" | bc -l)
    printf '   aws s3 cp -r     %7.1f objects/s  (%.2f s; moto CPU %.2f s, aws CPU %.2f s)\n' \
        "$rate" "$(echo "$t3 - $t2" | bc -l)" "$(echo "($m3 - $m2) / 100" | bc -l)" \
        "$(awk '{print $1 + $2}' "$T/cli.time")"
    theirs=$(best "$theirs" "$rate")
    emulator_idle
    m4=$(cpu "$MOTO_PID")
    rate=$(probe "$T/in$r" "r$r")
    m5=$(cpu "$MOTO_PID")
    printf '   probe (boto3)    %7.1f objects/s  (PutItem + PutObject per object; moto CPU %.2f s)\n' \
        "$rate" "$(echo "($m5 - $m4) / 100" | bc -l)"
    limit=$(best "${limit:-0}" "$rate")
    # this round's batches imported (untimed) before the next round, so that no drain pays
    # for marking an earlier round's objects IMPORTED
    write_core_config "$T/core.json" spool
    core_start
    check_imported "$T/in$r" 300 >/dev/null || die "round $r not imported"
    core_stop
done
printf 'A. spool -> S3, %d objects (%.1f MB) per round, best of %d:\n' "$N" \
    "$(echo "$bytes / 1000000" | bc -l)" "$ROUNDS"
printf '   forwarder %.1f objects/s (2 requests per object: DynamoDB claim + S3 PUT), aws s3 cp -r' \
    "$ours"
printf ' %.1f objects/s (%s, 1 request per object)\n' "$theirs" "$(aws --version 2>&1 | cut -d' ' -f1)"
printf '   the same 2 requests from boto3 (this machine and moto: the limit for our mix): %.1f objects/s\n' \
    "$limit"
printf '   ratio forwarder/awscli: %.2f; forwarder/probe: %.2f\n' "$(echo "$ours / $theirs" | bc -l)" \
    "$(echo "$ours / $limit" | bc -l)"

write_core_config "$T/core.json" spool
core_start

# ---- B. C-STORE success -> IMPORTED for a study
gen_objects "$T/study" "$STUDY" 512 study
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/study/*.dcm >/dev/null 2>&1 ||
    die "storescu study"
t4=$(now)
check_imported "$T/study" 300 >/dev/null || die "study not imported"
t5=$(now)
printf 'B. %d-object study: last C-STORE success -> all IMPORTED in %.2f s\n' "$STUDY" \
    "$(echo "$t5 - $t4" | bc -l)"
echo "   (batch_max_age_ms 1000, emulator job steps 0.3 s; time includes the checker's 1 s polls)"
core_stop
