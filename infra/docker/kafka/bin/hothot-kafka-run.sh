#!/usr/bin/env bash
# Default command of the local Kafka image, as the official image's entry point does it for a
# PLAINTEXT single node: the KAFKA_* variables rendered into a server.properties (kafka-env-properties.sh,
# copied beside this script from infra/kafka by build-images.sh), the storage formatted once
# with CLUSTER_ID, then the broker in the foreground. Without variables: one node listening on 9092.
set -euo pipefail
home=${KAFKA_HOME:-/opt/kafka}
config=$home/config/server.properties
if [ -z "${KAFKA_PROCESS_ROLES:-}" ]; then
  export KAFKA_NODE_ID=1 KAFKA_PROCESS_ROLES=broker,controller \
    KAFKA_LISTENERS=PLAINTEXT://:9092,CONTROLLER://:9093 \
    KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092 \
    KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093 \
    KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT \
    KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1 KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1 \
    KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1
fi
export KAFKA_LOG_DIRS=${KAFKA_LOG_DIRS:-/tmp/kraft-combined-logs}
# shellcheck source=../../../kafka/kafka-env-properties.sh
. "$(dirname "${BASH_SOURCE[0]}")/kafka-env-properties.sh"
: >"$config"
render_kafka_properties "$config"
if [ ! -e "${KAFKA_LOG_DIRS%%,*}/meta.properties" ]; then
  kafka-storage.sh format --cluster-id "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" --config "$config" --ignore-formatted
fi
exec kafka-server-start.sh "$config"
