# A real audit repository for the tests (sourced, not run): Debian's rsyslogd with
# rsyslog-gnutls, on loopback, receiving RFC 5425 syslog over mutual TLS and RFC 5426 syslog over
# UDP, writing each message it receives (the raw syslog message, one per line: our XML has no
# newline) to a file. Never touches the system's rsyslog: its own configuration, work directory
# and PID file, only the ports it is given.
#
#   rsyslog_start NAME DIR CA CERT KEY [TCP_PORT [UDP_PORT]]
#       start collector NAME; ports default to free ones. Sets RSYSLOG_TCP_<NAME>,
#       RSYSLOG_UDP_<NAME>, RSYSLOG_PID_<NAME>. Messages: DIR/tls.log (TLS), DIR/udp.log (UDP).
#       Clients must present a certificate that CA signed (x509/certvalid).
#   rsyslog_stop NAME      SIGTERM, wait for it to exit (the ports close)
#   rsyslog_restart NAME   start it again on the same ports, appending to the same files
#   rsyslog_cleanup        stop every collector this file started
#   rsyslog_lines FILE     messages received in FILE so far (0 before the first)
#   rsyslog_wait_lines FILE N [TENTHS]   until FILE holds N messages (default 10 s); 1 if not
#
# Processes are recorded through `remember PID` when the caller defines it (edge_lib.sh does),
# and in RSYSLOG_ALL_PIDS; only those are ever signalled.

RSYSLOG_ALL_PIDS=${RSYSLOG_ALL_PIDS:-}

rsyslog_free_port() { # tcp|udp
    /usr/bin/python3 -c 'import socket,sys
t=socket.SOCK_STREAM if sys.argv[1]=="tcp" else socket.SOCK_DGRAM
s=socket.socket(socket.AF_INET,t);s.bind(("127.0.0.1",0));print(s.getsockname()[1])' "$1"
}

rsyslog_wait_listen() { # proto port: until ss lists the socket
    local flag=-ltn
    [[ $1 == udp ]] && flag=-lun
    for _ in $(seq 200); do
        ss -H "$flag" "sport = :$2" 2>/dev/null | grep -q . && return 0
        sleep 0.05
    done
    echo "rsyslog: nothing listens on $1 $2" >&2
    return 1
}

_rsyslog_launch() { # name
    local name=$1 dir
    dir=$(eval echo "\$RSYSLOG_DIR_$name")
    rm -f "$dir/rsyslogd.pid"
    /usr/sbin/rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" \
        >>"$dir/rsyslogd.out" 2>&1 &
    local pid=$!
    disown "$pid" # stopped by PID below; no job-control noise when it is signalled
    eval "RSYSLOG_PID_$name=$pid"
    RSYSLOG_ALL_PIDS="$RSYSLOG_ALL_PIDS $pid"
    if declare -F remember >/dev/null; then remember "$pid"; fi
    rsyslog_wait_listen tcp "$(eval echo "\$RSYSLOG_TCP_$name")" &&
        rsyslog_wait_listen udp "$(eval echo "\$RSYSLOG_UDP_$name")"
}

rsyslog_start() { # NAME DIR CA CERT KEY [TCP_PORT [UDP_PORT]]
    local name=$1 dir=$2 ca cert key
    ca=$(realpath "$3") cert=$(realpath "$4") key=$(realpath "$5")
    local tp=${6:-$(rsyslog_free_port tcp)} up=${7:-$(rsyslog_free_port udp)}
    mkdir -p "$dir/work"
    dir=$(cd "$dir" && pwd)
    eval "RSYSLOG_DIR_$name=$dir RSYSLOG_TCP_$name=$tp RSYSLOG_UDP_$name=$up"
    cat >"$dir/rsyslog.conf" <<CONF
global(workDirectory="$dir/work"
       maxMessageSize="128k"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="$ca"
       defaultNetstreamDriverCertFile="$cert"
       defaultNetstreamDriverKeyFile="$key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"
       streamDriver.authMode="x509/certvalid")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="$tp" ruleset="tls")
input(type="imudp" address="127.0.0.1" port="$up" ruleset="udp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="tls") {
    action(type="omfile" file="$dir/tls.log" template="raw" flushOnTXEnd="on")
}
ruleset(name="udp") {
    action(type="omfile" file="$dir/udp.log" template="raw" flushOnTXEnd="on")
}
CONF
    /usr/sbin/rsyslogd -N1 -f "$dir/rsyslog.conf" >"$dir/check.out" 2>&1 || {
        echo "rsyslog: configuration refused:" >&2
        cat "$dir/check.out" >&2
        return 1
    }
    _rsyslog_launch "$name"
}

rsyslog_stop() { # NAME
    local pid
    pid=$(eval echo "\${RSYSLOG_PID_$1:-}")
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    eval "RSYSLOG_PID_$1="
}

rsyslog_restart() { # NAME
    rsyslog_stop "$1"
    _rsyslog_launch "$1"
}

rsyslog_cleanup() {
    local p
    for p in $RSYSLOG_ALL_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in $RSYSLOG_ALL_PIDS; do kill -KILL "$p" 2>/dev/null || true; done
}

rsyslog_lines() { # FILE
    if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi
}

rsyslog_wait_lines() { # FILE N [TENTHS]
    for _ in $(seq "${3:-100}"); do
        (($(rsyslog_lines "$1") >= $2)) && return 0
        sleep 0.1
    done
    return 1
}
