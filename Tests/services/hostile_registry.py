#!/usr/bin/env python3
"""A registry that answers pulls with crafted bad answers, chosen by repository.

It speaks just enough of the OCI distribution API for a pull:

    GET /v2/                              200 {}
    GET|HEAD /v2/<name>/manifests/<ref>   the manifest of repository <name>
    GET|HEAD /v2/<name>/blobs/<digest>    a blob that repository serves

The behaviour is picked by the last component of <name>, so `ns/huge` and
`huge` behave alike and a client that always prefixes a namespace works. Any
tag (or the manifest's own digest) names the manifest.

    good              a valid snapshot (FORMAT.md 4 and 5), byte-exact, real
                      sha256 digests; its config lists one file, by default
                      ckpt1/state = the 12 bytes "hello world\\n",
                      xxh3:6b1e182d921cd510 (the FORMAT.md example)
    huge              a valid manifest of 16 MiB (a giant annotation) with a
                      Content-Length, sent in 256 KiB pieces 10 ms apart
    hugechunked       the same with Transfer-Encoding: chunked, no length
    hugeconfig        a valid manifest whose config blob is 16 MiB
    malformed         a manifest that is not JSON (cut off mid-object)
    wrongtype         artifactType application/vnd.example.not-a-snapshot.v1+json
    wrongconfigtype   config mediaType application/vnd.oci.image.config.v1+json
    wrongmediatype    manifest mediaType (and Content-Type) of a Docker schema 2
                      manifest, application/vnd.docker.distribution.manifest.v2+json
    escape            a valid manifest; the config (digest correct) lists
                      relativePath ../../etc/evil
    absolute          the same with relativePath /etc/passwd
    baddigest         the config blob's bytes do not match the digest in the
                      manifest (the registry sends the right size and bytes of
                      a different config)
    badmanifestdigest the manifest's Docker-Content-Digest header is not the
                      sha256 of the body (and pulling by digest gets that body)
    notfound          404 {"errors":[{"code":"MANIFEST_UNKNOWN",...}]}
    unauthorized      401 UNAUTHORIZED with a Basic challenge
    denied            403 DENIED
    flaky             the first two manifest requests (GET or HEAD) of the
                      process answer 503, then the good manifest; POST /reset
                      starts over
    ratelimited       the first two manifest requests answer 429 with
                      Retry-After: 1, then the good manifest
    slow              never answers, not even a status line (timeouts)
    slowbody          sends the headers and half of the good manifest, then
                      nothing more (transfer / low-speed timeouts)

Repositories that test where credentials go; they talk to the recorder, a
second listener of this process on its own port (another origin):

    foreignrealm      answers 401 Bearer with realm http://127.0.0.1:<recorder>/token
                      (plain http, another origin) until a request carries
                      `Bearer recorder-token`, then serves as good does
    filerealm         answers 401 Bearer with realm file://<secret file>, a
                      file of this process holding "hostile-realm-secret-..."
    redirect          manifests need any Authorization (401 Basic otherwise),
                      then serve as good does; blob GETs answer 307 to the
                      recorder, which serves the blob

Outside /v2, any request under /s3redirect/ (object storage with the bucket
`s3redirect`, path style) answers 307 to the same path under /s3/ on the
recorder, which answers 404.

The recorder answers GET /token with {"token": "recorder-token"} to anyone,
GET /blob/<digest> with a blob of good, and records every request as
{"method", "path", "authorization", "cookie", "x-amz-security-token"} (null
when absent): GET /recorded
lists them, POST /recorded/reset clears them.

Anything else answers 404 NAME_UNKNOWN, a push (POST, PUT, PATCH, DELETE)
answers 405 UNSUPPORTED.

Control, outside /v2:

    POST /reset        resets the flaky/ratelimited counters and the good
                       config; answers {"ok": true}
    POST /good         body: a config blob (JSON bytes, served as they are)
                       that good:* serves from now on; answers
                       {"manifestDigest": ..., "configDigest": ...}
    GET  /good         {"manifestDigest": ..., "configDigest": ..., "config": ...}
    GET  /counts       how many manifest requests each repository has had
"""

import argparse
import hashlib
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.cncf.dragonfly.snapshotter.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.cncf.dragonfly.snapshotter.config.v1+json"
DOCKER_MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
HUGE = 16 << 20  # twice the 8 MiB that a client should refuse at

