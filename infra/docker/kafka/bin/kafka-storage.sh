#!/usr/bin/env bash
# kafka-storage.sh of the local Kafka image: kafka.tools.StorageTool, as in the Kafka distribution.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" kafka.tools.StorageTool "$@"
