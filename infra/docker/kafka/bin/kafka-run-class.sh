#!/usr/bin/env bash
# kafka-run-class.sh of the local Kafka image: run a Kafka main class on /opt/kafka/libs with
# KAFKA_HEAP_OPTS (default -Xmx256M), KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS and a log4j configuration
# (KAFKA_LOG4J_OPTS; default the tools' one, warnings to stderr), like the distribution's script. The
# default JVM options suit short-lived tools (C1 only, serial GC: a faster start, which the compose
# kafka-setup service's dozen tool runs feel on 2 cores); kafka-server-start.sh sets the broker's own.
set -euo pipefail
home=${KAFKA_HOME:-/opt/kafka}
# shellcheck disable=SC2086 # the *_OPTS variables are lists of JVM options
exec java ${KAFKA_HEAP_OPTS:--Xmx256M} \
  ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true} \
  ${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:$home/config/tools-log4j.properties} \
  ${KAFKA_OPTS:-} -cp "$home/libs/*" "$@"
