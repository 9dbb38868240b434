#!/usr/bin/env python3
"""Checks the registry services with plain HTTP, and shows by example the
protocol flows that the Swift registry client implements.

    python3 Tests/services/check_services.py DIR/services.env

(scripts/services.sh check DIR runs it.) Standard library only.

The flows, as distribution 2.8.2 wants them:

  push a blob      HEAD /v2/<repo>/blobs/<digest>        200: there, skip
                   POST /v2/<repo>/blobs/uploads/         202, Location: <url>?_state=...
                   PUT  <Location>&digest=<digest>        201, Docker-Content-Digest
                        Content-Type: application/octet-stream
                   (Location already has a query: append with '&'. A single
                   POST ...?digest= with the body answers 202 and stores
                   nothing. A form Content-Type, libcurl's default for a
                   POSTFIELDS body, makes the registry parse the body away:
                   400 DIGEST_INVALID.)
  push a manifest  PUT  /v2/<repo>/manifests/<tag>        201, Docker-Content-Digest
                        Content-Type: application/vnd.oci.image.manifest.v1+json
                   (the config blob first: else 400 MANIFEST_BLOB_UNKNOWN)
  pull a manifest  GET  /v2/<repo>/manifests/<tag>
                        Accept: application/vnd.oci.image.manifest.v1+json
                   (without it: 404 MANIFEST_UNKNOWN "OCI manifest found, but
                   accept header does not support OCI manifests")
  pull a blob      GET  /v2/<repo>/blobs/<digest>; check sha256 before use

  Basic auth       401 WWW-Authenticate: Basic realm="..."  -> retry with
                   Authorization: Basic base64(user:password)
  token auth       401 WWW-Authenticate: Bearer realm="<url>",service="<s>",
                       scope="repository:<repo>:pull,push"
                   GET <realm>?service=<s>&scope=<scope> (Basic credentials,
                   or none for anonymous) -> {"token": ..., "expires_in": ...}
                   retry with Authorization: Bearer <token>. The actions of
                   a scope come in random order (pull,push or push,pull):
                   normalise before caching tokens by scope. A token without
                   the access asked gets 401 again, with
                   error="insufficient_scope" in the challenge: stop there.
"""

import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import sys
import time
import traceback
import urllib.parse

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.cncf.dragonfly.snapshotter.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.cncf.dragonfly.snapshotter.config.v1+json"
MAX_METADATA = 8 << 20  # the most a client should read of a manifest or a config


# ------------------------------------------------------------------ plumbing --

class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    def errors(self):
        """The codes of an OCI error body, e.g. ["MANIFEST_UNKNOWN"]."""
        try:
            return [e.get("code") for e in json.loads(self.body)["errors"]]
        except (ValueError, KeyError, TypeError):
            return []

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:200])


class TooLarge(Exception):
    pass


