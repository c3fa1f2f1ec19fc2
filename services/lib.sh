# shellcheck shell=bash
# Shared helpers for services/up.sh and services/down.sh. Sourced, not executed.

SERVICES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SERVICES_DIR/.." && pwd)"
STATE_DIR="$(realpath -m "${SERVICES_STATE_DIR:-$REPO_DIR/.services}")"

ALL_SERVICES=(postgres redis kafka chromium loadgen)

PG_VERSION=15
PG_CLUSTER=main
PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=appliance
PG_PASSWORD=appliance
PG_DATABASES=(appliance appliance_test)

REDIS_HOST=127.0.0.1
REDIS_PORT=6379

KAFKA_HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"
KAFKA_STATE="$STATE_DIR/kafka"
KAFKA_LIBS="$KAFKA_STATE/libs"
KAFKA_PID_FILE="$KAFKA_STATE/kafka.pid"
KAFKA_LOG="$KAFKA_STATE/kafka.log"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_CONFIG="$KAFKA_STATE/server.properties"
KAFKA_TIMEOUT="${SERVICES_KAFKA_TIMEOUT:-90}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

REDIS_STATE="$STATE_DIR/redis"
REDIS_PID_FILE="$REDIS_STATE/redis.pid"
REDIS_LOG="$REDIS_STATE/redis.log"

export DEBIAN_FRONTEND=noninteractive

CURRENT_SERVICE="services"

say() { printf '%s: %s\n' "$CURRENT_SERVICE" "$*"; }
warn() { printf '%s: WARNING: %s\n' "$CURRENT_SERVICE" "$*" >&2; }
die() {
    printf '%s: ERROR: %s\n' "$CURRENT_SERVICE" "$*" >&2
    exit 1
}

# Any command failing under `set -e` lands here, so the message always names the service.
on_err() {
    local rc=$? line=$1 cmd=$2
    printf '%s: ERROR: command failed (exit %s) at %s line %s: %s\n' \
        "$CURRENT_SERVICE" "$rc" "$(basename "$0")" "$line" "$cmd" >&2
    exit "$rc"
}
trap 'on_err "$LINENO" "$BASH_COMMAND"' ERR

# parse_services ARG... -> sets SELECTED (in canonical order); no args = all.
parse_services() {
    local arg s known
    SELECTED=()
    for arg in "$@"; do
        known=0
        for s in "${ALL_SERVICES[@]}"; do [[ $arg == "$s" ]] && known=1; done
        if [[ $known == 0 ]]; then
            printf 'services: ERROR: unknown service "%s" (known: %s)\n' "$arg" "${ALL_SERVICES[*]}" >&2
            exit 2
        fi
    done
    for s in "${ALL_SERVICES[@]}"; do
        if [[ $# == 0 ]]; then
            SELECTED+=("$s")
        else
            for arg in "$@"; do
                if [[ $arg == "$s" ]]; then SELECTED+=("$s"); break; fi
            done
        fi
    done
}

# Serialise concurrent up.sh/down.sh runs on the same state dir.
take_lock() {
    mkdir -p "$STATE_DIR"
    # keep the state dir (jars, data, logs) out of git without touching the repo's .gitignore
    [[ -f $STATE_DIR/.gitignore ]] || echo '*' >"$STATE_DIR/.gitignore"
    # fd 9 is closed (9>&-) for every daemon we start, else it would keep the lock forever.
    exec 9>"$STATE_DIR/.lock"
    if ! flock -w 300 9; then
        die "another services/up.sh or down.sh holds $STATE_DIR/.lock for >300 s"
    fi
}

# tcp_open HOST PORT -> 0 if something accepts a TCP connection.
tcp_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# pid_alive PIDFILE PATTERN -> 0 if the recorded pid runs and its cmdline contains PATTERN
# (guards against a stale pid file whose pid got recycled by another process).
pid_alive() {
    local pidfile=$1 pattern=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

# stop_pid PIDFILE PATTERN TIMEOUT -> TERM, wait, KILL if needed. 0 if stopped / not running.
stop_pid() {
    local pidfile=$1 pattern=$2 wait_s=$3 pid i
    if ! pid_alive "$pidfile" "$pattern"; then
        rm -f "$pidfile"
        return 1
    fi
    pid=$(tr -dc '0-9' <"$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_s * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "pid $pid did not exit within ${wait_s}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && die "pid $pid survived SIGKILL"
    fi
    rm -f "$pidfile"
    return 0
}

# ---------------------------------------------------------------- apt
APT_UPDATED_THIS_RUN=0
APT_STAMP="$STATE_DIR/apt-update.stamp"
APT_LOG="$STATE_DIR/apt.log"

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

apt_update() {
    say "apt-get update (log: $APT_LOG)"
    if ! apt-get -o DPkg::Lock::Timeout=300 update >>"$APT_LOG" 2>&1; then
        tail -n 20 "$APT_LOG" >&2
        die "apt-get update failed"
    fi
    APT_UPDATED_THIS_RUN=1
    touch "$APT_STAMP"
}

# apt_update_if_stale: at most one apt-get update per day (stamp in the state dir).
apt_update_if_stale() {
    [[ $APT_UPDATED_THIS_RUN == 1 ]] && return 0
    if [[ -n "$(find "$APT_STAMP" -mmin -1440 2>/dev/null)" ]]; then
        return 0
    fi
    apt_update
}

# apt_install PKG... : installs the missing ones; no-op (and no apt-get update) if all present.
# On an install failure with a day-old package list, refreshes the list once and retries.
apt_install() {
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [[ ${#missing[@]} == 0 ]] && return 0
    mkdir -p "$STATE_DIR"
    apt_update_if_stale
    say "apt-get install ${missing[*]} (log: $APT_LOG)"
    if _apt_get_install "${missing[@]}"; then return 0; fi
    if [[ $APT_UPDATED_THIS_RUN == 0 ]]; then
        warn "apt-get install failed; refreshing package lists and retrying once"
        apt_update
        _apt_get_install "${missing[@]}" && return 0
    fi
    tail -n 30 "$APT_LOG" >&2
    die "apt-get install ${missing[*]} failed"
}

_apt_get_install() {
    # Keep package post-install scripts from starting daemons (redis, postgres) on their own:
    # we start them ourselves. Docker images usually already have such a policy-rc.d.
    local created_policy=0 rc=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@" >>"$APT_LOG" 2>&1 || rc=$?
    [[ $created_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
    return "$rc"
}

# apt_has PKG -> 0 if the package lists know PKG.
apt_has() {
    [[ -n "$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]]
}

# ---------------------------------------------------------------- kafka helpers
kafka_java() {
    # kafka_java CLASS ARGS... : run a Kafka class (tools use a quiet WARN-to-stderr log config).
    java -Xmx256m -Dlog4j2.configurationFile="$SERVICES_DIR/kafka/log4j2-tools.xml" \
        -cp "$KAFKA_LIBS/*" "$@"
}
