#!/usr/bin/env bash
# kafka-server-start.sh of the local Kafka image: the broker (kafka.Kafka) with the given properties
# file, a 1 GiB heap and G1 unless KAFKA_HEAP_OPTS / KAFKA_JVM_PERFORMANCE_OPTS say otherwise and the broker's log4j configuration (to
# stdout), as in the Kafka distribution.
if [ $# -lt 1 ]; then
  echo 'USAGE: kafka-server-start.sh server.properties [--override property=value]*' >&2
  exit 1
fi
home=${KAFKA_HOME:-/opt/kafka}
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}
export KAFKA_JVM_PERFORMANCE_OPTS=${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
export KAFKA_LOG4J_OPTS=${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:$home/config/log4j.properties}
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" kafka.Kafka "$@"