def http_call(method, url, body=None, headers=None, cafile=None, timeout=10.0, limit=None):
    """One request on a fresh connection. Reads at most `limit` bytes of the
    body (raising TooLarge past it, before reading the rest), as a client
    must do with anything a registry sends."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path + ("?" + u.query if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if limit is not None and int(hdrs.get("content-length", 0)) > limit:
            raise TooLarge("Content-Length %s > %d" % (hdrs["content-length"], limit))
        chunks, total = [], 0
        while True:
            chunk = r.read1(65536) if method != "HEAD" else b""
            if not chunk:
                break
            total += len(chunk)
            if limit is not None and total > limit:
                raise TooLarge("more than %d bytes" % limit)
            chunks.append(chunk)
        return Response(r.status, hdrs, b"".join(chunks))
    finally:
        conn.close()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_challenge(header):
    """'Bearer realm="x",service="y",scope="z"' -> ("bearer", {...})."""
    scheme, _, rest = header.partition(" ")
    params, i = {}, 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().strip(",").strip()
        if rest[eq + 1:eq + 2] == '"':
            end = rest.find('"', eq + 2)
            params[key.lower()] = rest[eq + 2:end]
            i = end + 1
        else:
            end = rest.find(",", eq)
            end = len(rest) if end < 0 else end
            params[key.lower()] = rest[eq + 1:end].strip()
            i = end
        while i < len(rest) and rest[i] in ", ":
            i += 1
    return scheme.lower(), params


def normalized_scope(scope):
    """distribution writes a scope's actions in random order ("pull,push" or
    "push,pull"): sort them so that one cache entry serves both."""
    parts = []
    for item in scope.split():
        head, _, actions = item.rpartition(":")
        parts.append(head + ":" + ",".join(sorted(actions.split(","))))
    return " ".join(sorted(parts))


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# -------------------------------------------------------------------- client --

class Registry:
    """A minimal OCI distribution client: what the Swift one does, without
    the retries, the connection reuse and the limits on every answer."""

    def __init__(self, base, cafile=None, username=None, password=None):
        self.base, self.cafile = base.rstrip("/"), cafile
        self.username, self.password = username, password
        self.tokens = {}  # scope -> token
        self.token_requests = 0

    def request(self, method, path_or_url, body=None, headers=None, **kw):
        """Sends; on a 401 answers the challenge once (Basic or Bearer) and
        sends again."""
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        headers = dict(headers or {})
        r = http_call(method, url, body, headers, cafile=self.cafile, **kw)
        if r.status != 401 or not r.header("www-authenticate"):
            return r
        scheme, params = parse_challenge(r.header("www-authenticate"))
        if scheme == "basic" and self.username is not None:
            cred = base64.b64encode(("%s:%s" % (self.username, self.password)).encode()).decode()
            headers["Authorization"] = "Basic " + cred
        elif scheme == "bearer":
            headers["Authorization"] = "Bearer " + self.token(params)
        else:
            return r
        return http_call(method, url, body, headers, cafile=self.cafile, **kw)

    def token(self, challenge):
        scope = challenge.get("scope", "")
        key = normalized_scope(scope)
        if key in self.tokens:
            return self.tokens[key]
        query = {"service": challenge.get("service", "")}
        if scope:
            query["scope"] = scope
        headers = {}
        if self.username is not None:
            cred = base64.b64encode(("%s:%s" % (self.username, self.password)).encode()).decode()
            headers["Authorization"] = "Basic " + cred
        r = http_call("GET", challenge["realm"] + "?" + urllib.parse.urlencode(query), headers=headers, cafile=self.cafile)
        self.token_requests += 1
        if r.status != 200:
            raise AssertionError("token server answered %s" % r)
        answer = json.loads(r.body)
        token = answer.get("token") or answer["access_token"]
        self.tokens[key] = token
        return token

    def push_blob(self, repo, data):
        """HEAD, then POST + PUT ?digest=. Returns True when it uploaded."""
        digest = sha256(data)
        r = self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
        if r.status == 200:
            return False
        expect(r.status == 404, "HEAD of a missing blob: %s" % r)
        r = self.request("POST", "/v2/%s/blobs/uploads/" % repo, b"", {"Content-Length": "0"})
        expect(r.status == 202, "POST uploads: %s" % r)
        location = urllib.parse.urljoin(self.base + "/", r.header("location"))
        sep = "&" if "?" in location else "?"
        r = self.request("PUT", location + sep + "digest=" + urllib.parse.quote(digest, safe=":"),
                         data, {"Content-Type": "application/octet-stream"})
        expect(r.status == 201, "PUT blob: %s" % r)
        expect(r.header("docker-content-digest") == digest, "PUT blob digest header %s" % r.header("docker-content-digest"))
        return True

    def push_manifest(self, repo, tag, manifest):
        r = self.request("PUT", "/v2/%s/manifests/%s" % (repo, tag), manifest,
                         {"Content-Type": MANIFEST_MEDIA_TYPE})
        expect(r.status == 201, "PUT manifest: %s" % r)
        expect(r.header("docker-content-digest") == sha256(manifest),
               "manifest digest header %s != %s" % (r.header("docker-content-digest"), sha256(manifest)))
        return r

    def pull_manifest(self, repo, ref, **kw):
        return self.request("GET", "/v2/%s/manifests/%s" % (repo, ref), headers={"Accept": MANIFEST_MEDIA_TYPE}, **kw)

    def pull_blob(self, repo, digest, **kw):
        return self.request("GET", "/v2/%s/blobs/%s" % (repo, digest), **kw)


class Invalid(Exception):
    """What the Swift client must refuse, with why."""


def validate_snapshot(manifest_response, fetch_config):
    """The checks a restore makes before writing anything (FORMAT.md 4, 5)."""
    body = manifest_response.body
    header_digest = manifest_response.header("docker-content-digest")
    if header_digest and header_digest != sha256(body):
        raise Invalid("manifest digest: header %s, body %s" % (header_digest, sha256(body)))
    try:
        m = json.loads(body)
    except ValueError as e:
        raise Invalid("manifest is not JSON: %s" % e)
    if m.get("mediaType") != MANIFEST_MEDIA_TYPE:
        raise Invalid("manifest mediaType %r" % m.get("mediaType"))
    if m.get("artifactType") != ARTIFACT_TYPE:
        raise Invalid("artifactType %r" % m.get("artifactType"))
    cfg = m.get("config") or {}
    if cfg.get("mediaType") != CONFIG_MEDIA_TYPE:
        raise Invalid("config mediaType %r" % cfg.get("mediaType"))
    if not isinstance(cfg.get("size"), int) or cfg["size"] > MAX_METADATA:
        raise Invalid("config size %r over the limit" % cfg.get("size"))
    config = fetch_config(cfg["digest"])
    if sha256(config) != cfg["digest"]:
        raise Invalid("config digest: manifest %s, bytes %s" % (cfg["digest"], sha256(config)))
    files = json.loads(config)["files"]
    for f in files:
        path = f["relativePath"]
        if path.startswith("/") or ".." in path.split("/") or not path:
            raise Invalid("unsafe relativePath %r" % path)
    return m, files


# -------------------------------------------------------------------- checks --

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
            print("ok    %-58s %6.0f ms" % (name, (time.monotonic() - started) * 1000), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure, go on
            RESULTS.append((name, e))
            print("FAIL  %s: %s" % (name, e), flush=True)
            if os.environ.get("CHECK_VERBOSE"):
                traceback.print_exc()
        return fn
    return run


def snapshot_artifact(label):
    """A config with one file and its manifest, byte-exact per FORMAT.md."""
    config = compact({"files": [{
        "digest": "xxh3:6b1e182d921cd510", "readOnly": True, "relativePath": "ckpt1/" + label,
        "metadata": {"mode": 420, "uid": 0, "gid": 0, "size": 12,
                     "mtime": "2025-11-29T15:57:09.123456789Z", "typeflag": 0}}]})
    manifest = compact({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": sha256(config), "size": len(config)},
        "layers": []})
    return config, manifest


def push_and_pull(reg, repo, tag, label):
    """The whole publish + fetch round trip, checked byte for byte."""
    config, manifest = snapshot_artifact(label)
    reg.push_blob(repo, config)
    expect(reg.push_blob(repo, config) is False, "second push of the same blob was not skipped by HEAD")
    reg.push_manifest(repo, tag, manifest)
    r = reg.pull_manifest(repo, tag)
    expect(r.status == 200, "pull manifest: %s" % r)
    expect(r.body == manifest, "manifest bytes differ")
    expect(r.header("content-type") == MANIFEST_MEDIA_TYPE, "content-type %s" % r.header("content-type"))
    m, files = validate_snapshot(r, lambda d: reg.pull_blob(repo, d).body)
    expect(files[0]["relativePath"] == "ckpt1/" + label, "config content")
    return config, manifest


def main(env_path):
    env = {}
    with open(env_path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, _, v = line.strip().partition("=")
                env[k] = v
    run_id = "%x" % int(time.time() * 1000)

    # ---- plain ----------------------------------------------------------------
    plain = Registry(env["REGISTRY_PLAIN"])

    @check("plain: GET /v2/ answers 200 with the API version header")
    def _():
        r = plain.request("GET", "/v2/")
        expect(r.status == 200 and r.header("docker-distribution-api-version") == "registry/2.0", r)

    @check("plain: push blob + manifest, pull back byte-exact")
    def _():
        push_and_pull(plain, "check/plain", "v1", "plain-" + run_id)

    @check("plain: manifest GET without the OCI Accept header is 404")
    def _():
        r = plain.request("GET", "/v2/check/plain/manifests/v1")
        expect(r.status == 404 and r.errors() == ["MANIFEST_UNKNOWN"], r)

    @check("plain: single-request POST ?digest= stores nothing")
    def _():
        data = b"single-post " + run_id.encode()
        r = plain.request("POST", "/v2/check/plain/blobs/uploads/?digest=" + sha256(data), data,
                          {"Content-Type": "application/octet-stream"})
        expect(r.status == 202, r)
        expect(plain.request("HEAD", "/v2/check/plain/blobs/" + sha256(data)).status == 404, "blob was stored")

    @check("plain: manifest naming an unpushed blob is 400 MANIFEST_BLOB_UNKNOWN")
    def _():
        _, manifest = snapshot_artifact("never-pushed-" + run_id)
        r = plain.request("PUT", "/v2/check/plain/manifests/orphan", manifest, {"Content-Type": MANIFEST_MEDIA_TYPE})
        expect(r.status == 400 and r.errors() == ["MANIFEST_BLOB_UNKNOWN"], r)

    @check("plain: blob PUT with a wrong digest is 400 DIGEST_INVALID")
    def _():
        r = plain.request("POST", "/v2/check/plain/blobs/uploads/", b"")
        loc = r.header("location")
        r = plain.request("PUT", loc + "&digest=" + sha256(b"other"), b"data",
                          {"Content-Type": "application/octet-stream"})
        expect(r.status == 400 and r.errors() == ["DIGEST_INVALID"], r)

    @check("plain: tags/list, DELETE by digest (202), then 404")
    def _():
        config, manifest = snapshot_artifact("delete-" + run_id)
        plain.push_blob("check/delete", config)
        plain.push_manifest("check/delete", "gone", manifest)
        r = plain.request("GET", "/v2/check/delete/tags/list")
        expect(r.status == 200 and "gone" in json.loads(r.body)["tags"], r)
        r = plain.request("DELETE", "/v2/check/delete/manifests/gone")
        expect(r.status == 400, "DELETE by tag: %s" % r)  # distribution only deletes by digest
        r = plain.request("DELETE", "/v2/check/delete/manifests/" + sha256(manifest))
        expect(r.status == 202, r)
        expect(plain.pull_manifest("check/delete", "gone").status == 404, "still there")

    # ---- tls-basic ------------------------------------------------------------
    tls_anon = Registry(env["REGISTRY_TLS"], cafile=env["REGISTRY_TLS_CA"])
    tls = Registry(env["REGISTRY_TLS"], cafile=env["REGISTRY_TLS_CA"],
                   username=env["REGISTRY_TLS_USER"], password=env["REGISTRY_TLS_PASSWORD"])

    @check("tls-basic: without credentials 401 with a Basic challenge")
    def _():
        r = tls_anon.request("GET", "/v2/")
        expect(r.status == 401 and r.header("www-authenticate").startswith("Basic realm="), r)
        expect(r.errors() == ["UNAUTHORIZED"], r)

    @check("tls-basic: a wrong password is 401")
    def _():
        r = Registry(env["REGISTRY_TLS"], cafile=env["REGISTRY_TLS_CA"], username="alice",
                     password="wrong").request("GET", "/v2/")
        expect(r.status == 401, r)

    @check("tls-basic: the certificate does not verify without the CA")
    def _():
        try:
            http_call("GET", env["REGISTRY_TLS"] + "/v2/")
        except ssl.SSLCertVerificationError:
            return
        raise AssertionError("connected without the CA")

    @check("tls-basic: push and pull with Basic auth, CA file, host 127.0.0.1 too")
    def _():
        push_and_pull(tls, "check/tls", "v1", "tls-" + run_id)
        ip = Registry(env["REGISTRY_TLS"].replace("localhost", "127.0.0.1"), cafile=env["REGISTRY_TLS_CA"],
                      username="alice", password=env["REGISTRY_TLS_PASSWORD"])
        expect(ip.pull_manifest("check/tls", "v1").status == 200, "by IP")

    # ---- token ----------------------------------------------------------------
    ca = env["REGISTRY_TLS_CA"]  # the realm is https
    bob = Registry(env["REGISTRY_TOKEN"], cafile=ca, username=env["REGISTRY_TOKEN_USER"], password=env["REGISTRY_TOKEN_PASSWORD"])
    reader = Registry(env["REGISTRY_TOKEN"], cafile=ca, username=env["REGISTRY_TOKEN_READER"],
                      password=env["REGISTRY_TOKEN_READER_PASSWORD"])
    anon = Registry(env["REGISTRY_TOKEN"], cafile=ca)
    repo = "check/token"

    @check("token: 401 Bearer challenge names realm, service and scope")
    def _():
        r = http_call("POST", env["REGISTRY_TOKEN"] + "/v2/%s/blobs/uploads/" % repo, b"")
        expect(r.status == 401, r)
        scheme, p = parse_challenge(r.header("www-authenticate"))
        expect(scheme == "bearer", scheme)
        expect(p["realm"] == env["REGISTRY_TOKEN_REALM"] and p["service"] == env["REGISTRY_TOKEN_SERVICE"], p)
        # The order of the actions changes from one answer to the next (a Go
        # map): compare them as a set, and key a token cache the same way.
        rtype, name, actions = p["scope"].split(":")
        expect((rtype, name, sorted(actions.split(","))) == ("repository", repo, ["pull", "push"]), p)

    @check("token: the token server signs the claims the registry needs")
    def _():
        t = bob.token({"realm": env["REGISTRY_TOKEN_REALM"], "service": env["REGISTRY_TOKEN_SERVICE"],
                       "scope": "repository:%s:pull,push" % repo})
        c = jwt_claims(t)
        expect(c["aud"] == env["REGISTRY_TOKEN_SERVICE"] and c["sub"] == "bob", c)
        expect(c["access"] == [{"type": "repository", "name": repo, "actions": ["pull", "push"]}], c)
        expect(c["exp"] - c["iat"] == 300 and {"iss", "nbf", "jti"} <= set(c), c)

    @check("token: bob pushes and pulls (challenge -> token -> retry)")
    def _():
        push_and_pull(bob, repo, "v1", "token-" + run_id)
        expect(bob.token_requests >= 2, "tokens fetched: %d" % bob.token_requests)

    @check("token: reader pulls")
    def _():
        r = reader.pull_manifest(repo, "v1")
        expect(r.status == 200, r)

    @check("token: reader cannot push: 401 insufficient_scope")
    def _():
        r = reader.request("POST", "/v2/%s/blobs/uploads/" % repo, b"")
        expect(r.status in (401, 403), r)
        expect('error="insufficient_scope"' in r.header("www-authenticate"), r.header("www-authenticate"))
        expect(r.errors() == ["UNAUTHORIZED"], r)

    @check("token: anonymous gets a token with no access, then 401")
    def _():
        r = anon.pull_manifest(repo, "v1")
        expect(r.status == 401 and "insufficient_scope" in r.header("www-authenticate"), r)

    @check("token: the token server refuses a wrong password with 401")
    def _():
        cred = base64.b64encode(b"bob:wrong").decode()
        r = http_call("GET", env["REGISTRY_TOKEN_REALM"] + "?service=" + env["REGISTRY_TOKEN_SERVICE"],
                 headers={"Authorization": "Basic " + cred}, cafile=ca)
        expect(r.status == 401, r)

    # ---- fault proxy ------------------------------------------------------------
    proxy = Registry(env["REGISTRY_PROXY"])
    control = env["REGISTRY_PROXY_CONTROL"]

    def mode(**spec):
        r = http_call("POST", control + "/mode", compact(spec), {"Content-Type": "application/json"})
        expect(r.status == 200, r)
        return json.loads(r.body)

    @check("proxy: pass forwards to the plain registry, both ways")
    def _():
        mode(mode="pass")
        expect(proxy.pull_manifest("check/plain", "v1").status == 200, "pull via proxy")
        push_and_pull(proxy, "check/proxy", "v1", "proxy-" + run_id)
        expect(plain.pull_manifest("check/proxy", "v1").status == 200, "pushed via proxy, not in plain")

    @check("proxy: reset breaks a request")
    def _():
        mode(mode="reset")
        try:
            proxy.request("GET", "/v2/")
            raise AssertionError("request went through")
        except (ConnectionError, http.client.RemoteDisconnected, OSError):
            pass
        finally:
            mode(mode="pass")
        expect(proxy.request("GET", "/v2/").status == 200, "after pass again")

    @check("proxy: reset also breaks a kept-alive connection")
    def _():
        u = urllib.parse.urlsplit(env["REGISTRY_PROXY"])
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        try:
            conn.request("GET", "/v2/")
            r = conn.getresponse()
            r.read()
            expect(r.status == 200, r.status)
            mode(mode="reset")
            try:
                conn.request("GET", "/v2/")
                conn.getresponse()
                raise AssertionError("the pooled connection still answered")
            except (ConnectionError, http.client.HTTPException, OSError):
                pass
        finally:
            conn.close()
            mode(mode="pass")

    @check("proxy: cut_after cuts a push mid-blob, then stays down until pass")
    def _():
        data = os.urandom(1 << 20)
        mode(mode="cut_after", bytes=300_000)
        try:
            proxy.push_blob("check/cut", data)
            raise AssertionError("push went through")
        except (ConnectionError, http.client.HTTPException, OSError):
            pass
        state = json.loads(http_call("GET", control + "/mode").body)
        expect(state["mode"] == "reset", state)
        mode(mode="pass")
        expect(plain.request("HEAD", "/v2/check/cut/blobs/" + sha256(data)).status == 404, "blob stored")
        proxy.push_blob("check/cut", data)  # a re-run succeeds
        expect(plain.request("HEAD", "/v2/check/cut/blobs/" + sha256(data)).status == 200, "re-run")

    @check("proxy: blackhole makes a request time out")
    def _():
        mode(mode="blackhole")
        try:
            proxy.request("GET", "/v2/", timeout=0.5)
            raise AssertionError("answered")
        except (socket.timeout, TimeoutError):
            pass
        finally:
            mode(mode="pass")

    @check("proxy: refuse makes connecting fail, pass listens again")
    def _():
        mode(mode="refuse")
        try:
            proxy.request("GET", "/v2/")
            raise AssertionError("connected")
        except ConnectionRefusedError:
            pass
        finally:
            mode(mode="pass")
        expect(proxy.request("GET", "/v2/").status == 200, "after pass")

    # ---- hostile --------------------------------------------------------------
    hostile = Registry(env["REGISTRY_HOSTILE"])
    http_call("POST", env["REGISTRY_HOSTILE"] + "/reset", b"")

    def fetch(repo):
        def get(digest):
            r = hostile.pull_blob(repo, digest, limit=MAX_METADATA)
            expect(r.status == 200, "config blob: %s" % r)
            return r.body
        return get

    def refused(repo, reason):
        r = hostile.pull_manifest("ns/" + repo, "v1", limit=MAX_METADATA)
        expect(r.status == 200, r)
        try:
            validate_snapshot(r, fetch("ns/" + repo))
        except Invalid as e:
            expect(reason in str(e), "refused for another reason: %s" % e)
            return
        raise AssertionError("accepted")

    @check("hostile: good:v1 is a valid snapshot with real digests")
    def _():
        r = hostile.pull_manifest("ns/good", "v1")
        expect(r.status == 200 and r.header("docker-content-digest") == env["REGISTRY_HOSTILE_GOOD_MANIFEST_DIGEST"], r)
        m, files = validate_snapshot(r, fetch("ns/good"))
        expect(m["config"]["digest"] == env["REGISTRY_HOSTILE_GOOD_CONFIG_DIGEST"], m)
        expect(files[0]["digest"] == "xxh3:6b1e182d921cd510" and files[0]["metadata"]["size"] == 12, files)
        expect(hostile.pull_manifest("ns/good", sha256(r.body)).body == r.body, "by digest")

    @check("hostile: POST /good replaces the config good:* serves")
    def _():
        config, _ = snapshot_artifact("custom")
        answer = json.loads(http_call("POST", env["REGISTRY_HOSTILE"] + "/good", config).body)
        expect(answer["configDigest"] == sha256(config), answer)
        m, files = validate_snapshot(hostile.pull_manifest("good", "v9"), fetch("good"))
        expect(files[0]["relativePath"] == "ckpt1/custom", files)
        http_call("POST", env["REGISTRY_HOSTILE"] + "/reset", b"")

    for repo in ("huge", "hugechunked"):
        @check("hostile: %s manifest is cut off at the size limit while streaming" % repo)
        def _(repo=repo):
            started = time.monotonic()
            try:
                hostile.pull_manifest(repo, "v1", limit=MAX_METADATA)
                raise AssertionError("read it all")
            except TooLarge:
                pass
            expect(time.monotonic() - started < 5, "took too long")

    @check("hostile: hugeconfig's config size is over the limit")
    def _():
        refused("hugeconfig", "config size")

    @check("hostile: malformed is not JSON")
    def _():
        refused("malformed", "not JSON")

    for repo, reason in (("wrongtype", "artifactType"), ("wrongconfigtype", "config mediaType"),
                         ("wrongmediatype", "manifest mediaType"), ("escape", "unsafe relativePath '../../etc/evil'"),
                         ("absolute", "unsafe relativePath '/etc/passwd'"), ("baddigest", "config digest"),
                         ("badmanifestdigest", "manifest digest")):
        @check("hostile: %s is refused (%s)" % (repo, reason.split(" '")[0]))
        def _(repo=repo, reason=reason):
            refused(repo, reason)

    for repo, status, code in (("notfound", 404, "MANIFEST_UNKNOWN"), ("unauthorized", 401, "UNAUTHORIZED"),
                               ("denied", 403, "DENIED"), ("nosuchrepo", 404, "NAME_UNKNOWN")):
        @check("hostile: %s answers %d %s" % (repo, status, code))
        def _(repo=repo, status=status, code=code):
            r = http_call("GET", env["REGISTRY_HOSTILE"] + "/v2/ns/%s/manifests/v1" % repo)
            expect(r.status == status and r.errors() == [code], r)

    for repo, status in (("flaky", 503), ("ratelimited", 429)):
        @check("hostile: %s answers %d twice, then the manifest" % (repo, status))
        def _(repo=repo, status=status):
            http_call("POST", env["REGISTRY_HOSTILE"] + "/reset", b"")
            seen = [hostile.pull_manifest(repo, "v1").status for _ in range(3)]
            expect(seen == [status, status, 200], seen)

    @check("hostile: slow never answers (timeout)")
    def _():
        try:
            hostile.pull_manifest("slow", "v1", timeout=0.5)
            raise AssertionError("answered")
        except (socket.timeout, TimeoutError):
            pass

    @check("hostile: slowbody stalls mid-body (timeout)")
    def _():
        try:
            hostile.pull_manifest("slowbody", "v1", timeout=0.5)
            raise AssertionError("answered")
        except (socket.timeout, TimeoutError):
            pass

    failed = [name for name, err in RESULTS if err is not None]
    print("%d passed, %d failed" % (len(RESULTS) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: check_services.py DIR/services.env", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
