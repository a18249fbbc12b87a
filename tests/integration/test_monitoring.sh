#!/usr/bin/env bash
# compose/monitoring/: the Prometheus alerting rules pass `promtool check rules` and their unit
# tests (`promtool test rules`); the scrape config passes `promtool check config`; the Grafana
# dashboard is well formed; the compose file with the profile "monitoring" is valid. Then the
# real programs: the gateway of tools/run-gateway.sh (edge + core, state in a temporary
# directory), a second core whose disk is "full" (A700), and a core on the aws backend after a
# forwarder run (the AWS test harness of lib_forwarder.sh: moto + the HealthImaging EMULATOR)
# get traffic (an admission, a refusal, failed TLS handshakes, stores, a refused store); a real
# Prometheus (Debian's) scrapes them and evaluates every rule (each must be healthy) and every
# dashboard query (each must evaluate); every metric name the rules and the dashboard use must
# be one those /metrics pages export, except the audit library's names, allow-listed below
# until it lands. The edge's certificate gauges must equal openssl's dates, also after a reload
# (a new CRL; a TLS route added, then dropped).
set -euo pipefail
export LC_ALL=C # sort and comm agree with Python's order
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
py=python3 # pyenv's (PyYAML)
tmp=$(mktemp -d)
source "$src/tests/support/deploy_lib.sh" # check, expect_fail, free_port
mon=$src/compose/monitoring
rules=$mon/prometheus/dicom-gateway.rules.yml
dash=$mon/grafana/dashboards/dicom-gateway.json

# Metric names the rules and the dashboard may use although no program exports them yet: the
# edge's audit metrics (issue 17, "Audit trail"; the core's are exported by the full core below,
# which has an audit trail). When the edge exports them, empty this list.
AUDIT_PENDING=(dicom_edge_audit_queue_messages dicom_edge_audit_queue_bytes
               dicom_edge_audit_messages_dropped_total dicom_edge_audit_messages_refused_total
               dicom_edge_audit_repository_up dicom_edge_audit_blocking)
# Series Prometheus makes itself (not scraped from our programs).
PROMETHEUS_OWN=(up ALERTS)

source "$src/tests/integration/lib_gateway.sh" # gw_start, gw_cleanup, started
trap gw_cleanup EXIT
command -v promtool >/dev/null || { echo "FAIL promtool missing (apt-get install prometheus; tools/deps/monitoring.txt)"; exit 1; }

# ---------------------------------------------------------------- static checks
check "promtool check config (prometheus.yml and its rule file)" promtool check config "$mon/prometheus/prometheus.yml"
check "promtool check rules" promtool check rules "$rules"
check "promtool test rules (compose/monitoring/rules.test.yml)" bash -c "cd '$mon' && promtool test rules rules.test.yml"
mkdir -p "$tmp/neg/prometheus"
sed 's/increase(dicom_edge_handshakes_total/increase(dicom_edge_handshakes_total{/' "$rules" >"$tmp/neg/broken.rules.yml"
expect_fail "a rule with broken PromQL is caught by promtool check rules" promtool check rules "$tmp/neg/broken.rules.yml"
cp "$rules" "$tmp/neg/prometheus/"
sed 's/summary: "dicom-edge edge:9111 dropped 7 audit messages"/summary: "dicom-edge edge:9111 dropped 8 audit messages"/' \
    "$mon/rules.test.yml" >"$tmp/neg/rules.test.yml"
expect_fail "a wrong expectation is caught by promtool test rules" bash -c "cd '$tmp/neg' && promtool test rules rules.test.yml"

