#!/bin/bash
# Stand-in for Kafka's kafka-broker-api-versions.sh as the compose healthcheck uses it: one ApiVersions
# request (v0) to the broker's own listener; healthy when a response with our correlation id comes back.
set -euo pipefail
port=9092
IFS=, read -ra listeners <<<"${KAFKA_LISTENERS:-}"
name=${KAFKA_ADVERTISED_LISTENERS%%://*}
for listener in "${listeners[@]}"; do [ "${listener%%://*}" = "$name" ] && port=${listener##*:}; done
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x07\x00\x02hc' >&3
reply=$(timeout 5 head -c 8 <&3 | od -An -tx1 | tr -d ' \n')
[ "${reply:8:8}" = "00000007" ]
