#!/usr/bin/env bash
# Stop what services/up.sh started.
#   services/down.sh                # all
#   services/down.sh kafka redis    # only those
# Never fails just because a service is not running.
set -Eeuo pipefail
# shellcheck source=services/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"

down_postgres() {
    CURRENT_SERVICE=postgres
    if ! command -v pg_lsclusters >/dev/null; then
        say "not installed"
        return 0
    fi
    if pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c && $4 ~ /^online/ {f=1} END {exit !f}'; then
        pg_ctlcluster -m fast "$PG_VERSION" "$PG_CLUSTER" stop || die "pg_ctlcluster $PG_VERSION $PG_CLUSTER stop failed"
        say "stopped cluster $PG_VERSION/$PG_CLUSTER"
    else
        say "not running"
    fi
}

down_redis() {
    CURRENT_SERVICE=redis
    if stop_pid "$REDIS_PID_FILE" redis-server 30; then
        say "stopped"
    elif tcp_open "$REDIS_HOST" "$REDIS_PORT"; then
        say "not started by up.sh (no live pid in $REDIS_PID_FILE); leaving $REDIS_HOST:$REDIS_PORT alone"
    else
        say "not running"
    fi
}

down_kafka() {
    CURRENT_SERVICE=kafka
    if stop_pid "$KAFKA_PID_FILE" kafka.Kafka 60; then
        say "stopped"
    elif tcp_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        say "not started by up.sh (no live pid in $KAFKA_PID_FILE); leaving $KAFKA_BOOTSTRAP alone"
    else
        say "not running"
    fi
}

down_chromium() {
    CURRENT_SERVICE=chromium
    say "nothing to stop"
}

down_loadgen() {
    CURRENT_SERVICE=loadgen
    say "nothing to stop"
}

parse_services "$@"
take_lock
for svc in "${SELECTED[@]}"; do
    "down_$svc"
done
CURRENT_SERVICE=services
echo "services: ${SELECTED[*]} down"
