#!/usr/bin/env python3
"""A token server for distribution's token authentication (the Bearer flow).

The registry answers an unauthenticated request with

    401  WWW-Authenticate: Bearer realm="https://localhost:P/token",
                           service="...",scope="repository:NAME:pull,push"

and the client then asks this server for a token:

    GET /token?service=...&scope=repository:NAME:pull,push
    Authorization: Basic base64(user:password)        (optional)

    200 {"token": JWT, "access_token": JWT, "expires_in": 300,
         "issued_at": "2025-01-01T00:00:00Z"}

and retries the request with `Authorization: Bearer JWT`. The JWT is signed
RS256 and carries the signing certificate in its `x5c` header; the registry
trusts it because the same certificate is its `rootcertbundle`.

What a user gets is the intersection of what the scope asks for and what the
user is allowed (the users file): `bob` may pull, push and delete, `reader`
may only pull, and an anonymous request gets a token with no access at all
(as Docker Hub does for a private repository), so the registry then answers
401 insufficient_scope. Wrong credentials get 401 from this server itself.

POST /token with an OAuth2 password grant (grant_type=password, username,
password, service, scope as a form) is accepted too, as Docker's own client
sends it. GET /healthz answers 200. With --tls-cert/--tls-key it serves
HTTPS (servicectl.py does: a client sends the user's credentials to a realm
on another origin than the registry only over https). Every request is logged on stdout, never
with a password.
"""

import argparse
import base64
import datetime
import json
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

TOKEN_LIFETIME = 300  # seconds; also the expires_in of every answer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    """Signs RS256 JWTs with a key whose certificate goes into `x5c`."""

    def __init__(self, key_path: str, cert_path: str):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        # x5c holds standard (not URL-safe) base64 of the DER certificate.
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)


def parse_scopes(values):
    """`repository:NAME:pull,push` items; several `scope` parameters, or
    several scopes separated by spaces in one, are both allowed. NAME may
    itself hold a colon (a registry host with a port), so split on the first
    and the last colon."""
    scopes = []
    for value in values:
        for item in value.split():
            first, last = item.find(":"), item.rfind(":")
            if first < 0 or first == last:
                continue
            scopes.append((item[:first], item[first + 1:last], [a for a in item[last + 1:].split(",") if a]))
    return scopes


class TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, signer, users, issuer, service):
        super().__init__(address, Handler)
        self.signer, self.users, self.issuer, self.service = signer, users, issuer, service
        self.log_lock = threading.Lock()

    def grant(self, user, scopes):
        """What `user` (None for anonymous) may do of what `scopes` ask."""
        allowed = set(self.users[user]["actions"]) if user else set()
        access = []
        for rtype, name, actions in scopes:
            if rtype == "repository":
                granted = [a for a in actions if a in allowed]
            else:  # registry:catalog:* and the like: only for a user allowed `*`
                granted = [a for a in actions if "*" in allowed]
            if granted:
                access.append({"type": rtype, "name": name, "actions": granted})
        return access

    def issue(self, user, access):
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + TOKEN_LIFETIME,
            "nbf": now - 10,  # a little slack for clocks that disagree
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        token = self.signer.sign(claims)
        issued_at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME, "issued_at": issued_at}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "snapshotter-test-token-server"

    def log_message(self, fmt, *args):  # the default goes to stderr; we log ourselves
        pass

    def log(self, **fields):
        fields = {"time": time.strftime("%H:%M:%S"), "method": self.command, **fields}
        with self.server.log_lock:
            print(json.dumps(fields), flush=True)

    def reply(self, status, body: dict, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def authenticate(self, username, password):
        """The user name for good credentials, None for none; raises on bad."""
        if username is None:
            return None
        user = self.server.users.get(username)
        if user is None or not secrets.compare_digest(user["password"], password or ""):
            raise PermissionError(username)
        return username

    def basic_credentials(self):
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None, None
        try:
            username, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except Exception:
            return "", ""
        return username, password

    def answer(self, query, username, password, path):
        scopes = parse_scopes(query.get("scope", []))
        service = (query.get("service") or [""])[0]
        try:
            user = self.authenticate(username, password)
        except PermissionError:
            self.log(path=path, user=username, service=service, result="401 bad credentials")
            self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]},
                       [("WWW-Authenticate", 'Basic realm="snapshotter-test-token-server"')])
            return
        if service and service != self.server.service:
            self.log(path=path, user=user, service=service, result="400 unknown service")
            self.reply(400, {"errors": [{"code": "DENIED", "message": "unknown service %r" % service}]})
            return
        access = self.server.grant(user, scopes)
        self.log(path=path, user=user or "(anonymous)", service=service,
                 scope=query.get("scope", []), granted=access, result="200")
        self.reply(200, self.server.issue(user, access))

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            self.reply(200, {"ok": True})
            return
        if url.path != "/token":
            self.log(path=url.path, result="404")
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
            return
        query = urllib.parse.parse_qs(url.query)
        username, password = self.basic_credentials()
        self.answer(query, username, password, url.path)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if url.path != "/token":
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
            return
        grant_type = (form.get("grant_type") or [""])[0]
        if grant_type != "password":
            self.log(path=url.path, grant_type=grant_type, result="400 unsupported grant")
            self.reply(400, {"error": "unsupported_grant_type"})
            return
        self.answer(form, (form.get("username") or [""])[0], (form.get("password") or [""])[0], url.path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--key", required=True, help="PEM RSA private key that signs tokens")
    parser.add_argument("--cert", required=True, help="PEM certificate of that key (the registry's rootcertbundle)")
    parser.add_argument("--users", required=True,
                        help='JSON file: {"bob": {"password": "...", "actions": ["pull", "push"]}, ...}')
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate")
    parser.add_argument("--tls-key", help="and this PEM key")
    args = parser.parse_args()

    with open(args.users) as f:
        users = json.load(f)
    server = TokenServer((args.host, args.port), Signer(args.key, args.cert), users, args.issuer, args.service)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print(json.dumps({"listening": "%s:%d" % (args.host, port), "users": sorted(users)}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
