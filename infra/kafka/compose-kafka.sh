#!/usr/bin/env bash
# The Kafka broker of docker-compose.yml, run in the apache/kafka image instead of its own entry point,
# which cannot create SCRAM users: those exist only if the storage is formatted with them (KRaft,
# KIP-900), and the broker's own inter-broker login is one of them.
#
# 1. server.properties from the KAFKA_* variables, named the image's way (kafka-env-properties.sh,
#    mounted beside this script);
# 2. the storage formatted once, with a SCRAM-SHA-512 user per /run/secrets/kafka-user-<name> file;
# 3. a client config as admin for the health check (0600, inside the container);
# 4. the broker, in the foreground.
#
# Secrets are read from files and never printed. Paths can be moved for a test run outside Docker
# (KAFKA_HOME, HOTHOT_SECRETS_DIR, HOTHOT_KAFKA_CONFIG_DIR).
set -euo pipefail

KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
secrets=${HOTHOT_SECRETS_DIR:-/run/secrets}
config_dir=${HOTHOT_KAFKA_CONFIG_DIR:-$KAFKA_HOME/config}
config=$config_dir/hothot-server.properties
: "${CLUSTER_ID:?CLUSTER_ID is not set}"
: "${KAFKA_LOG_DIRS:?KAFKA_LOG_DIRS is not set}"

# shellcheck source=kafka-env-properties.sh
. "$(dirname "${BASH_SOURCE[0]}")/kafka-env-properties.sh"
echo '# rendered by infra/kafka/compose-kafka.sh from the KAFKA_* environment variables' >"$config"
render_kafka_properties "$config"

scram=()
for file in "$secrets"/kafka-user-*; do
  [ -e "$file" ] || continue
  scram+=(--add-scram "SCRAM-SHA-512=[name=${file##*/kafka-user-},password=$(head -n 1 "$file")]")
done
if [ ${#scram[@]} -eq 0 ]; then
  echo "compose-kafka.sh: no $secrets/kafka-user-* files: run \`npx hothot lab compose-secrets\` first" >&2
  exit 1
fi

if [ ! -e "${KAFKA_LOG_DIRS%%,*}/meta.properties" ]; then
  echo '===> formatting the storage with its SCRAM users'
  "$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id "$CLUSTER_ID" --config "$config" --ignore-formatted "${scram[@]}"
fi

admin=$config_dir/hothot-admin.properties
umask 077
cat >"$admin" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(head -n 1 "$secrets/kafka-user-admin")";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka-ca
PROPERTIES
umask 022

echo '===> starting Kafka'
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$config"
