#!/usr/bin/env bash
# kafka-topics.sh of the local Kafka image: org.apache.kafka.tools.TopicCommand, as in the Kafka distribution.
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" org.apache.kafka.tools.TopicCommand "$@"
