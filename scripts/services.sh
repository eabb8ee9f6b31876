#!/usr/bin/env bash
# Makes sure the brokers the test suite talks to are installed and answering on 127.0.0.1,
# then prints the environment lines the tests read (KEY=VALUE on stdout; progress on stderr):
#
#     eval "$(scripts/services.sh)"
#
# Idempotent: a service that already answers is left alone. Installs missing servers with
# apt-get on Debian or Ubuntu when run as root. Never restarts a running service.
set -euo pipefail

HOST=127.0.0.1
say() { printf '[services] %s\n' "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

# --- probes: each speaks the service's own protocol, an open port is not enough -------------
postgres_up() { pg_isready -q -h "$HOST" -p 5432 -t 2 2>/dev/null; }
redis_up() { [[ "$(redis-cli -h "$HOST" -p 6379 ping 2>/dev/null)" == PONG ]]; }
rabbitmq_up() {
  # An AMQP 0-9-1 broker answers the protocol header with a method frame (type byte 1).
  local reply
  reply=$(timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/5672 && printf 'AMQP\x00\x00\x09\x01' >&3 && head -c 1 <&3 | od -An -tx1" 2>/dev/null) || return 1
  [[ "${reply// /}" == 01 ]]
}

wait_until() { # NAME SECONDS PROBE
  local name=$1 seconds=$2 probe=$3 waited=0
  until "$probe"; do
    (( waited >= seconds * 10 )) && fail "$name did not answer within ${seconds}s"
    sleep 0.1; waited=$((waited + 1))
  done
  say "$name answers"
}

install_missing() { # COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || fail "$1 is missing; install $2"
  say "installing $2"
  if [[ -z "${APT_UPDATED:-}" ]]; then apt-get update -qq >&2; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
}

start_postgres() {
  postgres_up && { say "postgres answers"; return; }
  install_missing pg_ctlcluster postgresql
  local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "starting postgresql $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  wait_until postgres 30 postgres_up
}

start_redis() {
  redis_up && { say "redis answers"; return; }
  install_missing redis-server redis-server
  say "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind "$HOST" --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2
  wait_until redis 30 redis_up
}

start_rabbitmq() {
  rabbitmq_up && { say "rabbitmq answers"; return; }
  install_missing rabbitmq-server rabbitmq-server
  if pgrep -x beam.smp >/dev/null; then
    say "rabbitmq is booting; waiting"
  else
    say "starting rabbitmq"
    rabbitmq-server -detached >&2 || true
  fi
  wait_until rabbitmq 120 rabbitmq_up
}

start_postgres
start_redis
start_rabbitmq

cat <<ENV
BROKER_TEST_POSTGRES_URL=postgres://postgres@$HOST:5432/postgres
BROKER_TEST_REDIS_URL=redis://$HOST:6379
BROKER_TEST_AMQP_URL=amqp://guest:guest@$HOST:5672/%2f
TASKOVERFLOW_TEST_DATABASE_URL=postgres://postgres@$HOST:5432/postgres
ENV
# Python Celery, for the tests that run it against our API and worker. Without it those tests
# skip (or fail under BROKER_TEST_REQUIRE); the other services stay usable.
if celery_python=$("$(dirname "$0")/celery-venv.sh"); then
  echo "TASKOVERFLOW_TEST_CELERY_PYTHON=$celery_python"
else
  say "Python Celery could not be installed; its tests will say so"
fi
