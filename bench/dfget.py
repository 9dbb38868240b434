"""The Dragonfly stand-in's own speed: DownloadPersistentTask for each
digest, N at a time, into OUTDIR (on the daemon's filesystem, hard-linked
like the library asks), reading every stream to its end. Prints seconds.

    python dfget.py SERVICES_ENV OUTDIR CONCURRENCY DIGEST...
"""
import concurrent.futures
import sys
import time

import grpc
from dragonfly_api import common_pb2, dfdaemon_pb2, dfdaemon_pb2_grpc


def main():
    env_file, outdir, width, digests = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    env = dict(line.strip().split("=", 1) for line in open(env_file) if "=" in line and not line.startswith("#"))
    channel = grpc.insecure_channel(env["DRAGONFLY_ENDPOINT"], options=[("grpc.default_authority", "localhost")])
    stub = dfdaemon_pb2_grpc.DfdaemonDownloadStub(channel)
    storage = common_pb2.ObjectStorage(region=env["S3_REGION"], endpoint=env["S3_ENDPOINT"],
                                       access_key_id=env["S3_ACCESS_KEY_ID"],
                                       access_key_secret=env["S3_SECRET_ACCESS_KEY"])

    def get(digest):
        req = dfdaemon_pb2.DownloadPersistentTaskRequest(
            url="s3://%s/xxh3/%s" % (env["S3_BUCKET"], digest), object_storage=storage, persistent=True,
            output_path="%s/%s" % (outdir, digest), force_hard_link=True, need_piece_content=False)
        for _ in stub.DownloadPersistentTask(req, timeout=300):
            pass

    grpc.channel_ready_future(channel).result(timeout=10)
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(width) as pool:
        list(pool.map(get, digests))
    print("%.4f" % (time.monotonic() - start))


if __name__ == "__main__":
    main()
