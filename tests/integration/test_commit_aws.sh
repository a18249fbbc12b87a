#!/usr/bin/env bash
# Storage Commitment with the aws backend: moto (S3, DynamoDB, IAM enforcing the task role's
# least-privilege policy) and the HealthImaging emulator of tests/support (an emulator, not AWS),
# driven by dcmjs-dimse (tests/support/commit_scu.js) as the modality:
#  - all committed at the S3 point, and at HealthImaging (import jobs; then STOW-RS mode);
#  - an import failure (emulator fault injection): Event Type 2 with 0110H for that instance;
#  - S3 down: the transaction waits, no report (never a false success); kill -9 of the core
#    meanwhile, S3 back, restart: the transaction (kept in DynamoDB) is resumed and reported once,
#    all committed;
#  - the transaction items in DynamoDB (COMMIT#<uid> reported, COMMITQ index done).
set -euo pipefail
source "$(dirname "$0")/lib_forwarder.sh"
skip_unless_ready
SCU=(node "$GW_SRC/tests/support/commit_scu.js")
[[ -d $GW_SRC/tests/support/node/node_modules/dcmjs-dimse ]] ||
    die "dcmjs-dimse missing: tools/install-deps.sh --test installs tests/support/node"
aws_up
MOD_PORT=$(free_port)
"${SCU[@]}" listen --port "$MOD_PORT" --ae MODALITY --out "$T/reports.jsonl" >/dev/null 2>&1 &
LISTENER=$!
trap 'kill -KILL $LISTENER 2>/dev/null || true; fwd_cleanup' EXIT

# commit_config POINT [hi extra]: the aws core config plus clients, ae_peers, commit
commit_config() {
    write_core_config "$T/core.json" spool "${2:-}"
    python3 - "$T/core.json" "$1" "$MOD_PORT" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["clients"] = [{"calling_ae": ["MODALITY"], "services": ["store", "echo", "commit"]}]
c["ae_peers"] = {"MODALITY": {"host": "127.0.0.1", "port": int(sys.argv[3])}}
c["commit"] = {"point": sys.argv[2], "deadline_ms": 60000, "poll_initial_ms": 200,
               "poll_max_ms": 1000, "retry_initial_ms": 300, "retry_max_ms": 2000,
               "sweep_ms": 1000, "lease_ms": 10000, "report_timeout_ms": 4000}
json.dump(c, open(sys.argv[1], "w"))
EOF
}
refs() { # refs DIR: "class instance" lines from gen_objects' uids.txt
    awk '{print "1.2.840.10008.5.1.4.1.1.2", $2}' "$1/uids.txt" >"$1/refs.txt"
}
store() {
    storescu -aet MODALITY -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$1"/*.dcm >"$T/storescu.out" 2>&1 ||
        die "storescu: $(tail -n 20 "$T/storescu.out")"
}
uid() { echo "2.25.$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')$RANDOM"; }
action() { # action TUID REFS: N-ACTION on its own association (released at once)
    "${SCU[@]}" request --host 127.0.0.1 --port "$CORE_PORT" --calling MODALITY \
        --called DICOM_CORE --tuid "$1" --refs "$2" --linger 0 >"$T/rq.out" 2>&1
    grep '^{' "$T/rq.out" | jq -r 'select(.ev=="n_action_rsp") | .status' | grep -qx 0 ||
        die "N-ACTION not successful: $(cat "$T/rq.out")"
}
reports_for() { jq -c "select(.ev==\"report\" and .transaction_uid==\"$1\")" "$T/reports.jsonl"; }
wait_report() {
    for _ in $(seq $(($2 * 10))); do
        [[ -n $(reports_for "$1") ]] && return 0
        sleep 0.1
    done
    die "no report for $1 within $2 s"
}
expect() { # expect TUID JQ_SUMMARY WANT WHAT
    local got
    got=$(reports_for "$1" | jq -c "$2")
    [[ $got == "$3" ]] || die "$4: got $got"
    echo "ok: $4"
}

