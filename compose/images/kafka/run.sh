#!/bin/bash
# Stand-in for the official apache/kafka image: Tansu (an Apache-Kafka-compatible broker) configured from the
# same KAFKA_* variables. The first advertised listener is the clients' one: Tansu listens on its port and
# advertises its address. CLUSTER_ID is read by Tansu itself.
set -euo pipefail
advertised=${KAFKA_ADVERTISED_LISTENERS%%,*}          # CLIENT://127.0.0.1:19092
name=${advertised%%://*}
address=${advertised#*://}
port=9092
IFS=, read -ra listeners <<<"${KAFKA_LISTENERS:-}"
for listener in "${listeners[@]}"; do
  [ "${listener%%://*}" = "$name" ] && port=${listener##*:}
done
exec tansu broker --listener-url "tcp://0.0.0.0:$port" --advertised-listener-url "tcp://$address" \
  --storage-engine memory://tansu/
