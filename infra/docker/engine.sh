#!/usr/bin/env bash
# A Docker engine for CI and for the Docker tests, on a machine of ours (Debian 12, root, no image
# registry).
#
#   infra/docker/engine.sh start   an engine that answers already is used as it is; else, as root:
#                                  apt-get install docker.io debootstrap (when missing), then dockerd
#                                  in the background, recorded as ours
#   infra/docker/engine.sh stop    stops the dockerd that `start` started (nothing else)
#   infra/docker/engine.sh status
#
# The dockerd we start: `--iptables=false` (no NAT rules on the host: containers reach each other on
# their bridge networks and the host through published ports, not the internet — builds use the
# host's network instead, see build-images.sh) and `--ip=127.0.0.1` (every published port binds to
# 127.0.0.1 unless it says otherwise: testcontainers' ports too). Its log:
# ~/.cache/hothot/docker/dockerd.log.
set -euo pipefail

STATE=${HOTHOT_CACHE_DIR:-$HOME/.cache/hothot}/docker
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
READY_TIMEOUT_S=60

log() { printf '[docker engine] %s\n' "$*"; }
answers() { docker info >/dev/null 2>&1; }
ours() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  if answers; then
    log "an engine answers already ($(docker info -f '{{.ServerVersion}}, {{.Driver}}, cgroup v{{.CgroupVersion}}' 2>/dev/null)): using it"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo 'engine.sh: no Docker engine answers, and starting one needs root (see docs/docker.md)' >&2
    return 1
  fi
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}…"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
  mkdir -p "$STATE"
  log "starting dockerd --iptables=false --ip=127.0.0.1 (log: $LOG)…"
  setsid dockerd --iptables=false --ip=127.0.0.1 >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local waited=0
  until answers; do
    if ! ours; then
      tail -n 20 "$LOG" >&2
      echo 'engine.sh: dockerd exited during start' >&2
      rm -f "$PIDFILE"
      return 1
    fi
    if [ "$waited" -ge $((READY_TIMEOUT_S * 5)) ]; then
      tail -n 20 "$LOG" >&2
      echo "engine.sh: dockerd did not answer within ${READY_TIMEOUT_S} s" >&2
      return 1
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  log "dockerd $(docker info -f '{{.ServerVersion}}, {{.Driver}}, cgroup v{{.CgroupVersion}}') answers (pid $(cat "$PIDFILE"))"
}

stop() {
  if ! ours; then
    rm -f "$PIDFILE"
    return 0
  fi
  local pid
  pid=$(cat "$PIDFILE")
  log "stopping the dockerd we started (pid $pid)…"
  kill -TERM "$pid"
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "dockerd $pid did not stop within 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if answers; then log "answers$(ours && echo " (started by engine.sh, pid $(cat "$PIDFILE"))")"; else
      log 'no engine answers'
      exit 1
    fi
    ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
    [ "${1:-}" = -h ] || [ "${1:-}" = --help ]
    ;;
esac
