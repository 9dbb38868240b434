#!/usr/bin/env bash
# Regenerates Sources/DragonflyAPI: the Swift code for the Dragonfly peer
# daemon's gRPC API (dfdaemon.v2, common.v2 messages, DfdaemonDownload and
# DfdaemonUpload clients) and the standard grpc.health.v1 Health client.
#
# The protos come from PyPI's `dragonfly-api` (pinned below): each `_pb2`
# module embeds its file's serialized descriptor, so
# scripts/gen_dragonfly_descriptors.py writes them (with their imports, the
# well-known types included) into one FileDescriptorSet and protoc generates
# from that (--descriptor_set_in), with the swift-protobuf and grpc-swift-2
# plugins built from pinned sources in a tools-only package outside the repo.
# The output is committed; CI does not run this (the plugins take minutes to
# build).
#
# Usage: scripts/gen-dragonfly.sh [--check] [--fresh]
#   --check  regenerate into a temporary directory and exit 1 if it differs
#            from the committed files (nothing in the repo is touched)
#   --fresh  build the venv and the plugins in a new temporary directory and
#            delete it afterwards, instead of the reusable work directory
#
# The work directory (venv, plugin package, its build) defaults to
# ${TMPDIR:-/tmp}/libsnapshotter-gen-dragonfly-<versions>, kept between runs
# so a second run does not rebuild the plugins; GEN_DRAGONFLY_WORK overrides
# it. Idempotent and deterministic: running it twice gives identical files.
# Needs python3 (with venv), the Swift toolchain and protoc (installed from
# Debian's protobuf-compiler when missing and running as root).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ------------------------------------------------------------------ pins --
DRAGONFLY_API_VERSION=2.3.8
GRPCIO_HEALTH_CHECKING_VERSION=1.85.1
PROTOBUF_PY_VERSION=7.36.2
SWIFT_PROTOBUF_VERSION=1.39.0
GRPC_SWIFT_PROTOBUF_VERSION=2.4.1

OUT_DIR="$REPO_ROOT/Sources/DragonflyAPI"
# Options of both plugins: public API (the code that uses it is in another
# target), file names without the proto path (grpc_health/v1/health.proto ->
# health.pb.swift). If the DragonflyAPI target ever turns on
# InternalImportsByDefault, add UseAccessLevelOnImports=true to both.
SWIFT_OPTS="Visibility=Public,FileNaming=DropPath"
GRPC_OPTS="Visibility=Public,Server=false,Client=true,FileNaming=DropPath"
# Messages for these files (common.proto's types are used by dfdaemon.proto).
PB_FILES=(common.proto dfdaemon.proto grpc_health/v1/health.proto)
# Services: clients only. common.proto has none (it would give an empty file).
GRPC_FILES=(dfdaemon.proto grpc_health/v1/health.proto)

check=0
fresh=0
for arg in "$@"; do
    case "$arg" in
        --check) check=1 ;;
        --fresh) fresh=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gen-dragonfly: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

ensure_swift_on_path

# ----------------------------------------------------------------- protoc --
if ! command -v protoc >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        section "installing protoc (protobuf-compiler)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends protobuf-compiler >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends protobuf-compiler >/dev/null; }
    fi
    command -v protoc >/dev/null 2>&1 || { echo "gen-dragonfly: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
fi

# ------------------------------------------------------------ work places --
key="dfapi${DRAGONFLY_API_VERSION}-pb${PROTOBUF_PY_VERSION}-health${GRPCIO_HEALTH_CHECKING_VERSION}-sp${SWIFT_PROTOBUF_VERSION}-gsp${GRPC_SWIFT_PROTOBUF_VERSION}"
CLEANUP=()
cleanup() { local d; for d in "${CLEANUP[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT
if [ "$fresh" -eq 1 ]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/libsnapshotter-gen-dragonfly.XXXXXX")"
    CLEANUP+=("$WORK")
else
    WORK="${GEN_DRAGONFLY_WORK:-${TMPDIR:-/tmp}/libsnapshotter-gen-dragonfly-$key}"
    mkdir -p "$WORK"
fi
GEN="$(mktemp -d "${TMPDIR:-/tmp}/libsnapshotter-gen-dragonfly-out.XXXXXX")"
CLEANUP+=("$GEN")
echo "gen-dragonfly: work directory $WORK"

# ---------------------------------------------------- 1. descriptor set --
section "descriptors from dragonfly-api==$DRAGONFLY_API_VERSION"
VENV="$WORK/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# --no-deps: only protobuf is needed to load the _pb2 modules (not grpcio).
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
    "dragonfly-api==$DRAGONFLY_API_VERSION" \
    "grpcio-health-checking==$GRPCIO_HEALTH_CHECKING_VERSION" \
    "protobuf==$PROTOBUF_PY_VERSION"
DESCRIPTORS="$GEN/dragonfly.protoset"
"$VENV/bin/python" "$REPO_ROOT/scripts/gen_dragonfly_descriptors.py" --health "$DESCRIPTORS"

# ------------------------------------------------------------- 2. plugins --
section "protoc plugins (swift-protobuf $SWIFT_PROTOBUF_VERSION, grpc-swift-protobuf $GRPC_SWIFT_PROTOBUF_VERSION)"
TOOLS="$WORK/tools"
mkdir -p "$TOOLS"
manifest="$(cat <<EOF
// swift-tools-version:6.0
// Tools-only package: builds the protoc plugins for scripts/gen-dragonfly.sh.
import PackageDescription

let package = Package(
    name: "gen-dragonfly-tools",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "$SWIFT_PROTOBUF_VERSION"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "$GRPC_SWIFT_PROTOBUF_VERSION"),
    ],
    targets: []
)
EOF
)"
if [ ! -f "$TOOLS/Package.swift" ] || [ "$(cat "$TOOLS/Package.swift")" != "$manifest" ]; then
    printf '%s\n' "$manifest" >"$TOOLS/Package.swift"
