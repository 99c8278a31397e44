#!/usr/bin/env bash
# What hothot needs on a machine, checked (and installed when possible) in one place: `hothot lab up`
# (so `npm start`), `hothot lab fetch` and .ci/run all run this script.
#
#   infra/prerequisites.sh [--need LIST] [--optional LIST] [--brief]
#
# LIST is comma-separated, from: node, java, maven, go, postgres, haproxy, openssl, chromium (default --need: all of them).
#   node      Node.js >= 20.19 (the service, the lab, the tests)
#   java      a Java runtime (the Kafka broker, run from its jars)
#   maven     mvn (fetches the Kafka jars once)
#   go        Go >= 1.21 (builds Toxiproxy once); `go` as the lab finds it: $GOROOT/bin, PATH, /usr/local/go/bin
#   postgres  the PostgreSQL server binaries (initdb, pg_ctl, postgres: $HOTHOT_PG_BIN_DIR, PATH or
#             /usr/lib/postgresql/*/bin) and, when root, the "postgres" system user and runuser
#   haproxy   HAProxy, the lab's front door ($HOTHOT_HAPROXY_BIN, /usr/sbin/haproxy or PATH)
#   openssl   the openssl command (makes the lab's Kafka CA and broker certificate)
#   chromium  Debian's Chromium ($HOTHOT_CHROMIUM or /usr/bin/chromium): the lab console's browser test
#             drives it with playwright-core (never a browser downloaded by Playwright)
# --optional: what of --need may be missing without failing (`lab up` passes haproxy: without it the
#             lab starts without the front door).
# --brief:    one summary line when everything is there (the lab's console); the default prints one
#             line per prerequisite and the apt-get output (CI).
#
# Whatever is missing is installed when we are root and apt-get exists: `apt-get update` once, then one
# `apt-get install -y --no-install-recommends <packages>`, and the "postgres" user with useradd. Otherwise
# (or with HOTHOT_PREREQS_NO_INSTALL=1) it prints the exact commands to run instead.
#
# Exit status: 0 everything needed is there; 1 something required is missing (commands printed above);
# 2 usage error; 3 only something --optional is missing.
set -uo pipefail

export DEBIAN_FRONTEND=noninteractive
ALL=(node java maven go postgres haproxy openssl chromium)
NEED=" ${ALL[*]} "
OPTIONAL=" "
BRIEF=0

usage() {
  sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --need) [ $# -ge 2 ] || usage; NEED=" ${2//,/ } "; shift 2 ;;
    --optional) [ $# -ge 2 ] || usage; OPTIONAL=" ${2//,/ } "; shift 2 ;;
    --brief) BRIEF=1; shift ;;
    -h | --help) usage ;;
    *) echo "prerequisites: unknown argument $1" >&2; usage ;;
  esac
done
for item in $NEED $OPTIONAL; do
  case " ${ALL[*]} " in *" $item "*) ;; *) echo "prerequisites: unknown prerequisite $item" >&2; usage ;; esac
done

needs() { [[ "$NEED" == *" $1 "* ]]; }
optional() { [[ "$OPTIONAL" == *" $1 "* ]]; }
is_root() { [ "$(id -u)" -eq 0 ]; }
say() { echo "$*"; }
detail() { [ "$BRIEF" -eq 1 ] || echo "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Whether we may install: root, apt-get, and not told otherwise.
CAN_INSTALL=1
WHY_NOT=""
if [ "${HOTHOT_PREREQS_NO_INSTALL:-}" != "" ] && [ "${HOTHOT_PREREQS_NO_INSTALL}" != "0" ]; then
  CAN_INSTALL=0
  WHY_NOT="HOTHOT_PREREQS_NO_INSTALL is set"
elif ! command -v apt-get >/dev/null 2>&1; then
  CAN_INSTALL=0
  WHY_NOT="apt-get is not available"
elif ! is_root; then
  CAN_INSTALL=0
  WHY_NOT="not root"
fi
SUDO=""
is_root || SUDO="sudo "

# ---------------------------------------------------------------------------------------------------
# Detection. Each find_* sets FOUND_<name> (a path or version) or leaves it empty, and PROBLEM_<name>
# (why it does not do).

version_ge() { # version_ge 1.21 1.19.5 -> false: is $2 >= $1 (major.minor)?
  awk -v want="$1" -v have="$2" 'BEGIN {
    split(want, w, "."); split(have, h, ".");
    exit !((h[1] + 0 > w[1] + 0) || (h[1] + 0 == w[1] + 0 && h[2] + 0 >= w[2] + 0)) }'
}

