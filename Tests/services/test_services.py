"""Checks the registry services with plain HTTP, and shows by example the
protocol flows that the Swift registry client implements.

    SNAPSHOTTER_TEST_SERVICES=DIR/services.env DIR/venv/bin/python -m pytest Tests/services/test_services.py

(scripts/services.sh check DIR runs it.) The client below is the standard
library only. The tests run in file order, and some use what an earlier one
pushed (the token tests pull what bob pushed): run the module whole.

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
import time
import urllib.parse

import pytest

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
        assert r.status == 404, "HEAD of a missing blob: %s" % r
        r = self.request("POST", "/v2/%s/blobs/uploads/" % repo, b"", {"Content-Length": "0"})
        assert r.status == 202, "POST uploads: %s" % r
        location = urllib.parse.urljoin(self.base + "/", r.header("location"))
        sep = "&" if "?" in location else "?"
        r = self.request("PUT", location + sep + "digest=" + urllib.parse.quote(digest, safe=":"),
                         data, {"Content-Type": "application/octet-stream"})
        assert r.status == 201, "PUT blob: %s" % r
        assert r.header("docker-content-digest") == digest, "PUT blob digest header %s" % r.header("docker-content-digest")
        return True

    def push_manifest(self, repo, tag, manifest):
        r = self.request("PUT", "/v2/%s/manifests/%s" % (repo, tag), manifest,
                         {"Content-Type": MANIFEST_MEDIA_TYPE})
        assert r.status == 201, "PUT manifest: %s" % r
        assert r.header("docker-content-digest") == sha256(manifest), (
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
    assert reg.push_blob(repo, config) is False, "second push of the same blob was not skipped by HEAD"
    reg.push_manifest(repo, tag, manifest)
    r = reg.pull_manifest(repo, tag)
    assert r.status == 200, "pull manifest: %s" % r
    assert r.body == manifest, "manifest bytes differ"
    assert r.header("content-type") == MANIFEST_MEDIA_TYPE, "content-type %s" % r.header("content-type")
    m, files = validate_snapshot(r, lambda d: reg.pull_blob(repo, d).body)
    assert files[0]["relativePath"] == "ckpt1/" + label, "config content"
    return config, manifest


# ------------------------------------------------------------------ fixtures --

TOKEN_REPO = "check/token"


@pytest.fixture(scope="module")
def plain(env):
    return Registry(env["REGISTRY_PLAIN"])


@pytest.fixture(scope="module")
def tls_anon(env):
    return Registry(env["REGISTRY_TLS"], cafile=env["REGISTRY_TLS_CA"])


@pytest.fixture(scope="module")
def tls(env):
    return Registry(env["REGISTRY_TLS"], cafile=env["REGISTRY_TLS_CA"],
                    username=env["REGISTRY_TLS_USER"], password=env["REGISTRY_TLS_PASSWORD"])


# The token registry's realm is https, with the test CA.
@pytest.fixture(scope="module")
def bob(env):
    return Registry(env["REGISTRY_TOKEN"], cafile=env["REGISTRY_TLS_CA"], username=env["REGISTRY_TOKEN_USER"],
                    password=env["REGISTRY_TOKEN_PASSWORD"])


@pytest.fixture(scope="module")
def reader(env):
    return Registry(env["REGISTRY_TOKEN"], cafile=env["REGISTRY_TLS_CA"], username=env["REGISTRY_TOKEN_READER"],
                    password=env["REGISTRY_TOKEN_READER_PASSWORD"])


@pytest.fixture(scope="module")
def anon(env):
    return Registry(env["REGISTRY_TOKEN"], cafile=env["REGISTRY_TLS_CA"])


@pytest.fixture(scope="module")
def proxy(env):
    return Registry(env["REGISTRY_PROXY"])


@pytest.fixture(scope="module")
def mode(env):
    """Sets the fault proxy's mode: mode(mode="reset"), ..."""
    def set_mode(**spec):
        r = http_call("POST", env["REGISTRY_PROXY_CONTROL"] + "/mode", compact(spec), {"Content-Type": "application/json"})
        assert r.status == 200, r
        return json.loads(r.body)
    return set_mode


