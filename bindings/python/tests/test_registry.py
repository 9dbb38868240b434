"""End to end through a registry: an OCI layout directory always, the real
registry services (plain HTTP, TLS + Basic auth) when SERVICES_ENV is set."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

import snapshotter
from snapshotter import Registry, Snapshotter

from conftest import NO_GC, same_tree


def publish_then_fetch(tmp_path: Path, registry: Registry, checkpoint) -> None:
    """Snapshot with a registry, drop the local record, restore: the
    snapshot's config comes back from the registry (content stays local,
    kept by a second snapshot of the same files, since the content transport
    is not built yet)."""
    base, files = checkpoint
    name = f"py/{uuid.uuid4().hex[:12]}"
    with Snapshotter(tmp_path / "store", registry=registry, gc=NO_GC) as s:
        s.snapshot(name, "v1", base, files)
        s.snapshot(name, "keep", base, files)
        s.delete(name, "v1")
        assert [x.version for x in s.list()] == ["keep"]
        s.restore(name, "v1", tmp_path / "out")
        same_tree(base, tmp_path / "out", files)
        assert sorted(x.version for x in s.list()) == ["keep", "v1"]


def test_oci_layout_directory_registry(tmp_path, checkpoint):
    layout = tmp_path / "oci"
    publish_then_fetch(tmp_path, Registry(f"file://{layout}", namespace="team"), checkpoint)
    assert (layout / "oci-layout").exists()
    index = json.loads((layout / "index.json").read_text())
    refs = [m.get("annotations", {}).get("org.opencontainers.image.ref.name", "") for m in index["manifests"]]
    assert any(r.endswith(":v1") for r in refs), refs


def test_restore_of_a_snapshot_no_one_published_is_not_found(tmp_path):
    with Snapshotter(tmp_path / "s", registry=Registry(f"file://{tmp_path}/oci"), gc=NO_GC) as s:
        with pytest.raises(snapshotter.NotFoundError):
            s.restore("nobody", "v1", tmp_path / "out")


def test_reconfigure_switches_registry_for_later_operations(tmp_path, checkpoint):
    base, files = checkpoint
    with Snapshotter(tmp_path / "s", gc=NO_GC) as s:
        s.snapshot("local", "v1", base, files)  # no registry: nothing published
        s.reconfigure(registry=Registry("http://127.0.0.1:1"))
        with pytest.raises(snapshotter.RegistryError):
            s.snapshot("local", "v2", base, files)
        s.reconfigure(registry=Registry(f"file://{tmp_path}/oci"))
        s.snapshot("local", "v3", base, files)
        assert (tmp_path / "oci/index.json").exists()
        s.reconfigure()  # no registry again
        s.snapshot("local", "v4", base, files)
        assert [x.version for x in s.list()] == ["v1", "v3", "v4"]


def test_registry_plain_http(tmp_path, checkpoint, services):
    publish_then_fetch(tmp_path, Registry(services["REGISTRY_PLAIN"], namespace="python"), checkpoint)


def test_registry_tls_with_basic_auth(tmp_path, checkpoint, services):
    registry = Registry(
        services["REGISTRY_TLS"],
        namespace="python",
        username=services["REGISTRY_TLS_USER"],
        password=services["REGISTRY_TLS_PASSWORD"],
        ca_file=services["REGISTRY_TLS_CA"],
    )
    publish_then_fetch(tmp_path, registry, checkpoint)


def test_registry_tls_async(tmp_path, checkpoint, services):
    base, files = checkpoint
    registry = Registry(
        services["REGISTRY_TLS"],
        username=services["REGISTRY_TLS_USER"],
        password=services["REGISTRY_TLS_PASSWORD"],
        ca_file=services["REGISTRY_TLS_CA"],
    )
    name = f"py/async-{uuid.uuid4().hex[:8]}"

    async def main(s):
        await s.snapshot_async(name, "v1", base, files)
        await s.snapshot_async(name, "keep", base, files)
        await s.delete_async(name, "v1")
        await s.restore_async(name, "v1", tmp_path / "out")

    with Snapshotter(tmp_path / "s", registry=registry, gc=NO_GC) as s:
        asyncio.run(main(s))
    same_tree(base, tmp_path / "out", files)


def test_registry_wrong_password_is_a_registry_error(tmp_path, checkpoint, services):
    base, files = checkpoint
    registry = Registry(
        services["REGISTRY_TLS"],
        username=services["REGISTRY_TLS_USER"],
        password="wrong-password",
        ca_file=services["REGISTRY_TLS_CA"],
    )
    with Snapshotter(tmp_path / "s", registry=registry, gc=NO_GC) as s:
        with pytest.raises(snapshotter.RegistryError) as e:
            s.snapshot("py/denied", "v1", base, files)
        assert "wrong-password" not in e.value.message  # never in a message
        assert s.list() == []


def test_registry_tls_without_its_ca_is_refused(tmp_path, checkpoint, services):
    base, files = checkpoint
    registry = Registry(
        services["REGISTRY_TLS"],
        username=services["REGISTRY_TLS_USER"],
        password=services["REGISTRY_TLS_PASSWORD"],
    )
    with Snapshotter(tmp_path / "s", registry=registry, gc=NO_GC) as s:
        with pytest.raises(snapshotter.RegistryError):
            s.snapshot("py/noca", "v1", base, files)
