#!/usr/bin/env bash
# A private Docker engine for the tests that start their brokers with testcontainers, for
# machines without systemd and without an image registry (Debian or Ubuntu, as root):
#
#     set -a; eval "$(scripts/docker.sh up)"; set +a   # start the engine, build the images, export
#     scripts/docker.sh env            # print the variables of the running engine
#     scripts/docker.sh down           # stop the engine, unmount what it left
#
# `up` installs Debian's docker.io when dockerd is missing, starts dockerd by hand and prints
# DOCKER_HOST=... and BROKER_TEST_CONTAINER_NETWORK=host on stdout (progress and errors go to
# stderr). The engine changes nothing in the host's network: no bridge, no iptables rules, no
# forwarding. So there is no port mapping either: containers run on the host network and the
# test fixture gives each server a free port on 127.0.0.1 (see conformance-tests/src/endpoint.rs).
#
# No registry is reached: the images `redis:7` and `postgres:15` are built from this machine's
# own redis-server and PostgreSQL (the binaries and the libraries ldd lists) and tagged with the
# official names, so testcontainers starts them without pulling. They take the commands the
# official images take (`redis-server ARGS`, `postgres ARGS`); the PostgreSQL image's data
# directory is made at build time with trust authentication, as POSTGRES_HOST_AUTH_METHOD=trust
# makes it in the official image.
#
# State (images, the engine's files, its log) lives in $BROKER_TEST_DOCKER_DIR, by default
# ~/.cache/brokers/docker, outside the clone, so images survive `down` and the next `up` is
# fast. Every command is idempotent.
set -euo pipefail

DIR=${BROKER_TEST_DOCKER_DIR:-$HOME/.cache/brokers/docker}
SOCK=$DIR/docker.sock
PIDFILE=$DIR/pid
LOG=$DIR/dockerd.log
# Bump when the way an image is built changes: images with another recipe are rebuilt.
RECIPE=2
LABEL=org.switchyard.recipe

say() { printf '[docker] %s\n' "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }
usage() { fail "usage: $0 up|env|down"; }

docker_cli() { DOCKER_HOST="unix://$SOCK" docker "$@"; }
engine_answers() { [[ -S $SOCK ]] && docker_cli version >/dev/null 2>&1; }

print_env() {
  printf 'DOCKER_HOST=unix://%s\nBROKER_TEST_CONTAINER_NETWORK=host\n' "$SOCK"
}

# Runs a command quietly; on failure shows what it printed and stops.
quietly() { # DESCRIPTION COMMAND...
  local description=$1 output; shift
  if ! output=$("$@" 2>&1); then
    printf '%s\n' "$output" >&2
    fail "$description failed"
  fi
}

install_engine() {
  command -v dockerd >/dev/null && command -v docker >/dev/null && return
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null ||
    fail "dockerd is missing; install Debian's docker.io (or Docker Engine) as root"
  say "installing docker.io"
  quietly "apt-get update" apt-get update -qq
  quietly "installing docker.io" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends docker.io
}

# Every mount point under $DIR, deepest first: what dockerd leaves when it dies (its overlay
# mounts under root/, the network namespace under exec/netns/).
mounts_under_dir() {
  awk -v dir="$DIR/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r
}

unmount_leftovers() {
  local mount
  while read -r mount; do
    [[ -n $mount ]] || continue
    umount "$mount" 2>/dev/null || umount -l "$mount" || fail "cannot unmount $mount"
  done < <(mounts_under_dir)
}

# The pid in FILE if that process is alive.
live_pid() { # FILE
  local pid
  [[ -f $1 ]] && pid=$(<"$1") && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    echo "$pid"
}

stop_pid() { # PID NAME
  local pid=$1 name=$2 waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited == 300)); then
      say "$name ($pid) still runs after 30s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    ((waited > 350)) && fail "$name ($pid) does not exit"
    sleep 0.1
    waited=$((waited + 1))
  done
}

