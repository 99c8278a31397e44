#!/usr/bin/env bash
# kafka-acls.sh of the local Kafka image: kafka.admin.AclCommand, as in the Kafka distribution.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" kafka.admin.AclCommand "$@"