@pytest.fixture(scope="module")
def hostile(env):
    http_call("POST", env["REGISTRY_HOSTILE"] + "/reset", b"")
    return Registry(env["REGISTRY_HOSTILE"])


def fetch(hostile, repo):
    def get(digest):
        r = hostile.pull_blob(repo, digest, limit=MAX_METADATA)
        assert r.status == 200, "config blob: %s" % r
        return r.body
    return get


def refused(hostile, repo, reason):
    r = hostile.pull_manifest("ns/" + repo, "v1", limit=MAX_METADATA)
    assert r.status == 200, r
    try:
        validate_snapshot(r, fetch(hostile, "ns/" + repo))
    except Invalid as e:
        assert reason in str(e), "refused for another reason: %s" % e
        return
    raise AssertionError("accepted")


# -------------------------------------------------------------------- checks --

def test_plain_get_v2_answers_200_with_the_api_version_header(plain):
    """plain: GET /v2/ answers 200 with the API version header"""
    r = plain.request("GET", "/v2/")
    assert r.status == 200 and r.header("docker-distribution-api-version") == "registry/2.0", r


def test_plain_push_blob_manifest_pull_back_byte_exact(run_id, plain):
    """plain: push blob + manifest, pull back byte-exact"""
    push_and_pull(plain, "check/plain", "v1", "plain-" + run_id)


def test_plain_manifest_get_without_the_oci_accept_header_is_404(plain):
    """plain: manifest GET without the OCI Accept header is 404"""
    r = plain.request("GET", "/v2/check/plain/manifests/v1")
    assert r.status == 404 and r.errors() == ["MANIFEST_UNKNOWN"], r


def test_plain_single_request_post_digest_stores_nothing(run_id, plain):
    """plain: single-request POST ?digest= stores nothing"""
    data = b"single-post " + run_id.encode()
    r = plain.request("POST", "/v2/check/plain/blobs/uploads/?digest=" + sha256(data), data,
                      {"Content-Type": "application/octet-stream"})
    assert r.status == 202, r
    assert plain.request("HEAD", "/v2/check/plain/blobs/" + sha256(data)).status == 404, "blob was stored"


def test_plain_manifest_naming_an_unpushed_blob_is_400_manifest_blob_unknown(run_id, plain):
    """plain: manifest naming an unpushed blob is 400 MANIFEST_BLOB_UNKNOWN"""
    _, manifest = snapshot_artifact("never-pushed-" + run_id)
    r = plain.request("PUT", "/v2/check/plain/manifests/orphan", manifest, {"Content-Type": MANIFEST_MEDIA_TYPE})
    assert r.status == 400 and r.errors() == ["MANIFEST_BLOB_UNKNOWN"], r


def test_plain_blob_put_with_a_wrong_digest_is_400_digest_invalid(plain):
    """plain: blob PUT with a wrong digest is 400 DIGEST_INVALID"""
    r = plain.request("POST", "/v2/check/plain/blobs/uploads/", b"")
    loc = r.header("location")
    r = plain.request("PUT", loc + "&digest=" + sha256(b"other"), b"data",
                      {"Content-Type": "application/octet-stream"})
    assert r.status == 400 and r.errors() == ["DIGEST_INVALID"], r


def test_plain_tags_list_delete_by_digest_202_then_404(run_id, plain):
    """plain: tags/list, DELETE by digest (202), then 404"""
    config, manifest = snapshot_artifact("delete-" + run_id)
    plain.push_blob("check/delete", config)
    plain.push_manifest("check/delete", "gone", manifest)
    r = plain.request("GET", "/v2/check/delete/tags/list")
    assert r.status == 200 and "gone" in json.loads(r.body)["tags"], r
    r = plain.request("DELETE", "/v2/check/delete/manifests/gone")
    assert r.status == 400, "DELETE by tag: %s" % r  # distribution only deletes by digest
    r = plain.request("DELETE", "/v2/check/delete/manifests/" + sha256(manifest))
    assert r.status == 202, r
    assert plain.pull_manifest("check/delete", "gone").status == 404, "still there"


