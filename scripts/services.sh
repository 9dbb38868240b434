#!/usr/bin/env bash
# Real services for the test suite, on 127.0.0.1 only, all state in one DIR.
#
#   scripts/services.sh start-registry DIR   install what is missing, start the
#                                            registry services, write DIR/services.env
#   scripts/services.sh start-content DIR    install what is missing, start the
#                                            content services (S3, Dragonfly), same file
#   scripts/services.sh start DIR            every service group (registry, content)
#   scripts/services.sh stop DIR             stop everything started in DIR
#                                            (SIGTERM, SIGKILL after 5 s)
#   scripts/services.sh status DIR           each recorded process, running or not
#   scripts/services.sh check DIR            run Tests/services/test_services.py and
#                                            test_content.py (pytest) for the groups started
#   scripts/services.sh install DIR          only install (apt packages, DIR/venv)
#
# Starting what is already running, or stopping what is stopped, does nothing;
# a group with a dead process is started afresh, except that start-content
# only restarts a dead Dragonfly stand-in (same socket, same control port).
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
# The content services are:
#
#   moto       Tests/services/s3_server.py: moto's S3 server with bucket
#              "snapshots" and strict SigV4 checking (an IAM user's key;
#              a wrong secret gets 403 SignatureDoesNotMatch). In memory:
#              a restart loses the objects and makes a new key.
#   s3-proxy   Tests/services/fault_proxy.py in front of moto (POST /mode
#              on its control port: cut_after, reset, blackhole, delay_ms, ...)
#   dfdaemon   Tests/services/dfdaemon_standin.py: Dragonfly's dfdaemon.v2
#              DfdaemonDownload (UploadPersistentTask, DownloadPersistentTask)
#              and grpc.health.v1 on DIR/dfdaemon.sock, storing in moto through
#              the request's object_storage; faults and counters on its HTTP
#              control port (its docstring has the API and every behaviour)
#
# DIR/services.env (KEY=VALUE lines, safe to `set -a; . DIR/services.env`)
# holds the variables of every group started (each group also has its own
# file, DIR/registry.env and DIR/content.env):
#   SERVICES_DIR SERVICES_LOGS
#   REGISTRY_PLAIN                       http://127.0.0.1:PORT
#   REGISTRY_TLS REGISTRY_TLS_CA         https://localhost:PORT, DIR/ca.pem
#   REGISTRY_TLS_USER REGISTRY_TLS_PASSWORD
#   REGISTRY_TOKEN                       http://127.0.0.1:PORT
#   REGISTRY_TOKEN_REALM REGISTRY_TOKEN_SERVICE  (realm https://localhost:PORT/token, CA REGISTRY_TLS_CA)
#   REGISTRY_TOKEN_USER REGISTRY_TOKEN_PASSWORD                 (push + pull)
#   REGISTRY_TOKEN_READER REGISTRY_TOKEN_READER_PASSWORD        (pull only)
#   REGISTRY_PROXY REGISTRY_PROXY_CONTROL  proxy to plain; POST /mode there
#   REGISTRY_HOSTILE                     http://127.0.0.1:PORT
#   REGISTRY_HOSTILE_GOOD_MANIFEST_DIGEST REGISTRY_HOSTILE_GOOD_CONFIG_DIGEST
#   REGISTRY_HOSTILE_RECORDER            http://127.0.0.1:PORT (another origin:
#                                        GET /recorded, POST /recorded/reset)
#   REGISTRY_HOSTILE_REALM_SECRET        the file the filerealm challenge names
#   SERVICES_PYTHON                      the venv's python (boto3, grpcio, ...)
#   S3_ENDPOINT                          http://127.0.0.1:PORT (moto)
#   S3_REGION S3_BUCKET                  us-east-1, snapshots
#   S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY  the IAM user's key (SigV4, strict)
#   S3_PROXY S3_PROXY_CONTROL            proxy to moto; POST /mode there
#   DRAGONFLY_ENDPOINT                   unix://DIR/dfdaemon.sock
#   DRAGONFLY_SOCKET                     DIR/dfdaemon.sock
#   DRAGONFLY_TCP_ENDPOINT               127.0.0.1:PORT: the same daemon over TCP
#   DRAGONFLY_CONTROL                    http://127.0.0.1:PORT: POST /fault,
#                                        /settings, /reset, /cache/clear;
#                                        GET /counts, /tasks
#   DRAGONFLY_CACHE_DIR                  the stand-in's task files
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
# missing); pip into DIR/venv, or into $SERVICES_VENV when set (a venv kept
# across runs saves the pip time): `cryptography` for the registry group;
# moto[s3,server], boto3, grpcio, grpcio-health-checking, dragonfly-api and
# protobuf for the content group; pytest (pinned) for both, for check. Python is $PYTHON, else python3. Measured:
# the first start-registry on a machine takes ~10 s (apt + pip), the first
# start-content ~60 s (pip), later ones ~1 s and ~2.5 s.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_SRC="$REPO_ROOT/Tests/services"
# pytest runs `check`: pinned, so a kept venv checks with the version the
# checks were written for.
PYTEST_PY=('pytest==9.0.3')
PYTEST_IMPORTS='import importlib.metadata as m; assert m.version("pytest") == "9.0.3"'
REGISTRY_PY=(cryptography "${PYTEST_PY[@]}")
REGISTRY_IMPORTS="import cryptography; $PYTEST_IMPORTS"
# dragonfly-api is pinned (the protocol the Swift codec is checked against,
# through proto_vectors.py), moto too (its quirks are what the tests are
# written against).
CONTENT_PY=('moto[s3,server]==5.2.5' boto3 grpcio grpcio-health-checking 'dragonfly-api==2.3.8' protobuf "${PYTEST_PY[@]}")
CONTENT_IMPORTS='import importlib.metadata as m
for p in ("boto3", "flask", "flask-cors", "grpcio", "grpcio-health-checking", "protobuf"): m.version(p)
assert m.version("dragonfly-api") == "2.3.8" and m.version("moto") == "5.2.5"'"
$PYTEST_IMPORTS"

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

