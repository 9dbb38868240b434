#!/usr/bin/env python3
"""Starts, checks and stops the services of the test suite, in two groups:
registry (docker-registry x3, token server, fault proxy, hostile registry)
and content (moto S3, a fault proxy in front of it, the Dragonfly stand-in).

Called by scripts/services.sh (which installs what is missing first); see
that script for the interface. Everything about one set of services lives in
one directory DIR:

    DIR/services.env          what the tests read (KEY=VALUE, shell-safe): the
                              union of the group files below
    DIR/registry.env          the registry group's variables
    DIR/content.env           the content group's variables
    DIR/secrets.json          generated passwords, kept across restarts
    DIR/ca.pem                the CA that signed the TLS registry's certificate
    DIR/run/NAME.pid          one per process started
    DIR/logs/NAME.log         its stdout and stderr
    DIR/<registry>/           config.yml and storage/ of each docker-registry
    DIR/s3/ready.json         moto's port and the IAM access key (0600)
    DIR/s3-proxy/port         the S3 fault proxy's ports
    DIR/dfdaemon.sock         the Dragonfly stand-in's gRPC socket
    DIR/dfdaemon/cache/       its task cache; DIR/dfdaemon/port its control port
    DIR/venv/                 Python with what the services import (services.sh)

Each group starts, is found running, or is restarted on its own; `stop`
stops every group. Only the standard library is used here, so `stop` works
with any python3.
"""

import argparse
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
TOKEN_SERVICE = "snapshotter-test-registry"
TOKEN_ISSUER = "snapshotter-test-token-issuer"
READY_TIMEOUT = 20.0  # seconds; a docker-registry is ready in about 0.1 s, moto in about 2 s
GROUPS = {
    "registry": ("plain", "tls-basic", "token", "token-server", "proxy", "hostile"),
    "content": ("moto", "s3-proxy", "dfdaemon"),
}
S3_BUCKET = "snapshots"
S3_REGION = "us-east-1"
S3_USER = "snapshotter"


class ServiceError(Exception):
    pass


