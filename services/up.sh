#!/usr/bin/env bash
# Install (when missing) and start the appliance's backing services on loopback.
#   services/up.sh                  # all: postgres redis kafka chromium
#   services/up.sh postgres redis   # only those
# Idempotent: a service that already answers is left alone. See services/README.md.
set -Eeuo pipefail
# shellcheck source=services/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"

# ======================================================================= postgres
up_postgres() {
    CURRENT_SERVICE=postgres
    local pg_bin="/usr/lib/postgresql/$PG_VERSION/bin"
    if [[ ! -x $pg_bin/postgres ]] || ! command -v pg_ctlcluster >/dev/null; then
        apt_install postgresql "postgresql-$PG_VERSION" postgresql-client-common
    fi
    [[ -x $pg_bin/postgres ]] || die "PostgreSQL $PG_VERSION binaries missing after install ($pg_bin/postgres)"

    local hll="postgresql-$PG_VERSION-hll" hll_note=""
    # Optional: any failure here (no such package, apt error) only warns.
    if pkg_installed "$hll"; then
        hll_note=", hll"
    elif (apt_update_if_stale && apt_has "$hll" && apt_install "$hll"); then
        hll_note=", hll"
    else
        warn "$hll not available or failed to install; continuing without it"
    fi

    if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {f=1} END {exit !f}'; then
        say "creating cluster $PG_VERSION/$PG_CLUSTER"
        pg_createcluster "$PG_VERSION" "$PG_CLUSTER" -p "$PG_PORT" >/dev/null
    fi
    local port
    port=$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $3}')
    [[ $port == "$PG_PORT" ]] || die "cluster $PG_VERSION/$PG_CLUSTER is configured for port $port, expected $PG_PORT"

    local action="already running"
    if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c && $4 ~ /^online/ {f=1} END {exit !f}'; then
        if tcp_open "$PG_HOST" "$PG_PORT"; then
            die "port $PG_PORT is taken by something other than cluster $PG_VERSION/$PG_CLUSTER"
        fi
        mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
        if ! pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start 9>&-; then
            tail -n 30 "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log" >&2 || true
            die "pg_ctlcluster $PG_VERSION $PG_CLUSTER start failed"
        fi
        action="started"
    fi
    local i
    for ((i = 0; i < 60; i++)); do
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
        sleep 0.5
    done
    if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
        tail -n 30 "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log" >&2 || true
        die "not accepting connections on $PG_HOST:$PG_PORT after 30 s"
    fi

    # Role and databases, idempotently (password re-set each time so it is always known).
    local sql
    sql="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;"
    local db
    for db in "${PG_DATABASES[@]}"; do
        sql+="
SELECT 'CREATE DATABASE $db OWNER $PG_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\\gexec"
    done
    runuser -u postgres -- env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres <<<"$sql" >/dev/null \
        || die "creating role/databases failed"
    if [[ -n $hll_note ]]; then
        # hll is not a trusted extension: create it as superuser so the app role can use it.
        for db in "${PG_DATABASES[@]}"; do
            runuser -u postgres -- env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d "$db" \
                -c 'CREATE EXTENSION IF NOT EXISTS hll' >/dev/null || die "CREATE EXTENSION hll in $db failed"
        done
    fi
    PGPASSWORD=$PG_PASSWORD psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "${PG_DATABASES[0]}" -c 'select 1' >/dev/null \
        || die "cannot log in as $PG_USER over TCP"
    say "$action: PostgreSQL $PG_VERSION on $PG_HOST:$PG_PORT, role $PG_USER, dbs ${PG_DATABASES[*]}${hll_note}"
}

