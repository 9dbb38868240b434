"""Registry and content clients without a store (snapshotter_registry_* and
snapshotter_content_*), against a directory registry and a directory as the
content transport."""

from __future__ import annotations

import hashlib

import pytest

import snapshotter
from snapshotter import ContentClient, ContentProvider, Registry, RegistryClient


def test_registry_client_pushes_and_pulls_checked_objects(tmp_path):
    c = RegistryClient(Registry(f"file://{tmp_path / 'reg'}", namespace="team"))
    config = b'{"files":[]}'
    digest = c.push_blob("app", config)
    assert digest == "sha256:" + hashlib.sha256(config).hexdigest()
    assert c.pull_blob("app", digest) == config
    manifest = b'{"schemaVersion":2,"config":{"digest":"%s"}}' % digest.encode()
    mdigest = c.push_manifest("app", "v1", manifest)
    assert c.pull_manifest("app", "v1") == manifest
    assert c.pull_manifest("app", mdigest) == manifest
    with pytest.raises(snapshotter.NotFoundError):
        c.pull_manifest("app", "v2")
    # A blob changed on the registry's side is refused, not returned.
    blob = tmp_path / "reg" / "blobs" / "sha256" / digest.split(":")[1]
    blob.chmod(0o644)
    blob.write_bytes(b'{"files":[1]}')
    with pytest.raises(snapshotter.RegistryError):
        c.pull_blob("app", digest)


def test_content_client_uploads_and_downloads_by_digest(tmp_path, store, checkpoint):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    content_dir = tmp_path / "store" / "storage" / "content" / "xxh3"
    src = sorted(content_dir.iterdir())[0]
    digest = "xxh3:" + src.name
    c = ContentClient(ContentProvider("file", str(tmp_path / "remote")))
    c.upload(digest, src)
    out = tmp_path / "downloaded"
    c.download(digest, out)
    assert out.read_bytes() == src.read_bytes()
    other = sorted(content_dir.iterdir())[1]
    with pytest.raises(snapshotter.InvalidArgumentError, match="hashes to"):
        c.upload(digest, other)
    # A remote object that does not hash to its digest is not written out.
    remote = tmp_path / "remote" / "xxh3" / src.name
    remote.chmod(0o644)
    remote.write_bytes(b"tampered")
    out2 = tmp_path / "downloaded2"
    with pytest.raises(snapshotter.CorruptContentError):
        c.download(digest, out2)
    assert not out2.exists()
