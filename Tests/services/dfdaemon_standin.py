#!/usr/bin/env python3
"""A stand-in for Dragonfly's peer daemon (dfdaemon v1.2) for the tests.

A gRPC server on a Unix socket (and on 127.0.0.1, --tcp-port), built on the
official `dragonfly-api` stubs (PyPI dragonfly-api==2.3.8), that serves
`dfdaemon.v2.DfdaemonDownload`
(UploadPersistentTask and DownloadPersistentTask; every other method answers
UNIMPLEMENTED) and `grpc.health.v1.Health` (SERVING for "" and for
"dfdaemon.v2.DfdaemonDownload"). Objects live in an S3-compatible server
(moto in the tests), reached with boto3 through the request's
`object_storage`. See ../../../shared/design/DRAGONFLY.md; what follows is
the behaviour of the daemon's source (client v1.2 and later) as reproduced
here, in the order the daemon checks things.

Both calls
  - `object_storage` missing: INVALID_ARGUMENT "missing object storage";
    its `region` or `endpoint` missing: INVALID_ARGUMENT "missing object
    storage region" / "... endpoint". An empty string counts as present.
  - Task id = hex(sha256(url + region + endpoint + "PERSISTENT")).
  - URL `<provider>://<bucket>/<key>`; every provider (s3 oss obs cos gs abs)
    is served by the same S3 API here. Another scheme, or no bucket or key:
    INTERNAL. The endpoint must carry its scheme (OpenDAL prepends https://
    to one without, as done here); an empty endpoint (the daemon would go to
    AWS) or one that is not loopback: INTERNAL, nothing is contacted.
  - No access key in object_storage: requests are sent unsigned.

UploadPersistentTask
  - HEAD the object: there -> ALREADY_EXISTS "persistent task already
    exists" (at once; the local file is not even looked at); an S3 error
    other than 404 (e.g. 403 with a wrong secret) -> INTERNAL.
  - Stat `path` (missing -> INTERNAL), import it into the task cache (hard
    link, copy across file systems), PUT it, and answer common.v2.PersistentTask
    {id, persistent_replica_count as asked, current_persistent_replica_count 1,
    current_replica_count 1, content_length, piece_count, state "Succeeded",
    ttl as asked (24 h when unset), created_at, updated_at}. A failed PUT
    -> INTERNAL. (Replication to other peers does not exist here.)

DownloadPersistentTask (server streaming)
  - HEAD the object. Missing -> INTERNAL "persistent task not found: ..."
    (v1.2; later daemons answer NOT_FOUND: settings missing_code switches);
    any other error -> INTERNAL. All before any message.
  - Piece length = floor(content_length / 500) rounded up to a power of two,
    clamped to [4 MiB, 64 MiB]; pieces numbered from 0, the last one short.
  - The task file (cache/persistent-tasks/<id[:3]>/<id>) is created at its
    full length (fallocate: zeros) and, with `output_path`, hard-linked to
    it BEFORE the first message. If that link fails (parent directory
    missing, `output_path` exists and is another inode -- even with
    `overwrite` -- or another file system) and `force_hard_link` is set:
    INTERNAL before any message. Without `force_hard_link` the failure is
    ignored and the file is copied at the end (below).
  - Messages: one `download_persistent_task_started_response`
    {content_length}, then one `download_piece_finished_response` per piece
    {number, offset, length, digest "crc32:<decimal>" (IEEE, zlib.crc32),
    traffic_type BACK_TO_SOURCE (fetched from S3) or LOCAL_PEER (from the
    task cache), cost, created_at, content when need_piece_content}; every
    message carries host_id "127.0.0.1-<hostname>", task_id and peer_id
    "127.0.0.1-<hostname>-<uuid4>". The task file is written as the data
    arrives, so the output grows (over zeros) while the stream runs; only the
    end of the stream with OK means the file is whole. Content length 0: the
    started message and no piece.
  - After the last piece, without force_hard_link: an `output_path` that is
    the task file stays; another existing file is replaced when `overwrite`,
    else INTERNAL "output path ... is already exists"; a missing one is
    copied. Then `digest` (crc32:<decimal>, sha256:<hex>, sha512:<hex>; any
    other algorithm is an error) is checked against the output. Errors here
    come as INTERNAL after all the piece messages.
  - Cache: a finished task is served from the cache (LOCAL_PEER) and the
    output hard-linked to the same inode; a failed or cut download keeps
    its finished pieces, so a retry fetches only the others and links the
    same file again. An upload puts the file in the cache too (as the real
    daemon does). Concurrent downloads of one task wait for the one that
    fetches it. The cache is emptied at start (the daemon's storage.keep
    false) and by POST /cache/clear (a machine that never saw the task).

Faults and counters: an HTTP control API on 127.0.0.1 (--control-port, 0
picks one; "SOCKET CONTROL_PORT" goes to --port-file once serving):

    GET  /fault      the current fault
    POST /fault      {"mode": "none" | "cut_after_pieces" | "corrupt" | "die" | "delay",
                      "pieces": N, "delay_ms": N, "times": N}
                     applies to the next DownloadPersistentTask calls (`times`
                     of them, 0 = until set to "none"):
                       cut_after_pieces  after N piece messages (0: right after
                                         the started one) the stream ends with
                                         UNAVAILABLE; the pieces written stay
                                         in the cache
                       corrupt           one byte in the middle of every piece
                                         is wrong in the task file (so in the
                                         output) and in `content`; the digests
                                         sent are those of the wrong bytes and
                                         the stream ends OK; the task is then
                                         dropped from the cache so that a
                                         retry without the fault is clean
                       die               after N piece messages (default 1)
                                         the process exits (os._exit): the
                                         socket file stays, connecting to it
                                         is refused. `scripts/services.sh
                                         start-content DIR` starts it again
                                         (same socket, same control port)
                       delay             only the delay
                       huge_piece_length every piece message says length
                                         2^63 + its real length (a hostile
                                         number; the bytes are right)
                     delay_ms (any mode) sleeps before the started message
                     and before fetching each piece (so the output file lags
                     the stream), and before the answer of an upload
    GET  /settings   POST /settings {"missing_code": "INTERNAL" | "NOT_FOUND",
                     "cache": true | false, "order": "sequential" | "reverse" | "shuffled"}
                     cache false: no cache at all (every download from S3, as
                     on a new machine); order: the order pieces are fetched
                     and reported (the real daemon fetches them concurrently,
                     so out of order)
    GET  /counts     {"methods": {<method>: calls}, "results": {<method>: {<code>: n}},
                      "downloads_by_url": {...}, "uploads_by_url": {...},
                      "s3": {"head": n, "get": n, "put": n}}
                     (<method> is the last part of the gRPC path: "Check" for
                     the health check, "StatPersistentTask", ...)
    GET  /tasks      the cache: {task_id: {state, content_length, pieces_done, url}}
    POST /reset      fault none, counters zero, default settings (not the cache)
    POST /cache/clear
    GET  /healthz    200

SIGTERM and SIGINT are unblocked at start (a parent started with
Foundation's Process on Linux blocks them) and stop the server, removing the
socket.
"""

