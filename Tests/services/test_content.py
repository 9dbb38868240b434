"""Checks the content services with independent clients -- boto3, a
stdlib SigV4 signer, and a gRPC client on the official dragonfly-api stubs
-- and shows by example what the Swift transports must do.

    SNAPSHOTTER_TEST_SERVICES=DIR/services.env DIR/venv/bin/python -m pytest Tests/services/test_content.py

(scripts/services.sh check DIR runs it.) Needs the venv of services.sh
(boto3, grpcio, grpcio-health-checking, dragonfly-api, pytest). It leaves
the stand-in as it found it (fault none, default settings), except that its
counters are reset; the `die` test restarts it (same socket, same control
port) through servicectl.py. The tests run in file order and build on each
other (downloads need the upload before them, /counts counts what came
before, `die` is last): run the module whole.

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
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

import boto3
import grpc
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from dragonfly_api import common_pb2, dfdaemon_pb2, dfdaemon_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICE = "dfdaemon.v2.DfdaemonDownload"
MiB = 1 << 20


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
    assert messages and messages[0].WhichOneof("response") == "download_persistent_task_started_response", (
        "first message is not the started one: %s" % messages[:1])
    assert messages[0].download_persistent_task_started_response.content_length == content_length, (
        "content_length %d" % messages[0].download_persistent_task_started_response.content_length)
    plen = expected_piece_length(content_length)
    pieces = sorted(pieces_of(messages), key=lambda p: p.number)
    assert len(pieces) == len(messages) - 1, "a message that is neither started nor piece"
    assert [p.number for p in pieces] == list(range(-(-content_length // plen))), ("piece numbers %s" % [
        p.number for p in pieces])
    for p in pieces:
        assert p.offset == p.number * plen and p.length == min(plen, content_length - p.offset), (
            "piece %d: offset %d length %d" % (p.number, p.offset, p.length))
        if data is not None:
            assert p.digest == "crc32:%d" % zlib.crc32(data[p.offset:p.offset + p.length]), (
                "piece %d digest %s" % (p.number, p.digest))
    for m in messages:
        assert m.host_id and m.peer_id.startswith(m.host_id + "-") and (task is None or m.task_id == task), (
            "ids: %s %s %s" % (m.host_id, m.peer_id, m.task_id))
    return pieces


# --------------------------------------------------------------- fixtures --

@pytest.fixture(scope="module")
def bucket(env):
    return env["S3_BUCKET"]


@pytest.fixture(scope="module")
def region(env):
    return env["S3_REGION"]


@pytest.fixture(scope="module")
def endpoint(env):
    return env["S3_ENDPOINT"]


@pytest.fixture(scope="module")
def s3_client(env, region, endpoint):
    """boto3 clients: s3_client(secret=..., key_id=...) for a wrong key."""
    def make(secret=None, key_id=None, ep=None):
        return boto3.client("s3", endpoint_url=ep or endpoint, region_name=region,
                            aws_access_key_id=key_id or env["S3_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["S3_SECRET_ACCESS_KEY"] if secret is None else secret,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    return make


@pytest.fixture(scope="module")
def s3(s3_client, bucket, run_id):
    client = s3_client()
    yield client
    for prefix in ("check/%s/" % run_id, "xxh3/%s-" % run_id):  # moto keeps objects in memory
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])


@pytest.fixture(scope="module")
def tmp(env, run_id):
    """Outputs next to the stand-in's cache: a hard link needs one file system."""
    path = os.path.join(env["SERVICES_DIR"], "check-content-" + run_id)
    os.makedirs(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def data():
    return os.urandom(3 * MiB + 12345)


@pytest.fixture(scope="module")
def key(run_id):
    return "check/%s/object" % run_id


@pytest.fixture(scope="module")
def proxy_mode(env):
    """Sets the S3 fault proxy's mode: proxy_mode(mode="pass"), ..."""
    def set_mode(**spec):
        return http_json("POST", env["S3_PROXY_CONTROL"] + "/mode", spec)
    return set_mode


@pytest.fixture(scope="module")
def df(env):
    """The stand-in, its counters reset and its cache empty; left with no
    fault."""
    client = Dragonfly(env)
    client.post("/reset")
    client.post("/cache/clear")
    yield client
    try:
        client.post("/fault", {"mode": "none"})
        client.post("/reset")
    except OSError:
        pass


@pytest.fixture(scope="module")
def content():
    return os.urandom(9 * MiB + 4321)  # pieces of 4 MiB: 4 + 4 + 1 MiB and a bit


@pytest.fixture(scope="module")
def src(tmp, content):
    path = os.path.join(tmp, "content")
    with open(path, "wb") as f:
        f.write(content)
    return path


@pytest.fixture(scope="module")
def url(bucket, run_id):
    return "s3://%s/xxh3/%s-check" % (bucket, run_id)


@pytest.fixture(scope="module")
def tid(url, region, endpoint):
    return task_id(url, region, endpoint)


@pytest.fixture(scope="module")
def fresh(tmp):
    """fresh(name): a path in tmp where nothing is."""
    def path_for(name):
        path = os.path.join(tmp, name)
        if os.path.lexists(path):
            os.unlink(path)
        return path
    return path_for


@pytest.fixture(scope="module")
def task_file(env):
    """task_file(task id): the stand-in's file of that task."""
    def path_of(t):
        return os.path.join(env["DRAGONFLY_CACHE_DIR"], "persistent-tasks", t[:3], t)
    return path_of


# ----------------------------------------------------------------- checks --

def test_s3_the_access_key_lists_the_bucket(bucket, s3):
    """s3: the access key lists the bucket"""
    s3.list_objects_v2(Bucket=bucket, MaxKeys=1)


def test_s3_a_wrong_secret_gets_403_signaturedoesnotmatch_boto3(env, bucket, s3_client):
    """s3: a wrong secret gets 403 SignatureDoesNotMatch (boto3)"""
    try:
        s3_client(secret=env["S3_SECRET_ACCESS_KEY"] + "x").list_objects_v2(Bucket=bucket)
        raise AssertionError("accepted")
    except ClientError as e:
        assert (e.response["Error"]["Code"] == "SignatureDoesNotMatch"
                and e.response["ResponseMetadata"]["HTTPStatusCode"] == 403), e.response["Error"]


def test_s3_an_unknown_key_id_gets_403_invalidaccesskeyid(bucket, s3_client):
    """s3: an unknown key id gets 403 InvalidAccessKeyId"""
    try:
        s3_client(key_id="AKIAUNKNOWNKEY000000").list_objects_v2(Bucket=bucket)
        raise AssertionError("accepted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidAccessKeyId", e.response["Error"]


def test_s3_put_then_get_head_and_a_range_get_boto3(bucket, s3, data, key):
    """s3: PUT then GET, HEAD and a Range GET (boto3)"""
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, "GET bytes differ"
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(data), "HEAD length"
    r = s3.get_object(Bucket=bucket, Key=key, Range="bytes=1000-1999")
    assert r["Body"].read() == data[1000:2000] and r["ContentRange"] == "bytes 1000-1999/%d" % len(data), (
        r.get("ContentRange"))


def test_s3_a_missing_key_is_404_nosuchkey_get_404_without_body_head(env, bucket, key):
    """s3: a missing key is 404 NoSuchKey (GET), 404 without body (HEAD)"""
    status, _, body = s3_call(env, "GET", "/%s/%s-missing" % (bucket, key))
    assert status == 404 and xml_code(body) == "NoSuchKey", (status, body[:200])
    status, _, body = s3_call(env, "HEAD", "/%s/%s-missing" % (bucket, key))
    assert status == 404 and body == b"", (status, body)


def test_sigv4_stdlib_signer_get_range_get_206_put_unsigned_payload(env, run_id, bucket, data, key):
    """sigv4 (stdlib signer): GET, Range GET 206, PUT, UNSIGNED-PAYLOAD"""
    path = "/%s/%s" % (bucket, key)
    status, _, body = s3_call(env, "GET", path)
    assert status == 200 and body == data, "GET %d" % status
    status, hdrs, body = s3_call(env, "GET", path, extra={"Range": "bytes=%d-" % (len(data) - 10)})
    assert status == 206 and body == data[-10:], "Range GET %d %s" % (status, hdrs.get("content-range"))
    small = b"signed by hand " + run_id.encode()
    status, _, _ = s3_call(env, "PUT", path + "-hand", small, extra={"Content-Type": "application/octet-stream"})
    assert status == 200, "PUT %d" % status
    status, _, body = s3_call(env, "GET", path + "-hand", payload_hash="UNSIGNED-PAYLOAD")
    assert status == 200 and body == small, "UNSIGNED-PAYLOAD GET %d" % status


def test_sigv4_without_x_amz_content_sha256_403_signaturedoesnotmatch(env, bucket, key):
    """sigv4: without x-amz-content-sha256 -> 403 SignatureDoesNotMatch"""
    status, _, body = s3_call(env, "GET", "/%s/%s" % (bucket, key), content_sha_header=False)
    assert status == 403 and xml_code(body) == "SignatureDoesNotMatch", (status, body[:200])


def test_sigv4_a_wrong_secret_403_signaturedoesnotmatch_xml_body(env, bucket, key):
    """sigv4: a wrong secret -> 403 SignatureDoesNotMatch (XML body)"""
    status, _, body = s3_call(env, "GET", "/%s/%s" % (bucket, key), secret="wrong")
    assert status == 403 and xml_code(body) == "SignatureDoesNotMatch", (status, body[:200])


def test_moto_quirk_a_wrong_payload_hash_is_not_noticed_verify_digests_yourself(env, bucket, key):
    """moto quirk: a wrong payload hash is not noticed (verify digests yourself)"""
    status, _, _ = s3_call(env, "PUT", "/%s/%s-badhash" % (bucket, key), b"abc",
                           payload_hash=hashlib.sha256(b"xyz").hexdigest())
    assert status == 200, "moto now checks the payload hash (%d): update the notes" % status


def test_s3_multipart_upload_3_parts_in_strict_mode(bucket, s3, key):
    """s3: multipart upload (3 parts) in strict mode"""
    big = os.urandom(11 * MiB)
    s3.upload_fileobj(__import__("io").BytesIO(big), bucket, key + "-mp",
                      Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    h = s3.head_object(Bucket=bucket, Key=key + "-mp")
    assert h["ContentLength"] == len(big) and h["ETag"].endswith('-3"'), h["ETag"]
    assert s3.get_object(Bucket=bucket, Key=key + "-mp")["Body"].read() == big, "bytes differ"


def test_s3_proxy_signed_get_through_the_proxy_host_is_the_proxy_s(env, bucket, data, key):
    """s3-proxy: signed GET through the proxy (Host is the proxy's)"""
    status, _, body = s3_call(env, "GET", "/%s/%s" % (bucket, key), base=env["S3_PROXY"])
    assert status == 200 and body == data, "GET %d" % status


def test_s3_proxy_cut_mid_download_then_a_range_get_resumes(env, bucket, data, key, proxy_mode):
    """s3-proxy: cut mid-download, then a Range GET resumes"""
    try:
        proxy_mode(mode="cut_after", bytes=1 * MiB, direction="down", then="pass")
        status, hdrs, got = s3_call(env, "GET", "/%s/%s" % (bucket, key), base=env["S3_PROXY"], read_limit=True)
        assert 0 < len(got) < len(data), "got %d of %d bytes" % (len(got), len(data))
        status, hdrs, rest = s3_call(env, "GET", "/%s/%s" % (bucket, key), base=env["S3_PROXY"],
                                     extra={"Range": "bytes=%d-" % len(got)})
        assert status == 206 and got + rest == data, "resume %d, %d bytes" % (status, len(rest))
    finally:
        proxy_mode(mode="pass")


def test_dfdaemon_health_serving_for_dfdaemon_v2_dfdaemondownload_and(df):
    """dfdaemon: health SERVING for dfdaemon.v2.DfdaemonDownload and ''"""
    for service in (SERVICE, ""):
        r = df.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING, "%r: %s" % (service, r.status)
    try:
        df.health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        raise AssertionError("answered")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()


def test_dfdaemon_sigterm_and_sigint_are_not_blocked_in_the_stand_in(env):
    """dfdaemon: SIGTERM and SIGINT are not blocked in the stand-in"""
    with open(os.path.join(env["SERVICES_DIR"], "run", "dfdaemon.pid")) as f:
        pid = int(f.read())
    with open("/proc/%d/status" % pid) as f:
        blocked = int([ln for ln in f if ln.startswith("SigBlk:")][0].split()[1], 16)
    assert not blocked & (1 << (15 - 1)) and not blocked & (1 << (2 - 1)), "SigBlk %x" % blocked


def test_dfdaemon_other_methods_answer_unimplemented(df):
    """dfdaemon: other methods answer UNIMPLEMENTED"""
    try:
        df.stub.StatPersistentTask(dfdaemon_pb2.StatPersistentTaskRequest(task_id="x"), timeout=5)
        raise AssertionError("answered")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e.code()


def test_dfdaemon_invalid_argument_without_object_storage_region_or_endpoint(region, endpoint, df, src, url):
    """dfdaemon: INVALID_ARGUMENT without object_storage, region or endpoint"""
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
            assert code == grpc.StatusCode.INVALID_ARGUMENT and details == message, (
                "%s %s: %s %s" % (call, message, code, details))


def test_dfdaemon_empty_region_and_endpoint_count_as_present(df, url):
    """dfdaemon: empty region and endpoint count as present (-> INTERNAL, not contacted)"""
    _, code, details = df.download(url, storage=common_pb2.ObjectStorage(region="", endpoint=""))
    assert code == grpc.StatusCode.INTERNAL and "endpoint" in details, (code, details)


def test_dfdaemon_upload_persistenttask_succeeded_object_in_moto(run_id, bucket, s3, df, src, content, url, tid):
    """dfdaemon: upload -> PersistentTask Succeeded, object in moto"""
    t = df.upload(url, src)
    assert t.id == tid, "task id %s, want %s" % (t.id, tid)
    assert (t.state == "Succeeded" and t.content_length == len(content) and t.piece_count == 3
            and t.persistent_replica_count == 3), t
    got = s3.get_object(Bucket=bucket, Key="xxh3/%s-check" % run_id)["Body"].read()
    assert got == content, "object in moto differs"


def test_dfdaemon_second_upload_already_exists(df, src, url):
    """dfdaemon: second upload -> ALREADY_EXISTS"""
    try:
        df.upload(url, src)
        raise AssertionError("accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.ALREADY_EXISTS, (e.code(), e.details())


def test_dfdaemon_upload_with_a_wrong_secret_internal(df, src, url):
    """dfdaemon: upload with a wrong secret -> INTERNAL"""
    try:
        df.upload(url + "-wrongsecret", src, storage=df.storage(secret="wrong"))
        raise AssertionError("accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INTERNAL, (e.code(), e.details())


def test_dfdaemon_download_from_s3_hard_link_before_the_data_pieces_bytes(df, content, url, tid, fresh, task_file):
    """dfdaemon: download from S3: hard link before the data, pieces, bytes"""
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
    assert code == grpc.StatusCode.OK, (code, details)
    assert seen.get("inode") and seen["size"] == len(content) and seen["first"] == b"\0" * 4096, (
        "output at the started message: %s" % {k: v if k != "first" else v[:8] for k, v in seen.items()})
    pieces = check_stream(messages, len(content), content, tid)
    assert [p.length for p in pieces] == [4 * MiB, 4 * MiB, len(content) - 8 * MiB], "piece lengths"
    assert all(p.traffic_type == common_pb2.TrafficType.BACK_TO_SOURCE for p in pieces), "traffic types"
    with open(out, "rb") as f:
        assert f.read() == content, "output bytes differ"
    assert df.get("/counts")["s3"]["get"] == before + 1, "one GET for the whole object"


def test_dfdaemon_download_again_from_the_cache_local_peer_same_inode(df, content, url, tid, fresh, task_file):
    """dfdaemon: download again -> from the cache (LOCAL_PEER), same inode"""
    out = fresh("out2")
    messages, code, details = df.download(url, out, force_hard_link=True)
    assert code == grpc.StatusCode.OK, (code, details)
    pieces = check_stream(messages, len(content), content, tid)
    assert all(p.traffic_type == common_pb2.TrafficType.LOCAL_PEER for p in pieces), "traffic types"
    assert os.path.samefile(out, task_file(tid)), "not a hard link to the task file"


def test_dfdaemon_the_upload_s_file_itself_is_the_cached_task_hard_link(region, endpoint, df, src, url, task_file):
    """dfdaemon: the upload's file itself is the cached task (hard link)"""
    df.post("/cache/clear")
    url2 = url + "-linked"
    df.upload(url2, src)
    assert os.path.samefile(src, task_file(task_id(url2, region, endpoint))), "not linked"


def test_dfdaemon_a_missing_object_internal_before_any_message(df, url, fresh):
    """dfdaemon: a missing object -> INTERNAL before any message"""
    out = fresh("missing")
    messages, code, details = df.download(url + "-missing", out, force_hard_link=True)
    assert code == grpc.StatusCode.INTERNAL and not messages and not os.path.exists(out), (
        (code, details, len(messages)))


def test_dfdaemon_settings_missing_code_not_found_later_daemons(df, url):
    """dfdaemon: settings missing_code NOT_FOUND (later daemons)"""
    df.post("/settings", {"missing_code": "NOT_FOUND"})
    try:
        _, code, details = df.download(url + "-missing")
        assert code == grpc.StatusCode.NOT_FOUND, (code, details)
    finally:
        df.post("/settings", {"missing_code": "INTERNAL"})


def test_dfdaemon_force_hard_link_parent_missing_internal_before_any_message(tmp, df, url):
    """dfdaemon: force_hard_link, parent missing -> INTERNAL before any message"""
    messages, code, details = df.download(url, os.path.join(tmp, "no-such-dir", "out"), force_hard_link=True)
    assert code == grpc.StatusCode.INTERNAL and not messages, (code, details)


def test_dfdaemon_force_hard_link_onto_another_file_is_internal_even_with_overwrite(df, url, fresh):
    """dfdaemon: force_hard_link, output is another file -> INTERNAL, even with overwrite"""
    out = fresh("other")
    with open(out, "wb") as f:
        f.write(b"another file")
    messages, code, details = df.download(url, out, force_hard_link=True, overwrite=True)
    assert code == grpc.StatusCode.INTERNAL and not messages, (code, details)
    with open(out, "rb") as f:
        assert f.read() == b"another file", "the other file was touched"


def test_dfdaemon_no_force_hard_link_onto_another_file_fails_after_the_pieces(df, content, url, tid, fresh, task_file):
    """dfdaemon: no force_hard_link: another file -> INTERNAL after the pieces; overwrite copies"""
    out = fresh("other2")
    with open(out, "wb") as f:
        f.write(b"another file")
    messages, code, details = df.download(url, out)
    assert (code == grpc.StatusCode.INTERNAL and "already exists" in details
            and len(pieces_of(messages)) == 3), (code, details, len(messages))
    messages, code, details = df.download(url, out, overwrite=True)
    assert code == grpc.StatusCode.OK, (code, details)
    with open(out, "rb") as f:
        assert f.read() == content, "not overwritten"
    assert not os.path.samefile(out, task_file(tid)), "a copy, not a link"


def test_dfdaemon_digest_sha256_checked_right_ok_wrong_and_xxh3_internal(df, content, url, fresh):
    """dfdaemon: digest sha256 checked (right OK, wrong and xxh3 INTERNAL)"""
    for digest, want in (("sha256:" + hashlib.sha256(content).hexdigest(), grpc.StatusCode.OK),
                         ("sha256:" + "0" * 64, grpc.StatusCode.INTERNAL),
                         ("crc32:%d" % zlib.crc32(content), grpc.StatusCode.OK),
                         ("xxh3:0123456789abcdef", grpc.StatusCode.INTERNAL)):
        out = fresh("digest")
        messages, code, details = df.download(url, out, force_hard_link=True, digest=digest)
        assert code == want, "%s: %s %s" % (digest.split(":")[0], code, details)


def test_dfdaemon_need_piece_content_without_output_path_carries_the_bytes(df, content, url, tid):
    """dfdaemon: need_piece_content without output_path carries the bytes"""
    messages, code, details = df.download(url, need_piece_content=True)
    assert code == grpc.StatusCode.OK, (code, details)
    pieces = check_stream(messages, len(content), content, tid)
    assert b"".join(p.content for p in pieces) == content, "contents differ"


def test_dfdaemon_an_empty_object_started_0_no_piece_empty_output(run_id, bucket, s3, df, fresh):
    """dfdaemon: an empty object -> started(0), no piece, empty output"""
    s3.put_object(Bucket=bucket, Key="xxh3/%s-empty" % run_id, Body=b"")
    out = fresh("empty")
    messages, code, details = df.download("s3://%s/xxh3/%s-empty" % (bucket, run_id), out, force_hard_link=True)
    assert code == grpc.StatusCode.OK and len(messages) == 1 and os.path.getsize(out) == 0, (code, details, messages)
    check_stream(messages, 0)


def test_dfdaemon_provider_oss_is_served_too_another_task_id(run_id, bucket, region, endpoint, s3, df, fresh):
    """dfdaemon: provider oss:// is served too (another task id)"""
    s3.put_object(Bucket=bucket, Key="xxh3/%s-oss" % run_id, Body=b"oss bytes")
    u = "oss://%s/xxh3/%s-oss" % (bucket, run_id)
    out = fresh("oss")
    messages, code, details = df.download(u, out, force_hard_link=True)
    assert code == grpc.StatusCode.OK and messages[0].task_id == task_id(u, region, endpoint), (code, details)
    with open(out, "rb") as f:
        assert f.read() == b"oss bytes", "bytes"


def test_dfdaemon_through_the_s3_fault_proxy_as_endpoint(env, region, df, content, url, fresh):
    """dfdaemon: through the S3 fault proxy as endpoint"""
    out = fresh("via-proxy")
    messages, code, details = df.download(url, out, storage=df.storage(endpoint=env["S3_PROXY"]),
                                          force_hard_link=True)
    assert code == grpc.StatusCode.OK and messages[0].task_id == task_id(url, region, env["S3_PROXY"]), (
        (code, details))
    with open(out, "rb") as f:
        assert f.read() == content, "bytes"


def test_dfdaemon_settings_order_reverse_pieces_last_first_bytes_right(df, content, url, fresh):
    """dfdaemon: settings order reverse -> pieces last first, bytes right"""
    df.post("/cache/clear")
    df.post("/settings", {"order": "reverse"})
    try:
        out = fresh("reverse")
        messages, code, details = df.download(url, out, force_hard_link=True)
    finally:
        df.post("/settings", {"order": "sequential"})
    assert code == grpc.StatusCode.OK, (code, details)
    assert [p.number for p in pieces_of(messages)] == [2, 1, 0], [p.number for p in pieces_of(messages)]
    with open(out, "rb") as f:
        assert f.read() == content, "bytes"


def test_dfdaemon_8_concurrent_downloads_of_one_task_one_s3_get_all_right(df, content, url, fresh):
    """dfdaemon: 8 concurrent downloads of one task: one S3 GET, all right"""
    df.post("/cache/clear")
    before = df.get("/counts")["s3"].get("get", 0)

    def one(i):
        out = fresh("conc%d" % i)
        messages, code, details = df.download(url, out, force_hard_link=True)
        with open(out, "rb") as f:
            return code, details, f.read() == content
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert all(r[0] == grpc.StatusCode.OK and r[2] for r in results), results
    assert df.get("/counts")["s3"]["get"] == before + 1, "S3 GETs: %d" % (df.get("/counts")["s3"]["get"] - before)


def test_fault_cut_after_pieces_1_started_1_piece_unavailable_retry_resumes(df, content, url, tid, fresh):
    """fault cut_after_pieces 1: started + 1 piece, UNAVAILABLE; retry resumes"""
    df.post("/cache/clear")
    df.post("/fault", {"mode": "cut_after_pieces", "pieces": 1})
    try:
        out = fresh("cut")
        messages, code, details = df.download(url, out, force_hard_link=True)
        assert code == grpc.StatusCode.UNAVAILABLE and len(messages) == 2, (code, details, len(messages))
        messages, code, details = df.download(url, out, force_hard_link=True)
        assert code == grpc.StatusCode.UNAVAILABLE, "the fault stays until cleared: %s" % code
    finally:
        df.post("/fault", {"mode": "none"})
    messages, code, details = df.download(url, out, force_hard_link=True)  # same output: same inode
    assert code == grpc.StatusCode.OK, (code, details)
    pieces = check_stream(messages, len(content), content, tid)
    assert ([p.traffic_type for p in pieces] == [common_pb2.TrafficType.LOCAL_PEER]
            + [common_pb2.TrafficType.BACK_TO_SOURCE] * 2), [p.traffic_type for p in pieces]
    with open(out, "rb") as f:
        assert f.read() == content, "bytes"


def test_fault_cut_after_pieces_0_with_times_1_cut_after_started_then_clear(df, url):
    """fault cut_after_pieces 0 with times 1: cut after started, then clear"""
    df.post("/fault", {"mode": "cut_after_pieces", "pieces": 0, "times": 1})
    messages, code, _ = df.download(url)
    assert code == grpc.StatusCode.UNAVAILABLE and len(messages) == 1, (code, len(messages))
    assert df.get("/fault")["mode"] == "none", df.get("/fault")
    _, code, _ = df.download(url)
    assert code == grpc.StatusCode.OK, code


def test_fault_corrupt_ok_stream_wrong_bytes_cleared_right_bytes(df, content, url, tid, fresh):
    """fault corrupt: OK stream, wrong bytes; cleared: right bytes"""
    df.post("/fault", {"mode": "corrupt"})
    try:
        out = fresh("corrupt")
        messages, code, details = df.download(url, out, force_hard_link=True)
    finally:
        df.post("/fault", {"mode": "none"})
    assert code == grpc.StatusCode.OK, (code, details)
    with open(out, "rb") as f:
        bad = f.read()
    assert len(bad) == len(content) and bad != content, "bytes are right"
    check_stream(messages, len(content), bad, tid)  # the digests are those of the bytes written
    out = fresh("corrupt")
    messages, code, details = df.download(url, out, force_hard_link=True)
    with open(out, "rb") as f:
        assert code == grpc.StatusCode.OK and f.read() == content, "retry: %s" % code


def test_fault_delay_ms_150_4_messages_take_0_6_s_upload_delayed_too(df, src, url):
    """fault delay_ms 150: 4 messages take >= 0.6 s; upload delayed too"""
    df.post("/fault", {"mode": "delay", "delay_ms": 150})
    try:
        started = time.monotonic()
        messages, code, _ = df.download(url)
        took = time.monotonic() - started
        assert code == grpc.StatusCode.OK and len(messages) == 4 and took >= 0.6, (code, len(messages), took)
        started = time.monotonic()
        try:
            df.upload(url + "-delayed-" + uuid.uuid4().hex, src)
        finally:
            took = time.monotonic() - started
        assert took >= 0.15, "upload took %.3f s" % took
    finally:
        df.post("/fault", {"mode": "none"})


def test_control_counts_counts_calls_per_method_and_results(df, url):
    """control: /counts counts calls per method and results"""
    c = df.get("/counts")
    assert (c["methods"].get("DownloadPersistentTask", 0) >= 20 and c["methods"].get("UploadPersistentTask", 0) >= 4
            and c["methods"].get("Check", 0) >= 3 and c["methods"].get("StatPersistentTask") == 1), c["methods"]
    assert c["results"]["UploadPersistentTask"].get("ALREADY_EXISTS") == 1, c["results"]
    assert c["downloads_by_url"].get(url, 0) >= 15, c["downloads_by_url"]
    try:
        http_json("POST", df.control + "/fault", {"mode": "bogus"})
        raise AssertionError("accepted a bad mode")
    except urllib.error.HTTPError as e:
        assert e.code == 400, e.code


def test_fault_die_the_stream_breaks_after_1_piece_the_socket_is_dead_restart(env, df, content, url, fresh):
    """fault die: the stream breaks after 1 piece, the socket is dead; restart"""
    df.post("/fault", {"mode": "die", "pieces": 1})
    messages, code, details = df.download(url)
    assert code == grpc.StatusCode.UNAVAILABLE and len(messages) == 2, (code, details, len(messages))
    time.sleep(0.3)
    df.connect()
    try:
        df.health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
        raise AssertionError("still answering")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAVAILABLE, e.code()
    assert os.path.exists(env["DRAGONFLY_SOCKET"]), "the socket file should stay, dead"
    subprocess.run([env["SERVICES_PYTHON"], os.path.join(HERE, "servicectl.py"), "start-content",
                    env["SERVICES_DIR"], "--python", env["SERVICES_PYTHON"]], check=True)
    with open(os.path.join(env["SERVICES_DIR"], "content.env")) as f:
        assert "DRAGONFLY_CONTROL=%s\n" % env["DRAGONFLY_CONTROL"] in f.read(), "control port changed"
    df.connect()
    r = df.health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    assert r.status == health_pb2.HealthCheckResponse.SERVING, r.status
    assert df.get("/fault")["mode"] == "none", "fault survived the restart"
    out = fresh("after-die")
    messages, code, details = df.download(url, out, force_hard_link=True)
    with open(out, "rb") as f:
        assert code == grpc.StatusCode.OK and f.read() == content, (code, details)
