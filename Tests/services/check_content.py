#!/usr/bin/env python3
"""Checks the content services with independent clients -- boto3, a
stdlib SigV4 signer, and a gRPC client on the official dragonfly-api stubs
-- and shows by example what the Swift transports must do.

    DIR/venv/bin/python Tests/services/check_content.py DIR/services.env

(scripts/services.sh check DIR runs it.) Needs the venv of services.sh
(boto3, grpcio, grpcio-health-checking, dragonfly-api). It leaves the
stand-in as it found it (fault none, default settings), except that its
counters are reset; the `die` check restarts it (same socket, same control
port) through servicectl.py.

S3 (moto, strict mode) as the Swift client must speak it:

  sign     AWS SigV4 (service "s3", the region of S3_REGION) over the
           headers host, x-amz-date and x-amz-content-sha256 -- the last
           one is required: a request signed without it gets 403
           SignatureDoesNotMatch (curl 7.88's --aws-sigv4 leaves it out).
           Its value may be the body's SHA-256 or UNSIGNED-PAYLOAD. Path
           style: http://host:port/<bucket>/<key>.
  errors   wrong secret: 403 <Code>SignatureDoesNotMatch</Code>; unknown key
           id: 403 InvalidAccessKeyId; missing object: GET 404 NoSuchKey,
           HEAD 404 with no body; an unsigned object GET 403, an unsigned
           bucket GET 500 (a moto bug).
  quirks   moto does not check the payload hash against the body, does not
           check the region of the credential scope, closes every
           connection (Connection: close), and reads the whole object for
           every Range GET (a Range request costs the whole object: resume
           with one, never split a download into many).

Dragonfly (the stand-in, as the real dfdaemon v1.2): see
dfdaemon_standin.py's docstring; in short, per the checks below,
  Upload    PersistentTask{state "Succeeded"}, ALREADY_EXISTS when the object
            is there; wrong credentials INTERNAL.
  Download  status errors before any message (INVALID_ARGUMENT for missing
            object_storage/region/endpoint, INTERNAL for a missing object or
            a failed hard link), else started{content_length}, then
            piece{number, offset, length, digest "crc32:<decimal>"} per
            piece, then OK -- or an error status at any point after.
"""

import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

import boto3
import grpc
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from dragonfly_api import common_pb2, dfdaemon_pb2, dfdaemon_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICE = "dfdaemon.v2.DfdaemonDownload"
MiB = 1 << 20
RESULTS = []


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def check(name):
    def run(fn):
        started = time.monotonic()
        try:
            fn()
            RESULTS.append((name, None))
            print("ok    %-66s %6.0f ms" % (name, (time.monotonic() - started) * 1000), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure, go on
            RESULTS.append((name, e))
            print("FAIL  %s: %r" % (name, e), flush=True)
            if os.environ.get("CHECK_VERBOSE"):
                traceback.print_exc()
        return fn
    return run


# ------------------------------------------------------------------ SigV4 --

def sigv4_headers(method, url, region, key_id, secret, payload_hash, extra=None, content_sha_header=True):
    """The headers of an AWS Signature V4 request (service s3), as the Swift
    client computes them: canonical request = method, URI-encoded path
    (once, '/' kept), sorted query, lower-cased sorted headers, their
    names, the payload hash."""
    u = urllib.parse.urlsplit(url)
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    headers = {"host": u.netloc, "x-amz-date": amz_date}
    if content_sha_header:
        headers["x-amz-content-sha256"] = payload_hash
    for k, v in (extra or {}).items():
        headers[k.lower()] = v
    signed = sorted(headers)
    query = sorted(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    canonical = "\n".join([
        method,
        urllib.parse.quote(u.path or "/", safe="/-_.~"),
        "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~")) for k, v in query),
        "".join("%s:%s\n" % (k, " ".join(str(headers[k]).split())) for k in signed),
        ";".join(signed),
        payload_hash])
    scope = "%s/%s/s3/aws4_request" % (date, region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        key_id, scope, ";".join(signed), signature)
    return headers


