#!/bin/bash
# gw-healthcheck PORT [HOST]: exit 0 when GET http://HOST:PORT/healthz answers 200, else 1.
# The images' HEALTHCHECK and the ECS task's health check; plain bash (/dev/tcp) so the runtime
# image needs no curl.
port=${1:?usage: gw-healthcheck PORT [HOST]}
host=${2:-127.0.0.1}
exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || { echo "healthz: cannot connect to $host:$port"; exit 1; }
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
status=
IFS= read -r -t 4 status <&3 || true
exec 3<&-
case $status in
"HTTP/1."[01]" 200"*) exit 0 ;;
*) echo "healthz: ${status:-no answer}"; exit 1 ;;
esac
