#!/usr/bin/env bash
#
# herald-healthcheck PORT [PATH] — container health probe without curl: GET
# http://127.0.0.1:PORT/PATH (default /readyz) over bash's /dev/tcp; exit 0 on a 2xx.
# Installed as /usr/local/bin/herald-healthcheck by the Dockerfile and used by the
# healthchecks in docker-compose.yml.
set -euo pipefail

port=${1:?usage: herald-healthcheck PORT [PATH]}
path=${2:-/readyz}

exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS=' ' read -r -t 5 _ status _ <&3
[[ "$status" == 2?? ]]
