#!/usr/bin/env bash
# Sourced, not run: `render_kafka_properties <file>` writes the KAFKA_* environment variables as a
# server.properties, named the official apache/kafka image's way (KAFKA_ stripped, `___` → `-`,
# `__` → `_`, `_` → `.`, lower case; *_OPTS are JVM options, not properties). Bash only (the apache/kafka
# image is Alpine: busybox tools differ from GNU ones). Used by the compose broker
# (infra/kafka/compose-kafka.sh) and the local Kafka image's default command
# (infra/docker/kafka/bin/hothot-kafka-run.sh; build-images.sh copies this file beside it).
render_kafka_properties() {
  local name key
  for name in $(compgen -e); do
    case "$name" in
      KAFKA_*_OPTS | KAFKA_OPTS | KAFKA_HOME | KAFKA_VERSION | KAFKA_DEBUG) continue ;;
      KAFKA_*) ;;
      *) continue ;;
    esac
    key=${name#KAFKA_}
    key=${key//___/-}
    key=${key//__/@}
    key=${key//_/.}
    key=${key//@/_}
    printf '%s=%s\n' "${key,,}" "${!name}"
  done >>"$1"
}
