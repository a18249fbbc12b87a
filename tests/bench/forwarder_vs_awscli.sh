#!/usr/bin/env bash
# Benchmark (not a pass/fail test), against moto (S3, DynamoDB, IAM: signatures checked) and THE
# HealthImaging EMULATOR (tests/support/hi_emulator.py, not AWS), all on loopback:
#   A. objects/s from the spool to S3: N objects (~0.5 MB CT) are put in the spool by a core
#      whose S3 endpoint is unreachable, then a core with the real endpoint drains it; measured
#      from its start to an empty spool (per object: DynamoDB RECEIVED, S3 PUT with SHA-256,
#      DynamoDB STORED, journal, unlink). Peer in the same run: `aws s3 cp --recursive` of the
#      same files to the same moto (PUT only). Ratio = ours / theirs.
#   B. time from the last C-STORE success of a 100-object study (ack "spool") to every item
#      IMPORTED, with batch_max_age_ms 1000, polls 200..1000 ms and the emulator's job steps of
#      0.3 s (three steps): the floor is about batch age + job time.
# Usage: tests/bench/forwarder_vs_awscli.sh [N=300] [STUDY=100]
src=$(cd "$(dirname "$0")/../.." && pwd)
export GW_SRC=${GW_SRC:-$src} GW_BUILD=${GW_BUILD:-$src/build}
N=${1:-300}
STUDY=${2:-100}
# shellcheck source=../integration/lib_forwarder.sh
source "$src/tests/integration/lib_forwarder.sh"
skip_unless_ready
aws_up --job-delay 0.3
export TCP_NODELAY=1
now() { date +%s.%N; }

echo "generating $N objects of 512x512 int16 ..."
gen_objects "$T/in" "$N" 512
bytes=$(du -sb "$T/in" | cut -f1)

# ---- A. fill the spool with S3 unreachable, then drain it
write_core_config "$T/core.json" spool
python3 - "$T/core.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["backend"]["endpoints"]["s3"] = "http://127.0.0.1:9"
json.dump(c, open(sys.argv[1], "w"))
PYEOF
core_start
storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/in/*.dcm >/dev/null 2>&1 || die "storescu fill"
core_stop
depth=$(find "$T/spool/ready" -name '*.dcm' | wc -l)
[[ $depth == "$N" ]] || die "spool holds $depth entries, expected $N"
write_core_config "$T/core.json" spool  # the real endpoint (same spool)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
MOTO_PID=$(head -1 "$T/aws/pids")
m0=$(cpu "$MOTO_PID")
t0=$(now)
core_start
while [[ -n "$(find "$T/spool/ready" -name '*.dcm' -print -quit)" ]]; do sleep 0.05; done
t1=$(now)
m1=$(cpu "$MOTO_PID")
c1=$(cpu "$CORE_PID")
ours=$(echo "$N / ($t1 - $t0)" | bc -l)

t2=$(now)
aws --endpoint-url "$MOTO_ENDPOINT" s3 cp --recursive --quiet "$T/in" "s3://$BUCKET/awscli/" ||
    die "aws s3 cp"
t3=$(now)
m2=$(cpu "$MOTO_PID")
theirs=$(echo "$N / ($t3 - $t2)" | bc -l)
printf 'A. spool -> S3, %d objects (%.1f MB):\n' "$N" "$(echo "$bytes / 1000000" | bc -l)"
printf '   forwarder        %7.1f objects/s  (%.2f s, DynamoDB RECEIVED+STORED included)\n' \
    "$ours" "$(echo "$t1 - $t0" | bc -l)"
printf '   aws s3 cp -r     %7.1f objects/s  (%.2f s, awscli %s)\n' "$theirs" \
    "$(echo "$t3 - $t2" | bc -l)" "$(aws --version 2>&1 | cut -d' ' -f1)"
printf '   ratio forwarder/awscli: %.2f\n' "$(echo "$ours / $theirs" | bc -l)"
echo "   moto CPU: $(((m1 - m0)))/100 s during the drain (core $c1/100 s), $(((m2 - m1)))/100 s during aws s3 cp"

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