NODE_BIN=${HOTHOT_NODE:-node} # the lab passes the Node it runs on
find_node() {
  FOUND_node="" PROBLEM_node=""
  command -v "$NODE_BIN" >/dev/null 2>&1 || { PROBLEM_node="not installed"; return; }
  local v
  v=$("$NODE_BIN" --version 2>/dev/null | sed 's/^v//')
  if version_ge 20.19 "$v"; then FOUND_node="$v"; else PROBLEM_node="Node $v is too old: need >= 20.19"; fi
}

find_java() {
  FOUND_java="" PROBLEM_java=""
  command -v java >/dev/null 2>&1 || { PROBLEM_java="not installed"; return; }
  FOUND_java=$(java -version 2>&1 | sed -nE '1s/.*version "([^"]+)".*/\1/p')
  [ -n "$FOUND_java" ] || FOUND_java="(unknown version)"
}

find_maven() {
  FOUND_maven="" PROBLEM_maven=""
  if command -v mvn >/dev/null 2>&1; then FOUND_maven=$(command -v mvn); else PROBLEM_maven="not installed"; fi
}

GO_BIN=""
go_binary() { # the same choice as infra/lab/toxiproxy.ts: $GOROOT/bin/go, else go on PATH, else /usr/local/go/bin/go
  if [ -n "${GOROOT:-}" ] && [ -x "$GOROOT/bin/go" ]; then echo "$GOROOT/bin/go"
  elif command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  fi
}
find_go() {
  FOUND_go="" PROBLEM_go=""
  GO_BIN=$(go_binary)
  [ -n "$GO_BIN" ] || { PROBLEM_go="not installed"; return; }
  local v
  v=$("$GO_BIN" env GOVERSION 2>/dev/null | sed 's/^go//')
  if version_ge 1.21 "$v"; then FOUND_go="$v"; else PROBLEM_go="Go ${v:-(unknown version)} ($GO_BIN) is too old: Toxiproxy needs >= 1.21"; fi
}

PG_BIN_DIR=""
find_postgres() { # the same search as infra/lab/postgresCluster.ts findPostgresBinaries
  FOUND_postgres="" PROBLEM_postgres="" PG_BIN_DIR=""
  local candidates=() d
  [ -n "${HOTHOT_PG_BIN_DIR:-}" ] && candidates+=("$HOTHOT_PG_BIN_DIR")
  if command -v pg_ctl >/dev/null 2>&1; then candidates+=("$(dirname "$(readlink -f "$(command -v pg_ctl)")")"); fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do candidates+=("$d"); done
  for d in "${candidates[@]}"; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      PG_BIN_DIR=$d
      FOUND_postgres=$("$d/pg_ctl" --version | sed -nE 's/^pg_ctl \(PostgreSQL\) ([^ ]+).*/\1/p')
      break
    fi
  done
  if [ -z "$PG_BIN_DIR" ]; then PROBLEM_postgres="initdb, pg_ctl, postgres not found on PATH nor under /usr/lib/postgresql/*/bin"; return; fi
  # PostgreSQL refuses to run as root: the lab runs it as the "postgres" user, through runuser.
  if is_root; then
    if ! id postgres >/dev/null 2>&1; then PROBLEM_postgres="no \"postgres\" system user (PostgreSQL refuses to run as root)"; fi
    if ! command -v runuser >/dev/null 2>&1; then PROBLEM_postgres="no runuser (util-linux)"; fi
  fi
}

