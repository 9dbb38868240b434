#!/usr/bin/env bash
# Real services for the test suite, on 127.0.0.1 only, all state in one DIR.
#
#   scripts/services.sh start-registry DIR   install what is missing, start the
#                                            registry services, write DIR/services.env
#   scripts/services.sh start DIR            every service group (today: registry)
#   scripts/services.sh stop DIR             stop everything started in DIR
#                                            (SIGTERM, SIGKILL after 5 s)
#   scripts/services.sh status DIR           each recorded process, running or not
#   scripts/services.sh check DIR            run Tests/services/check_services.py
#                                            against DIR/services.env
#   scripts/services.sh install DIR          only install (apt packages, DIR/venv)
#
# Starting what is already running, or stopping what is stopped, does nothing.
# Ports are picked free at start. The registry services are:
#
#   plain      docker-registry, HTTP, no auth, delete enabled
#   tls-basic  docker-registry, HTTPS (certificate for localhost/127.0.0.1
#              signed by DIR/ca.pem), htpasswd Basic auth, user alice
#   token      docker-registry with token auth; its realm is
#              Tests/services/token_server.py (bob: pull+push, reader: pull)
#   proxy      Tests/services/fault_proxy.py in front of plain, with an HTTP
#              control port to reset, black-hole or cut connections
#   hostile    Tests/services/hostile_registry.py, crafted bad answers by
#              repository name (huge, malformed, escape, baddigest, ...)
#
# DIR/services.env (KEY=VALUE lines, safe to `set -a; . DIR/services.env`):
#   SERVICES_DIR SERVICES_LOGS
#   REGISTRY_PLAIN                       http://127.0.0.1:PORT
#   REGISTRY_TLS REGISTRY_TLS_CA         https://localhost:PORT, DIR/ca.pem
#   REGISTRY_TLS_USER REGISTRY_TLS_PASSWORD
#   REGISTRY_TOKEN                       http://127.0.0.1:PORT
#   REGISTRY_TOKEN_REALM REGISTRY_TOKEN_SERVICE
#   REGISTRY_TOKEN_USER REGISTRY_TOKEN_PASSWORD                 (push + pull)
#   REGISTRY_TOKEN_READER REGISTRY_TOKEN_READER_PASSWORD        (pull only)
#   REGISTRY_PROXY REGISTRY_PROXY_CONTROL  proxy to plain; POST /mode there
#   REGISTRY_HOSTILE                     http://127.0.0.1:PORT
#   REGISTRY_HOSTILE_GOOD_MANIFEST_DIGEST REGISTRY_HOSTILE_GOOD_CONFIG_DIGEST
# Logs are in DIR/logs/, pids in DIR/run/. Never start docker-registry with
# these variables in its environment: it reads REGISTRY_* as config overrides
# (services.sh removes them for it).
#
# The hostile registry's good:<any tag> is a valid snapshot whose config lists
# ckpt1/state = the 12 bytes "hello world\n" (xxh3:6b1e182d921cd510); POST a
# config to $REGISTRY_HOSTILE/good to serve another (hostile_registry.py).
#
# Installs (as root, the CI and developer machines): apt packages
# docker-registry apache2-utils openssl (and python3-venv when venv is
# missing); pip `cryptography` into DIR/venv, or into $SERVICES_VENV when set
# (a venv kept across runs saves the ~8 s of pip). Python is $PYTHON, else
# python3. The first start on a machine takes ~10 s (apt + pip), later ones
# under a second.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_SRC="$REPO_ROOT/Tests/services"
PY_REQUIREMENTS=(cryptography)

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

note() { echo "services: $*" >&2; }

# apt_install PKG...: installs the packages that are not installed yet. The
# package's own service (docker-registry on :5000, all interfaces, with
# /etc/docker/registry/config.yml) must not start: a policy-rc.d that denies
# every start is put in place for the install when there is none.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    note "installing ${missing[*]} (apt)"
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    fi
    [ -n "$added_policy" ] && rm -f "$policy"
    return $rc
}

python_bin() { echo "${PYTHON:-python3}"; }

# ensure_venv VENV: a venv at VENV with the Python packages the services import.
ensure_venv() {
    local venv="$1" py
    py="$(python_bin)"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
        return 0
    fi
    mkdir -p "$(dirname "$venv")"
    if ! "$py" -m venv --help >/dev/null 2>&1 || ! "$py" -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv
    fi
    note "creating $venv (pip: ${PY_REQUIREMENTS[*]})"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
}

install_all() {
    apt_install docker-registry apache2-utils openssl
    ensure_venv "$venv"
}

[ $# -eq 2 ] || usage
cmd="$1"
dir="$2"
case "$cmd" in
    stop|status)
        [ -d "$dir" ] || { note "$dir does not exist: nothing started there"; exit 0; } ;;
    *)
        mkdir -p "$dir" ;;
esac
dir="$(cd "$dir" && pwd)"
venv="${SERVICES_VENV:-$dir/venv}"

case "$cmd" in
    install)
        install_all
        ;;
    start|start-registry)
        install_all
        "$venv/bin/python" "$SERVICES_SRC/servicectl.py" start-registry "$dir" --python "$venv/bin/python"
        ;;
    stop|status)
        # Only the standard library: works even when DIR/venv is gone.
        py="$venv/bin/python"
        [ -x "$py" ] || py="$(python_bin)"
        "$py" "$SERVICES_SRC/servicectl.py" "$cmd" "$dir"
        ;;
    check)
        [ -f "$dir/services.env" ] || { note "no $dir/services.env: run start first"; exit 1; }
        "$(python_bin)" "$SERVICES_SRC/check_services.py" "$dir/services.env"
        ;;
    *)
        usage
        ;;
esac
