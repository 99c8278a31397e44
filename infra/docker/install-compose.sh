#!/usr/bin/env bash
# Install Docker Compose v2 (the `docker compose` CLI plugin) from the Go module proxy, for machines
# that reach no release download: the module github.com/docker/compose/v2 at a pinned version, built
# with `go build` as its own main module (`go install …/cmd@version` refuses it: its go.mod has exclude
# directives), cached in ~/.cache/hothot/docker/compose-<version>/ and linked as
# ~/.docker/cli-plugins/docker-compose. Does nothing when that plugin already reports the version.
#
# Usage: infra/docker/install-compose.sh [--force]
# Needs Go >= 1.24 (/usr/local/go/bin is searched too). A cold build compiles ~1,000 packages: minutes.
set -euo pipefail

VERSION=v2.40.3
MODULE=github.com/docker/compose/v2
CACHE=${HOTHOT_CACHE_DIR:-$HOME/.cache/hothot}/docker/compose-$VERSION
PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
force=0
case "${1:-}" in
  --force) force=1 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  '') ;;
  *)
    echo "install-compose.sh: unknown argument $1 (see --help)" >&2
    exit 2
    ;;
esac

if [ "$force" = 0 ] && "$PLUGIN_DIR/docker-compose" version 2>/dev/null | grep -q "$VERSION"; then
  echo "[install-compose] docker compose $VERSION is installed ($PLUGIN_DIR/docker-compose)"
  exit 0
fi
if [ "$force" = 1 ] || [ ! -x "$CACHE/docker-compose" ]; then
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
  started=$(date +%s)
  echo "[install-compose] building docker compose $VERSION from the Go module proxy (cold: minutes)…"
  src=$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  mkdir -p "$CACHE"
  (cd "$work" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X $MODULE/internal.Version=$VERSION" -o "$CACHE/docker-compose.tmp" ./cmd)
  mv "$CACHE/docker-compose.tmp" "$CACHE/docker-compose"
  echo "[install-compose] built in $(($(date +%s) - started)) s"
fi
mkdir -p "$PLUGIN_DIR"
ln -sf "$CACHE/docker-compose" "$PLUGIN_DIR/docker-compose"
docker compose version
