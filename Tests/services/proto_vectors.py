#!/usr/bin/env python3
"""Encodings of the Dragonfly daemon's messages by the official stubs
(dragonfly-api's dfdaemon.v2 / common.v2, grpcio-health-checking), the
reference for the hand-written codec (DaemonMessages.swift); run with the
services venv's python (SERVICES_PYTHON).

  proto_vectors.py encode JSON   JSON is a list of requests ({"kind": "upload" |
                                 "download" | "health", ...}, the fields as
                                 DaemonMessages takes them); prints a JSON list
                                 of their serializations in hex
  proto_vectors.py responses     prints a JSON list of responses built with the
                                 stubs (some with unknown fields appended or
                                 two messages concatenated): name, kind
                                 ("download" | "health"), hex, and what the
                                 official parser decodes ("decoded")
  proto_vectors.py corpus DIR    writes the responses as the fuzz target
                                 daemon-proto's seeds (first byte 0: download
                                 response, 1: health response)
"""
import hashlib
import json
import os
import sys

from dragonfly_api import common_pb2, dfdaemon_pb2
from google.protobuf import duration_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2

U64 = (1 << 64) - 1


def object_storage(o):
    # As DaemonMessages (and the gRPC code before it) sends them: region and
    # endpoint always (the daemon requires them present), a credential only
    # when not empty. A set optional field is serialized even when empty.
    keep = ("region", "endpoint")
    return common_pb2.ObjectStorage(**{k: v for k, v in o.items() if k in keep or v != ""})


def encode(case):
    kind = case["kind"]
    if kind == "health":
        m = health_pb2.HealthCheckRequest(service=case["service"])
    elif kind == "upload":
        m = dfdaemon_pb2.UploadPersistentTaskRequest(
            url=case["url"], object_storage=object_storage(case["object_storage"]), path=case["path"],
            persistent_replica_count=case["replicas"])
        if case["ttl_seconds"] != 0:
            m.ttl.CopyFrom(duration_pb2.Duration(seconds=case["ttl_seconds"]))
    elif kind == "download":
        m = dfdaemon_pb2.DownloadPersistentTaskRequest(
            url=case["url"], object_storage=object_storage(case["object_storage"]), persistent=case["persistent"],
            output_path=case["output_path"], force_hard_link=case["force_hard_link"],
            need_piece_content=case["need_piece_content"])
    else:
        raise SystemExit("unknown kind %r" % kind)
    return m.SerializeToString().hex()


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([v & 0x7F | 0x80])
        v >>= 7
    return out + bytes([v])


def tag(field, wire):
    return varint(field << 3 | wire)


# Fields no version of the messages declares, one of each skippable wire type.
UNKNOWN = (tag(100, 0) + varint(U64) + tag(101, 1) + b"\x01" * 8 + tag(102, 2) + varint(3) + b"abc"
           + tag(103, 5) + b"\x02" * 4 + tag(536870911, 2) + varint(0))


def started(n=None):
    s = dfdaemon_pb2.DownloadPersistentTaskStartedResponse()
    if n is not None:
        s.content_length = n
    return dfdaemon_pb2.DownloadPersistentTaskResponse(download_persistent_task_started_response=s)


def finished(**piece):
    f = dfdaemon_pb2.DownloadPieceFinishedResponse()
    if piece:
        f.piece.CopyFrom(common_pb2.Piece(**piece))
    return dfdaemon_pb2.DownloadPersistentTaskResponse(download_piece_finished_response=f)


def full_piece(length):
    return dict(number=3, parent_id="peer-1", offset=4 << 20, length=length, digest="crc32:5d7f3e1a",
                content=b"not asked for", traffic_type=common_pb2.REMOTE_PEER,
                cost=duration_pb2.Duration(seconds=1, nanos=5),
                created_at=timestamp_pb2.Timestamp(seconds=1764431829, nanos=7))


def ids(m):
    m.host_id, m.task_id, m.peer_id = "host-é", "task-1", "peer-1"
    return m