# ensure_venv VENV IMPORTS REQUIREMENT...: a venv at VENV in which the Python
# code IMPORTS runs; pip installs the requirements when it does not.
ensure_venv() {
    local venv="$1" imports="$2" py
    shift 2
    py="$(python_bin)"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$imports" 2>/dev/null; then
        return 0
    fi
    if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        mkdir -p "$(dirname "$venv")"
        if ! "$py" -m venv --help >/dev/null 2>&1 || ! "$py" -c 'import ensurepip' 2>/dev/null; then
            apt_install python3-venv
        fi
        note "creating $venv"
        rm -rf "$venv"
        "$py" -m venv "$venv"
    fi
    note "pip install into $venv: $*"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@"
}

install_registry() {
    apt_install docker-registry apache2-utils openssl
    ensure_venv "$venv" "$REGISTRY_IMPORTS" "${REGISTRY_PY[@]}"
}

install_content() {
    ensure_venv "$venv" "$CONTENT_IMPORTS" "${CONTENT_PY[@]}"
}

servicectl() {
    "$venv/bin/python" "$SERVICES_SRC/servicectl.py" "$1" "$dir" --python "$venv/bin/python"
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
        install_registry
        install_content
        ;;
    start-registry)
        install_registry
        servicectl start-registry
        ;;
    start-content)
        install_content
        servicectl start-content
        ;;
    start)
        install_registry
        install_content
        servicectl start-registry
        servicectl start-content
        ;;
    stop|status)
        # Only the standard library: works even when DIR/venv is gone.
        py="$venv/bin/python"
        [ -x "$py" ] || py="$(python_bin)"
        "$py" "$SERVICES_SRC/servicectl.py" "$cmd" "$dir"
        ;;
    check)
        [ -f "$dir/services.env" ] || { note "no $dir/services.env: run start first"; exit 1; }
        ensure_venv "$venv" "$PYTEST_IMPORTS" "${PYTEST_PY[@]}"
        modules=()
        [ -f "$dir/registry.env" ] && modules+=("$SERVICES_SRC/test_services.py")
        [ -f "$dir/content.env" ] && modules+=("$SERVICES_SRC/test_content.py")
        [ ${#modules[@]} -gt 0 ] || { note "no group started in $dir"; exit 1; }
        # No cache or bytecode written into the source tree.
        SNAPSHOTTER_TEST_SERVICES="$dir/services.env" PYTHONDONTWRITEBYTECODE=1 \
            "$venv/bin/python" -m pytest -q -p no:cacheprovider -rfE "${modules[@]}"
        ;;
    *)
        usage
        ;;
esac
