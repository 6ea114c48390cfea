#!/bin/bash
# Start one compose Kafka node (apache/kafka image) with the project's broker configuration:
# server.properties.in (generated from infra/kafka_local.py, the configuration the local 3-node cluster runs
# in the tests) with this node's id, host name and external port, and the brokers' own password.
# At the first start the log dir is formatted with the SCRAM-SHA-512 users of the services; universities are
# added later with `python -m infra users add <code>` (docs/security.md).
set -euo pipefail
KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"  # the apache/kafka image's; tests/integration/test_compose_broker.py moves these
TEMPLATE="${TEMPLATE:-/opt/alliance/server.properties.in}"
WORK_DIR="${WORK_DIR:-/tmp}"
DATA_DIR="${DATA_DIR:-/var/lib/kafka/data}"
TLS_DIR="${TLS_DIR:-/opt/alliance/tls}"  # ca.pem and server.pem from `python -m infra tls` (docs/operations.md)

for var in NODE_ID CLUSTER_ID EXTERNAL_PORT KAFKA_BROKER_PASSWORD KAFKA_ADMIN_PASSWORD KAFKA_STREAMS_PASSWORD \
           KAFKA_PROJECTOR_PASSWORD KAFKA_OPS_PASSWORD KAFKA_PORTAL_PASSWORD; do
  if [ -z "${!var:-}" ]; then
    echo "broker.sh: $var is not set (docker-compose.yml, docs/security.md)" >&2
    exit 2
  fi
done
for var in KAFKA_BROKER_PASSWORD KAFKA_ADMIN_PASSWORD KAFKA_STREAMS_PASSWORD KAFKA_PROJECTOR_PASSWORD \
           KAFKA_OPS_PASSWORD KAFKA_PORTAL_PASSWORD; do
  if ! [[ "${!var}" =~ ^[A-Za-z0-9_-]{16,}$ ]]; then
    echo "broker.sh: $var must be at least 16 characters of A-Z a-z 0-9 _ - (python -c 'import secrets; print(secrets.token_urlsafe(24))')" >&2
    exit 2
  fi
done

for file in "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem"; do
  if [ ! -r "$file" ]; then
    echo "broker.sh: $file is missing or unreadable: make the listeners' certificates with" \
         "'python -m infra tls --out infra/kafka/compose/tls'" \
         "and make server.pem readable by the container's user (uid 1000) (docs/operations.md)" >&2
    exit 2
  fi
done

config="$WORK_DIR/server.properties"
umask 077
sed -e "s/@NODE_ID@/${NODE_ID}/g" -e "s/@HOST@/$(hostname)/g" -e "s/@EXTERNAL_PORT@/${EXTERNAL_PORT}/g" \
    -e "s|@DATA_DIR@|${DATA_DIR}|g" -e "s|@TLS_DIR@|${TLS_DIR}|g" \
    -e "s/@BROKER_PASSWORD@/${KAFKA_BROKER_PASSWORD}/g" "$TEMPLATE" > "$config"
# the health check's client configuration (the brokers' own principal)
cat > "$WORK_DIR/client.properties" <<EOF
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=${TLS_DIR}/ca.pem
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="${KAFKA_BROKER_PASSWORD}";
EOF

users=(--add-scram "SCRAM-SHA-512=[name=broker,password=$KAFKA_BROKER_PASSWORD]")
for pair in "admin:$KAFKA_ADMIN_PASSWORD" "streams:$KAFKA_STREAMS_PASSWORD" "projector:$KAFKA_PROJECTOR_PASSWORD" \
            "ops:$KAFKA_OPS_PASSWORD" "portal:$KAFKA_PORTAL_PASSWORD"; do
  users+=(--add-scram "SCRAM-SHA-512=[name=${pair%%:*},password=${pair#*:}]")
done
"$KAFKA_HOME/bin/kafka-storage.sh" format --ignore-formatted --cluster-id "$CLUSTER_ID" -c "$config" "${users[@]}"
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$config"