def download_responses():
    # A piece finished with unknown fields inside common.v2.Piece.
    inner = common_pb2.Piece(length=9).SerializeToString() + UNKNOWN
    fin = tag(1, 2) + varint(len(inner)) + inner
    piece_with_unknown = tag(5, 2) + varint(len(fin)) + fin
    return [
        ("started", started(123456789012).SerializeToString(), ("started", 123456789012)),
        ("started-empty", started().SerializeToString(), ("started", 0)),
        ("started-max", started(U64).SerializeToString(), ("started", U64)),
        ("started-with-ids", ids(started(42)).SerializeToString(), ("started", 42)),
        ("piece-all-fields", ids(finished(**full_piece(4 << 20))).SerializeToString(), ("piece", 4 << 20)),
        ("piece-no-piece", finished().SerializeToString(), ("piece", 0)),
        ("piece-no-length", finished(number=1, digest="d").SerializeToString(), ("piece", 0)),
        ("ids-only", ids(dfdaemon_pb2.DownloadPersistentTaskResponse()).SerializeToString(), ("other", 0)),
        ("empty", b"", ("other", 0)),
        ("unknown-only", UNKNOWN, ("other", 0)),
        ("started-unknown", started(77).SerializeToString() + UNKNOWN, ("started", 77)),
        ("unknown-piece", UNKNOWN + piece_with_unknown + UNKNOWN, ("piece", 9)),
        # Two messages concatenated parse as one, merged: the last scalar
        # wins, a message field seen twice is merged, the last oneof member wins.
        ("merge-piece", finished(length=5, number=1).SerializeToString() + finished(number=2).SerializeToString(), ("piece", 5)),
        ("merge-piece-length", finished(length=5).SerializeToString() + finished(length=6).SerializeToString(), ("piece", 6)),
        ("merge-started", started(1).SerializeToString() + started().SerializeToString(), ("started", 1)),
        ("oneof-started-then-piece", started(7).SerializeToString() + finished(length=8).SerializeToString(), ("piece", 8)),
        ("oneof-piece-then-started", finished(length=8).SerializeToString() + started().SerializeToString(), ("started", 0)),
        ("oneof-piece-started-piece", finished(length=8).SerializeToString() + started(3).SerializeToString()
         + finished().SerializeToString(), ("piece", 0)),
    ]


def health_responses():
    h = health_pb2.HealthCheckResponse
    return [
        ("serving", h(status=h.SERVING).SerializeToString(), ("health", 1)),
        ("not-serving", h(status=h.NOT_SERVING).SerializeToString(), ("health", 2)),
        ("service-unknown", h(status=h.SERVICE_UNKNOWN).SerializeToString(), ("health", 3)),
        ("unknown", h(status=h.UNKNOWN).SerializeToString(), ("health", 0)),
        ("enum-7", h(status=7).SerializeToString(), ("health", 7)),
        ("enum-negative", h(status=-1).SerializeToString(), ("health", U64)),
        ("serving-unknown-fields", UNKNOWN + h(status=h.SERVING).SerializeToString() + UNKNOWN, ("health", 1)),
        ("serving-twice", h(status=h.NOT_SERVING).SerializeToString() + h(status=h.SERVING).SerializeToString(), ("health", 1)),
    ]


def decoded_download(data):
    m = dfdaemon_pb2.DownloadPersistentTaskResponse()
    m.ParseFromString(data)
    which = m.WhichOneof("response")
    if which == "download_persistent_task_started_response":
        return ("started", m.download_persistent_task_started_response.content_length)
    if which == "download_piece_finished_response":
        return ("piece", m.download_piece_finished_response.piece.length)
    return ("other", 0)


def decoded_health(data):
    m = health_pb2.HealthCheckResponse()
    m.ParseFromString(data)
    return ("health", m.status & U64)


def responses():
    out = []
    for kind, cases, decode in (("download", download_responses(), decoded_download),
                                ("health", health_responses(), decoded_health)):
        for name, data, expected in cases:
            got = decode(data)
            if got != expected:
                raise SystemExit("%s: the official parser decodes %r, expected %r" % (name, got, expected))
            out.append({"name": name, "kind": kind, "hex": data.hex(), "decoded": {"kind": got[0], "value": str(got[1])}})
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "encode":
        print(json.dumps([encode(c) for c in json.loads(sys.argv[2])]))
    elif len(sys.argv) == 2 and sys.argv[1] == "responses":
        print(json.dumps(responses()))
    elif len(sys.argv) == 3 and sys.argv[1] == "corpus":
        os.makedirs(sys.argv[2], exist_ok=True)
        for r in responses():
            data = bytes([0 if r["kind"] == "download" else 1]) + bytes.fromhex(r["hex"])
            with open(os.path.join(sys.argv[2], hashlib.sha256(data).hexdigest()[:16]), "wb") as f:
                f.write(data)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
