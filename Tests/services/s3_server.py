#!/usr/bin/env python3
"""moto's S3 server on 127.0.0.1, set up for the tests: one bucket, one IAM
user with an access key, and strict signature checking.

It is what `moto_server -H 127.0.0.1 -p PORT` runs (the same WSGI app and
request handler), bound to a port the kernel picks (so it never races for
one), followed by this set-up against itself:

  1. create the bucket (--bucket, default "snapshots") while moto still
     accepts anything;
  2. create IAM user --user with an inline policy allowing s3:* on *, and an
     access key for it;
  3. POST /moto-api/reset-auth with body "0" (Content-Type: text/plain):
     from then on every request must be SigV4-signed with a known key and
     be allowed by the user's policy;
  4. check it: the right key can HEAD the bucket, a wrong secret gets 403
     SignatureDoesNotMatch.

Then it writes --ready-file (JSON: port, access_key_id, secret_access_key,
user, bucket; mode 0600) and serves until SIGTERM or SIGINT, which it
unblocks first (a parent started from Foundation's Process may have blocked
them).

moto keeps everything in memory: a restart loses the objects, the user and
the key (services.sh writes the new key to services.env).
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

from werkzeug.serving import make_server  # noqa: E402

from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)

POLICY = {"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def log(**fields):
    print(json.dumps({"time": time.strftime("%H:%M:%S"), **fields}), flush=True)


def set_up(endpoint, region, bucket, user):
    import urllib.request

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    anyone = dict(endpoint_url=endpoint, region_name=region,
                  aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    boto3.client("s3", config=cfg, **anyone).create_bucket(Bucket=bucket)
    iam = boto3.client("iam", **anyone)
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="s3-all", PolicyDocument=json.dumps(POLICY))
    key = iam.create_access_key(UserName=user)["AccessKey"]

    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0",
                                 headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()

    def s3(secret):
        return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=cfg,
                            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=secret)

    s3(key["SecretAccessKey"]).head_bucket(Bucket=bucket)
    try:
        s3(key["SecretAccessKey"] + "x").list_objects_v2(Bucket=bucket)
        raise RuntimeError("strict mode is off: a wrong secret was accepted")
    except ClientError as e:
        if e.response["Error"]["Code"] != "SignatureDoesNotMatch":
            raise
    return key["AccessKeyId"], key["SecretAccessKey"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free one")
    parser.add_argument("--bucket", default="snapshots")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--user", default="snapshotter")
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)  # what moto_server sets; moto builds some URLs from it
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    endpoint = "http://%s:%d" % (args.host, port)

    started = time.monotonic()
    key_id, secret = set_up(endpoint, args.region, args.bucket, args.user)
    tmp = args.ready_file + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"port": port, "access_key_id": key_id, "secret_access_key": secret,
                   "user": args.user, "bucket": args.bucket, "region": args.region}, f)
    os.replace(tmp, args.ready_file)
    log(event="ready", endpoint=endpoint, bucket=args.bucket, user=args.user,
        strict=True, setup_s=round(time.monotonic() - started, 3))

    while not stop.wait(3600):
        pass
    server.shutdown()
    log(event="stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
