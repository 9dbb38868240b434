"""Registry and content clients without a store (the C ABI's
``snapshotter_registry_*`` and ``snapshotter_content_*``): blobs and
manifests of a registry, checked by their sha256 digest, and content files
uploaded and downloaded by their ``xxh3:`` digest through the content
transport. Blocking calls."""

from __future__ import annotations

import os
from ctypes import c_size_t, c_void_p, cast, c_char_p, string_at
from typing import Optional, Union

from . import _ffi, _text
from .errors import check
from .options import ContentProvider, Dragonfly, OptionsHandle, Registry

Path = Union[str, "os.PathLike[str]"]


def _taken(lib, p: c_void_p, n: c_size_t) -> bytes:
    try:
        return string_at(p, n.value) if n.value else b""
    finally:
        lib.snapshotter_free(p)


def _digest(lib, p: c_void_p) -> str:
    try:
        return cast(p, c_char_p).value.decode()
    finally:
        lib.snapshotter_free(p)


class RegistryClient:
    """Blobs and manifests of repositories <namespace>/<name> of a registry."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._lib = _ffi.load()

    def _options(self) -> OptionsHandle:
        return OptionsHandle().apply(registry=self._registry)

    def push_blob(self, name: str, data: bytes) -> str:
        out = c_void_p()
        with self._options() as o:
            check(self._lib.snapshotter_registry_push_blob(o.handle, _text.text(name, "name"), data, len(data), out))
        return _digest(self._lib, out)

    def pull_blob(self, name: str, digest: str) -> bytes:
        out, n = c_void_p(), c_size_t()
        with self._options() as o:
            check(self._lib.snapshotter_registry_pull_blob(o.handle, _text.text(name, "name"),
                                                           _text.text(digest, "digest"), out, n))
        return _taken(self._lib, out, n)

    def push_manifest(self, name: str, reference: str, manifest: bytes) -> str:
        out = c_void_p()
        with self._options() as o:
            check(self._lib.snapshotter_registry_push_manifest(o.handle, _text.text(name, "name"),
                                                               _text.text(reference, "reference"),
                                                               manifest, len(manifest), out))
        return _digest(self._lib, out)

    def pull_manifest(self, name: str, reference: str) -> bytes:
        out, n = c_void_p(), c_size_t()
        with self._options() as o:
            check(self._lib.snapshotter_registry_pull_manifest(o.handle, _text.text(name, "name"),
                                                               _text.text(reference, "reference"), out, n))
        return _taken(self._lib, out, n)


class ContentClient:
    """Content files by digest through the content transport."""

    def __init__(self, content: ContentProvider, dragonfly: Optional[Dragonfly] = None) -> None:
        self._content = content
        self._dragonfly = dragonfly
        self._lib = _ffi.load()

    def _options(self) -> OptionsHandle:
        return OptionsHandle().apply(content=self._content, dragonfly=self._dragonfly)

    def upload(self, digest: str, path: Path) -> None:
        with self._options() as o:
            check(self._lib.snapshotter_content_upload(o.handle, _text.text(digest, "digest"),
                                                       _text.text(os.fspath(path), "path")))

    def download(self, digest: str, output_path: Path) -> None:
        with self._options() as o:
            check(self._lib.snapshotter_content_download(o.handle, _text.text(digest, "digest"),
                                                         _text.text(os.fspath(output_path), "output path")))
