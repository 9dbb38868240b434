#!/usr/bin/env bash
# Installs what building, testing, the demo and the benchmark need on
# Debian 12: the C libraries the package links (LMDB, xxHash, libcurl),
# pkg-config, GNU time (/usr/bin/time), openssl (a fast data generator for
# the benchmark), python3 and dpkg-dev (make deb). The wheel's tools come
# from PyPI, pinned (packaging/wheel/requirements.txt). Idempotent: prints
# nothing when all is there, and runs `apt-get update` only when an install
# needs it.
set -euo pipefail

PACKAGES=(liblmdb-dev libxxhash-dev libcurl4-openssl-dev pkg-config time openssl make gcc g++ binutils curl python3-venv)
# The Debian packages (make deb): dpkg-deb, dpkg-shlibdeps.
PACKAGES+=(dpkg-dev)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' ok installed$'; then
        missing+=("$p")
    fi
done
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp "${TMPDIR:-/tmp}/snapshotter-setup.XXXXXX")"
    trap 'rm -f "$log"' EXIT
    echo "setup: installing ${missing[*]}"
    install() { "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }
    update() { "${SUDO[@]}" apt-get update -q >>"$log" 2>&1; }
    # Package lists are needed first on a machine that never had them; a
    # stale list shows up as a failed install, after which we update once.
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        update || { cat "$log" >&2; echo "setup: apt-get update failed" >&2; exit 1; }
    fi
    if ! install; then
        update && install || { cat "$log" >&2; echo "setup: could not install ${missing[*]}" >&2; exit 1; }
    fi
fi

# The Swift toolchain is part of the machine, not something apt provides.
if ! command -v swift >/dev/null 2>&1 && [ ! -x /opt/swift/usr/bin/swift ]; then
    echo "setup: no Swift toolchain (expected swift on PATH or /opt/swift/usr/bin/swift)" >&2
    exit 1
fi
for lib in lmdb libxxhash libcurl; do
    pkg-config --exists "$lib" || { echo "setup: pkg-config does not know $lib" >&2; exit 1; }
done