# ---- S3 point, then HealthImaging (import jobs) ---------------------------------------------------
commit_config s3
core_start
gen_objects "$T/a" 4 && refs "$T/a"
store "$T/a"
t1=$(uid)
action "$t1" "$T/a/refs.txt"
wait_report "$t1" 90
expect "$t1" '[.event_type, (.referenced|length)]' '[1,4]' "S3 point: all committed"
core_stop

commit_config healthimaging
core_start
gen_objects "$T/b" 5 && refs "$T/b"
FAILSOP=$(awk 'NR==2 {print $2}' "$T/b/uids.txt")
curl -sf -X POST "$HI_ENDPOINT/_emulator/fail" -d "{\"sop_uids\": [\"$FAILSOP\"]}" >/dev/null
store "$T/b"
t2=$(uid)
action "$t2" "$T/b/refs.txt"
wait_report "$t2" 150
expect "$t2" '[.event_type, (.referenced|length), .failed]' "[2,4,[[\"$FAILSOP\",272]]]" \
    "HealthImaging import: 4 committed, the failed import reported 0110H"
gen_objects "$T/c" 3 && refs "$T/c"
store "$T/c"
t3=$(uid)
action "$t3" "$T/c/refs.txt"
wait_report "$t3" 150
expect "$t3" '[.event_type, (.referenced|length)]' '[1,3]' "HealthImaging import: all committed"
core_stop

# ---- STOW-RS mode ----------------------------------------------------------------------------------
commit_config healthimaging ', "mode": "stow"'
core_start
gen_objects "$T/d" 3 && refs "$T/d"
store "$T/d"
t4=$(uid)
action "$t4" "$T/d/refs.txt"
wait_report "$t4" 90
expect "$t4" '[.event_type, (.referenced|length)]' '[1,3]' "HealthImaging STOW-RS: all committed"
core_stop

# ---- S3 down: waits, never a false success; kill -9; back up; restart ---------------------------
commit_config s3
DEAD=$(free_port) # nothing listens there
set_s3_endpoint "$T/core.json" "http://127.0.0.1:$DEAD"
core_start
gen_objects "$T/e" 3 && refs "$T/e"
store "$T/e" # ack spool: answered from the spool
t5=$(uid)
action "$t5" "$T/e/refs.txt"
sleep 4
[[ -z $(reports_for "$t5") ]] || die "a report came while S3 was down: $(reports_for "$t5")"
echo "ok: S3 down: no report (the transaction waits)"
core_kill9
set_s3_endpoint "$T/core.json" "$MOTO_ENDPOINT"
core_start
wait_report "$t5" 150
sleep 3
[[ $(reports_for "$t5" | wc -l) == 1 ]] || die "reported $(reports_for "$t5" | wc -l) times"
expect "$t5" '[.event_type, (.referenced|length)]' '[1,3]' \
    "kill -9 while S3 was down, restart: resumed from DynamoDB, reported once, all committed"
grep -q '"ev":"commit_resumed"' "$T/core.log" || die "no commit_resumed log line"

# ---- the items -------------------------------------------------------------------------------------
python3 - "$t1" "$t5" <<'EOF'
import os, sys, boto3
ddb = boto3.client("dynamodb", endpoint_url=os.environ["MOTO_ENDPOINT"],
                   region_name=os.environ["REGION"],
                   aws_access_key_id=os.environ["ADMIN_ACCESS_KEY_ID"],
                   aws_secret_access_key=os.environ["ADMIN_SECRET_ACCESS_KEY"])
t = os.environ["TABLE"]
for uid in sys.argv[1:]:
    it = ddb.get_item(TableName=t, Key={"pk": {"S": "COMMIT#" + uid}, "sk": {"S": "TXN"}},
                      ConsistentRead=True)["Item"]
    assert it["state"]["S"] == "reported", it
    assert "ttl" in it and "body" not in it, it
    q = ddb.get_item(TableName=t, Key={"pk": {"S": "COMMITQ"}, "sk": {"S": uid}},
                     ConsistentRead=True)["Item"]
    assert q.get("done", {}).get("BOOL") is True, q
print("ok: DynamoDB: transactions reported (ttl set, body dropped), index entries done")
EOF
core_stop
echo "test_commit_aws: all passed"
