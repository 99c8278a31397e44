#!/usr/bin/env bash
# One-shot `kafka-setup` service of docker-compose.yml: as admin, create each region's change topic and
# the ACLs of infra/kafka/compose-acls.txt (one `<principal> <topic|group> <name> <Op,Op,…>` per line,
# generated from infra/lab/kafkaAcls.ts and checked by test/unit/dockerCompose.config.test.ts). A
# topic the principal may WRITE is that region's own: it is created here (if missing), so no region
# ever needs to create a peer's. Idempotent: run it again and nothing changes.
set -euo pipefail

KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
secrets=${HOTHOT_SECRETS_DIR:-/run/secrets}
acls=${HOTHOT_ACLS_FILE:-/hothot/compose-acls.txt}
bootstrap=${KAFKA_BOOTSTRAP:?KAFKA_BOOTSTRAP is not set}
partitions=${KAFKA_TOPIC_PARTITIONS:-3}

props=$(mktemp)
trap 'rm -f "$props"' EXIT
chmod 600 "$props"
cat >"$props" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(head -n 1 "$secrets/kafka-admin-password")";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka-ca
PROPERTIES

while read -r principal kind name ops; do
  if [ -z "$principal" ] || [ "${principal:0:1}" = '#' ]; then continue; fi
  operations=()
  IFS=',' read -ra list <<<"$ops"
  for op in "${list[@]}"; do operations+=(--operation "$op"); done
  if [ "$kind" = topic ] && [[ ",$ops," == *,Write,* ]]; then
    "$KAFKA_HOME/bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --command-config "$props" \
      --create --if-not-exists --topic "$name" --partitions "$partitions"
  fi
  "$KAFKA_HOME/bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config "$props" \
    --add --allow-principal "$principal" "--$kind" "$name" --resource-pattern-type literal "${operations[@]}"
done <"$acls"
echo "===> topics and ACLs in place"
