#!/usr/bin/env bash
# The edge's pre-association budget (issue 14): connections that are not associations yet (TLS
# handshake and A-ASSOCIATE-RQ still to come) hold slots of a bounded budget of their own, each
# source address at most its share, so that idle connections from one place cannot take every
# connection slot from the modalities:
#  - 100 idle TCP connections from 127.0.0.2 (never a TLS byte): 8 held (preassoc_per_source),
#    the rest closed at accept (reason preassoc_per_source, metric reason="preassoc");
#  - meanwhile a modality (DCMTK echoscu +tls, from 127.0.0.1) is admitted and echoes, although
#    100 > max_connections (40): without the budget it would be refused;
#  - idle connections from four sources fill the whole budget (preassoc_max 24), never more;
#  - once they are gone, the budget is whole again (the modality stores a study).
set -uo pipefail
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${GW_BUILD:-$src/build}
T=$(mktemp -d /tmp/gw-edge-preassoc.XXXXXX)
# shellcheck source=../support/edge_lib.sh
source "$src/tests/support/edge_lib.sh"
trap edge_cleanup EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }
ok() { echo "ok: $*"; }

bash "$src/tests/support/test_pki.sh" "$T/pki" >/dev/null
CP=$(port)
EP=$(port)
HP=$(port)
start_core c1 "$CP" ', "proxy_protocol": { "trusted": ["127.0.0.1/32"] }'
cat >"$T/policy.json" <<JSON
{ "clients": [
    { "id": "ct-room-1", "match": { "subject_cn": "ct-room-1" },
      "calling_ae": ["CT_ROOM1"], "called_ae": ["DICOM_CORE"], "route": "core" } ],
  "routes": { "core": { "upstream": "127.0.0.1:$CP", "proxy_protocol": true } } }
JSON
write_edge_config "$EP" "$HP" ', "limits": { "max_connections": 40, "preassoc_max": 24,
  "preassoc_per_source": 8, "handshake_ms": 60000, "per_source_per_minute": 0 }'
start_edge "$EP"

# flood SOURCES COUNT_EACH: idle connections from each source address; writes how many are still
# open after 2 s to $T/held, then holds them until $T/stop exists (60 s at most)
flood() {
    rm -f "$T/held" "$T/stop"
    /usr/bin/python3 - "$EP" "$T" "$@" <<'PY' &
import socket, sys, time, os
port, d, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[4])
socks = []
for src in sys.argv[3].split(","):
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            s.close()
time.sleep(2)
held = 0
for s in socks:
    s.setblocking(False)
    try:
        held += 1 if s.recv(1) else 0  # bytes: still open (never expected: we sent nothing)
    except BlockingIOError:
        held += 1                       # nothing to read, not closed: held
    except OSError:
        pass                            # reset: closed by the edge
open(os.path.join(d, "held.tmp"), "w").write(str(held))
os.rename(os.path.join(d, "held.tmp"), os.path.join(d, "held"))
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists(os.path.join(d, "stop")):
    time.sleep(0.1)
for s in socks:
    s.close()
PY
    FLOOD=$!
    remember "$FLOOD"
    for _ in $(seq 300); do [[ -s $T/held ]] && break; sleep 0.1; done
}
unflood() { touch "$T/stop"; wait "$FLOOD" 2>/dev/null; }
metric() { curl -sf "http://127.0.0.1:$HP/metrics" | grep -F "$1" | awk '{print $2}'; }

# 1. one source floods: its share is held, the rest closed at accept; a modality gets in
flood 127.0.0.2 100
held=$(cat "$T/held" 2>/dev/null)
[[ $held == 8 ]] && ok "one source: 8 of 100 idle connections held (its share)" ||
    fail "one source: $held idle connections held, want 8"
if scu echoscu ct1 CT_ROOM1 DICOM_CORE "$EP" >"$T/echo1.out" 2>&1; then
    ok "a modality echoes while the flood is open"
else
    fail "echo during the flood: $(tail -3 "$T/echo1.out")"
fi
refused=$(metric 'dicom_edge_connections_refused_total{reason="preassoc"}')
[[ ${refused:-0} -ge 92 ]] && ok "metric: $refused connections refused for the budget" ||
    fail "metric reason=preassoc: ${refused:-none}, want >= 92"
grep -q '"ev":"conn_refused".*"reason":"preassoc_per_source"' "$T/edge.log" ||
    fail "no conn_refused log line with reason preassoc_per_source"
unflood

# 2. four sources: the whole budget (24) at the most
flood 127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6 8
held=$(cat "$T/held" 2>/dev/null)
[[ $held == 24 ]] && ok "four sources: 24 of 32 idle connections held (preassoc_max)" ||
    fail "four sources: $held held, want 24"
grep -q '"ev":"conn_refused".*"reason":"preassoc_max"' "$T/edge.log" ||
    fail "no conn_refused log line with reason preassoc_max"
unflood

# 3. the slots come back: the modality stores through the edge
for _ in $(seq 50); do
    [[ $(metric 'dicom_edge_connections_active') == 0 ]] && break
    sleep 0.1
done
make_dicom "$T/data" 2 32 32
if scu storescu ct1 CT_ROOM1 DICOM_CORE "$EP" +sd "$T/data" >"$T/store.out" 2>&1; then
    ok "after the floods a modality stores"
else
    fail "store after the floods: $(tail -3 "$T/store.out")"
fi
kill -TERM "$EDGE_PID" 2>/dev/null
wait "$EDGE_PID" 2>/dev/null
exit $rc
