#!/usr/bin/env bash
# kafka-broker-api-versions.sh of the local Kafka image: kafka.admin.BrokerApiVersionsCommand, as in the Kafka distribution.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" kafka.admin.BrokerApiVersionsCommand "$@"