fi
# One --product per command (SwiftPM takes only the last of several).
for product in protoc-gen-swift protoc-gen-grpc-swift-2; do
    start="$(now_ns)"
    (cd "$TOOLS" && swift build -c release --product "$product" >"$WORK/build-$product.log" 2>&1) \
        || { cat "$WORK/build-$product.log" >&2; echo "gen-dragonfly: building $product failed" >&2; exit 1; }
    echo "$product: $(tail -n 1 "$WORK/build-$product.log") [$(elapsed_ms "$start" "$(now_ns)") ms]"
done
BIN="$(cd "$TOOLS" && swift build -c release --show-bin-path)"

# ------------------------------------------------------------ 3. generate --
section "generating ($(protoc --version))"
NEW="$GEN/DragonflyAPI"
mkdir -p "$NEW"
protoc --descriptor_set_in="$DESCRIPTORS" \
    --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
    --swift_out="$NEW" --swift_opt="$SWIFT_OPTS" \
    "${PB_FILES[@]}"
protoc --descriptor_set_in="$DESCRIPTORS" \
    --plugin=protoc-gen-grpc-swift-2="$BIN/protoc-gen-grpc-swift-2" \
    --grpc-swift-2_out="$NEW" --grpc-swift-2_opt="$GRPC_OPTS" \
    "${GRPC_FILES[@]}"

# ---------------------------------------------------------------- summary --
section "changes in ${OUT_DIR#"$REPO_ROOT"/}"
mkdir -p "$OUT_DIR"
changed=0
while IFS= read -r name; do
    old="$OUT_DIR/$name" new="$NEW/$name"
    if [ ! -e "$old" ]; then
        printf '  added      %-24s %6d lines\n' "$name" "$(wc -l <"$new")"; changed=1
    elif [ ! -e "$new" ]; then
        printf '  removed    %-24s %6d lines\n' "$name" "$(wc -l <"$old")"; changed=1
    elif cmp -s "$old" "$new"; then
        printf '  unchanged  %-24s %6d lines\n' "$name" "$(wc -l <"$new")"
    else
        counts="$(diff "$old" "$new" | awk '/^>/ { a++ } /^</ { d++ } END { printf "+%d -%d", a, d }')" || true
        printf '  changed    %-24s %6d lines (%s)\n' "$name" "$(wc -l <"$new")" "$counts"; changed=1
    fi
done < <( { ls -A "$OUT_DIR"; ls -A "$NEW"; } | LC_ALL=C sort -u)

if [ "$check" -eq 1 ]; then
    if [ "$changed" -eq 1 ]; then
        echo "gen-dragonfly: Sources/DragonflyAPI is out of date; run scripts/gen-dragonfly.sh" >&2
        exit 1
    fi
    echo "gen-dragonfly: up to date"
    exit 0
fi

if [ "$changed" -eq 1 ]; then
    # The directory holds generated files only: replace it whole.
    find "$OUT_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    cp "$NEW"/* "$OUT_DIR"/
    echo "gen-dragonfly: wrote $(find "$OUT_DIR" -mindepth 1 -maxdepth 1 | wc -l) files to ${OUT_DIR#"$REPO_ROOT"/}"
else
    echo "gen-dragonfly: no changes"
fi