def log(msg):
    print("services: " + msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes --

def pid_file(d, name):
    return os.path.join(d, "run", name + ".pid")


def read_pid(d, name):
    try:
        with open(pid_file(d, name)) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_ours(pid, d):
    """Alive and started for DIR: every command we start names a path in DIR,
    so a recycled pid of some other process is never signalled."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and os.fsencode(d) in cmdline


def recorded(d):
    run = os.path.join(d, "run")
    if not os.path.isdir(run):
        return []
    return sorted(n[:-4] for n in os.listdir(run) if n.endswith(".pid"))


def spawn(d, name, argv, env=None):
    """Starts argv in its own session (so a signal to the caller's process
    group does not reach it), output to DIR/logs/NAME.log, and records its pid."""
    logf = open(os.path.join(d, "logs", name + ".log"), "ab")
    logf.write(b"==== %s %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S").encode(), " ".join(argv).encode()))
    logf.flush()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True, env=env, cwd=d)
    logf.close()
    with open(pid_file(d, name), "w") as f:
        f.write("%d\n" % proc.pid)
    return proc


def stop(d, quiet=False, group=None):
    """Stops the processes of `group` (every recorded one when None) and
    removes what they wrote to the environment."""
    names = recorded(d) if group is None else [n for n in recorded(d) if n in GROUPS[group]]
    pids = {}
    for name in names:
        pid = read_pid(d, name)
        if pid and is_ours(pid, d):
            pids[name] = pid
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5.0
    while pids and time.monotonic() < deadline:
        pids = {n: p for n, p in pids.items() if is_ours(p, d)}
        time.sleep(0.05)
    for name, pid in pids.items():
        log("%s (pid %d) ignored SIGTERM; sending SIGKILL" % (name, pid))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for name in names:
        try:
            os.unlink(pid_file(d, name))
        except FileNotFoundError:
            pass
    if group is None:
        for path in [os.path.join(d, "services.env")] + [env_file(d, g) for g in GROUPS]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    else:
        try:
            os.unlink(env_file(d, group))
        except FileNotFoundError:
            pass
        merge_env(d)
    if not quiet:
        log("stopped %s" % (", ".join(names) if names else "nothing (none running)"))


# ---------------------------------------------------------------- readiness --

def free_ports(n):
    """n distinct free ports on 127.0.0.1. They are only free when asked; a
    registry that then fails to bind is started again on another (see
    start_registry)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_status(url, cafile=None):
    """The status of GET url, or None when nothing answers yet."""
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def wait_for(d, name, proc, url, statuses, cafile=None):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        status = http_status(url, cafile)
        if status in statuses:
            return True
        if status is not None:
            raise ServiceError("%s answered %s at %s, expected one of %s" % (name, status, url, statuses))
        time.sleep(0.02)
    raise ServiceError("%s not ready after %.0f s at %s; see %s" % (
        name, READY_TIMEOUT, url, os.path.join(d, "logs", name + ".log")))


def wait_port_file(d, name, proc, path, count=1):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                ports = [int(p) for p in f.read().split()]
            if len(ports) == count:
                return ports
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            raise ServiceError("%s exited with %s; see %s" % (name, proc.returncode, os.path.join(d, "logs", name + ".log")))
        time.sleep(0.02)
    raise ServiceError("%s did not report its port in %.0f s" % (name, READY_TIMEOUT))


# ------------------------------------------------------------------- set-up --

def run(argv, **kw):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def make_secrets(d):
    path = os.path.join(d, "secrets.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    s = {name: secrets.token_hex(12) for name in ("alice", "bob", "reader", "http_secret")}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(s, f, indent=1)
    return s


def make_certificates(d):
    """A CA and a server certificate it signs (SAN localhost and 127.0.0.1)
    for the TLS registry, and a self-signed RSA certificate whose key signs
    the token server's JWTs. EC keys where RS256 is not required: quicker."""
    tls, tok = os.path.join(d, "tls-basic"), os.path.join(d, "token")
    ca_pem, ca_key = os.path.join(d, "ca.pem"), os.path.join(tls, "ca.key")
    srv_pem, srv_key, srv_csr = (os.path.join(tls, n) for n in ("server.pem", "server.key", "server.csr"))
    if not (os.path.exists(ca_pem) and os.path.exists(srv_pem)):
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "3650", "-subj", "/CN=libsnapshotter test CA",
             "-keyout", ca_key, "-out", ca_pem])
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-subj", "/CN=localhost", "-keyout", srv_key, "-out", srv_csr])
        ext = os.path.join(tls, "server.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "authorityKeyIdentifier=keyid\n"
                    "subjectKeyIdentifier=hash\n")
        run(["openssl", "x509", "-req", "-in", srv_csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
             "-days", "3650", "-sha256", "-extfile", ext, "-out", srv_pem])
    signer_pem, signer_key = os.path.join(tok, "signer.pem"), os.path.join(tok, "signer.key")
    if not os.path.exists(signer_pem):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
             "-subj", "/CN=libsnapshotter test token signer", "-keyout", signer_key, "-out", signer_pem])
    return {"ca": ca_pem, "server_cert": srv_pem, "server_key": srv_key,
            "signer_cert": signer_pem, "signer_key": signer_key}


