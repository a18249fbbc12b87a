#!/bin/sh
# gw-entrypoint PROGRAM [ARGS...]: the images' entry point. Optional inputs, for platforms that
# pass configuration through the environment (the ECS task definition of cloudformation/):
#   GW_ENV_FILE=FILE     source FILE (KEY=VALUE lines) first, e.g. credentials that a compose
#                        init service wrote; waits up to 60 s for it to appear
#   GW_CONFIG_JSON=JSON  write it to $GW_RUN_DIR/config.json and add "--config" with that path
#   GW_TLS_CERT_PEM, GW_TLS_KEY_PEM, GW_TLS_CLIENT_CA_PEM, GW_TLS_CRL_PEM
#                        write each PEM to $GW_RUN_DIR/tls/{cert,key,client_ca,crl}.pem (0600)
#                        and remove it from the environment before PROGRAM starts
# GW_RUN_DIR defaults to /run/gw. Then it execs PROGRAM, so signals (SIGHUP reload, SIGTERM
# drain) reach it directly.
set -eu
run=${GW_RUN_DIR:-/run/gw}
umask 077

if [ -n "${GW_ENV_FILE:-}" ]; then
    i=0
    while [ ! -s "$GW_ENV_FILE" ]; do
        i=$((i + 1))
        if [ "$i" -gt 60 ]; then echo "gw-entrypoint: $GW_ENV_FILE did not appear" >&2; exit 1; fi
        sleep 1
    done
    set -a
    # shellcheck disable=SC1090
    . "$GW_ENV_FILE"
    set +a
fi

if [ -n "${GW_TLS_CERT_PEM:-}${GW_TLS_KEY_PEM:-}${GW_TLS_CLIENT_CA_PEM:-}${GW_TLS_CRL_PEM:-}" ]; then
    mkdir -p "$run/tls"
    for pair in CERT:cert KEY:key CLIENT_CA:client_ca CRL:crl; do
        var=GW_TLS_${pair%%:*}_PEM
        eval "val=\${$var:-}"
        if [ -n "$val" ]; then
            printf '%s\n' "$val" >"$run/tls/${pair#*:}.pem"
            chmod 600 "$run/tls/${pair#*:}.pem"
        fi
        unset "$var"
    done
    val=
fi

if [ -n "${GW_CONFIG_JSON:-}" ]; then
    mkdir -p "$run"
    printf '%s\n' "$GW_CONFIG_JSON" >"$run/config.json"
    unset GW_CONFIG_JSON
    prog=$1
    shift
    # the file's path replaces a --config given in CMD
    for a in "$@"; do
        shift
        if [ "$a" = "--config" ]; then skip=1; continue; fi
        if [ "${skip:-0}" = 1 ]; then skip=0; continue; fi
        set -- "$@" "$a"
    done
    set -- "$prog" --config "$run/config.json" "$@"
fi

exec "$@"