HAPROXY_BIN=""
find_haproxy() { # the same choice as infra/lab/haproxy.ts: $HOTHOT_HAPROXY_BIN, /usr/sbin/haproxy, PATH
  FOUND_haproxy="" PROBLEM_haproxy="" HAPROXY_BIN=""
  if [ -n "${HOTHOT_HAPROXY_BIN:-}" ]; then
    if command -v "$HOTHOT_HAPROXY_BIN" >/dev/null 2>&1 && [ -x "$(command -v "$HOTHOT_HAPROXY_BIN")" ]; then
      HAPROXY_BIN=$(command -v "$HOTHOT_HAPROXY_BIN")
    else
      PROBLEM_haproxy="HOTHOT_HAPROXY_BIN=$HOTHOT_HAPROXY_BIN is not an executable"
      return
    fi
  elif [ -x /usr/sbin/haproxy ]; then HAPROXY_BIN=/usr/sbin/haproxy
  elif command -v haproxy >/dev/null 2>&1; then HAPROXY_BIN=$(command -v haproxy)
  else PROBLEM_haproxy="not installed"; return
  fi
  FOUND_haproxy=$("$HAPROXY_BIN" -v 2>/dev/null | sed -nE '1s/^HA-?Proxy version ([^ ]+).*/\1/p')
  [ -n "$FOUND_haproxy" ] || FOUND_haproxy="(unknown version)"
}

find_openssl() {
  FOUND_openssl="" PROBLEM_openssl=""
  command -v openssl >/dev/null 2>&1 || { PROBLEM_openssl="not installed"; return; }
  FOUND_openssl=$(openssl version 2>/dev/null | awk '{ print $2 }')
  [ -n "$FOUND_openssl" ] || FOUND_openssl="(unknown version)"
}

CHROMIUM_BIN=""
find_chromium() { # the same choice as test/e2e/lab.console.browser.test.ts: $HOTHOT_CHROMIUM, else /usr/bin/chromium
  FOUND_chromium="" PROBLEM_chromium=""
  CHROMIUM_BIN=${HOTHOT_CHROMIUM:-/usr/bin/chromium}
  [ -x "$CHROMIUM_BIN" ] || { PROBLEM_chromium="not installed ($CHROMIUM_BIN)"; return; }
  FOUND_chromium=$("$CHROMIUM_BIN" --version 2>/dev/null | sed -nE 's/^Chromium ([^ ]+).*/\1/p')
  [ -n "$FOUND_chromium" ] || FOUND_chromium="(unknown version)"
}

detect() { find_"$1"; }
found() { local v="FOUND_$1"; [ -n "${!v}" ] && { local p="PROBLEM_$1"; [ -z "${!p}" ]; }; }
problem() { local p="PROBLEM_$1"; echo "${!p}"; }

# ---------------------------------------------------------------------------------------------------
# Remedies: the Debian package that provides each, or a manual step.

APT_UPDATED=0
APT_LOG=""
# Wait for another apt/dpkg run (unattended-upgrades…) instead of failing at once.
APT_OPTS=(-o DPkg::Lock::Timeout=120)
apt_update() {
  [ "$APT_UPDATED" -eq 0 ] || return 0
  APT_UPDATED=1
  say "apt-get update …"
  if [ "$BRIEF" -eq 1 ]; then apt-get "${APT_OPTS[@]}" update -qq >>"$APT_LOG" 2>&1 || { tail -n 20 "$APT_LOG" >&2; return 1; }
  else apt-get "${APT_OPTS[@]}" update -q; fi
}
apt_install() { # apt_install PACKAGE...
  if [ "$BRIEF" -eq 1 ]; then
    apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "$@" >>"$APT_LOG" 2>&1 || { tail -n 20 "$APT_LOG" >&2; return 1; }
  else
    apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends "$@"
  fi
}

# The Debian package of a missing prerequisite ("" when apt cannot provide it).
package_for() {
  case "$1" in
    java) echo openjdk-17-jre-headless ;;
    maven) echo maven ;;
    postgres)
      if [ -z "$PG_BIN_DIR" ]; then echo postgresql
      elif is_root && ! command -v runuser >/dev/null 2>&1; then echo util-linux
      fi ;;
    haproxy) [ -z "${HOTHOT_HAPROXY_BIN:-}" ] && echo haproxy ;;
    openssl) echo openssl ;;
    chromium) [ -z "${HOTHOT_CHROMIUM:-}" ] && echo chromium ;;
    go) # Debian 12's golang-go is 1.19, too old; a newer release's may do.
      [ "$PROBLEM_go" = "not installed" ] || return 0
      local candidate
      candidate=$(apt-cache policy golang-go 2>/dev/null | awk '/Candidate:/ { print $2 }' | sed -E 's/^[0-9]+://')
      if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && version_ge 1.21 "$candidate"; then echo golang-go; fi ;;
    *) ;;
  esac
}