def s3_call(env, method, path, body=b"", secret=None, payload_hash=None, extra=None, content_sha_header=True,
            base=None, read_limit=None):
    """(status, headers, body) of one signed request; read_limit reads the
    body in chunks and stops early on an error, returning what came."""
    url = (base or env["S3_ENDPOINT"]) + path
    payload_hash = payload_hash or hashlib.sha256(body).hexdigest()
    headers = sigv4_headers(method, url, env["S3_REGION"], env["S3_ACCESS_KEY_ID"],
                            env["S3_SECRET_ACCESS_KEY"] if secret is None else secret,
                            payload_hash, extra, content_sha_header)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body or None, headers=headers)
        r = conn.getresponse()
        chunks = []
        try:
            while True:
                chunk = r.read1(65536) if method != "HEAD" else b""
                if not chunk:
                    break
                chunks.append(chunk)
        except (OSError, http.client.HTTPException):
            if read_limit is None:
                raise
        return r.status, {k.lower(): v for k, v in r.getheaders()}, b"".join(chunks)
    finally:
        conn.close()


def xml_code(body):
    start = body.find(b"<Code>")
    return body[start + 6:body.find(b"</Code>")].decode() if start >= 0 else None


# -------------------------------------------------------------- Dragonfly --

def http_json(method, url, obj=None):
    data = json.dumps(obj).encode() if obj is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def task_id(url, region, endpoint):
    return hashlib.sha256((url + region + endpoint + "PERSISTENT").encode()).hexdigest()


def expected_piece_length(n):
    p = n // 500
    p = 1 if p <= 1 else 1 << (p - 1).bit_length()
    return min(max(p, 4 * MiB), 64 * MiB)


class Dragonfly:
    def __init__(self, env):
        self.env = env
        self.control = env["DRAGONFLY_CONTROL"]
        self.connect()

    def connect(self):
        # authority "localhost": without it the socket path is sent as
        # :authority (grpcio accepts it; the Rust daemon's HTTP/2 may not).
        self.channel = grpc.insecure_channel(self.env["DRAGONFLY_ENDPOINT"], options=[
            ("grpc.default_authority", "localhost"), ("grpc.max_receive_message_length", -1),
            # grpcio shares subchannels between channels by default, with
            # their reconnect back-off: a channel made after a restart
            # would wait out the back-off of the dead daemon's one.
            ("grpc.use_local_subchannel_pool", 1)])
        self.stub = dfdaemon_pb2_grpc.DfdaemonDownloadStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def storage(self, endpoint=None, secret=None, **kw):
        args = dict(region=self.env["S3_REGION"], endpoint=endpoint or self.env["S3_ENDPOINT"],
                    access_key_id=self.env["S3_ACCESS_KEY_ID"],
                    access_key_secret=self.env["S3_SECRET_ACCESS_KEY"] if secret is None else secret)
        args.update(kw)
        return common_pb2.ObjectStorage(**{k: v for k, v in args.items() if v is not None})

    def upload(self, url, path, storage=None, **kw):
        return self.stub.UploadPersistentTask(dfdaemon_pb2.UploadPersistentTaskRequest(
            url=url, object_storage=storage or self.storage(), path=path, persistent_replica_count=3, **kw),
            timeout=60)

    def download(self, url, output=None, storage=None, on_message=None, **kw):
        """(messages, status code, details): reads the stream to its end."""
        req = dfdaemon_pb2.DownloadPersistentTaskRequest(
            url=url, object_storage=storage or self.storage(), persistent=True, **kw)
        if output is not None:
            req.output_path = output
        messages = []
        try:
            for m in self.stub.DownloadPersistentTask(req, timeout=120):
                messages.append(m)
                if on_message:
                    on_message(m)
            return messages, grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return messages, e.code(), e.details()

    def post(self, path, obj=None):
        return http_json("POST", self.control + path, obj)

    def get(self, path):
        return http_json("GET", self.control + path)


def pieces_of(messages):
    return [m.download_piece_finished_response.piece for m in messages
            if m.WhichOneof("response") == "download_piece_finished_response"]