def test_tls_basic_without_credentials_401_with_a_basic_challenge(tls_anon):
    """tls-basic: without credentials 401 with a Basic challenge"""
    r = tls_anon.request("GET", "/v2/")
    assert r.status == 401 and r.header("www-authenticate").startswith("Basic realm="), r
    assert r.errors() == ["UNAUTHORIZED"], r


def test_tls_basic_a_wrong_password_is_401(env):
    """tls-basic: a wrong password is 401"""
    r = Registry(env["REGISTRY_TLS"], cafile=env["REGISTRY_TLS_CA"], username="alice",
                 password="wrong").request("GET", "/v2/")
    assert r.status == 401, r


def test_tls_basic_the_certificate_does_not_verify_without_the_ca(env):
    """tls-basic: the certificate does not verify without the CA"""
    try:
        http_call("GET", env["REGISTRY_TLS"] + "/v2/")
    except ssl.SSLCertVerificationError:
        return
    raise AssertionError("connected without the CA")


def test_tls_basic_push_and_pull_with_basic_auth_ca_file_host_127_0_0_1_too(env, run_id, tls):
    """tls-basic: push and pull with Basic auth, CA file, host 127.0.0.1 too"""
    push_and_pull(tls, "check/tls", "v1", "tls-" + run_id)
    ip = Registry(env["REGISTRY_TLS"].replace("localhost", "127.0.0.1"), cafile=env["REGISTRY_TLS_CA"],
                  username="alice", password=env["REGISTRY_TLS_PASSWORD"])
    assert ip.pull_manifest("check/tls", "v1").status == 200, "by IP"


def test_token_401_bearer_challenge_names_realm_service_and_scope(env):
    """token: 401 Bearer challenge names realm, service and scope"""
    r = http_call("POST", env["REGISTRY_TOKEN"] + "/v2/%s/blobs/uploads/" % TOKEN_REPO, b"")
    assert r.status == 401, r
    scheme, p = parse_challenge(r.header("www-authenticate"))
    assert scheme == "bearer", scheme
    assert p["realm"] == env["REGISTRY_TOKEN_REALM"] and p["service"] == env["REGISTRY_TOKEN_SERVICE"], p
    # The order of the actions changes from one answer to the next (a Go
    # map): compare them as a set, and key a token cache the same way.
    rtype, name, actions = p["scope"].split(":")
    assert (rtype, name, sorted(actions.split(","))) == ("repository", TOKEN_REPO, ["pull", "push"]), p


def test_token_the_token_server_signs_the_claims_the_registry_needs(env, bob):
    """token: the token server signs the claims the registry needs"""
    t = bob.token({"realm": env["REGISTRY_TOKEN_REALM"], "service": env["REGISTRY_TOKEN_SERVICE"],
                   "scope": "repository:%s:pull,push" % TOKEN_REPO})
    c = jwt_claims(t)
    assert c["aud"] == env["REGISTRY_TOKEN_SERVICE"] and c["sub"] == "bob", c
    assert c["access"] == [{"type": "repository", "name": TOKEN_REPO, "actions": ["pull", "push"]}], c
    assert c["exp"] - c["iat"] == 300 and {"iss", "nbf", "jti"} <= set(c), c


def test_token_bob_pushes_and_pulls_challenge_token_retry(run_id, bob):
    """token: bob pushes and pulls (challenge -> token -> retry)"""
    push_and_pull(bob, TOKEN_REPO, "v1", "token-" + run_id)
    assert bob.token_requests >= 2, "tokens fetched: %d" % bob.token_requests


def test_token_reader_pulls(reader):
    """token: reader pulls"""
    r = reader.pull_manifest(TOKEN_REPO, "v1")
    assert r.status == 200, r


def test_token_reader_cannot_push_401_insufficient_scope(reader):
    """token: reader cannot push: 401 insufficient_scope"""
    r = reader.request("POST", "/v2/%s/blobs/uploads/" % TOKEN_REPO, b"")
    assert r.status in (401, 403), r
    assert 'error="insufficient_scope"' in r.header("www-authenticate"), r.header("www-authenticate")
    assert r.errors() == ["UNAUTHORIZED"], r


