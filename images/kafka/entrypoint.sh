#!/bin/bash
# Write the broker's configuration from the environment, format the log directory on first start, and
# run the broker in the foreground. Everything written goes to $KAFKA_DATA_DIR (a volume) and /tmp.
#   KAFKA_CLUSTER_ID             KRaft cluster id (22 characters of base64; fixed per installation)
#   KAFKA_ADVERTISED_HOST        the name clients use (the StatefulSet pod's DNS name)
#   KAFKA_ADVERTISED_PORT        the port clients use (9092; another when the port is mapped)
#   KAFKA_DATA_DIR, KAFKA_HEAP_OPTS
set -euo pipefail
: "${KAFKA_CLUSTER_ID:?KAFKA_CLUSTER_ID is not set}"
: "${KAFKA_ADVERTISED_HOST:=127.0.0.1}"
: "${KAFKA_ADVERTISED_PORT:=9092}"
config=/tmp/server.properties
cat >"$config" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://${KAFKA_ADVERTISED_HOST}:${KAFKA_ADVERTISED_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${KAFKA_DATA_DIR}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=8388608
PROPERTIES
classpath="/opt/kafka/libs/*"
java_options=(-cp "$classpath" -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties)
if [ ! -f "$KAFKA_DATA_DIR/meta.properties" ]; then
    # shellcheck disable=SC2086 - KAFKA_HEAP_OPTS holds several options
    java $KAFKA_HEAP_OPTS "${java_options[@]}" kafka.tools.StorageTool format \
        --cluster-id "$KAFKA_CLUSTER_ID" --config "$config" --ignore-formatted
fi
# shellcheck disable=SC2086
exec java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError "${java_options[@]}" kafka.Kafka "$config"