import argparse
import collections
import errno
import hashlib
import http.server
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
import zlib

signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

from concurrent import futures  # noqa: E402

import boto3  # noqa: E402
import grpc  # noqa: E402
from botocore import UNSIGNED  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402
from dragonfly_api import common_pb2, dfdaemon_pb2, dfdaemon_pb2_grpc  # noqa: E402
from google.protobuf import duration_pb2, timestamp_pb2  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

SERVICE = "dfdaemon.v2.DfdaemonDownload"
PROVIDERS = ("s3", "oss", "obs", "cos", "gs", "abs")
MAX_PIECE_COUNT = 500
MIN_PIECE_LENGTH = 4 << 20
MAX_PIECE_LENGTH = 64 << 20
DEFAULT_TTL_S = 24 * 3600
CHUNK = 1 << 20
WAIT_FOR_OTHER_S = 600.0
FAULT_MODES = ("none", "cut_after_pieces", "corrupt", "die", "delay", "huge_piece_length")
ORDERS = ("sequential", "reverse", "shuffled")
MISSING_CODES = {"INTERNAL": grpc.StatusCode.INTERNAL, "NOT_FOUND": grpc.StatusCode.NOT_FOUND}


def log(**fields):
    print(json.dumps({"time": time.strftime("%H:%M:%S"), **fields}), flush=True)


# ------------------------------------------------------------------- rules --

def persistent_task_id(url, region, endpoint):
    return hashlib.sha256((url + region + endpoint + "PERSISTENT").encode()).hexdigest()