dashboard_ok() {
    $py - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d.get("uid") and d.get("title"), "uid and title"
ds = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
assert ds and ds[0]["query"] == "prometheus", "a Prometheus data source variable"
cells = set()
n = 0
for p in d["panels"]:
    g = p["gridPos"]
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            assert (x, y) not in cells, "panel %r overlaps another" % p["title"]
            cells.add((x, y))
    assert g["x"] + g["w"] <= 24, "panel %r is wider than the grid" % p["title"]
    if p["type"] == "row":
        continue
    assert p.get("targets"), "panel %r has no query" % p["title"]
    for t in p["targets"]:
        assert t["expr"].strip(), "panel %r: empty query" % p["title"]
        assert t["datasource"]["uid"] == "${datasource}", "panel %r: data source not the variable" % p["title"]
        n += 1
print("%d panels, %d queries" % (len(d["panels"]), n))
PY
}
check "the Grafana dashboard is well formed (no overlaps, every query on the data source variable)" dashboard_ok "$dash"
compose=$src/compose/docker-compose.yml
check "docker-compose config with the profile monitoring" docker-compose -f "$compose" --profile monitoring config -q
docker-compose -f "$compose" --profile aws --profile monitoring config >"$tmp/compose.yml"
check "the monitoring services' mounts exist in the repository (deploy_checks.py compose)" \
    $py "$src/tests/support/deploy_checks.py" compose "$src" "$tmp/compose.yml"
check "Prometheus mounts prometheus.yml and the rules; Grafana the provisioning and the dashboard" $py - "$tmp/compose.yml" "$src" <<'PY'
import os, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))["services"]
def mounts(s):
    return {v.split(":")[1]: v.split(":")[0] for v in c[s]["volumes"] if isinstance(v, str)}
p, g = mounts("prometheus"), mounts("grafana")
assert os.path.isfile(os.path.join(p["/etc/prometheus"], "prometheus.yml"))
assert os.path.isfile(os.path.join(p["/etc/prometheus"], "dicom-gateway.rules.yml"))
assert "--config.file=/etc/prometheus/prometheus.yml" in c["prometheus"]["command"]
assert os.path.isfile(os.path.join(g["/etc/grafana/provisioning"], "dashboards", "dicom-gateway.yml"))
assert os.path.isfile(os.path.join(g["/etc/dicom-gateway/dashboards"], "dicom-gateway.json"))
for s in ("prometheus", "grafana"):
    for port in c[s]["ports"]:
        assert str(port.get("host_ip") if isinstance(port, dict) else port).startswith("127.0.0.1"), (s, port)
PY

# ---------------------------------------------------------------- the programs, with traffic
[[ -x $build/core/dicom-core && -x $build/edge/dicom-edge ]] || { echo "FAIL dicom-core or dicom-edge not built"; exit 1; }
pc=$(free_port) ph=$(free_port) pe=$(free_port) peh=$(free_port)
run_env=(GW_PREBUILT="$build" GW_STATE_DIR="$tmp/state" GW_CORE_DATA_DIR="$tmp/core"
         GW_CORE_LISTEN="127.0.0.1:$pc" GW_CORE_HTTP="127.0.0.1:$ph"
         GW_EDGE_LISTEN="127.0.0.1:$pe" GW_EDGE_HTTP="127.0.0.1:$peh")
gw_start gw
[[ -n $EDGE_PID ]] || { echo "FAIL tools/run-gateway.sh did not start"; tail -20 "$tmp/gw.err"; exit 1; }
edge_pid=$EDGE_PID
read -ra scu <<<"$LINE"
unset 'scu[-1]' # test.dcm

# a core whose disk is "full": every C-STORE is refused with A700; it has an audit trail whose
# repository is away (nothing listens there), so that its dicom_core_audit_* metrics are scraped
pf=$(free_port) pfh=$(free_port) pa=$(free_port)
openssl rand -hex 32 >"$tmp/audit-site.key" && chmod 600 "$tmp/audit-site.key"
cat >"$tmp/core-full.json" <<EOF
{ "listen": "127.0.0.1:$pf", "http_listen": "127.0.0.1:$pfh", "spool_dir": "$tmp/full/spool",
  "min_free_bytes": 9000000000000000000, "backend": { "type": "file", "dir": "$tmp/full/store" },
  "audit": { "repositories": [ { "host": "127.0.0.1", "port": $pa,
                                 "ca": "$tmp/state/pki/trust/infra-ca-chain.pem" } ],
             "queue_dir": "$tmp/full/audit", "hash_key_file": "$tmp/audit-site.key" } }