def test_token_anonymous_gets_a_token_with_no_access_then_401(anon):
    """token: anonymous gets a token with no access, then 401"""
    r = anon.pull_manifest(TOKEN_REPO, "v1")
    assert r.status == 401 and "insufficient_scope" in r.header("www-authenticate"), r


def test_token_the_token_server_refuses_a_wrong_password_with_401(env):
    """token: the token server refuses a wrong password with 401"""
    cred = base64.b64encode(b"bob:wrong").decode()
    r = http_call("GET", env["REGISTRY_TOKEN_REALM"] + "?service=" + env["REGISTRY_TOKEN_SERVICE"],
                  headers={"Authorization": "Basic " + cred}, cafile=env["REGISTRY_TLS_CA"])
    assert r.status == 401, r


def test_proxy_pass_forwards_to_the_plain_registry_both_ways(run_id, plain, proxy, mode):
    """proxy: pass forwards to the plain registry, both ways"""
    mode(mode="pass")
    assert proxy.pull_manifest("check/plain", "v1").status == 200, "pull via proxy"
    push_and_pull(proxy, "check/proxy", "v1", "proxy-" + run_id)
    assert plain.pull_manifest("check/proxy", "v1").status == 200, "pushed via proxy, not in plain"


def test_proxy_reset_breaks_a_request(proxy, mode):
    """proxy: reset breaks a request"""
    mode(mode="reset")
    try:
        proxy.request("GET", "/v2/")
        raise AssertionError("request went through")
    except (ConnectionError, http.client.RemoteDisconnected, OSError):
        pass
    finally:
        mode(mode="pass")
    assert proxy.request("GET", "/v2/").status == 200, "after pass again"