def piece_length(content_length):
    """The daemon's OptimizeByFileLength: (content_length / 500) truncated,
    next power of two (of 0 is 1), clamped to [4 MiB, 64 MiB]."""
    n = content_length // MAX_PIECE_COUNT
    p = 1 if n <= 1 else 1 << (n - 1).bit_length()
    if p >= MAX_PIECE_LENGTH:
        return MAX_PIECE_LENGTH
    if p <= MIN_PIECE_LENGTH:
        return MIN_PIECE_LENGTH
    return p


def piece_list(content_length, plen):
    """[(number, offset, length)], the last piece short; none for 0 bytes."""
    return [(i, off, min(plen, content_length - off))
            for i, off in enumerate(range(0, content_length, plen))]


class Fail(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


class Cancelled(Exception):
    """The client went away (or the deadline passed) mid-stream."""


def require_object_storage(request):
    if not request.HasField("object_storage"):
        raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "missing object storage")
    storage = request.object_storage
    if not storage.HasField("region"):
        raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "missing object storage region")
    if not storage.HasField("endpoint"):
        raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "missing object storage endpoint")
    return storage


def parse_url(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme not in PROVIDERS:
        raise Fail(grpc.StatusCode.INTERNAL, "invalid uri %s: unsupported scheme %r (one of %s)" % (
            url, u.scheme, ", ".join(PROVIDERS)))
    key = u.path.lstrip("/")
    if not u.netloc or not key:
        raise Fail(grpc.StatusCode.INTERNAL, "invalid uri %s: want <provider>://<bucket>/<key>" % url)
    return u.netloc, urllib.parse.unquote(key)


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def duration(seconds):
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def now_ts():
    t = timestamp_pb2.Timestamp()
    t.GetCurrentTime()
    return t


# ------------------------------------------------------------------- state --

class State:
    """Fault, settings and counters; switched from the control API."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.fault = {"mode": "none", "pieces": 0, "delay_ms": 0, "times": 0}
            self.settings = {"missing_code": "INTERNAL", "cache": True, "order": "sequential"}
            self.methods = collections.Counter()
            self.results = collections.defaultdict(collections.Counter)
            self.by_url = {"download": collections.Counter(), "upload": collections.Counter()}
            self.s3 = collections.Counter()

    def set_fault(self, spec):
        mode = spec.get("mode", "none")
        if mode not in FAULT_MODES:
            raise ValueError("mode must be one of %s" % ", ".join(FAULT_MODES))
        pieces = int(spec.get("pieces", 1 if mode == "die" else 0))
        delay_ms, times = int(spec.get("delay_ms", 0)), int(spec.get("times", 0))
        if min(pieces, delay_ms, times) < 0:
            raise ValueError("pieces, delay_ms and times are >= 0")
        with self.lock:
            self.fault = {"mode": mode, "pieces": pieces, "delay_ms": delay_ms, "times": times}
            return dict(self.fault)

    def set_settings(self, spec):
        with self.lock:
            s = dict(self.settings)
            for k, v in spec.items():
                if k == "missing_code" and v in MISSING_CODES:
                    s[k] = v
                elif k == "cache" and isinstance(v, bool):
                    s[k] = v
                elif k == "order" and v in ORDERS:
                    s[k] = v
                else:
                    raise ValueError("bad setting %s=%r" % (k, v))
            self.settings = s
            return dict(s)

    def take_fault(self):
        """The fault for one download; counts down `times`."""
        with self.lock:
            f = dict(self.fault)
            if f["mode"] != "none" and self.fault["times"] > 0:
                self.fault["times"] -= 1
                if self.fault["times"] == 0:
                    self.fault = {"mode": "none", "pieces": 0, "delay_ms": 0, "times": 0}
            return f

    def delay_ms(self):
        with self.lock:
            return self.fault["delay_ms"]

    def get_settings(self):
        with self.lock:
            return dict(self.settings)

    def count_method(self, name):
        with self.lock:
            self.methods[name] += 1

    def count_result(self, name, code):
        with self.lock:
            self.results[name][code] += 1

    def count_url(self, kind, url):
        with self.lock:
            self.by_url[kind][url] += 1

    def count_s3(self, op):
        with self.lock:
            self.s3[op] += 1

    def counts(self):
        with self.lock:
            return {"methods": dict(self.methods),
                    "results": {k: dict(v) for k, v in self.results.items()},
                    "downloads_by_url": dict(self.by_url["download"]),
                    "uploads_by_url": dict(self.by_url["upload"]),
                    "s3": dict(self.s3)}


class Task:
    def __init__(self, tid, path, url, content_length):
        self.id, self.path, self.url = tid, path, url
        self.content_length = content_length
        self.piece_length = piece_length(content_length)
        self.state = "Running"
        self.done = set()  # piece numbers whose bytes are in the task file


class TaskCache:
    """The daemon's persistent-task storage: one file per task, pieces
    marked done as they are written."""

    def __init__(self, root):
        self.root = root
        shutil.rmtree(root, ignore_errors=True)  # storage.keep = false
        os.makedirs(root, exist_ok=True)
        self.cond = threading.Condition()
        self.tasks = {}

    def path(self, tid):
        return os.path.join(self.root, "persistent-tasks", tid[:3], tid)

    def _create_file(self, task):
        os.makedirs(os.path.dirname(task.path), exist_ok=True)
        try:
            os.unlink(task.path)
        except FileNotFoundError:
            pass
        fd = os.open(task.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if task.content_length:
                try:
                    os.posix_fallocate(fd, 0, task.content_length)
                except OSError:
                    os.ftruncate(fd, task.content_length)
        finally:
            os.close(fd)

    def acquire(self, tid, url, content_length, fresh):
        """(task, writer): writer False = a finished task to serve from the
        cache; True = this call fetches the missing pieces and must call
        release(). Waits while another call fetches the task."""
        deadline = time.monotonic() + WAIT_FOR_OTHER_S
        with self.cond:
            while True:
                task = self.tasks.get(tid)
                if task is None or task.state != "Running":
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fail(grpc.StatusCode.INTERNAL, "persistent task %s is still being downloaded" % tid)
                self.cond.wait(left)
            stale = task is not None and (fresh or task.content_length != content_length
                                          or not os.path.exists(task.path))
            if task is not None and not stale and task.state == "Succeeded":
                return task, False
            if task is None or stale:
                task = Task(tid, self.path(tid), url, content_length)
                self._create_file(task)
                self.tasks[tid] = task
            task.state = "Running"
            return task, True

    def release(self, task, ok, evict=False):
        with self.cond:
            if self.tasks.get(task.id) is task:
                if evict:
                    del self.tasks[task.id]
                    try:
                        os.unlink(task.path)
                    except FileNotFoundError:
                        pass
                else:
                    task.state = "Succeeded" if ok else "Failed"
            self.cond.notify_all()

    def import_file(self, tid, url, src, content_length):
        """Upload: the local file becomes the finished task (hard link, or a
        copy across file systems)."""
        with self.cond:
            while tid in self.tasks and self.tasks[tid].state == "Running":
                self.cond.wait(WAIT_FOR_OTHER_S)
            task = Task(tid, self.path(tid), url, content_length)
            os.makedirs(os.path.dirname(task.path), exist_ok=True)
            try:
                os.unlink(task.path)
            except FileNotFoundError:
                pass
            try:
                os.link(src, task.path)
            except OSError:
                shutil.copyfile(src, task.path)
            task.state = "Succeeded"
            task.done = {n for n, _, _ in piece_list(content_length, task.piece_length)}
            self.tasks[tid] = task

    def drop(self, tid):
        with self.cond:
            task = self.tasks.pop(tid, None)
            if task is not None:
                try:
                    os.unlink(task.path)
                except FileNotFoundError:
                    pass

    def clear(self):
        with self.cond:
            for tid, task in list(self.tasks.items()):
                if task.state != "Running":
                    self.drop(tid)
            return len(self.tasks)

    def describe(self):
        with self.cond:
            return {tid: {"state": t.state, "content_length": t.content_length, "piece_length": t.piece_length,
                          "pieces_done": len(t.done), "url": t.url, "path": t.path}
                    for tid, t in self.tasks.items()}


class ObjectStorage:
    """boto3 clients by settings (they are thread-safe and slow to make)."""

    def __init__(self, state):
        self.state = state
        self.lock = threading.Lock()
        self.clients = {}

    def client(self, storage):
        endpoint = storage.endpoint
        if endpoint == "":
            raise Fail(grpc.StatusCode.INTERNAL,
                       "empty object storage endpoint: the daemon would use the provider's public "
                       "endpoint, which this stand-in never contacts")
        if "://" not in endpoint:
            endpoint = "https://" + endpoint  # as OpenDAL does
        u = urllib.parse.urlsplit(endpoint)
        if u.scheme not in ("http", "https") or not is_loopback(u.hostname or ""):
            raise Fail(grpc.StatusCode.INTERNAL,
                       "object storage endpoint %s: the stand-in only talks to loopback http(s)" % endpoint)
        key = (endpoint, storage.region, storage.access_key_id, storage.access_key_secret, storage.session_token)
        with self.lock:
            c = self.clients.get(key)
            if c is None:
                cfg = dict(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                           connect_timeout=5, read_timeout=60, max_pool_connections=64)
                kw = dict(endpoint_url=endpoint, region_name=storage.region or "us-east-1")
                if storage.HasField("access_key_id"):
                    kw.update(aws_access_key_id=storage.access_key_id,
                              aws_secret_access_key=storage.access_key_secret,
                              aws_session_token=storage.session_token or None)
                else:
                    cfg["signature_version"] = UNSIGNED
                c = boto3.session.Session().client("s3", config=Config(**cfg), **kw)
                self.clients[key] = c
            return c

    def head(self, client, bucket, key):
        """content length, or None when the object does not exist."""
        self.state.count_s3("head")
        try:
            return client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        except ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise Fail(grpc.StatusCode.INTERNAL, "stat %s/%s: %s" % (bucket, key, e))
        except BotoCoreError as e:
            raise Fail(grpc.StatusCode.INTERNAL, "stat %s/%s: %s" % (bucket, key, e))

    def get(self, client, bucket, key, offset, length, whole):
        self.state.count_s3("get")
        kw = {} if whole else {"Range": "bytes=%d-%d" % (offset, offset + length - 1)}
        try:
            return client.get_object(Bucket=bucket, Key=key, **kw)["Body"]
        except (ClientError, BotoCoreError) as e:
            raise Fail(grpc.StatusCode.INTERNAL, "get %s/%s: %s" % (bucket, key, e))

    def put(self, client, bucket, key, path, size):
        self.state.count_s3("put")
        try:
            with open(path, "rb") as f:
                client.put_object(Bucket=bucket, Key=key, Body=f, ContentLength=size,
                                  ContentType="application/octet-stream")
        except (ClientError, BotoCoreError) as e:
            raise Fail(grpc.StatusCode.INTERNAL, "upload persistent task to source failed: %s" % e)


# ------------------------------------------------------------------ service --

def same_inode(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def hard_link(src, dst):
    """The daemon's hard_link_persistent_task: an existing dst is fine only
    when it is the same inode."""
    try:
        os.link(src, dst)
    except FileExistsError:
        if not same_inode(src, dst):
            raise


def file_digest(path, algorithm):
    with open(path, "rb") as f:
        if algorithm == "crc32":
            crc = 0
            for chunk in iter(lambda: f.read(CHUNK), b""):
                crc = zlib.crc32(chunk, crc)
            return str(crc)
        h = hashlib.new(algorithm)
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
        return h.hexdigest()


class Download(dfdaemon_pb2_grpc.DfdaemonDownloadServicer):
    def __init__(self, state, cache, storage):
        self.state, self.cache, self.storage = state, cache, storage
        self.host_id = "127.0.0.1-" + socket.gethostname()

    # ---- UploadPersistentTask -------------------------------------------------

    def UploadPersistentTask(self, request, context):
        self.state.count_url("upload", request.url)
        code = "OK"
        try:
            return self._upload(request)
        except Fail as f:
            code = f.code.name
            log(event="upload-failed", url=request.url, code=code, message=f.message)
            context.abort(f.code, f.message)
        except Exception as e:  # noqa: BLE001 -- the daemon answers INTERNAL for everything else
            code = "INTERNAL"
            log(event="upload-error", url=request.url, error=traceback.format_exc())
            context.abort(grpc.StatusCode.INTERNAL, str(e))
        finally:
            self.state.count_result("UploadPersistentTask", code)

    def _upload(self, request):
        storage = require_object_storage(request)
        tid = persistent_task_id(request.url, storage.region, storage.endpoint)
        bucket, key = parse_url(request.url)
        client = self.storage.client(storage)
        if self.storage.head(client, bucket, key) is not None:
            raise Fail(grpc.StatusCode.ALREADY_EXISTS, "persistent task already exists")
        try:
            size = os.stat(request.path).st_size
        except OSError as e:
            raise Fail(grpc.StatusCode.INTERNAL, "get file metadata error: %s" % e)
        created = now_ts()
        cached = self.state.get_settings()["cache"]
        if cached:
            self.cache.import_file(tid, request.url, request.path, size)
        try:
            self.storage.put(client, bucket, key, request.path, size)
        except Fail:
            if cached:
                self.cache.drop(tid)
            raise
        delay = self.state.delay_ms()
        if delay:
            time.sleep(delay / 1000)
        plen = piece_length(size)
        ttl = request.ttl if request.HasField("ttl") else duration(DEFAULT_TTL_S)
        log(event="uploaded", url=request.url, task_id=tid, bytes=size)
        return common_pb2.PersistentTask(
            id=tid, persistent_replica_count=request.persistent_replica_count,
            current_persistent_replica_count=1, current_replica_count=1,
            content_length=size, piece_count=len(piece_list(size, plen)), state="Succeeded",
            ttl=ttl, created_at=created, updated_at=now_ts())

    # ---- DownloadPersistentTask -----------------------------------------------

    def DownloadPersistentTask(self, request, context):
        self.state.count_url("download", request.url)
        code = "OK"
        try:
            yield from self._download(request, context)
        except Fail as f:
            code = f.code.name
            log(event="download-failed", url=request.url, code=code, message=f.message)
            context.abort(f.code, f.message)
        except Cancelled:
            code = "CANCELLED"
            log(event="download-cancelled", url=request.url)
        except GeneratorExit:
            code = "CANCELLED"
            raise
        except Exception as e:  # noqa: BLE001
            code = "INTERNAL"
            log(event="download-error", url=request.url, error=traceback.format_exc())
            context.abort(grpc.StatusCode.INTERNAL, str(e))
        finally:
            self.state.count_result("DownloadPersistentTask", code)

    def _message(self, tid, peer_id, **oneof):
        return dfdaemon_pb2.DownloadPersistentTaskResponse(
            host_id=self.host_id, task_id=tid, peer_id=peer_id, **oneof)

    def _download(self, request, context):
        storage = require_object_storage(request)
        tid = persistent_task_id(request.url, storage.region, storage.endpoint)
        peer_id = "%s-%s" % (self.host_id, uuid.uuid4())
        fault = self.state.take_fault()
        settings = self.state.get_settings()
        bucket, key = parse_url(request.url)
        client = self.storage.client(storage)
        content_length = self.storage.head(client, bucket, key)
        if content_length is None:
            raise Fail(MISSING_CODES[settings["missing_code"]],
                       "persistent task not found: NotFound (permanent) at stat => %s/%s: 404" % (bucket, key))

        corrupt = fault["mode"] == "corrupt"
        task, writer = self.cache.acquire(tid, request.url, content_length,
                                          fresh=corrupt or not settings["cache"])
        ok = False
        try:
            output = request.output_path if request.HasField("output_path") else None
            if output is not None:
                try:
                    hard_link(task.path, output)
                except OSError as e:
                    if request.force_hard_link:
                        raise Fail(grpc.StatusCode.INTERNAL, "hard link %s to %s failed: %s" % (task.path, output, e))
            yield from self._stream(request, context, task, writer, peer_id, fault, settings, client, bucket, key)
            ok = True
        finally:
            if writer:
                self.cache.release(task, ok, evict=corrupt or not settings["cache"])
        if output is not None:
            self._finish_output(request, task, output)
        log(event="downloaded", url=request.url, task_id=tid, bytes=content_length,
            source="s3" if writer else "cache", fault=fault["mode"])

    def _stream(self, request, context, task, writer, peer_id, fault, settings, client, bucket, key):
        delay = fault["delay_ms"] / 1000
        messages = [0]  # messages sent, the started one included

        def after_message():
            messages[0] += 1
            sent = messages[0] - 1  # piece messages
            if fault["mode"] == "cut_after_pieces" and sent >= fault["pieces"]:
                raise Fail(grpc.StatusCode.UNAVAILABLE,
                           "stream cut after %d piece(s) by fault injection" % sent)
            if fault["mode"] == "die" and sent >= fault["pieces"]:
                log(event="die", after_pieces=sent, task_id=task.id)
                time.sleep(0.2)  # let the messages sent reach the client
                os._exit(17)

        if delay:
            time.sleep(delay)
        yield self._message(task.id, peer_id, download_persistent_task_started_response=(
            dfdaemon_pb2.DownloadPersistentTaskStartedResponse(content_length=task.content_length)))
        after_message()

        pieces = piece_list(task.content_length, task.piece_length)
        if settings["order"] == "reverse":
            pieces.reverse()
        elif settings["order"] == "shuffled":
            random.shuffle(pieces)
        corrupt = fault["mode"] == "corrupt"
        source = self._pieces(task, writer, pieces, corrupt, settings, request.need_piece_content,
                              client, bucket, key)
        try:
            yield from self._piece_messages(context, task, peer_id, source, delay, request.need_piece_content,
                                            after_message, huge=fault["mode"] == "huge_piece_length")
        finally:
            source.close()

    def _piece_messages(self, context, task, peer_id, source, delay, need_content, after_message, huge=False):
        while True:
            if delay:
                time.sleep(delay)  # before the piece is fetched: the output stays behind the stream
            try:
                piece, data, crc, traffic, cost = next(source)
            except StopIteration:
                return
            if not context.is_active():
                raise Cancelled()
            number, offset, length = piece
            msg = common_pb2.Piece(number=number, offset=offset, length=length + (1 << 63 if huge else 0),
                                   digest="crc32:%d" % crc, traffic_type=traffic,
                                   cost=duration(cost), created_at=now_ts())
            if need_content:
                msg.content = data
            yield self._message(task.id, peer_id, download_piece_finished_response=(
                dfdaemon_pb2.DownloadPieceFinishedResponse(piece=msg)))
            after_message()

    def _pieces(self, task, writer, pieces, corrupt, settings, need_content, client, bucket, key):
        """Yields (piece, content or None, crc32, traffic type, seconds) in
        the order of `pieces`: done pieces read back from the task file, the
        others fetched from S3 and written into it. A run of consecutive
        missing pieces is one GET (moto reads the whole object for every
        Range request, so one GET per piece would be quadratic)."""
        fd = os.open(task.path, os.O_RDWR)
        try:
            i = 0
            while i < len(pieces):
                number, offset, length = pieces[i]
                if not writer or (number in task.done and not corrupt):
                    started = time.monotonic()
                    data = os.pread(fd, length, offset)
                    yield pieces[i], (data if need_content else None), zlib.crc32(data), \
                        common_pb2.TrafficType.LOCAL_PEER, time.monotonic() - started
                    i += 1
                    continue
                j = i + 1
                if settings["order"] == "sequential":
                    while j < len(pieces) and (corrupt or pieces[j][0] not in task.done):
                        j += 1
                run = pieces[i:j]
                run_offset = run[0][1]
                run_length = sum(p[2] for p in run)
                body = self.storage.get(client, bucket, key, run_offset, run_length,
                                        whole=run_length == task.content_length)
                try:
                    for piece in run:
                        yield self._fetch_piece(fd, task, piece, body, corrupt, need_content)
                finally:
                    body.close()
                i = j
        finally:
            os.close(fd)

    def _fetch_piece(self, fd, task, piece, body, corrupt, need_content):
        number, offset, length = piece
        started = time.monotonic()
        crc, pos, kept = 0, offset, []
        flip = offset + length // 2
        while pos < offset + length:
            try:
                chunk = body.read(min(CHUNK, offset + length - pos))
            except (BotoCoreError, OSError) as e:
                raise Fail(grpc.StatusCode.INTERNAL, "download piece %d from source: %s" % (number, e))
            if not chunk:
                raise Fail(grpc.StatusCode.INTERNAL, "download piece %d from source: expected length %d but got %d"
                           % (number, length, pos - offset))
            if corrupt and pos <= flip < pos + len(chunk):
                b = bytearray(chunk)
                b[flip - pos] ^= 0xFF
                chunk = bytes(b)
            os.pwrite(fd, chunk, pos)
            crc = zlib.crc32(chunk, crc)
            if need_content:
                kept.append(chunk)
            pos += len(chunk)
        task.done.add(number)
        return piece, (b"".join(kept) if need_content else None), crc, \
            common_pb2.TrafficType.BACK_TO_SOURCE, time.monotonic() - started

    def _finish_output(self, request, task, output):
        if not request.force_hard_link:
            if os.path.lexists(output):
                if not same_inode(task.path, output):
                    if not request.overwrite:
                        raise Fail(grpc.StatusCode.INTERNAL, "output path %s is already exists" % output)
                    self._copy(task, output)
            else:
                self._copy(task, output)
        if request.HasField("digest"):
            algorithm, _, expected = request.digest.partition(":")
            if algorithm not in ("crc32", "sha256", "sha512") or not expected:
                raise Fail(grpc.StatusCode.INTERNAL, "invalid digest(%s): unsupported algorithm" % request.digest)
            actual = file_digest(output, algorithm)
            if actual != expected:
                raise Fail(grpc.StatusCode.INTERNAL, "digest mismatch: expected %s, got %s:%s" % (
                    request.digest, algorithm, actual))

    @staticmethod
    def _copy(task, output):
        try:
            shutil.copyfile(task.path, output)
        except OSError as e:
            raise Fail(grpc.StatusCode.INTERNAL, "copy %s to %s: %s" % (task.path, output, e))


class CountCalls(grpc.ServerInterceptor):
    def __init__(self, state):
        self.state = state

    def intercept_service(self, continuation, details):
        self.state.count_method(details.method.rsplit("/", 1)[-1])
        return continuation(details)


# ------------------------------------------------------------------ control --

def control_handler(state, cache):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def answer(self, status, obj):
            data = json.dumps(obj, sort_keys=True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            obj = json.loads(raw or b"{}")
            if not isinstance(obj, dict):
                raise ValueError("a JSON object, please")
            return obj

        def do_GET(self):
            routes = {"/healthz": lambda: {"ok": True}, "/fault": lambda: state.fault,
                      "/settings": state.get_settings, "/counts": state.counts, "/tasks": cache.describe}
            if self.path in routes:
                self.answer(200, routes[self.path]())
            else:
                self.answer(404, {"error": "no such path"})

        def do_POST(self):
            try:
                if self.path == "/fault":
                    answer = state.set_fault(self.body())
                    log(event="fault", **answer)
                elif self.path == "/settings":
                    answer = state.set_settings(self.body())
                    log(event="settings", **answer)
                elif self.path == "/reset":
                    self.body()
                    state.reset()
                    answer = {"ok": True}
                    log(event="reset")
                elif self.path == "/cache/clear":
                    self.body()
                    answer = {"ok": True, "running": cache.clear()}
                    log(event="cache-clear")
                else:
                    return self.answer(404, {"error": "no such path"})
                self.answer(200, answer)
            except (ValueError, TypeError) as e:
                self.answer(400, {"error": str(e)})

    return Handler


# --------------------------------------------------------------------- main --

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", required=True, help="the Unix socket to serve on")
    parser.add_argument("--cache-dir", required=True, help="the task cache (emptied at start)")
    parser.add_argument("--control-host", default="127.0.0.1")
    parser.add_argument("--control-port", type=int, default=0, help="0 picks a free one")
    parser.add_argument("--tcp-port", type=int, default=0,
                        help="also serve gRPC on 127.0.0.1:PORT (0 picks one; -1: not at all)")
    parser.add_argument("--port-file", help='write "SOCKET CONTROL_PORT TCP_PORT" here once serving')
    parser.add_argument("--workers", type=int, default=128)
    args = parser.parse_args()

    sock = os.path.abspath(args.socket)
    if len(os.fsencode(sock)) > 107:
        print("socket path too long for a Unix socket (max 107 bytes): %s" % sock, file=sys.stderr)
        return 2
    state = State()
    cache = TaskCache(os.path.abspath(args.cache_dir))
    storage = ObjectStorage(state)

    try:
        control = http.server.ThreadingHTTPServer((args.control_host, args.control_port), control_handler(state, cache))
    except OSError as e:
        if args.control_port == 0 or e.errno != errno.EADDRINUSE:
            raise
        log(event="control-port-taken", port=args.control_port)
        control = http.server.ThreadingHTTPServer((args.control_host, 0), control_handler(state, cache))
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, name="control", daemon=True).start()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="grpc"),
                         interceptors=[CountCalls(state)],
                         options=[("grpc.max_send_message_length", -1),
                                  ("grpc.max_receive_message_length", 16 << 20)])
    dfdaemon_pb2_grpc.add_DfdaemonDownloadServicer_to_server(Download(state, cache, storage), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    server.add_insecure_port("unix:" + sock)
    tcp_port = -1
    if args.tcp_port >= 0:
        try:
            tcp_port = server.add_insecure_port("127.0.0.1:%d" % args.tcp_port)
        except RuntimeError:  # grpcio raises for a port in use (older ones return 0)
            tcp_port = 0
        if tcp_port == 0:
            if args.tcp_port == 0:
                raise RuntimeError("no TCP port for gRPC")
            log(event="tcp-port-taken", port=args.tcp_port)
            tcp_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    os.chmod(sock, 0o777)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)

    control_port = control.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%s %d %d\n" % (sock, control_port, tcp_port))
        os.replace(tmp, args.port_file)
    log(event="listening", socket=sock, tcp_port=tcp_port, control="%s:%d" % (args.control_host, control_port), cache=cache.root)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(3600):
        pass
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=1).wait()
    control.shutdown()
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    log(event="stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