EOF
"$build/core/dicom-core" --config "$tmp/core-full.json" 2>"$tmp/core-full.log" &
started+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$pfh/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# ---------------------------------------------------------------- a real Prometheus
pp=$(free_port)
cat >"$tmp/prometheus.yml" <<EOF
global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: ["$rules"]
scrape_configs:
  - job_name: dicom-edge
    static_configs: [{ targets: ["127.0.0.1:$peh"] }]
  - job_name: dicom-core
    static_configs: [{ targets: ["127.0.0.1:$ph", "127.0.0.1:$pfh"] }]
EOF
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
    --web.listen-address="127.0.0.1:$pp" >"$tmp/prometheus.log" 2>&1 &
started+=($!)
api() { curl -fs --get "http://127.0.0.1:$pp/api/v1/$1" "${@:2}"; }
for _ in $(seq 300); do # three targets up, a few scrapes (rates need two samples) and rule rounds
    n=$(api query --data-urlencode 'query=count(count_over_time(up[1m]) >= 5)' 2>/dev/null |
        jq -r '.data.result[0].value[1] // 0' 2>/dev/null || echo 0)
    [[ $n == 3 ]] && break
    sleep 0.2
done
check "Prometheus scrapes the edge and both cores" test "$(api query --data-urlencode 'query=sum(up)' | jq -r '.data.result[0].value[1]')" = 3

/usr/bin/python3 "$src/tests/support/gen_data.py" --out "$tmp/study" --count 4 --modality CT --rows 64 --cols 64 >/dev/null
export TCP_NODELAY=1
check "traffic: a study through the edge" "${scu[@]}" +sd "$tmp/study"
expect_fail "traffic: a refused calling AE title" "${scu[@]/DEMO_MODALITY/NOT_BOUND}" +sd "$tmp/study"
openssl s_client -connect "127.0.0.1:$pe" </dev/null >/dev/null 2>&1 || true # no client certificate
expect_fail "traffic: plain DICOM to the TLS port" echoscu -to 5 -aet PLAIN -aec DICOM_CORE 127.0.0.1 "$pe"
full_store() { storescu -v -aet FULL -aec DICOM_CORE 127.0.0.1 "$pf" "$tmp/study/CT_00000.dcm" >>"$tmp/full.out" 2>&1 || true; }
full_store
check "traffic: the full core answers A700 (Refused: OutOfResources)" grep -q 'OutOfResources' "$tmp/full.out"
check "the edge counted failed handshakes (no_certificate and plain DICOM)" test \
    "$(curl -fs "http://127.0.0.1:$peh/metrics" | grep -c '^dicom_edge_handshakes_total{result="failed"')" -ge 2
echoscu -aet ECHO -aec DICOM_CORE 127.0.0.1 "$pc" >/dev/null 2>&1 || true