def test_proxy_reset_also_breaks_a_kept_alive_connection(env, mode):
    """proxy: reset also breaks a kept-alive connection"""
    u = urllib.parse.urlsplit(env["REGISTRY_PROXY"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        conn.request("GET", "/v2/")
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
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


def test_proxy_cut_after_cuts_a_push_mid_blob_then_stays_down_until_pass(env, plain, proxy, mode):
    """proxy: cut_after cuts a push mid-blob, then stays down until pass"""
    data = os.urandom(1 << 20)
    mode(mode="cut_after", bytes=300_000)
    try:
        proxy.push_blob("check/cut", data)
        raise AssertionError("push went through")
    except (ConnectionError, http.client.HTTPException, OSError):
        pass
    state = json.loads(http_call("GET", env["REGISTRY_PROXY_CONTROL"] + "/mode").body)
    assert state["mode"] == "reset", state
    mode(mode="pass")
    assert plain.request("HEAD", "/v2/check/cut/blobs/" + sha256(data)).status == 404, "blob stored"
    proxy.push_blob("check/cut", data)  # a re-run succeeds
    assert plain.request("HEAD", "/v2/check/cut/blobs/" + sha256(data)).status == 200, "re-run"


def test_proxy_blackhole_makes_a_request_time_out(proxy, mode):
    """proxy: blackhole makes a request time out"""
    mode(mode="blackhole")
    try:
        proxy.request("GET", "/v2/", timeout=0.5)
        raise AssertionError("answered")
    except (socket.timeout, TimeoutError):
        pass
    finally:
        mode(mode="pass")


def test_proxy_refuse_makes_connecting_fail_pass_listens_again(proxy, mode):
    """proxy: refuse makes connecting fail, pass listens again"""
    mode(mode="refuse")
    try:
        proxy.request("GET", "/v2/")
        raise AssertionError("connected")
    except ConnectionRefusedError:
        pass
    finally:
        mode(mode="pass")
    assert proxy.request("GET", "/v2/").status == 200, "after pass"


def test_hostile_good_v1_is_a_valid_snapshot_with_real_digests(env, hostile):
    """hostile: good:v1 is a valid snapshot with real digests"""
    r = hostile.pull_manifest("ns/good", "v1")
    assert r.status == 200 and r.header("docker-content-digest") == env["REGISTRY_HOSTILE_GOOD_MANIFEST_DIGEST"], r
    m, files = validate_snapshot(r, fetch(hostile, "ns/good"))
    assert m["config"]["digest"] == env["REGISTRY_HOSTILE_GOOD_CONFIG_DIGEST"], m
    assert files[0]["digest"] == "xxh3:6b1e182d921cd510" and files[0]["metadata"]["size"] == 12, files
    assert hostile.pull_manifest("ns/good", sha256(r.body)).body == r.body, "by digest"


def test_hostile_post_good_replaces_the_config_good_serves(env, hostile):
    """hostile: POST /good replaces the config good:* serves"""
    config, _ = snapshot_artifact("custom")
    answer = json.loads(http_call("POST", env["REGISTRY_HOSTILE"] + "/good", config).body)
    assert answer["configDigest"] == sha256(config), answer
    m, files = validate_snapshot(hostile.pull_manifest("good", "v9"), fetch(hostile, "good"))
    assert files[0]["relativePath"] == "ckpt1/custom", files
    http_call("POST", env["REGISTRY_HOSTILE"] + "/reset", b"")


@pytest.mark.parametrize("repo", ["huge", "hugechunked"])
def test_hostile_manifest_is_cut_off_at_the_size_limit_while_streaming(hostile, repo):
    """hostile: huge and hugechunked manifests are cut off at the size limit while streaming"""
    started = time.monotonic()
    try:
        hostile.pull_manifest(repo, "v1", limit=MAX_METADATA)
        raise AssertionError("read it all")
    except TooLarge:
        pass
    assert time.monotonic() - started < 5, "took too long"


def test_hostile_hugeconfig_s_config_size_is_over_the_limit(hostile):
    """hostile: hugeconfig's config size is over the limit"""
    refused(hostile, "hugeconfig", "config size")


def test_hostile_malformed_is_not_json(hostile):
    """hostile: malformed is not JSON"""
    refused(hostile, "malformed", "not JSON")


@pytest.mark.parametrize("repo, reason", [
    ("wrongtype", "artifactType"), ("wrongconfigtype", "config mediaType"),
    ("wrongmediatype", "manifest mediaType"), ("escape", "unsafe relativePath '../../etc/evil'"),
    ("absolute", "unsafe relativePath '/etc/passwd'"), ("baddigest", "config digest"),
    ("badmanifestdigest", "manifest digest")], ids=lambda v: v.split(" '")[0])
def test_hostile_is_refused(hostile, repo, reason):
    """hostile: each bad answer is refused, for its own reason"""
    refused(hostile, repo, reason)


@pytest.mark.parametrize("repo, status, code", [
    ("notfound", 404, "MANIFEST_UNKNOWN"), ("unauthorized", 401, "UNAUTHORIZED"),
    ("denied", 403, "DENIED"), ("nosuchrepo", 404, "NAME_UNKNOWN")])
def test_hostile_error_answers(env, repo, status, code):
    """hostile: notfound, unauthorized, denied and nosuchrepo answer their status and OCI error code"""
    r = http_call("GET", env["REGISTRY_HOSTILE"] + "/v2/ns/%s/manifests/v1" % repo)
    assert r.status == status and r.errors() == [code], r


@pytest.mark.parametrize("repo, status", [("flaky", 503), ("ratelimited", 429)])
def test_hostile_answers_twice_then_the_manifest(env, hostile, repo, status):
    """hostile: flaky answers 503 and ratelimited 429 twice, then the manifest"""
    http_call("POST", env["REGISTRY_HOSTILE"] + "/reset", b"")
    seen = [hostile.pull_manifest(repo, "v1").status for _ in range(3)]
    assert seen == [status, status, 200], seen


def test_hostile_slow_never_answers_timeout(hostile):
    """hostile: slow never answers (timeout)"""
    try:
        hostile.pull_manifest("slow", "v1", timeout=0.5)
        raise AssertionError("answered")
    except (socket.timeout, TimeoutError):
        pass


def test_hostile_slowbody_stalls_mid_body_timeout(hostile):
    """hostile: slowbody stalls mid-body (timeout)"""
    try:
        hostile.pull_manifest("slowbody", "v1", timeout=0.5)
        raise AssertionError("answered")
    except (socket.timeout, TimeoutError):
        pass