def check_stream(messages, content_length, data=None, task=None):
    """The shape every successful download has."""
    expect(messages and messages[0].WhichOneof("response") == "download_persistent_task_started_response",
           "first message is not the started one: %s" % messages[:1])
    expect(messages[0].download_persistent_task_started_response.content_length == content_length,
           "content_length %d" % messages[0].download_persistent_task_started_response.content_length)
    plen = expected_piece_length(content_length)
    pieces = sorted(pieces_of(messages), key=lambda p: p.number)
    expect(len(pieces) == len(messages) - 1, "a message that is neither started nor piece")
    expect([p.number for p in pieces] == list(range(-(-content_length // plen))), "piece numbers %s" % [
        p.number for p in pieces])
    for p in pieces:
        expect(p.offset == p.number * plen and p.length == min(plen, content_length - p.offset),
               "piece %d: offset %d length %d" % (p.number, p.offset, p.length))
        if data is not None:
            expect(p.digest == "crc32:%d" % zlib.crc32(data[p.offset:p.offset + p.length]),
                   "piece %d digest %s" % (p.number, p.digest))
    for m in messages:
        expect(m.host_id and m.peer_id.startswith(m.host_id + "-") and (task is None or m.task_id == task),
               "ids: %s %s %s" % (m.host_id, m.peer_id, m.task_id))
    return pieces


# ------------------------------------------------------------------- main --

def main(env_path):
    env = {}
    with open(env_path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, _, v = line.strip().partition("=")
                env[k] = v
    run_id = "%x" % int(time.time() * 1000)
    bucket, region, endpoint = env["S3_BUCKET"], env["S3_REGION"], env["S3_ENDPOINT"]
    # Outputs next to the stand-in's cache: a hard link needs one file system.
    tmp = os.path.join(env["SERVICES_DIR"], "check-content-" + run_id)
    os.makedirs(tmp)

    def s3_client(secret=None, key_id=None, ep=None):
        return boto3.client("s3", endpoint_url=ep or endpoint, region_name=region,
                            aws_access_key_id=key_id or env["S3_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["S3_SECRET_ACCESS_KEY"] if secret is None else secret,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    s3 = s3_client()

    # ---- S3: strict signatures ------------------------------------------------
    @check("s3: the access key lists the bucket")
    def _():
        s3.list_objects_v2(Bucket=bucket, MaxKeys=1)

    @check("s3: a wrong secret gets 403 SignatureDoesNotMatch (boto3)")
    def _():
        try:
            s3_client(secret=env["S3_SECRET_ACCESS_KEY"] + "x").list_objects_v2(Bucket=bucket)
            raise AssertionError("accepted")
        except ClientError as e:
            expect(e.response["Error"]["Code"] == "SignatureDoesNotMatch"
                   and e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response["Error"])

    @check("s3: an unknown key id gets 403 InvalidAccessKeyId")
    def _():
        try:
            s3_client(key_id="AKIAUNKNOWNKEY000000").list_objects_v2(Bucket=bucket)
            raise AssertionError("accepted")
        except ClientError as e:
            expect(e.response["Error"]["Code"] == "InvalidAccessKeyId", e.response["Error"])

    data = os.urandom(3 * MiB + 12345)
    key = "check/%s/object" % run_id

    @check("s3: PUT then GET, HEAD and a Range GET (boto3)")
    def _():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        expect(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, "GET bytes differ")
        expect(s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(data), "HEAD length")
        r = s3.get_object(Bucket=bucket, Key=key, Range="bytes=1000-1999")
        expect(r["Body"].read() == data[1000:2000] and r["ContentRange"] == "bytes 1000-1999/%d" % len(data),
               r.get("ContentRange"))

    @check("s3: a missing key is 404 NoSuchKey (GET), 404 without body (HEAD)")
    def _():
        status, _, body = s3_call(env, "GET", "/%s/%s-missing" % (bucket, key))
        expect(status == 404 and xml_code(body) == "NoSuchKey", (status, body[:200]))
        status, _, body = s3_call(env, "HEAD", "/%s/%s-missing" % (bucket, key))
        expect(status == 404 and body == b"", (status, body))

    @check("sigv4 (stdlib signer): GET, Range GET 206, PUT, UNSIGNED-PAYLOAD")
    def _():
        path = "/%s/%s" % (bucket, key)
        status, _, body = s3_call(env, "GET", path)
        expect(status == 200 and body == data, "GET %d" % status)
        status, hdrs, body = s3_call(env, "GET", path, extra={"Range": "bytes=%d-" % (len(data) - 10)})
        expect(status == 206 and body == data[-10:], "Range GET %d %s" % (status, hdrs.get("content-range")))
        small = b"signed by hand " + run_id.encode()
        status, _, _ = s3_call(env, "PUT", path + "-hand", small, extra={"Content-Type": "application/octet-stream"})
        expect(status == 200, "PUT %d" % status)
        status, _, body = s3_call(env, "GET", path + "-hand", payload_hash="UNSIGNED-PAYLOAD")
        expect(status == 200 and body == small, "UNSIGNED-PAYLOAD GET %d" % status)

    @check("sigv4: without x-amz-content-sha256 -> 403 SignatureDoesNotMatch")
    def _():
        status, _, body = s3_call(env, "GET", "/%s/%s" % (bucket, key), content_sha_header=False)
        expect(status == 403 and xml_code(body) == "SignatureDoesNotMatch", (status, body[:200]))

    @check("sigv4: a wrong secret -> 403 SignatureDoesNotMatch (XML body)")
    def _():
        status, _, body = s3_call(env, "GET", "/%s/%s" % (bucket, key), secret="wrong")
        expect(status == 403 and xml_code(body) == "SignatureDoesNotMatch", (status, body[:200]))

    @check("moto quirk: a wrong payload hash is not noticed (verify digests yourself)")
    def _():
        status, _, _ = s3_call(env, "PUT", "/%s/%s-badhash" % (bucket, key), b"abc",
                               payload_hash=hashlib.sha256(b"xyz").hexdigest())
        expect(status == 200, "moto now checks the payload hash (%d): update the notes" % status)

    @check("s3: multipart upload (3 parts) in strict mode")
    def _():
        big = os.urandom(11 * MiB)
        s3.upload_fileobj(__import__("io").BytesIO(big), bucket, key + "-mp",
                          Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
        h = s3.head_object(Bucket=bucket, Key=key + "-mp")
        expect(h["ContentLength"] == len(big) and h["ETag"].endswith('-3"'), h["ETag"])
        expect(s3.get_object(Bucket=bucket, Key=key + "-mp")["Body"].read() == big, "bytes differ")

    # ---- S3 fault proxy -----------------------------------------------------
    def proxy_mode(**spec):
        return http_json("POST", env["S3_PROXY_CONTROL"] + "/mode", spec)

    @check("s3-proxy: signed GET through the proxy (Host is the proxy's)")
    def _():
        status, _, body = s3_call(env, "GET", "/%s/%s" % (bucket, key), base=env["S3_PROXY"])
        expect(status == 200 and body == data, "GET %d" % status)

    @check("s3-proxy: cut mid-download, then a Range GET resumes")
    def _():
        try:
            proxy_mode(mode="cut_after", bytes=1 * MiB, direction="down", then="pass")
            status, hdrs, got = s3_call(env, "GET", "/%s/%s" % (bucket, key), base=env["S3_PROXY"], read_limit=True)
            expect(0 < len(got) < len(data), "got %d of %d bytes" % (len(got), len(data)))
            status, hdrs, rest = s3_call(env, "GET", "/%s/%s" % (bucket, key), base=env["S3_PROXY"],
                                         extra={"Range": "bytes=%d-" % len(got)})
            expect(status == 206 and got + rest == data, "resume %d, %d bytes" % (status, len(rest)))
        finally:
            proxy_mode(mode="pass")

    # ---- Dragonfly stand-in -------------------------------------------------
    df = Dragonfly(env)
    df.post("/reset")
    df.post("/cache/clear")

    @check("dfdaemon: health SERVING for dfdaemon.v2.DfdaemonDownload and ''")
    def _():
        for service in (SERVICE, ""):
            r = df.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            expect(r.status == health_pb2.HealthCheckResponse.SERVING, "%r: %s" % (service, r.status))
        try:
            df.health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
            raise AssertionError("answered")
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.NOT_FOUND, e.code())

    @check("dfdaemon: SIGTERM and SIGINT are not blocked in the stand-in")
    def _():
        with open(os.path.join(env["SERVICES_DIR"], "run", "dfdaemon.pid")) as f:
            pid = int(f.read())
        with open("/proc/%d/status" % pid) as f:
            blocked = int([ln for ln in f if ln.startswith("SigBlk:")][0].split()[1], 16)
        expect(not blocked & (1 << (15 - 1)) and not blocked & (1 << (2 - 1)), "SigBlk %x" % blocked)

    @check("dfdaemon: other methods answer UNIMPLEMENTED")
    def _():
        try:
            df.stub.StatPersistentTask(dfdaemon_pb2.StatPersistentTaskRequest(task_id="x"), timeout=5)
            raise AssertionError("answered")
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.UNIMPLEMENTED, e.code())

    src = os.path.join(tmp, "content")
    content = os.urandom(9 * MiB + 4321)  # pieces of 4 MiB: 4 + 4 + 1 MiB and a bit
    with open(src, "wb") as f:
        f.write(content)
    url = "s3://%s/xxh3/%s-check" % (bucket, run_id)
    tid = task_id(url, region, endpoint)

    @check("dfdaemon: INVALID_ARGUMENT without object_storage, region or endpoint")
    def _():
        cases = [(None, "missing object storage"),
                 (common_pb2.ObjectStorage(endpoint=endpoint), "missing object storage region"),
                 (common_pb2.ObjectStorage(region=region), "missing object storage endpoint")]
        for storage, message in cases:
            for call in ("upload", "download"):
                req_kw = {"object_storage": storage} if storage is not None else {}
                try:
                    if call == "upload":
                        df.stub.UploadPersistentTask(dfdaemon_pb2.UploadPersistentTaskRequest(
                            url=url, path=src, **req_kw), timeout=10)
                        raise AssertionError("upload accepted")
                    code, details = None, None
                    for _ in df.stub.DownloadPersistentTask(dfdaemon_pb2.DownloadPersistentTaskRequest(
                            url=url, **req_kw), timeout=10):
                        raise AssertionError("download sent a message")
                except grpc.RpcError as e:
                    code, details = e.code(), e.details()
                expect(code == grpc.StatusCode.INVALID_ARGUMENT and details == message,
                       "%s %s: %s %s" % (call, message, code, details))

    @check("dfdaemon: empty region and endpoint count as present (-> INTERNAL, not contacted)")
    def _():
        _, code, details = df.download(url, storage=common_pb2.ObjectStorage(region="", endpoint=""))
        expect(code == grpc.StatusCode.INTERNAL and "endpoint" in details, (code, details))

    @check("dfdaemon: upload -> PersistentTask Succeeded, object in moto")
    def _():
        t = df.upload(url, src)
        expect(t.id == tid, "task id %s, want %s" % (t.id, tid))
        expect(t.state == "Succeeded" and t.content_length == len(content) and t.piece_count == 3
               and t.persistent_replica_count == 3, t)
        got = s3.get_object(Bucket=bucket, Key="xxh3/%s-check" % run_id)["Body"].read()
        expect(got == content, "object in moto differs")

    @check("dfdaemon: second upload -> ALREADY_EXISTS")
    def _():
        try:
            df.upload(url, src)
            raise AssertionError("accepted")
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.ALREADY_EXISTS, (e.code(), e.details()))

    @check("dfdaemon: upload with a wrong secret -> INTERNAL")
    def _():
        try:
            df.upload(url + "-wrongsecret", src, storage=df.storage(secret="wrong"))
            raise AssertionError("accepted")
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.INTERNAL, (e.code(), e.details()))

    def fresh(name):
        path = os.path.join(tmp, name)
        if os.path.lexists(path):
            os.unlink(path)
        return path

    def task_file(t):
        return os.path.join(env["DRAGONFLY_CACHE_DIR"], "persistent-tasks", t[:3], t)

    @check("dfdaemon: download from S3: hard link before the data, pieces, bytes")
    def _():
        df.post("/cache/clear")
        out = fresh("out1")
        seen = {}
        before = df.get("/counts")["s3"].get("get", 0)

        def on_message(m):
            if m.WhichOneof("response") == "download_persistent_task_started_response":
                st = os.stat(out)  # exists, full length (fallocated), not yet written
                with open(out, "rb") as f:
                    seen["first"] = f.read(4096)
                seen["inode"] = (st.st_dev, st.st_ino) == (os.stat(task_file(tid)).st_dev,
                                                           os.stat(task_file(tid)).st_ino)
                seen["size"] = st.st_size
        df.post("/fault", {"mode": "delay", "delay_ms": 200})
        try:
            messages, code, details = df.download(url, out, on_message=on_message, force_hard_link=True)
        finally:
            df.post("/fault", {"mode": "none"})
        expect(code == grpc.StatusCode.OK, (code, details))
        expect(seen.get("inode") and seen["size"] == len(content) and seen["first"] == b"\0" * 4096,
               "output at the started message: %s" % {k: v if k != "first" else v[:8] for k, v in seen.items()})
        pieces = check_stream(messages, len(content), content, tid)
        expect([p.length for p in pieces] == [4 * MiB, 4 * MiB, len(content) - 8 * MiB], "piece lengths")
        expect(all(p.traffic_type == common_pb2.TrafficType.BACK_TO_SOURCE for p in pieces), "traffic types")
        with open(out, "rb") as f:
            expect(f.read() == content, "output bytes differ")
        expect(df.get("/counts")["s3"]["get"] == before + 1, "one GET for the whole object")

    @check("dfdaemon: download again -> from the cache (LOCAL_PEER), same inode")
    def _():
        out = fresh("out2")
        messages, code, details = df.download(url, out, force_hard_link=True)
        expect(code == grpc.StatusCode.OK, (code, details))
        pieces = check_stream(messages, len(content), content, tid)
        expect(all(p.traffic_type == common_pb2.TrafficType.LOCAL_PEER for p in pieces), "traffic types")
        expect(os.path.samefile(out, task_file(tid)), "not a hard link to the task file")

    @check("dfdaemon: the upload's file itself is the cached task (hard link)")
    def _():
        df.post("/cache/clear")
        url2 = url + "-linked"
        df.upload(url2, src)
        expect(os.path.samefile(src, task_file(task_id(url2, region, endpoint))), "not linked")

    @check("dfdaemon: a missing object -> INTERNAL before any message")
    def _():
        out = fresh("missing")
        messages, code, details = df.download(url + "-missing", out, force_hard_link=True)
        expect(code == grpc.StatusCode.INTERNAL and not messages and not os.path.exists(out),
               (code, details, len(messages)))

    @check("dfdaemon: settings missing_code NOT_FOUND (later daemons)")
    def _():
        df.post("/settings", {"missing_code": "NOT_FOUND"})
        try:
            _, code, details = df.download(url + "-missing")
            expect(code == grpc.StatusCode.NOT_FOUND, (code, details))
        finally:
            df.post("/settings", {"missing_code": "INTERNAL"})

    @check("dfdaemon: force_hard_link, parent missing -> INTERNAL before any message")
    def _():
        messages, code, details = df.download(url, os.path.join(tmp, "no-such-dir", "out"), force_hard_link=True)
        expect(code == grpc.StatusCode.INTERNAL and not messages, (code, details))

    @check("dfdaemon: force_hard_link, output is another file -> INTERNAL, even with overwrite")
    def _():
        out = fresh("other")
        with open(out, "wb") as f:
            f.write(b"another file")
        messages, code, details = df.download(url, out, force_hard_link=True, overwrite=True)
        expect(code == grpc.StatusCode.INTERNAL and not messages, (code, details))
        with open(out, "rb") as f:
            expect(f.read() == b"another file", "the other file was touched")

    @check("dfdaemon: no force_hard_link: another file -> INTERNAL after the pieces; overwrite copies")
    def _():
        out = fresh("other2")
        with open(out, "wb") as f:
            f.write(b"another file")
        messages, code, details = df.download(url, out)
        expect(code == grpc.StatusCode.INTERNAL and "already exists" in details
               and len(pieces_of(messages)) == 3, (code, details, len(messages)))
        messages, code, details = df.download(url, out, overwrite=True)
        expect(code == grpc.StatusCode.OK, (code, details))
        with open(out, "rb") as f:
            expect(f.read() == content, "not overwritten")
        expect(not os.path.samefile(out, task_file(tid)), "a copy, not a link")

    @check("dfdaemon: digest sha256 checked (right OK, wrong and xxh3 INTERNAL)")
    def _():
        for digest, want in (("sha256:" + hashlib.sha256(content).hexdigest(), grpc.StatusCode.OK),
                             ("sha256:" + "0" * 64, grpc.StatusCode.INTERNAL),
                             ("crc32:%d" % zlib.crc32(content), grpc.StatusCode.OK),
                             ("xxh3:0123456789abcdef", grpc.StatusCode.INTERNAL)):
            out = fresh("digest")
            messages, code, details = df.download(url, out, force_hard_link=True, digest=digest)
            expect(code == want, "%s: %s %s" % (digest.split(":")[0], code, details))

    @check("dfdaemon: need_piece_content without output_path carries the bytes")
    def _():
        messages, code, details = df.download(url, need_piece_content=True)
        expect(code == grpc.StatusCode.OK, (code, details))
        pieces = check_stream(messages, len(content), content, tid)
        expect(b"".join(p.content for p in pieces) == content, "contents differ")

    @check("dfdaemon: an empty object -> started(0), no piece, empty output")
    def _():
        s3.put_object(Bucket=bucket, Key="xxh3/%s-empty" % run_id, Body=b"")
        out = fresh("empty")
        messages, code, details = df.download("s3://%s/xxh3/%s-empty" % (bucket, run_id), out, force_hard_link=True)
        expect(code == grpc.StatusCode.OK and len(messages) == 1 and os.path.getsize(out) == 0, (code, details, messages))
        check_stream(messages, 0)

    @check("dfdaemon: provider oss:// is served too (another task id)")
    def _():
        s3.put_object(Bucket=bucket, Key="xxh3/%s-oss" % run_id, Body=b"oss bytes")
        u = "oss://%s/xxh3/%s-oss" % (bucket, run_id)
        out = fresh("oss")
        messages, code, details = df.download(u, out, force_hard_link=True)
        expect(code == grpc.StatusCode.OK and messages[0].task_id == task_id(u, region, endpoint), (code, details))
        with open(out, "rb") as f:
            expect(f.read() == b"oss bytes", "bytes")

    @check("dfdaemon: through the S3 fault proxy as endpoint")
    def _():
        out = fresh("via-proxy")
        messages, code, details = df.download(url, out, storage=df.storage(endpoint=env["S3_PROXY"]),
                                              force_hard_link=True)
        expect(code == grpc.StatusCode.OK and messages[0].task_id == task_id(url, region, env["S3_PROXY"]),
               (code, details))
        with open(out, "rb") as f:
            expect(f.read() == content, "bytes")

    @check("dfdaemon: settings order reverse -> pieces last first, bytes right")
    def _():
        df.post("/cache/clear")
        df.post("/settings", {"order": "reverse"})
        try:
            out = fresh("reverse")
            messages, code, details = df.download(url, out, force_hard_link=True)
        finally:
            df.post("/settings", {"order": "sequential"})
        expect(code == grpc.StatusCode.OK, (code, details))
        expect([p.number for p in pieces_of(messages)] == [2, 1, 0], [p.number for p in pieces_of(messages)])
        with open(out, "rb") as f:
            expect(f.read() == content, "bytes")

    @check("dfdaemon: 8 concurrent downloads of one task: one S3 GET, all right")
    def _():
        df.post("/cache/clear")
        before = df.get("/counts")["s3"].get("get", 0)

        def one(i):
            out = fresh("conc%d" % i)
            messages, code, details = df.download(url, out, force_hard_link=True)
            with open(out, "rb") as f:
                return code, details, f.read() == content
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(8)))
        expect(all(r[0] == grpc.StatusCode.OK and r[2] for r in results), results)
        expect(df.get("/counts")["s3"]["get"] == before + 1, "S3 GETs: %d" % (df.get("/counts")["s3"]["get"] - before))

    # ---- faults ---------------------------------------------------------------
    @check("fault cut_after_pieces 1: started + 1 piece, UNAVAILABLE; retry resumes")
    def _():
        df.post("/cache/clear")
        df.post("/fault", {"mode": "cut_after_pieces", "pieces": 1})
        try:
            out = fresh("cut")
            messages, code, details = df.download(url, out, force_hard_link=True)
            expect(code == grpc.StatusCode.UNAVAILABLE and len(messages) == 2, (code, details, len(messages)))
            messages, code, details = df.download(url, out, force_hard_link=True)
            expect(code == grpc.StatusCode.UNAVAILABLE, "the fault stays until cleared: %s" % code)
        finally:
            df.post("/fault", {"mode": "none"})
        messages, code, details = df.download(url, out, force_hard_link=True)  # same output: same inode
        expect(code == grpc.StatusCode.OK, (code, details))
        pieces = check_stream(messages, len(content), content, tid)
        expect([p.traffic_type for p in pieces] == [common_pb2.TrafficType.LOCAL_PEER]
               + [common_pb2.TrafficType.BACK_TO_SOURCE] * 2, [p.traffic_type for p in pieces])
        with open(out, "rb") as f:
            expect(f.read() == content, "bytes")

    @check("fault cut_after_pieces 0 with times 1: cut after started, then clear")
    def _():
        df.post("/fault", {"mode": "cut_after_pieces", "pieces": 0, "times": 1})
        messages, code, _ = df.download(url)
        expect(code == grpc.StatusCode.UNAVAILABLE and len(messages) == 1, (code, len(messages)))
        expect(df.get("/fault")["mode"] == "none", df.get("/fault"))
        _, code, _ = df.download(url)
        expect(code == grpc.StatusCode.OK, code)

    @check("fault corrupt: OK stream, wrong bytes; cleared: right bytes")
    def _():
        df.post("/fault", {"mode": "corrupt"})
        try:
            out = fresh("corrupt")
            messages, code, details = df.download(url, out, force_hard_link=True)
        finally:
            df.post("/fault", {"mode": "none"})
        expect(code == grpc.StatusCode.OK, (code, details))
        with open(out, "rb") as f:
            bad = f.read()
        expect(len(bad) == len(content) and bad != content, "bytes are right")
        check_stream(messages, len(content), bad, tid)  # the digests are those of the bytes written
        out = fresh("corrupt")
        messages, code, details = df.download(url, out, force_hard_link=True)
        with open(out, "rb") as f:
            expect(code == grpc.StatusCode.OK and f.read() == content, "retry: %s" % code)

    @check("fault delay_ms 150: 4 messages take >= 0.6 s; upload delayed too")
    def _():
        df.post("/fault", {"mode": "delay", "delay_ms": 150})
        try:
            started = time.monotonic()
            messages, code, _ = df.download(url)
            took = time.monotonic() - started
            expect(code == grpc.StatusCode.OK and len(messages) == 4 and took >= 0.6, (code, len(messages), took))
            started = time.monotonic()
            try:
                df.upload(url + "-delayed-" + uuid.uuid4().hex, src)
            finally:
                took = time.monotonic() - started
            expect(took >= 0.15, "upload took %.3f s" % took)
        finally:
            df.post("/fault", {"mode": "none"})

    @check("control: /counts counts calls per method and results")
    def _():
        c = df.get("/counts")
        expect(c["methods"].get("DownloadPersistentTask", 0) >= 20 and c["methods"].get("UploadPersistentTask", 0) >= 4
               and c["methods"].get("Check", 0) >= 3 and c["methods"].get("StatPersistentTask") == 1, c["methods"])
        expect(c["results"]["UploadPersistentTask"].get("ALREADY_EXISTS") == 1, c["results"])
        expect(c["downloads_by_url"].get(url, 0) >= 15, c["downloads_by_url"])
        try:
            http_json("POST", df.control + "/fault", {"mode": "bogus"})
            raise AssertionError("accepted a bad mode")
        except urllib.error.HTTPError as e:
            expect(e.code == 400, e.code)

    @check("fault die: the stream breaks after 1 piece, the socket is dead; restart")
    def _():
        df.post("/fault", {"mode": "die", "pieces": 1})
        messages, code, details = df.download(url)
        expect(code == grpc.StatusCode.UNAVAILABLE and len(messages) == 2, (code, details, len(messages)))
        time.sleep(0.3)
        df.connect()
        try:
            df.health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
            raise AssertionError("still answering")
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.UNAVAILABLE, e.code())
        expect(os.path.exists(env["DRAGONFLY_SOCKET"]), "the socket file should stay, dead")
        subprocess.run([env["SERVICES_PYTHON"], os.path.join(HERE, "servicectl.py"), "start-content",
                        env["SERVICES_DIR"], "--python", env["SERVICES_PYTHON"]], check=True)
        with open(os.path.join(env["SERVICES_DIR"], "content.env")) as f:
            expect("DRAGONFLY_CONTROL=%s\n" % env["DRAGONFLY_CONTROL"] in f.read(), "control port changed")
        df.connect()
        r = df.health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        expect(r.status == health_pb2.HealthCheckResponse.SERVING, r.status)
        expect(df.get("/fault")["mode"] == "none", "fault survived the restart")
        out = fresh("after-die")
        messages, code, details = df.download(url, out, force_hard_link=True)
        with open(out, "rb") as f:
            expect(code == grpc.StatusCode.OK and f.read() == content, (code, details))

    try:
        df.post("/fault", {"mode": "none"})
        df.post("/reset")
    except OSError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    for prefix in ("check/%s/" % run_id, "xxh3/%s-" % run_id):  # moto keeps objects in memory
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
    failed = [name for name, err in RESULTS if err is not None]
    print("%d passed, %d failed" % (len(RESULTS) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: check_content.py DIR/services.env", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