# the edge's certificate gauges are openssl's dates, also after a new CRL and a reload
metric() { curl -fs "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {v = $2} END {print v + 0}'; }
epoch() { date -d "$1" +%s; }
pki=$tmp/state/pki
check "dicom_edge_cert_not_after_seconds{cert=\"server\"} is the server certificate's notAfter" test \
    "$(metric "$peh" 'dicom_edge_cert_not_after_seconds{cert="server"}')" = \
    "$(epoch "$(openssl x509 -in "$pki/servers/edge/cert.pem" -noout -enddate | cut -d= -f2)")"
awk -v d="$tmp/ca" '/BEGIN CERT/ {n++} n {print > (d n ".pem")}' "$pki/trust/modality-ca-chain.pem"
ca_min=$(for f in "$tmp"/ca[0-9]*.pem; do epoch "$(openssl x509 -in "$f" -noout -enddate | cut -d= -f2)"; done | sort -n | head -1)
check "dicom_edge_cert_not_after_seconds{cert=\"client_ca\"} is the bundle's earliest notAfter" test \
    "$(metric "$peh" 'dicom_edge_cert_not_after_seconds{cert="client_ca"}')" = "$ca_min"
check "the plain route has no client certificate (0)" test \
    "$(metric "$peh" 'dicom_edge_cert_not_after_seconds{cert="route_client",route="core"}')" = 0
crl_next() { # the earliest nextUpdate of the CRLs in the edge's file (the modality CA's and the root's)
    local i n
    n=$(grep -c 'BEGIN X509 CRL' "$pki/crl/modality.crl.pem")
    for i in $(seq "$n"); do
        awk -v n="$i" '/BEGIN X509 CRL/ {c++} c == n' "$pki/crl/modality.crl.pem" |
            openssl crl -noout -nextupdate | cut -d= -f2 | { read -r d; epoch "$d"; }
    done | sort -n | head -1
}
check "dicom_edge_crl_next_update_seconds is the CRL's nextUpdate" test \
    "$(metric "$peh" dicom_edge_crl_next_update_seconds)" = "$(crl_next)"
before=$(crl_next)
sleep 1.1 # a new CRL with a later nextUpdate
PKI_DIR=$pki "$src/certs/pki" crl >/dev/null 2>&1
kill -HUP "$edge_pid"
for _ in $(seq 50); do [[ $(metric "$peh" dicom_edge_crl_next_update_seconds) == "$(crl_next)" ]] && break; sleep 0.1; done
check "after a new CRL and SIGHUP the gauge follows it" test \
    "$(metric "$peh" dicom_edge_crl_next_update_seconds)" = "$(crl_next)" -a "$(crl_next)" -gt "$before"

# a route over TLS gets its client certificate's gauge; a reload that drops the route sets it to 0
PKI_DIR=$pki "$src/certs/pki" edge-client --name edge >/dev/null 2>&1
jq --arg d "$pki" '.routes.vpc = { upstream: "127.0.0.1:9", tls: { cert: ($d + "/edge-clients/edge/chain.pem"),
    key: ($d + "/edge-clients/edge/key.pem"), ca: ($d + "/trust/infra-ca-chain.pem") } }' \
    "$tmp/state/policy.json" >"$tmp/policy.json" && cp "$tmp/policy.json" "$tmp/state/policy.json"
kill -HUP "$edge_pid"
vpc_gauge() { metric "$peh" 'dicom_edge_cert_not_after_seconds{cert="route_client",route="vpc"}'; }
vpc_cert=$(epoch "$(openssl x509 -in "$pki/edge-clients/edge/cert.pem" -noout -enddate | cut -d= -f2)")
for _ in $(seq 50); do [[ $(vpc_gauge) == "$vpc_cert" ]] && break; sleep 0.1; done
check "a TLS route's client certificate: its notAfter after the reload" test "$(vpc_gauge)" = "$vpc_cert"
jq 'del(.routes.vpc)' "$tmp/state/policy.json" >"$tmp/policy.json" && cp "$tmp/policy.json" "$tmp/state/policy.json"
kill -HUP "$edge_pid"
for _ in $(seq 50); do [[ $(vpc_gauge) == 0 ]] && break; sleep 0.1; done
check "... and 0 once a reload dropped the route" test "$(vpc_gauge)" = 0

for p in "$peh" "$ph" "$pfh"; do curl -fs "http://127.0.0.1:$p/metrics" >>"$tmp/scraped.txt"; done

