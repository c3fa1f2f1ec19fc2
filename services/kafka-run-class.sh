#!/usr/bin/env bash
# Run a class from the Kafka jars that services/up.sh resolved, like Kafka's bin/kafka-run-class.sh:
#   services/kafka-run-class.sh org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#   services/kafka-run-class.sh org.apache.kafka.tools.ConsoleProducer --bootstrap-server 127.0.0.1:9092 --topic t
# Requires a prior `services/up.sh kafka` (which fills $SERVICES_STATE_DIR/kafka/libs).
set -Eeuo pipefail
# shellcheck source=services/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"
CURRENT_SERVICE=kafka
[[ $# -ge 1 ]] || die "usage: $0 CLASS [ARGS...]"
[[ -f $KAFKA_LIBS/.resolved ]] || die "no Kafka jars in $KAFKA_LIBS: run services/up.sh kafka first"
trap - ERR
exec java -Xmx256m -Dlog4j2.configurationFile="$SERVICES_DIR/kafka/log4j2-tools.xml" -cp "$KAFKA_LIBS/*" "$@"
