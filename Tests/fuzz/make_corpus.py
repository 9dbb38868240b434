#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora to Tests/fuzz/corpus/<target>/: a
few small valid (and nearly valid) inputs per parser, built from the formats
of FORMAT.md and ../shared/testdata/vectors.json. Re-run after a format
change; the files are committed."""
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
VECTORS = os.path.join(HERE, "..", "..", "..", "shared", "testdata", "vectors.json")


def spf1(size, extents):
    out = b"SPF1" + struct.pack(">QQ", size, len(extents))
    for off, data in extents:
        out += struct.pack(">QQ", off, len(data)) + data
    return out


def entry(path, digest, size, mtime, ro=False, mode=420, extra=""):
    return ('{"digest":"%s","readOnly":%s,"relativePath":%s,"metadata":{"mode":%d,"uid":1000,"gid":1000,'
            '"size":%d,"mtime":"%s","typeflag":0%s}}' % (digest, "true" if ro else "false", json.dumps(path),
                                                       mode, size, mtime, extra))


def config(*entries):
    return ('{"files":[%s]}' % ",".join(entries)).encode()


def blob(b):
    return struct.pack(">I", len(b)) + b


def snapshot_record(files, cfg):
    out = bytes([1]) + struct.pack(">qI", 1764431829000000000, len(files))
    for path, digest, size in files:
        out += blob(path.encode()) + struct.pack(">QBIIIqqB", digest, 0, 0o644, 1000, 1000, size, 1764431829000000000, 0)
    return out + blob(cfg)


def record_in_parts(parts):
    """A version 3 record for the harness: the header's length, the header,
    then each part after its length (2 bytes)."""
    count = sum(len(p) for p in parts)
    header = bytes([3]) + struct.pack(">qII", 1764431829000000000, count, len(parts)) + b"\x00\x00"
    out = bytes([len(header)]) + header
    for files in parts:
        part = struct.pack(">I", len(files))
        for path, digest, size in files:
            part += blob(path.encode()) + struct.pack(">QBIIIqqB", digest, 1, 0o444, 0, 0, size, 1764431829000000000, 0)
        out += struct.pack(">H", len(part)) + part
    return out


def seeds():
    s = {}
    heads = []
    if os.path.exists(VECTORS):
        for v in json.load(open(VECTORS))["vectors"]:
            heads.append(bytes.fromhex(v["spf1_head_hex"]))
    s["spf1"] = [b"\x00\x00" + spf1(0, []), b"\x07\x00" + spf1(5, [(0, b"hello")]),
                 b"\x03\x01" + spf1(1 << 20, [(4096, b"abc"), (65536, b"xyz")]),
                 b"\x0f\x00" + spf1(10, [(8, b"toolong")])] + [b"\x10\x00" + h for h in heads]
    s["json"] = [b'{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\ud83d\\ude00"]}', b"[]", b'"\\n\\t\\/"',
                 b'{"nested":{"deeper":[[[{}]]]}}']
    e1 = entry("ckpt1/state", "xxh3:6b1e182d921cd510", 12, "2025-11-29T15:57:09.123456789Z", ro=True)
    e2 = entry("a/b<&>.txt", "xxh3:04306cff25f646ff", 0, "2025-11-29T15:57:09.5Z", mode=384)
    e3 = entry("\u00e9.txt", "xxh3:ff", 1, "1969-12-31T23:59:59.999999999Z", extra=',"unknown":[1,{"x":2}]')
    s["config"] = [config(e1, e2, e3), config(), b'{"files":null}', config(e1),
                   config(entry("big", "xxh3:1", 9223372036854775807, "2262-04-11T23:47:16.854775807Z"))]
    cfg = config(e1)
    manifest = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                '"artifactType":"application/vnd.cncf.dragonfly.snapshotter.manifest.v1+json",'
                '"config":{"mediaType":"application/vnd.cncf.dragonfly.snapshotter.config.v1+json",'
                '"digest":"sha256:%s","size":%d},"layers":[]}' % (hashlib.sha256(cfg).hexdigest(), len(cfg)))
    s["manifest"] = [manifest.encode(), manifest.replace('"layers":[]', '"layers":null').encode()]
    s["rfc3339"] = [b"2025-11-29T15:57:09Z", b"2025-11-29T15:57:09.123456789Z", b"1969-12-31T23:59:59.5-08:00",
                    b"2262-04-11T23:47:16.854775807Z", b"1677-09-21T00:12:43.145224192Z", b"2025-11-29t15:57:09+05:30"]
    s["www-authenticate"] = [b'Bearer realm="https://auth.example/token",service="registry.example",'
                             b'scope="repository:a/b:pull,push"', b'Basic realm="registry"',
                             b'Bearer realm="x\\"y", error="invalid_token"', b"Bearer"]
    s["s3-xml"] = [b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>',
                   b"<InitiateMultipartUploadResult><UploadId>abc-123</UploadId></InitiateMultipartUploadResult>",
                   b"<Error><Code>SignatureDoesNotMatch</Code>"]
    rec = snapshot_record([("ckpt/state", 0x6b1e182d921cd510, 12), ("a", 1, 0)], cfg)
    s["records"] = [b"\x00" + rec, b"\x01" + bytes([1]) + struct.pack(">qqqB", 36, 12, 1764431829000000000, 1),
                    b"\x02" + struct.pack(">Qqq", 0x6b1e182d921cd510, 12, 1764431829000000000),
                    b"\x03" + bytes([1]) + struct.pack(">I", 1) + blob(b"sb:v1") + struct.pack(">IQ", 1, 7),
                    b"\x04name:version", b"\x06" + struct.pack(">Q", 0x6b1e182d921cd510),
                    b"\x05" + record_in_parts([[("a/b", 7, 3), ("a/c", 8, 4)], [("z", 9, 0)]])]
    return s


def main():
    for target, inputs in seeds().items():
        d = os.path.join(OUT, target)
        os.makedirs(d, exist_ok=True)
        for data in inputs:
            with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
                f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