start_engine() {
  engine_answers && return
  mkdir -p "$DIR"
  if pid=$(live_pid "$PIDFILE"); then
    say "dockerd ($pid) runs but does not answer on $SOCK; waiting"
  else
    # A previous engine died without cleaning up: its mounts would break the new one.
    unmount_leftovers
    rm -f "$PIDFILE" "$SOCK"
    setsid dockerd --data-root="$DIR/root" --exec-root="$DIR/exec" --pidfile="$PIDFILE" \
      --host="unix://$SOCK" --iptables=false --ip6tables=false --ip-forward=false \
      --ip-masq=false --bridge=none --storage-driver=overlay2 --log-level=warn \
      >>"$LOG" 2>&1 </dev/null &
  fi
  local waited=0
  until engine_answers; do
    if ((waited == 300)); then
      tail -n 20 "$LOG" >&2
      fail "dockerd did not answer on $SOCK within 30s (log above, all of it in $LOG)"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# The image's recipe label: this script's recipe and the version of the server it was built from.
image_stamp() { # IMAGE
  docker_cli image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true
}

# Copies each FILE, and every library ldd lists for it, into STAGE at the same path.
copy_with_libraries() { # STAGE FILE...
  local stage=$1 file library; shift
  for file in "$@"; do
    cp -L --parents "$file" "$stage"
    while read -r library; do
      [[ -e $stage$library ]] || cp -L --parents "$library" "$stage"
    done < <(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
  done
}

# /bin/sh, which the official images have too: the test fixture runs a shell in each container
# (its lifeline, see conformance-tests/src/endpoint.rs).
add_shell() { # STAGE
  local shell; shell=$(readlink -f /bin/sh)
  copy_with_libraries "$1" "$shell"
  mkdir -p "$1/bin"
  ln -sf "$shell" "$1/bin/sh"
}

new_stage() { # NAME
  local stage=$DIR/build/$1
  rm -rf "$stage"
  mkdir -p "$stage/tmp" "$stage/etc"
  chmod 1777 "$stage/tmp"
  echo "$stage"
}

import_image() { # STAGE IMAGE STAMP CHANGE...
  local stage=$1 image=$2 stamp=$3 change changes=(); shift 3
  for change in "$@" "LABEL $LABEL=\"$stamp\""; do changes+=(--change "$change"); done
  quietly "importing $image" bash -c \
    'tar --numeric-owner -C "$1" -c . | DOCKER_HOST="unix://$2" docker import "${@:3}" - "$0"' \
    "$image" "$stage" "$SOCK" "${changes[@]}"
  rm -rf "$stage"
  # The image this one replaced, if any, is untagged now: nothing uses it.
  quietly "removing replaced images" docker_cli image prune --force
}

build_redis() {
  local server; server=$(command -v redis-server) ||
    fail "redis-server is missing (install redis-server): it is what the redis:7 image runs"
  local stamp; stamp="$RECIPE $("$server" --version)"
  [[ $(image_stamp redis:7) == "$stamp" ]] && return
  [[ $stamp == *" v=7."* ]] || say "the host's redis-server is not 7.x; tagging it redis:7 anyway"
  say "building redis:7 from $server"
  local stage; stage=$(new_stage redis)
  mkdir -p "$stage/usr/local/bin" "$stage/data"
  cp -L "$server" "$stage/usr/local/bin/redis-server"
  copy_with_libraries "$stage" "$server"
  add_shell "$stage"
  import_image "$stage" redis:7 "$stamp" 'WORKDIR /data' \
    'CMD ["redis-server", "--protected-mode", "no"]'
}

# The uid and gid of `postgres` inside the image, as in the official image.
PG_UID=999
build_postgres() {
  local version=15 home=/usr/lib/postgresql/15
  [[ -x $home/bin/postgres ]] ||
    fail "$home/bin/postgres is missing (install postgresql-15): it is what postgres:15 runs"
  local stamp; stamp="$RECIPE $("$home/bin/postgres" --version)"
  [[ $(image_stamp postgres:$version) == "$stamp" ]] && return
  say "building postgres:$version from $home"
  local stage; stage=$(new_stage postgres)

  # The server, its modules (but the JIT, which links all of LLVM: without it PostgreSQL runs
  # queries without JIT compilation), its shared files and time zones, and a shell for the
  # entrypoint.
  local module modules=()
  for module in "$home"/lib/*.so; do
    [[ $module == */llvmjit* ]] || modules+=("$module")
  done
  copy_with_libraries "$stage" "$home/bin/postgres" "${modules[@]}"
  add_shell "$stage"
  cp -R --parents "/usr/share/postgresql/$version" /usr/share/zoneinfo "$stage"

  printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:%s:%s::/var/lib/postgresql:/bin/sh\n' \
    "$PG_UID" "$PG_UID" >"$stage/etc/passwd"
  printf 'root:x:0:\npostgres:x:%s:\n' "$PG_UID" >"$stage/etc/group"
  printf 'passwd: files\ngroup: files\n' >"$stage/etc/nsswitch.conf"

  mkdir -p "$stage/usr/local/bin"
  cat >"$stage/usr/local/bin/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# postgres:15 as scripts/docker.sh builds it: `postgres ARGS` runs the server on the data
# directory made at build time (trust authentication from every address); anything else runs
# as given.
set -e
if [ "$1" = postgres ]; then
  shift
  exec /usr/lib/postgresql/15/bin/postgres -D "$PGDATA" "$@"
fi
exec "$@"
ENTRYPOINT
  chmod 0755 "$stage/usr/local/bin/docker-entrypoint.sh"

  # The data directory, made by this machine's initdb as a user that is not root.
  local scratch; scratch=$(mktemp -d)
  chmod 0755 "$scratch"
  local initdb=("$home/bin/initdb" -D "$scratch/data" -U postgres --auth=trust -E UTF8
    --locale=C --no-sync)
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || fail "initdb needs a user that is not root: no user postgres"
    chown postgres "$scratch"
    quietly "initdb" runuser -u postgres -- "${initdb[@]}"
  else
    quietly "initdb" "${initdb[@]}"
  fi
  echo "listen_addresses = '*'" >>"$scratch/data/postgresql.conf"
  echo "host all all all trust" >>"$scratch/data/pg_hba.conf"
  mkdir -p "$stage/var/lib/postgresql" "$stage/var/run/postgresql"
  mv "$scratch/data" "$stage/var/lib/postgresql/data"
  rm -rf "$scratch"
  chown -R "$PG_UID:$PG_UID" "$stage/var/lib/postgresql" "$stage/var/run/postgresql"

  import_image "$stage" postgres:$version "$stamp" \
    "ENV PATH=/usr/local/bin:$home/bin:/usr/bin:/bin" \
    'ENV PGDATA=/var/lib/postgresql/data' 'USER postgres' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
}

up() {
  install_engine
  start_engine
  build_redis
  build_postgres
  print_env
}

env_of_running_engine() {
  engine_answers || fail "no engine answers on $SOCK; start it with: $0 up"
  print_env
}

down() {
  local pid
  if pid=$(live_pid "$PIDFILE"); then
    stop_pid "$pid" dockerd
  fi
  # dockerd stops its containerd when it exits cleanly; not when it was killed.
  if pid=$(live_pid "$DIR/exec/containerd/containerd.pid"); then
    stop_pid "$pid" containerd
  fi
  unmount_leftovers
  rm -f "$PIDFILE" "$SOCK"
}

case ${1:-} in
  up) up ;;
  env) env_of_running_engine ;;
  down) down ;;
  *) usage ;;
esac
