#!/usr/bin/env python3
"""Writes the FileDescriptorSet that scripts/gen-dragonfly.sh feeds to protoc.

The official Dragonfly protos (dragonflyoss/api) are published on PyPI as
`dragonfly-api`; each generated `_pb2` module embeds its file's serialized
FileDescriptorProto. This collects the files the Swift client needs --
common.proto, dfdaemon.proto and, with --health, the standard
grpc/health/v1 health.proto from `grpcio-health-checking` -- together with
every file they import (the well-known types included), dependencies first,
into one google.protobuf.FileDescriptorSet.

Usage: gen_dragonfly_descriptors.py [--health] OUTPUT

Run it with the interpreter of a venv holding the pinned packages. The output
depends only on those packages' embedded descriptors: it is byte-identical
from run to run.
"""

import argparse
import sys

from google.protobuf import descriptor_pb2


def _roots(with_health):
    from dragonfly_api import common_pb2, dfdaemon_pb2

    roots = [common_pb2.DESCRIPTOR, dfdaemon_pb2.DESCRIPTOR]
    if with_health:
        from grpc_health.v1 import health_pb2

        roots.append(health_pb2.DESCRIPTOR)
    return roots


def _ordered(roots):
    """The roots and all their imports, each after everything it imports."""
    seen = set()
    ordered = []

    def visit(fd):
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            visit(dep)
        ordered.append(fd)

    for fd in roots:
        visit(fd)
    return ordered


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--health", action="store_true",
                        help="also include grpc_health/v1/health.proto")
    parser.add_argument("output", help="where to write the FileDescriptorSet")
    args = parser.parse_args(argv)

    fds = descriptor_pb2.FileDescriptorSet()
    for fd in _ordered(_roots(args.health)):
        proto = fds.file.add()
        proto.ParseFromString(fd.serialized_pb)
        if proto.name != fd.name:
            raise SystemExit(f"descriptor name mismatch: {proto.name} != {fd.name}")
        print(f"  {fd.name} ({fd.package or '-'}, {len(fd.serialized_pb)} bytes)",
              file=sys.stderr)

    with open(args.output, "wb") as out:
        out.write(fds.SerializeToString(deterministic=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
