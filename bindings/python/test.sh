#!/usr/bin/env bash
# Python binding tests: a virtual environment, the package installed from
# this directory as a user would (pip install ./bindings/python), then pytest.
#
#   PKG_CONFIG_PATH=PREFIX/lib/pkgconfig bash bindings/python/test.sh
#
# The library under test, first match wins:
#   SNAPSHOTTER_LIBRARY   path of libsnapshotter.so
#   PREFIX                an installed prefix (sets PKG_CONFIG_PATH)
#   PKG_CONFIG_PATH       where snapshotter.pc is
# Optional:
#   SERVICES_ENV          DIR/services.env of `scripts/services.sh start-registry DIR`:
#                         adds the tests against the real registries
#                         (SNAPSHOTTER_TEST_SERVICES, as scripts/test.sh exports it,
#                         is used when SERVICES_ENV is unset)
#   PY_VENV               reuse (or create) this venv instead of a temporary one
#   PYTHON                interpreter for the venv (default python3)
#   PYTEST_ARGS           extra pytest arguments (e.g. "-k async -x")
# Exits non-zero on any failure, and also when pytest collected no test.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"

if [ -n "${PREFIX:-}" ] && [ -z "${SNAPSHOTTER_LIBRARY:-}" ]; then
    export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
fi
if [ -n "${SNAPSHOTTER_LIBRARY:-}" ]; then
    [ -e "$SNAPSHOTTER_LIBRARY" ] || { echo "python: SNAPSHOTTER_LIBRARY=$SNAPSHOTTER_LIBRARY does not exist" >&2; exit 2; }
    echo "python: library $SNAPSHOTTER_LIBRARY"
elif libdir=$(pkg-config --variable=libdir snapshotter 2>/dev/null); then
    echo "python: library from pkg-config: $libdir"
else
    echo "python: no libsnapshotter: set SNAPSHOTTER_LIBRARY, PREFIX or PKG_CONFIG_PATH (make install PREFIX=...)" >&2
    exit 2
fi
SERVICES_ENV="${SERVICES_ENV:-${SNAPSHOTTER_TEST_SERVICES:-}}"
if [ -n "$SERVICES_ENV" ]; then
    [ -r "$SERVICES_ENV" ] || { echo "python: SERVICES_ENV=$SERVICES_ENV is not readable" >&2; exit 2; }
    export SERVICES_ENV
    echo "python: registry services from $SERVICES_ENV"
else
    echo "python: SERVICES_ENV not set: the real-registry tests are skipped"
fi

# Debian's python3 has venv without ensurepip until python3-venv is installed.
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "python: installing python3-venv (apt)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-py.XXXXXX")"
trap 'rm -rf "$work"' EXIT
venv="${PY_VENV:-$work/venv}"
[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
# pip builds in the source directory (build/, *.egg-info): install from a
# copy, so the work tree stays clean.
mkdir -p "$work/pkg"
cp -r "$here/pyproject.toml" "$here/README.md" "$here/LICENSE" "$here/src" "$work/pkg/"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$work/pkg"
"$venv/bin/python" -m pip install -q --disable-pip-version-check pytest pytest-timeout
"$venv/bin/python" -c 'import snapshotter, sys; print("python:", sys.version.split()[0], "snapshotter", snapshotter.__version__, "library", snapshotter.library_version())'

# From the tests directory, so `import snapshotter` is the installed package,
# not the source tree; pytest's cache goes to the temporary directory.
cd "$here/tests"
set +e
# shellcheck disable=SC2086
"$venv/bin/python" -m pytest -q -p no:cacheprovider --timeout=120 --basetemp="$work/pytest" -rs ${PYTEST_ARGS:-} .
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "python: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