# ======================================================================= redis
redis_ping() {
    [[ "$(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
}

up_redis() {
    CURRENT_SERVICE=redis
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        apt_install redis-server redis-tools
    fi
    if redis_ping; then
        if pid_alive "$REDIS_PID_FILE" redis-server; then
            say "already running: Redis $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on $REDIS_HOST:$REDIS_PORT (pid $(cat "$REDIS_PID_FILE"))"
        else
            say "already answering on $REDIS_HOST:$REDIS_PORT (not started by up.sh; down.sh will leave it)"
        fi
        return 0
    fi
    if tcp_open "$REDIS_HOST" "$REDIS_PORT"; then
        die "port $REDIS_PORT is taken but does not answer PING"
    fi
    mkdir -p "$REDIS_STATE"
    rm -f "$REDIS_PID_FILE"
    redis-server --bind "$REDIS_HOST" --port "$REDIS_PORT" --daemonize yes \
        --pidfile "$REDIS_PID_FILE" --logfile "$REDIS_LOG" --dir "$REDIS_STATE" \
        --save "" --appendonly no 9>&- \
        || { tail -n 20 "$REDIS_LOG" >&2 || true; die "redis-server failed to start"; }
    local i
    for ((i = 0; i < 100; i++)); do
        redis_ping && break
        sleep 0.1
    done
    if ! redis_ping; then
        tail -n 20 "$REDIS_LOG" >&2 || true
        die "not answering PING on $REDIS_HOST:$REDIS_PORT after 10 s"
    fi
    for ((i = 0; i < 50; i++)); do [[ -s $REDIS_PID_FILE ]] && break; sleep 0.1; done
    say "started: Redis $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') on $REDIS_HOST:$REDIS_PORT (pid $(cat "$REDIS_PID_FILE"), log $REDIS_LOG)"
}

# ======================================================================= kafka
kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$SERVICES_DIR/kafka/pom.xml"
}

# Resolve the Kafka jars from Maven Central once; re-resolve only when pom.xml changes.
kafka_resolve_jars() {
    local pom="$SERVICES_DIR/kafka/pom.xml" stamp="$KAFKA_LIBS/.resolved" want
    want=$(sha256sum "$pom" | cut -d' ' -f1)
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || apt_install maven
    say "resolving Kafka $(kafka_version) jars from Maven Central (log: $KAFKA_STATE/mvn.log)"
    rm -rf "$KAFKA_LIBS"
    mkdir -p "$KAFKA_LIBS"
    if ! mvn -B -f "$pom" dependency:copy-dependencies \
        -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime >"$KAFKA_STATE/mvn.log" 2>&1; then
        tail -n 30 "$KAFKA_STATE/mvn.log" >&2
        die "mvn dependency:copy-dependencies failed"
    fi
    ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar in $KAFKA_LIBS after mvn"
    echo "$want" >"$stamp"
}

# Compile the readiness probe once (re-compiled when its source changes).
kafka_build_probe() {
    local src="$SERVICES_DIR/kafka/KafkaReady.java" out="$KAFKA_STATE/probe" want
    want=$(cat "$src" "$KAFKA_LIBS/.resolved" | sha256sum | cut -d' ' -f1)
    if [[ -f $out/.built && "$(cat "$out/.built")" == "$want" ]]; then
        return 0
    fi
    rm -rf "$out"
    mkdir -p "$out"
    javac -nowarn -d "$out" -cp "$KAFKA_LIBS/*" "$src" || die "compiling KafkaReady.java failed"
    echo "$want" >"$out/.built"
}

kafka_probe() { # kafka_probe TIMEOUT [PID]
    java -Xmx128m -Dlog4j2.configurationFile="$SERVICES_DIR/kafka/log4j2-tools.xml" \
        -cp "$KAFKA_LIBS/*:$KAFKA_STATE/probe" KafkaReady "$KAFKA_BOOTSTRAP" "$@"
}

# Last 40 lines of the broker log written since the latest start marker.
kafka_log_tail() {
    echo "----- $KAFKA_LOG (last 40 lines of the latest start) -----" >&2
    awk '/^===== .* starting Kafka/ {n = 0} {buf[n++] = $0} END {for (i = (n > 40 ? n - 40 : 0); i < n; i++) print buf[i]}' \
        "$KAFKA_LOG" >&2 2>/dev/null || true
    echo "-----" >&2
}

kafka_write_config() {
    cat >"$KAFKA_CONFIG.tmp" <<PROPS
# Generated by services/up.sh -- edits are overwritten on every run.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=6
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
PROPS
    mv "$KAFKA_CONFIG.tmp" "$KAFKA_CONFIG"
}

up_kafka() {
    CURRENT_SERVICE=kafka
    command -v java >/dev/null && command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
    mkdir -p "$KAFKA_STATE"
    kafka_resolve_jars
    kafka_build_probe
    local version
    version=$(kafka_version)

    if pid_alive "$KAFKA_PID_FILE" kafka.Kafka; then
        local pid out
        pid=$(cat "$KAFKA_PID_FILE")
        if out=$(kafka_probe "$KAFKA_TIMEOUT" "$pid" 2>&1); then
            say "already running: Kafka $version on $KAFKA_BOOTSTRAP (pid $pid)"
            return 0
        fi
        echo "$out" >&2
        kafka_log_tail
        die "pid $pid runs but the broker does not answer on $KAFKA_BOOTSTRAP"
    fi
    rm -f "$KAFKA_PID_FILE"
    if tcp_open "$KAFKA_HOST" "$KAFKA_PORT" || tcp_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
        if kafka_probe 10 >/dev/null 2>&1; then
            say "already answering on $KAFKA_BOOTSTRAP (not started by up.sh; down.sh will leave it)"
            return 0
        fi
        die "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by something that is not a working Kafka"
    fi

    kafka_write_config
    if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
        local cluster_id
        cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid) || die "StorageTool random-uuid failed"
        say "formatting $KAFKA_DATA (cluster id $cluster_id)"
        kafka_java kafka.tools.StorageTool format --standalone --ignore-formatted \
            -t "$cluster_id" -c "$KAFKA_CONFIG" >"$KAFKA_STATE/format.log" 2>&1 \
            || { cat "$KAFKA_STATE/format.log" >&2; die "StorageTool format failed"; }
    fi

    # setsid: own session, so the broker outlives the shell/terminal that ran up.sh.
    # The inner bash records its pid and then exec's java, so the pid file is the JVM's pid.
    {
        echo "===== $(date -Is) starting Kafka $version"
    } >>"$KAFKA_LOG"
    # shellcheck disable=SC2086
    KAFKA_PID_FILE="$KAFKA_PID_FILE" setsid nohup bash -c 'echo $$ >"$KAFKA_PID_FILE"; exec "$@"' kafka \
        java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$SERVICES_DIR/kafka/log4j2.xml" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG" \
        >>"$KAFKA_LOG" 2>&1 </dev/null 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do [[ -s $KAFKA_PID_FILE ]] && break; sleep 0.1; done
    [[ -s $KAFKA_PID_FILE ]] || die "broker did not record its pid in $KAFKA_PID_FILE"
    local pid
    pid=$(cat "$KAFKA_PID_FILE")

    local out rc=0
    out=$(kafka_probe "$KAFKA_TIMEOUT" "$pid" 2>&1) || rc=$?
    if [[ $rc != 0 ]]; then
        echo "$out" >&2
        kafka_log_tail
        if [[ $rc == 3 ]]; then
            rm -f "$KAFKA_PID_FILE"
            die "broker process $pid exited during startup (see $KAFKA_LOG)"
        fi
        stop_pid "$KAFKA_PID_FILE" kafka.Kafka 30 || true
        die "broker did not become ready on $KAFKA_BOOTSTRAP within ${KAFKA_TIMEOUT}s (stopped it; see $KAFKA_LOG)"
    fi
    say "started: Kafka $version (KRaft broker+controller) on $KAFKA_BOOTSTRAP, controller $KAFKA_HOST:$KAFKA_CONTROLLER_PORT (pid $pid, log $KAFKA_LOG)"
}

# ======================================================================= chromium
up_chromium() {
    CURRENT_SERVICE=chromium
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        apt_install chromium chromium-driver fonts-liberation
    fi
    local v d
    v=$(chromium --version 2>/dev/null | head -n1) || die "chromium --version failed"
    d=$(chromedriver --version 2>/dev/null | head -n1 | awk '{print $1, $2}') || die "chromedriver --version failed"
    say "installed: $v, $d (nothing to start)"
}

# ======================================================================= main
parse_services "$@"
take_lock
for svc in "${SELECTED[@]}"; do
    "up_$svc"
done
CURRENT_SERVICE=services
echo "services: ${SELECTED[*]} up"