# What to run by hand for a missing prerequisite.
manual_fix() {
  local pkg
  case "$1" in
    node) echo "install Node.js >= 20.19 (https://nodejs.org/en/download, or NodeSource's Debian packages)" ;;
    go) echo "install Go >= 1.21 into /usr/local/go: curl -fsSL https://go.dev/dl/go1.26.0.linux-$(dpkg --print-architecture 2>/dev/null || echo amd64).tar.gz | ${SUDO}tar -C /usr/local -xz" ;;
    haproxy)
      if [ -n "${HOTHOT_HAPROXY_BIN:-}" ]; then echo "unset HOTHOT_HAPROXY_BIN or point it at an haproxy binary"; return; fi ;;&
    chromium)
      if [ -n "${HOTHOT_CHROMIUM:-}" ]; then echo "unset HOTHOT_CHROMIUM or point it at a Chromium binary"; return; fi ;;&
    postgres)
      if [ -n "$PG_BIN_DIR" ] && is_root && ! id postgres >/dev/null 2>&1; then
        echo "useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres"
        return
      fi ;;&
    *)
      pkg=$(package_for "$1")
      if [ -z "$pkg" ]; then echo "install $1"
      elif command -v apt-get >/dev/null 2>&1; then echo "${SUDO}apt-get update && ${SUDO}apt-get install -y --no-install-recommends $pkg"
      else echo "install $pkg with your system's package manager"
      fi ;;
  esac
}

describe() {
  case "$1" in
    node) echo "Node.js" ;;
    java) echo "Java (runs the Kafka broker)" ;;
    maven) echo "Maven (fetches the Kafka jars once)" ;;
    go) echo "Go >= 1.21 (builds Toxiproxy once)" ;;
    postgres) echo "PostgreSQL server binaries" ;;
    haproxy) echo "HAProxy (the lab's front door)" ;;
    openssl) echo "OpenSSL (makes the lab's Kafka certificates)" ;;
    chromium) echo "Chromium (the lab console's browser test)" ;;
  esac
}

# ---------------------------------------------------------------------------------------------------

STARTED=$(now)
CHECKED=()
for item in "${ALL[@]}"; do needs "$item" && { detect "$item"; CHECKED+=("$item"); }; done

missing() { local m=() i; for i in "${CHECKED[@]}"; do found "$i" || m+=("$i"); done; echo "${m[*]}"; }
MISSING=$(missing)

# Whether apt-get may provide a missing prerequisite (before `apt-get update`; package_for decides after).
apt_may_help() {
  case "$1" in
    java | maven | openssl) return 0 ;;
    chromium) [ -z "${HOTHOT_CHROMIUM:-}" ] ;;
    postgres) [ -z "$PG_BIN_DIR" ] || ! command -v runuser >/dev/null 2>&1 ;;
    haproxy) [ -z "${HOTHOT_HAPROXY_BIN:-}" ] ;;
    go) [ "$PROBLEM_go" = "not installed" ] ;;
    *) return 1 ;;
  esac
}