# a forwarder run on the AWS test harness (moto + the HealthImaging EMULATOR), its /metrics kept
fwd_names=""
aws_built=1
"$build/core/dicom-core" status --config /dev/null 2>&1 | grep -q "not built" && aws_built=0
if [[ -f $src/tests/support/aws_env.py && $aws_built == 1 ]]; then
    fwd_run() { # the harness in a child shell (it has its own trap and scratch directory)
        GW_BUILD=$build GW_SRC=$src OUT=$tmp/fwd-metrics.txt bash -c '
            source "$GW_SRC/tests/integration/lib_forwarder.sh"
            aws_up --job-delay 0.2
            write_core_config "$T/core.json" s3
            core_start
            gen_objects "$T/in" 3
            TCP_NODELAY=1 storescu -aec DICOM_CORE 127.0.0.1 "$CORE_PORT" "$T"/in/*.dcm >"$T/scu.log" 2>&1 ||
                die "storescu to the aws core"
            for _ in $(seq 600); do
                curl -fs "http://127.0.0.1:$HTTP_PORT/metrics" >"$OUT.tmp" || true
                grep -q "^dicom_core_forwarder_objects_total{stage=\"imported\"} 3$" "$OUT.tmp" && break
                sleep 0.1
            done
            mv "$OUT.tmp" "$OUT"
            core_stop' >"$tmp/fwd.log" 2>&1 || true
    }
    # a second try when the first lost a port race: lib_forwarder picks free ports, then binds
    # them, and on a busy machine another program can take one in between
    fwd_run
    if [[ ! -f $tmp/fwd-metrics.txt ]] && grep -q 'Address already in use' "$tmp/fwd.log"; then
        echo "note: the forwarder run lost a port race; once more"
        fwd_run
    fi
    check "a forwarder run on the AWS harness imported 3 objects (its /metrics)" \
        grep -q '^dicom_core_forwarder_objects_total{stage="imported"} 3$' "$tmp/fwd-metrics.txt"
    [[ -f $tmp/fwd-metrics.txt ]] || tail -20 "$tmp/fwd.log"
    cat "$tmp/fwd-metrics.txt" >>"$tmp/scraped.txt" 2>/dev/null || true
else
    # no harness on this branch: the forwarder's names from its registrations in the C sources
    fwd_names=$($py - "$src/forwarder" <<'PY'
import glob, re, sys
names = set()
for f in glob.glob(sys.argv[1] + "/*.c"):
    names |= set(re.findall(r'metrics_(?:counter|gauge)(?:_get)?\(\s*\w+\s*,\s*"([a-z_:][a-z0-9_:]*)"', open(f).read()))
print(" ".join(sorted(names)))
PY
)
    echo "note: no AWS test harness here: the forwarder's metric names come from forwarder/*.c registrations"
fi

# a counter series appears with its first event, and increase() counts from the second: a second
# refused store, scraped, makes DicomCoreStoresRefused fire (it has no "for")
full_store
for _ in $(seq 100); do
    api alerts | jq -e '[.data.alerts[] | select(.labels.alertname == "DicomCoreStoresRefused" and .state == "firing")] | length > 0' >/dev/null 2>&1 && break
    sleep 0.2
done
api rules >"$tmp/rules.json"
check "every rule evaluates without error against the real programs" jq -e \
    '[.data.groups[].rules[]] | length > 20 and all(.health == "ok" and .lastEvaluation != "0001-01-01T00:00:00Z")' "$tmp/rules.json"
jq -r '.data.groups[].rules[] | select(.health != "ok") | "    \(.name): \(.lastError)"' "$tmp/rules.json"
check "the full core's A700 makes DicomCoreStoresRefused fire" jq -e \
    '[.data.groups[].rules[] | select(.name == "DicomCoreStoresRefused") | .alerts[] | select(.state == "firing" and .labels.status == "A700")] | length == 1' "$tmp/rules.json"

queries() { # dashboard queries, Grafana's variables replaced as Grafana would
    $py - "$dash" <<'PY'
import json, sys
for p in json.load(open(sys.argv[1]))["panels"]:
    for t in p.get("targets", []):
        print(t["expr"].replace("$__rate_interval", "1m").replace("$__interval", "15s"))
PY
}
bad=0
while IFS= read -r q; do
    r=$(api query --data-urlencode "query=$q" | jq -r .status 2>/dev/null || echo error)
    [[ $r == success ]] || { echo "    query fails: $q"; bad=1; }
done < <(queries)
check "every dashboard query evaluates on Prometheus" test $bad = 0
series() { # query jq-filter: the query's result passes the filter
    api query --data-urlencode "query=$1" | jq -e ".data.result | $2" >/dev/null
}
check "dashboard data: refusals by reason include calling_ae_not_allowed" series \
    'sum by (reason) (increase(dicom_edge_associations_total{decision!="admit"}[1m]))' \
    'any(.metric.reason == "calling_ae_not_allowed")'
check "dashboard data: handshake failures by reason include no_certificate" series \
    'sum by (reason) (rate(dicom_edge_handshakes_total{result="failed"}[1m]))' 'any(.metric.reason == "no_certificate")'
check "dashboard data: certificates' time left (server, client CA), each over 300 days" series \
    '(dicom_edge_cert_not_after_seconds > 0) - time()' 'length == 2 and all(.value[1] | tonumber > 300 * 86400)'
check "dashboard data: objects stored per second over the gateway's 4" series \
    'sum(increase(dicom_core_objects_stored_total[5m]))' '.[0].value[1] | tonumber > 3'

# ---------------------------------------------------------------- every name is exported
promql_names() { # FILE...: metric names in the rules' and the dashboard's queries
    $py - "$@" <<'PY'
import json, re, sys, yaml
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}
def names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                                            # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                                           # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    out = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if m.start() and (e[m.start() - 1].isdigit() or e[m.start() - 1] in "._$"):
            continue  # 1e3, 30m, $__var
        if e[m.end():].lstrip().startswith("(") or m.group(0) in KEYWORDS:
            continue  # a function or an aggregation
        out.add(m.group(0))
    return out
used = set()
for f in sys.argv[1:]:
    if f.endswith(".json"):
        for p in json.load(open(f))["panels"]:
            for t in p.get("targets", []):
                used |= names(t["expr"])
    else:
        for g in yaml.safe_load(open(f))["groups"]:
            for r in g["rules"]:
                used |= names(r["expr"])
print("\n".join(sorted(used)))
PY
}
exported() { # names in /metrics pages (TYPE lines and samples)
    sed -n 's/^# TYPE \([^ ]*\) .*/\1/p; /^[a-zA-Z_]/s/^\([a-zA-Z_:][a-zA-Z0-9_:]*\).*/\1/p' "$@" | sort -u
}
{ exported "$tmp/scraped.txt"; printf '%s\n' $fwd_names "${PROMETHEUS_OWN[@]}"; } | sort -u >"$tmp/known.txt"
unknown_names() { # FILE...: names used there that no program exports, allow-list aside
    promql_names "$@" | comm -23 - "$tmp/known.txt" | grep -vxF -f <(printf '%s\n' "${AUDIT_PENDING[@]}") || true
}
all_known() {
    local m
    m=$(unknown_names "$@")
    [[ -z $m ]] || { printf 'not exported: %s\n' $m; return 1; }
}
promql_names "$rules" "$dash" >"$tmp/used.txt"
echo "    names used: $(wc -l <"$tmp/used.txt"); exported by the programs: $(exported "$tmp/scraped.txt" | wc -l)$([[ -z $fwd_names ]] || echo ' (+ the forwarder'"'"'s from its sources)'); allow-listed (audit library): ${#AUDIT_PENDING[@]}"
check "every metric name in the rules and the dashboard is exported (or allow-listed)" all_known "$rules" "$dash"
check "the scan sees the names (spot check: handshakes, spool, forwarder, certificates)" bash -c \
    "grep -qx dicom_edge_handshakes_total '$tmp/used.txt' && grep -qx dicom_core_spool_depth '$tmp/used.txt' &&
     grep -qx dicom_core_forwarder_errors_total '$tmp/used.txt' && grep -qx dicom_edge_crl_next_update_seconds '$tmp/used.txt'"
pending_exported=$(printf '%s\n' "${AUDIT_PENDING[@]}" | grep -xF -f "$tmp/known.txt" || true)
[[ -z $pending_exported ]] || echo "    note: exported now, take them off AUDIT_PENDING: $pending_exported"
jq '.panels[1].targets[0].expr = "count(dicom_edge_handshakes_totl)"' "$dash" >"$tmp/neg-dash.json"
expect_fail "a misspelt name in a copy of the dashboard is caught" all_known "$tmp/neg-dash.json"

exit $failed