DEFAULT_FILE = {
    "digest": "xxh3:6b1e182d921cd510",  # "hello world\n", shared/testdata/vectors.json
    "readOnly": True,
    "relativePath": "ckpt1/state",
    "metadata": {"mode": 420, "uid": 0, "gid": 0, "size": 12,
                 "mtime": "2025-11-29T15:57:09.123456789Z", "typeflag": 0},
}


def compact(obj) -> bytes:
    """JSON as Go's encoding/json writes it: no spaces, UTF-8, keys in the
    order given (Python dicts keep insertion order, Go keeps struct order)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_bytes(files) -> bytes:
    return compact({"files": files})


def manifest_bytes(config: bytes, artifact_type=ARTIFACT_TYPE, config_media_type=CONFIG_MEDIA_TYPE,
                   media_type=MANIFEST_MEDIA_TYPE, config_digest=None, annotations=None) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "artifactType": artifact_type,
        "config": {"mediaType": config_media_type,
                   "digest": config_digest or sha256(config),
                   "size": len(config)},
        "layers": [],
    }
    if annotations:
        manifest["annotations"] = annotations
    return compact(manifest)


class Artifact:
    """A manifest and the blobs it names, plus how to send the manifest."""

    def __init__(self, manifest, blobs=None, content_type=MANIFEST_MEDIA_TYPE, header_digest=None):
        self.manifest = manifest
        self.blobs = blobs or {}
        self.content_type = content_type
        self.digest = sha256(manifest)
        self.header_digest = header_digest or self.digest


def good_artifact(config: bytes) -> Artifact:
    return Artifact(manifest_bytes(config), {sha256(config): config})


def build_artifacts(good_config: bytes):
    a = {"good": good_artifact(good_config)}

    pad = "x" * HUGE
    a["huge"] = Artifact(manifest_bytes(good_config, annotations={"pad": pad}), {sha256(good_config): good_config})
    a["hugechunked"] = a["huge"]
    huge_config = compact({"files": [DEFAULT_FILE], "pad": pad})
    a["hugeconfig"] = good_artifact(huge_config)

    malformed = manifest_bytes(good_config)[:60]
    a["malformed"] = Artifact(malformed)

    a["wrongtype"] = Artifact(manifest_bytes(good_config, artifact_type="application/vnd.example.not-a-snapshot.v1+json"),
                              {sha256(good_config): good_config})
    image_config = good_config
    a["wrongconfigtype"] = Artifact(manifest_bytes(image_config, config_media_type="application/vnd.oci.image.config.v1+json"),
                                    {sha256(image_config): image_config})
    a["wrongmediatype"] = Artifact(manifest_bytes(good_config, media_type=DOCKER_MANIFEST_MEDIA_TYPE),
                                   {sha256(good_config): good_config}, content_type=DOCKER_MANIFEST_MEDIA_TYPE)

    a["escape"] = good_artifact(config_bytes([dict(DEFAULT_FILE, relativePath="../../etc/evil")]))
    a["absolute"] = good_artifact(config_bytes([dict(DEFAULT_FILE, relativePath="/etc/passwd")]))

    # The manifest names the digest of one config; the blob URL serves another
    # of the same length, so only hashing the bytes can tell.
    claimed = config_bytes([DEFAULT_FILE])
    served = config_bytes([dict(DEFAULT_FILE, relativePath="ckpt1/other")])
    assert len(claimed) == len(served)
    a["baddigest"] = Artifact(manifest_bytes(claimed), {sha256(claimed): served})

    lying = good_artifact(good_config)
    a["badmanifestdigest"] = Artifact(lying.manifest, lying.blobs, header_digest=sha256(b"not this manifest"))

    a["flaky"] = good_artifact(good_config)
    a["ratelimited"] = good_artifact(good_config)
    a["slowbody"] = good_artifact(good_config)
    a["foreignrealm"] = good_artifact(good_config)
    a["redirect"] = good_artifact(good_config)
    return a


def oci_error(code, message):
    return compact({"errors": [{"code": code, "message": message}]})


class HostileRegistry(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, secret_file):
        super().__init__(address, Handler)
        self.recorder = Recorder((address[0], 0), self)
        self.secret_file = secret_file
        self.lock = threading.Lock()
        self.default_config = config_bytes([DEFAULT_FILE])
        self.artifacts = build_artifacts(self.default_config)  # the huge ones take a moment: once
        self.reset()

    def reset(self):
        with self.lock:
            self.counts = {}
            self.artifacts["good"] = good_artifact(self.default_config)

    def set_good(self, config: bytes):
        with self.lock:
            self.artifacts["good"] = good_artifact(config)
            return self.artifacts["good"]

    def count(self, repo):
        with self.lock:
            self.counts[repo] = self.counts.get(repo, 0) + 1
            return self.counts[repo]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "snapshotter-test-hostile-registry"

    def log_message(self, fmt, *args):
        print("%s %s" % (time.strftime("%H:%M:%S"), fmt % args), flush=True)

    def send(self, status, body=b"", content_type="application/json", headers=(), digest=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_body(self, status, code, message, headers=()):
        self.send(status, oci_error(code, message), headers=headers)

    # -- the distribution API ------------------------------------------------

    def route(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/s3redirect/"):
            self.send(307, b"", headers=[("Location", "http://%s:%d/s3%s" % (
                self.server.recorder.server_address[:2] + (self.path,)))])
            return
        if path in ("/v2", "/v2/"):
            self.send(200, b"{}")
            return
        for kind in ("manifests", "blobs"):
            marker = "/%s/" % kind
            if path.startswith("/v2/") and marker in path:
                name, _, ref = path[4:].rpartition(marker)
                repo = name.rsplit("/", 1)[-1]
                getattr(self, kind)(repo, ref)
                return
        self.send_error_body(404, "NAME_UNKNOWN", "repository name not known to registry")

    def bearer_challenge(self, realm, name):
        self.send_error_body(401, "UNAUTHORIZED", "authentication required",
                             [("WWW-Authenticate", 'Bearer realm="%s",service="hostile",scope="repository:%s:pull"'
                               % (realm, name))])

    def credential_check(self, repo):
        """The credential repositories' 401s; True when one was sent."""
        auth = self.headers.get("Authorization")
        name = urllib.parse.urlsplit(self.path).path[4:].split("/manifests/")[0].split("/blobs/")[0]
        if repo == "foreignrealm" and auth != "Bearer recorder-token":
            self.bearer_challenge("http://%s:%d/token" % self.server.recorder.server_address[:2], name)
            return True
        if repo == "filerealm":
            self.bearer_challenge("file://" + self.server.secret_file, name)
            return True
        if repo == "redirect" and not auth:
            self.send_error_body(401, "UNAUTHORIZED", "authentication required",
                                 [("WWW-Authenticate", 'Basic realm="hostile"')])
            return True
        return False

    def manifests(self, repo, ref):
        server = self.server
        n = server.count(repo)
        if self.credential_check(repo):
            return
        if repo == "notfound":
            self.send_error_body(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return
        if repo == "unauthorized":
            self.send_error_body(401, "UNAUTHORIZED", "authentication required",
                                 [("WWW-Authenticate", 'Basic realm="hostile"')])
            return
        if repo == "denied":
            self.send_error_body(403, "DENIED", "requested access to the resource is denied")
            return
        if repo == "slow":
            self.hang()
            return
        if repo == "flaky" and n <= 2:
            self.send_error_body(503, "UNAVAILABLE", "service unavailable (flaky, attempt %d)" % n)
            return
        if repo == "ratelimited" and n <= 2:
            self.send_error_body(429, "TOOMANYREQUESTS", "too many requests (attempt %d)" % n,
                                 [("Retry-After", "1")])
            return
        artifact = server.artifacts.get(repo)
        if artifact is None:
            self.send_error_body(404, "NAME_UNKNOWN", "repository name not known to registry")
            return
        if ref.startswith("sha256:") and ref not in (artifact.digest, artifact.header_digest):
            self.send_error_body(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return
        if repo in ("huge", "hugechunked"):
            self.stream(artifact, chunked=(repo == "hugechunked"))
            return
        if repo == "slowbody":
            self.send_response(200)
            self.send_header("Content-Type", artifact.content_type)
            self.send_header("Content-Length", str(len(artifact.manifest)))
            self.send_header("Docker-Content-Digest", artifact.header_digest)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(artifact.manifest[:len(artifact.manifest) // 2])
                self.wfile.flush()
                self.hang()
            return
        self.send(200, artifact.manifest, artifact.content_type, digest=artifact.header_digest)

    def blobs(self, repo, digest):
        if self.credential_check(repo):
            return
        if repo == "redirect":
            self.send(307, b"", headers=[("Location", "http://%s:%d/blob/%s" % (
                self.server.recorder.server_address[:2] + (digest,)))])
            return
        artifact = self.server.artifacts.get(repo)
        blob = artifact.blobs.get(digest) if artifact else None
        if blob is None:
            self.send_error_body(404, "BLOB_UNKNOWN", "blob unknown to registry")
            return
        self.send(200, blob, "application/octet-stream", digest=digest)

    def stream(self, artifact, chunked):
        body, piece = artifact.manifest, 256 << 10
        self.send_response(200)
        self.send_header("Content-Type", artifact.content_type)
        self.send_header("Docker-Content-Digest", artifact.header_digest)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            for start in range(0, len(body), piece):
                part = body[start:start + piece]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                self.wfile.flush()
                time.sleep(0.01)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up: what we wanted

    def hang(self):
        """Say nothing until the client goes away (or forever)."""
        self.close_connection = True
        self.connection.settimeout(1.0)
        while True:
            try:
                if not self.connection.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    # -- control --------------------------------------------------------------

    CONTROL = {("POST", "/reset"), ("POST", "/good"), ("GET", "/good"), ("GET", "/counts"), ("GET", "/healthz")}

    def control(self):
        path = urllib.parse.urlsplit(self.path).path
        if (self.command, path) not in self.CONTROL:
            return False
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        if self.command == "POST" and path == "/reset":
            server.reset()
            self.send(200, b'{"ok":true}')
        elif self.command == "POST" and path == "/good":
            try:
                json.loads(body)
            except ValueError as e:
                self.send(400, compact({"error": "not JSON: %s" % e}))
                return
            artifact = server.set_good(body)
            self.send(200, compact({"manifestDigest": artifact.digest, "configDigest": sha256(body)}))
        elif self.command == "GET" and path == "/good":
            artifact = server.artifacts["good"]
            config = next(iter(artifact.blobs.values()))
            self.send(200, compact({"manifestDigest": artifact.digest, "configDigest": sha256(config),
                                    "config": json.loads(config)}))
        elif self.command == "GET" and path == "/counts":
            self.send(200, compact(server.counts))
        else:
            self.send(200, b'{"ok":true}')
        return True

    def do_GET(self):
        if not self.path.startswith("/v2") and self.control():
            return
        self.route()

    def do_HEAD(self):
        self.route()

    def do_POST(self):
        if not self.path.startswith("/v2") and self.control():
            return
        self.unsupported()

    def unsupported(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/s3redirect/"):
            self.route()
            return
        self.send_error_body(405, "UNSUPPORTED", "this registry only serves pulls")

    do_PUT = do_PATCH = do_DELETE = unsupported


class Recorder(ThreadingHTTPServer):
    """Another origin: records who sent what Authorization header."""
    daemon_threads = True

    def __init__(self, address, registry):
        super().__init__(address, RecorderHandler)
        self.registry = registry
        self.lock = threading.Lock()
        self.requests = []


class RecorderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print("%s recorder %s" % (time.strftime("%H:%M:%S"), fmt % args), flush=True)

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = urllib.parse.urlsplit(self.path).path
        server = self.server
        if path == "/recorded" and self.command == "GET":
            with server.lock:
                self.reply(200, compact(server.requests))
            return
        if path == "/recorded/reset" and self.command == "POST":
            with server.lock:
                server.requests = []
            self.reply(200, b'{"ok":true}')
            return
        with server.lock:
            server.requests.append({"method": self.command, "path": self.path,
                                    "authorization": self.headers.get("Authorization"),
                                    "cookie": self.headers.get("Cookie"),
                                    "x-amz-security-token": self.headers.get("X-Amz-Security-Token")})
        if path == "/token":
            self.reply(200, compact({"token": "recorder-token", "expires_in": 300}))
            return
        if path.startswith("/blob/"):
            blob = server.registry.artifacts["redirect"].blobs.get(path[len("/blob/"):])
            if blob is not None:
                self.reply(200, blob, "application/octet-stream")
                return
        self.reply(404, oci_error("NOT_FOUND", "nothing here"))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    args = parser.parse_args()
    base = os.path.dirname(os.path.abspath(args.port_file)) if args.port_file else "/tmp"
    secret_file = os.path.join(base, "realm-secret")
    with open(secret_file, "w") as f:
        f.write("hostile-realm-secret-%s\n" % secrets.token_hex(8))
    server = HostileRegistry((args.host, args.port), secret_file)
    port = server.server_address[1]
    recorder_port = server.recorder.server_address[1]
    threading.Thread(target=server.recorder.serve_forever, daemon=True).start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n%d\n" % (port, recorder_port))
        os.replace(tmp, args.port_file)
    print("listening on %s:%d, recorder on %d" % (args.host, port, recorder_port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