if [ -n "$MISSING" ] && [ "$CAN_INSTALL" -eq 1 ]; then
  INSTALL_STARTED=$(now)
  APT_LOG=$(mktemp -t hothot-apt.XXXXXX)
  USE_APT=0
  for item in $MISSING; do apt_may_help "$item" && USE_APT=1; done
  if [ "$USE_APT" -eq 1 ]; then
    say "missing: $MISSING — installing with apt-get (as root; with HOTHOT_PREREQS_NO_INSTALL=1 it would only print the commands)"
    if apt_update; then
      PACKAGES=()
      for item in $MISSING; do
        pkg=$(package_for "$item")
        [ -n "$pkg" ] && PACKAGES+=("$pkg")
      done
      if [ "${#PACKAGES[@]}" -gt 0 ]; then
        say "apt-get install -y --no-install-recommends ${PACKAGES[*]} …"
        if ! apt_install "${PACKAGES[@]}"; then
          # One package that cannot be installed must not keep the others out: try each alone.
          for pkg in "${PACKAGES[@]}"; do apt_install "$pkg" || say "could not install $pkg"; done
        fi
      fi
    fi
  fi
  # PostgreSQL refuses to run as root: the lab runs it as the "postgres" user (Debian's postgresql
  # package creates it; binaries from elsewhere may come without it).
  if needs postgres && is_root && ! id postgres >/dev/null 2>&1; then
    if useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres; then
      say "created the \"postgres\" system user"
    fi
  fi
  for item in $MISSING; do detect "$item"; done
  INSTALLED=()
  for item in $MISSING; do found "$item" && INSTALLED+=("$item"); done
  [ "${#INSTALLED[@]}" -eq 0 ] || say "installed ${INSTALLED[*]} in $(since "$INSTALL_STARTED") s"
  rm -f "$APT_LOG"
  MISSING=$(missing)
fi

# Report.
summary=()
for item in "${CHECKED[@]}"; do
  found "$item" || continue
  v="FOUND_$item"
  case "$item" in
    node) detail "node      v${!v} ($(command -v "$NODE_BIN"), npm $(npm --version 2>/dev/null || echo '?'))"; summary+=("node ${!v}") ;;
    java) detail "java      ${!v} ($(command -v java))"; summary+=("java ${!v}") ;;
    maven) detail "maven     $(mvn -B -v 2>/dev/null | head -n 1 | sed 's/\x1b\[[0-9;]*m//g') (${!v})"; summary+=("maven") ;;
    go) detail "go        go${!v} ($GO_BIN)"; summary+=("go ${!v}") ;;
    postgres) detail "postgres  ${!v} ($PG_BIN_DIR)$(is_root && echo ', run as the "postgres" user')"; summary+=("postgres ${!v}") ;;
    haproxy) detail "haproxy   ${!v} ($HAPROXY_BIN)"; summary+=("haproxy ${!v}") ;;
    openssl) detail "openssl   ${!v} ($(command -v openssl))"; summary+=("openssl ${!v}") ;;
    chromium) detail "chromium  ${!v} ($CHROMIUM_BIN)"; summary+=("chromium ${!v}") ;;
  esac
done

required_missing=0
optional_missing=0
for item in $MISSING; do
  if optional "$item"; then optional_missing=1; level="WARNING"; else required_missing=1; level="MISSING"; fi
  note=""
  [ "$CAN_INSTALL" -eq 1 ] || [ -z "$(package_for "$item")" ] || note=" (not installing it: $WHY_NOT)"
  if [ "$level" = WARNING ] && [ "$BRIEF" -eq 1 ]; then
    # The caller says what it does without it, and how to fix that.
    say "missing (optional) $(describe "$item"): $(problem "$item")$note"
  else
    say "$level $(describe "$item"): $(problem "$item")$note"
    say "        to install it: $(manual_fix "$item")"
  fi
done

FIX_PACKAGES=()
for item in $MISSING; do
  optional "$item" && [ "$BRIEF" -eq 1 ] && continue
  pkg=$(package_for "$item")
  [ -z "$pkg" ] || FIX_PACKAGES+=("$pkg")
done
if [ "${#FIX_PACKAGES[@]}" -gt 1 ] && command -v apt-get >/dev/null 2>&1; then
  say "all of them at once: ${SUDO}apt-get update && ${SUDO}apt-get install -y --no-install-recommends ${FIX_PACKAGES[*]}"
fi

if [ -z "$MISSING" ]; then
  if [ "$BRIEF" -eq 1 ]; then
    joined=$(printf '%s, ' "${summary[@]}")
    say "prerequisites ok: ${joined%, } ($(since "$STARTED") s)"
  else
    say "all prerequisites present ($(since "$STARTED") s)"
  fi
fi
[ "$required_missing" -eq 0 ] || exit 1
[ "$optional_missing" -eq 0 ] || exit 3
exit 0