def registry_config(d, name, port, secret, auth=None, tls=None):
    """distribution's YAML; JSON is YAML, so json.dumps writes it exactly."""
    cfg = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": name}},
        "storage": {
            "filesystem": {"rootdirectory": os.path.join(d, name, "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": "%s:%d" % (HOST, port), "secret": secret,
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if auth:
        cfg["auth"] = auth
    if tls:
        cfg["http"]["tls"] = tls
    path = os.path.join(d, name, "config.yml")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def registry_env():
    """docker-registry reads every REGISTRY_* variable as a config override
    (REGISTRY_PROXY would be taken as its pull-through cache section), so the
    variables of services.env must never reach it."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def start_registry(d, name, make_config, url_of, statuses, cafile=None):
    """Starts docker-registry on a free port, again on another port if the one
    picked was taken meanwhile; returns the port."""
    for attempt in range(3):
        port = free_ports(1)[0]
        cfg = make_config(port)
        proc = spawn(d, name, ["docker-registry", "serve", cfg], env=registry_env())
        if wait_for(d, name, proc, url_of(port) + "/v2/", statuses, cafile):
            return port
        log("%s exited (attempt %d, port %d); retrying" % (name, attempt + 1, port))
    raise ServiceError("%s would not start; see %s" % (name, os.path.join(d, "logs", name + ".log")))


def start_registry_services(d, python):
    for sub in ("run", "logs", "plain", "tls-basic", "token", "proxy", "hostile"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    pw = make_secrets(d)
    certs = make_certificates(d)

    htpasswd = os.path.join(d, "tls-basic", "htpasswd")
    with open(htpasswd, "wb") as f:
        f.write(subprocess.run(["htpasswd", "-Bbn", "alice", pw["alice"]], check=True,
                               stdout=subprocess.PIPE).stdout)
    users = os.path.join(d, "token", "users.json")
    with open(users, "w") as f:
        json.dump({"bob": {"password": pw["bob"], "actions": ["pull", "push", "delete", "*"]},
                   "reader": {"password": pw["reader"], "actions": ["pull"]}}, f, indent=1)

    # The Python services pick their own port (bind to 0) and report it in a
    # file, so they never race for one; they start while the registries do.
    port_files = {n: os.path.join(d, n, "port") for n in ("token", "proxy", "hostile")}
    for p in port_files.values():
        if os.path.exists(p):
            os.unlink(p)
    token_proc = spawn(d, "token-server", [
        python, os.path.join(HERE, "token_server.py"), "--port-file", port_files["token"],
        "--key", certs["signer_key"], "--cert", certs["signer_cert"], "--users", users,
        "--issuer", TOKEN_ISSUER, "--service", TOKEN_SERVICE,
        "--tls-cert", certs["server_cert"], "--tls-key", certs["server_key"]])
    hostile_proc = spawn(d, "hostile", [
        python, os.path.join(HERE, "hostile_registry.py"), "--port-file", port_files["hostile"]])

    plain_port = start_registry(
        d, "plain", lambda port: registry_config(d, "plain", port, pw["http_secret"]),
        lambda port: "http://%s:%d" % (HOST, port), {200})
    proxy_proc = spawn(d, "proxy", [
        python, os.path.join(HERE, "fault_proxy.py"), "--port-file", port_files["proxy"],
        "--upstream-port", str(plain_port)])

    tls_port = start_registry(
        d, "tls-basic",
        lambda port: registry_config(
            d, "tls-basic", port, pw["http_secret"],
            auth={"htpasswd": {"realm": "snapshotter-test", "path": htpasswd}},
            tls={"certificate": certs["server_cert"], "key": certs["server_key"]}),
        lambda port: "https://localhost:%d" % port, {401}, cafile=certs["ca"])

    token_port = wait_port_file(d, "token-server", token_proc, port_files["token"])[0]
    wait_for(d, "token-server", token_proc, "https://localhost:%d/healthz" % token_port, {200}, cafile=certs["ca"])
    # https: clients send credentials over plain http only to the registry's own origin.
    realm = "https://localhost:%d/token" % token_port
    reg_token_port = start_registry(
        d, "token",
        lambda port: registry_config(
            d, "token", port, pw["http_secret"],
            auth={"token": {"realm": realm, "service": TOKEN_SERVICE, "issuer": TOKEN_ISSUER,
                            "rootcertbundle": certs["signer_cert"], "autoredirect": False}}),
        lambda port: "http://%s:%d" % (HOST, port), {401})

    proxy_port, control_port = wait_port_file(d, "proxy", proxy_proc, port_files["proxy"], 2)
    wait_for(d, "proxy", proxy_proc, "http://%s:%d/v2/" % (HOST, proxy_port), {200})
    hostile_port, recorder_port = wait_port_file(d, "hostile", hostile_proc, port_files["hostile"], 2)
    wait_for(d, "hostile", hostile_proc, "http://%s:%d/v2/" % (HOST, hostile_port), {200})
    with urllib.request.urlopen("http://%s:%d/good" % (HOST, hostile_port), timeout=5) as r:
        good = json.load(r)

    return [
        ("SERVICES_DIR", d),
        ("SERVICES_LOGS", os.path.join(d, "logs")),
        ("REGISTRY_PLAIN", "http://%s:%d" % (HOST, plain_port)),
        ("REGISTRY_TLS", "https://localhost:%d" % tls_port),
        ("REGISTRY_TLS_CA", certs["ca"]),
        ("REGISTRY_TLS_USER", "alice"),
        ("REGISTRY_TLS_PASSWORD", pw["alice"]),
        ("REGISTRY_TOKEN", "http://%s:%d" % (HOST, reg_token_port)),
        ("REGISTRY_TOKEN_REALM", realm),
        ("REGISTRY_TOKEN_SERVICE", TOKEN_SERVICE),
        ("REGISTRY_TOKEN_USER", "bob"),
        ("REGISTRY_TOKEN_PASSWORD", pw["bob"]),
        ("REGISTRY_TOKEN_READER", "reader"),
        ("REGISTRY_TOKEN_READER_PASSWORD", pw["reader"]),
        ("REGISTRY_PROXY", "http://%s:%d" % (HOST, proxy_port)),
        ("REGISTRY_PROXY_CONTROL", "http://%s:%d" % (HOST, control_port)),
        ("REGISTRY_HOSTILE", "http://%s:%d" % (HOST, hostile_port)),
        ("REGISTRY_HOSTILE_GOOD_MANIFEST_DIGEST", good["manifestDigest"]),
        ("REGISTRY_HOSTILE_GOOD_CONFIG_DIGEST", good["configDigest"]),
        ("REGISTRY_HOSTILE_RECORDER", "http://%s:%d" % (HOST, recorder_port)),
        ("REGISTRY_HOSTILE_REALM_SECRET", os.path.join(d, "hostile", "realm-secret")),
    ]


def wait_file(d, name, proc, path, parse):
    """parse(text of path) once it parses, while proc runs."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                return parse(f.read())
        except (OSError, ValueError, KeyError, IndexError):
            pass
        if proc.poll() is not None:
            raise ServiceError("%s exited with %s; see %s" % (name, proc.returncode, os.path.join(d, "logs", name + ".log")))
        time.sleep(0.02)
    raise ServiceError("%s not ready after %.0f s; see %s" % (name, READY_TIMEOUT, os.path.join(d, "logs", name + ".log")))


def dfdaemon_socket(d):
    sock = os.path.join(d, "dfdaemon.sock")
    if len(os.fsencode(sock)) > 107:
        raise ServiceError("%s is too long for a Unix socket path (107 bytes at most): use a shorter DIR" % sock)
    return sock


def spawn_dfdaemon(d, python, control_port=0, tcp_port=0):
    port_file = os.path.join(d, "dfdaemon", "port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    return spawn(d, "dfdaemon", [
        python, os.path.join(HERE, "dfdaemon_standin.py"), "--socket", dfdaemon_socket(d),
        "--cache-dir", os.path.join(d, "dfdaemon", "cache"), "--port-file", port_file,
        "--control-port", str(control_port), "--tcp-port", str(tcp_port)]), port_file


def wait_dfdaemon(d, proc, port_file):
    sock, control_port, tcp_port = wait_file(d, "dfdaemon", proc, port_file,
                                             lambda t: (t.split()[0], int(t.split()[1]), int(t.split()[2])))
    if not wait_for(d, "dfdaemon", proc, "http://%s:%d/healthz" % (HOST, control_port), {200}):
        raise ServiceError("dfdaemon exited; see %s" % os.path.join(d, "logs", "dfdaemon.log"))
    return sock, control_port, tcp_port


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


def revive_dfdaemon(d, python):
    """After the stand-in died (its `die` fault, a kill) while moto and the
    S3 proxy run: start it again on the same socket, and on the same control
    port when that is still free, so that services.env stays true. False
    when the rest of the group is not running either."""
    if not (alive(d, "moto") and alive(d, "s3-proxy") and os.path.exists(env_file(d, "content"))):
        return False
    env = read_env(env_file(d, "content"))
    old_port = int(env["DRAGONFLY_CONTROL"].rsplit(":", 1)[1])
    old_tcp = int(env["DRAGONFLY_TCP_ENDPOINT"].rsplit(":", 1)[1])
    proc, port_file = spawn_dfdaemon(d, python, old_port, old_tcp)
    _, control_port, tcp_port = wait_dfdaemon(d, proc, port_file)
    if control_port != old_port or tcp_port != old_tcp:
        env["DRAGONFLY_CONTROL"] = "http://%s:%d" % (HOST, control_port)
        env["DRAGONFLY_TCP_ENDPOINT"] = "%s:%d" % (HOST, tcp_port)
        write_env(d, "content", list(env.items()))
    return True


def start_content_services(d, python):
    for sub in ("s3", "s3-proxy", "dfdaemon"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    sock = dfdaemon_socket(d)
    ready_file = os.path.join(d, "s3", "ready.json")
    proxy_file = os.path.join(d, "s3-proxy", "port")
    for p in (ready_file, proxy_file):
        if os.path.exists(p):
            os.unlink(p)

    # moto binds a port of the kernel's choosing and reports it with the
    # access key it made; the stand-in needs nothing else to start.
    moto = spawn(d, "moto", [python, os.path.join(HERE, "s3_server.py"), "--ready-file", ready_file,
                             "--bucket", S3_BUCKET, "--region", S3_REGION, "--user", S3_USER])
    dfdaemon, df_port_file = spawn_dfdaemon(d, python)
    s3 = wait_file(d, "moto", moto, ready_file, json.loads)
    endpoint = "http://%s:%d" % (HOST, s3["port"])
    proxy = spawn(d, "s3-proxy", [python, os.path.join(HERE, "fault_proxy.py"), "--port-file", proxy_file,
                                  "--upstream-port", str(s3["port"])])
    proxy_port, control_port = wait_port_file(d, "s3-proxy", proxy, proxy_file, 2)
    # moto's own API needs no signature (an unsigned bucket GET is a 500 in
    # strict mode, an unsigned object GET a 403).
    if not wait_for(d, "s3-proxy", proxy, "http://%s:%d/moto-api/" % (HOST, proxy_port), {200}):
        raise ServiceError("s3-proxy exited; see %s" % os.path.join(d, "logs", "s3-proxy.log"))
    sock, df_control, df_tcp = wait_dfdaemon(d, dfdaemon, df_port_file)

    return [
        ("SERVICES_DIR", d),
        ("SERVICES_LOGS", os.path.join(d, "logs")),
        ("SERVICES_PYTHON", python),
        ("S3_ENDPOINT", endpoint),
        ("S3_REGION", S3_REGION),
        ("S3_BUCKET", S3_BUCKET),
        ("S3_ACCESS_KEY_ID", s3["access_key_id"]),
        ("S3_SECRET_ACCESS_KEY", s3["secret_access_key"]),
        ("S3_PROXY", "http://%s:%d" % (HOST, proxy_port)),
        ("S3_PROXY_CONTROL", "http://%s:%d" % (HOST, control_port)),
        ("DRAGONFLY_ENDPOINT", "unix://" + sock),
        ("DRAGONFLY_SOCKET", sock),
        ("DRAGONFLY_TCP_ENDPOINT", "%s:%d" % (HOST, df_tcp)),
        ("DRAGONFLY_CONTROL", "http://%s:%d" % (HOST, df_control)),
        ("DRAGONFLY_CACHE_DIR", os.path.join(d, "dfdaemon", "cache")),
    ]


def env_file(d, group):
    return os.path.join(d, group + ".env")


def write_env(d, group, pairs):
    """DIR/<group>.env, then DIR/services.env again (merge_env)."""
    path = env_file(d, group)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for key, value in pairs:
            assert all(c not in value for c in " \t\n'\"$`\\"), (key, value)
            f.write("%s=%s\n" % (key, value))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return merge_env(d)


def merge_env(d):
    """DIR/services.env = every group's variables (the first value of a key
    wins; SERVICES_DIR and SERVICES_LOGS are in each). Removed when no group
    has any."""
    path = os.path.join(d, "services.env")
    lines, seen = [], set()
    for group in GROUPS:
        try:
            with open(env_file(d, group)) as f:
                for line in f:
                    key = line.split("=", 1)[0]
                    if "=" in line and key not in seen:
                        seen.add(key)
                        lines.append(line)
        except FileNotFoundError:
            pass
    if not lines:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return path
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# Written by scripts/services.sh; KEY=VALUE, no quoting needed.\n")
        f.writelines(lines)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def alive(d, name):
    pid = read_pid(d, name)
    return bool(pid) and is_ours(pid, d)


def all_running(d, group):
    names = [n for n in recorded(d) if n in GROUPS[group]]
    return set(names) == set(GROUPS[group]) and os.path.exists(env_file(d, group)) and all(
        alive(d, n) for n in names)


def status(d):
    names = recorded(d)
    if not names:
        print("no services recorded in %s" % d)
        return 1
    ok = True
    for name in names:
        pid = read_pid(d, name)
        alive = bool(pid) and is_ours(pid, d)
        ok &= alive
        print("%-13s pid %-7s %s" % (name, pid, "running" if alive else "NOT RUNNING"))
    return 0 if ok else 1


def start_group(d, group, python):
    if all_running(d, group):
        log("%s services already running (%s); nothing to do" % (group, os.path.join(d, "services.env")))
        return 0
    started = time.monotonic()
    try:
        if group == "content" and revive_dfdaemon(d, python):
            log("dfdaemon stand-in started again in %.2f s" % (time.monotonic() - started))
            return 0
        if any(n in GROUPS[group] for n in recorded(d)):
            stop(d, quiet=True, group=group)  # a half-started or half-dead set: start afresh
        start = start_registry_services if group == "registry" else start_content_services
        pairs = start(d, python)
    except (ServiceError, subprocess.CalledProcessError, OSError, ValueError) as e:
        detail = e.stderr.decode(errors="replace") if isinstance(e, subprocess.CalledProcessError) and e.stderr else ""
        log("start failed: %s %s" % (e, detail))
        stop(d, quiet=True, group=group)
        return 1
    path = write_env(d, group, pairs)
    log("%s services ready in %.2f s; environment in %s" % (group, time.monotonic() - started, path))
    return 0


def main():
    # A parent started with Foundation's Process on Linux hands down a signal
    # mask blocking SIGTERM and SIGINT; unblock them (and undo an inherited
    # SIG_IGN) so that every service started from here can be stopped.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    for sig in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start-registry", "start-content", "stop", "status"])
    parser.add_argument("dir")
    parser.add_argument("--python", default=sys.executable, help="the Python (venv) for the services")
    args = parser.parse_args()
    d = os.path.abspath(args.dir)

    if args.command == "stop":
        stop(d)
        return 0
    if args.command == "status":
        return status(d)

    os.makedirs(d, exist_ok=True)
    for sub in ("run", "logs"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    return start_group(d, args.command[len("start-"):], args.python)


if __name__ == "__main__":
    sys.exit(main())
