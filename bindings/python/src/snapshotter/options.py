"""Store settings: registry, content transport, Dragonfly, garbage collection.

Each dataclass turns into the library's numbered options
(``SNAPSHOTTER_OPT_*``); a field left at its default leaves the library's
default in place. Secrets are kept out of ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import _ffi, _text
from .errors import OutOfMemoryError, SnapshotterError, UnsupportedError, check, make_error

__all__ = ["Registry", "ContentProvider", "Dragonfly", "GCOptions"]


@dataclass(frozen=True)
class Registry:
    """An OCI registry that snapshots are pushed to and pulled from.

    ``endpoint`` is ``http://host[:port]``, ``https://host[:port]``, or
    ``file:///dir`` for an OCI image layout directory; snapshots go to
    ``<namespace>/<name>:<version>``. ``insecure`` skips TLS verification;
    ``ca_file`` names a PEM file of CAs to trust instead of the system's.
    """

    endpoint: str
    namespace: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    insecure: bool = False
    ca_file: Optional[str] = None


@dataclass(frozen=True)
class ContentProvider:
    """Object storage that content moves through (``<provider>://<bucket>``,
    provider ``s3``, ``oss``, ``obs``, ``cos``, ``gs`` or ``abs``)."""

    provider: str
    bucket: str
    region: str = ""
    endpoint: str = ""
    access_key_id: str = ""
    access_key_secret: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """The content URL given to the library."""
        return f"{self.provider}://{self.bucket}"


@dataclass(frozen=True)
class Dragonfly:
    """A Dragonfly daemon that content is fetched and seeded through.

    ``endpoint`` is the daemon's address (e.g. ``unix:///run/dfdaemon.sock``).
    ``fallback`` allows going to object storage directly when the daemon
    fails; ``replicas`` and ``ttl_seconds`` tune seeding; ``None`` keeps the
    library's default.
    """

    endpoint: str
    fallback: Optional[bool] = None
    replicas: Optional[int] = None
    ttl_seconds: Optional[int] = None
    download_concurrency: Optional[int] = None


@dataclass(frozen=True)
class GCOptions:
    """Garbage collection settings, fixed when the store opens.

    ``interval_seconds=0`` disables the background collector
    (:meth:`Snapshotter.gc` still works). Above ``high_watermark_percent``
    of disk use (or ``max_store_bytes`` of store size, 0 for no budget) the
    least recently used snapshots older than ``min_retention_seconds`` are
    evicted, ``batch_size`` at a time, until below
    ``low_watermark_percent``. ``None`` keeps the library's default.
    """

    interval_seconds: Optional[int] = None
    high_watermark_percent: Optional[int] = None
    low_watermark_percent: Optional[int] = None
    batch_size: Optional[int] = None
    min_retention_seconds: Optional[int] = None
    max_store_bytes: Optional[int] = None


class OptionsHandle:
    """A ``snapshotter_options_t``, freed on exit from the ``with`` block."""

    def __init__(self) -> None:
        self._lib = _ffi.load()
        self.handle = self._lib.snapshotter_options_new()
        if not self.handle:
            raise OutOfMemoryError(_ffi.ENOMEM, "snapshotter_options_new returned NULL")

    def __enter__(self) -> "OptionsHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self._lib.snapshotter_options_free(self.handle)
        self.handle = None

    def set_int(self, option: int, value: Optional[int]) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise TypeError(f"option {option} must be an int, not {type(value).__name__}")
        check(self._lib.snapshotter_options_set_int(self.handle, option, value))

    def set_string(self, option: int, value: Optional[str], what: str) -> None:
        # Empty means "not set": the library would otherwise keep "" (an
        # empty user name is not the same as none).
        if not value:
            return
        # A setting may be a secret (or a URL holding one): never quoted.
        check(self._lib.snapshotter_options_set_string(self.handle, option, _text.text(value, what, show=False)))

    def apply(
        self,
        *,
        registry: Optional[Registry] = None,
        content: Optional[ContentProvider] = None,
        dragonfly: Optional[Dragonfly] = None,
        gc: Optional[GCOptions] = None,
        snapshot_concurrency: Optional[int] = None,
        restore_concurrency: Optional[int] = None,
        store_group: Optional[int] = None,
        durable_restore: bool = False,
        max_config_bytes: Optional[int] = None,
        record_format: Optional[int] = None,
    ) -> "OptionsHandle":
        """Sets every given setting; raises on the first one the library refuses."""
        self.set_int(_ffi.OPT_SNAPSHOT_CONCURRENCY, snapshot_concurrency)
        self.set_int(_ffi.OPT_RESTORE_CONCURRENCY, restore_concurrency)
        self.set_int(_ffi.OPT_STORE_GROUP, store_group)
        if durable_restore:
            self.set_int(_ffi.OPT_DURABLE_RESTORE, 1)
        self.set_int(_ffi.OPT_MAX_CONFIG_BYTES, max_config_bytes)
        self.set_int(_ffi.OPT_RECORD_FORMAT, record_format)
        if registry is not None:
            _require(registry, Registry, "registry")
            if not registry.endpoint:
                raise make_error(_ffi.EINVAL, "registry endpoint is empty")
            self.set_string(_ffi.OPT_REGISTRY_ENDPOINT, registry.endpoint, "registry endpoint")
            self.set_string(_ffi.OPT_REGISTRY_NAMESPACE, registry.namespace, "registry namespace")
            self.set_string(_ffi.OPT_REGISTRY_USERNAME, registry.username, "registry username")
            self.set_string(_ffi.OPT_REGISTRY_PASSWORD, registry.password, "registry password")
            if registry.insecure:
                self.set_int(_ffi.OPT_REGISTRY_INSECURE, 1)
            if registry.ca_file:
                self.set_string(_ffi.OPT_REGISTRY_CA_FILE, str(registry.ca_file), "registry CA file")
        if content is not None:
            _require(content, ContentProvider, "content")
            with _unsupported("content transport settings (ContentProvider)"):
                self.set_string(_ffi.OPT_CONTENT_URL, content.url, "content URL")
                self.set_string(_ffi.OPT_CONTENT_ENDPOINT, content.endpoint, "content endpoint")
                self.set_string(_ffi.OPT_CONTENT_REGION, content.region, "content region")
                self.set_string(_ffi.OPT_CONTENT_ACCESS_KEY_ID, content.access_key_id, "content access key id")
                self.set_string(
                    _ffi.OPT_CONTENT_SECRET_ACCESS_KEY, content.access_key_secret, "content access key secret"
                )
                self.set_string(_ffi.OPT_CONTENT_SESSION_TOKEN, content.session_token, "content session token")
        if dragonfly is not None:
            _require(dragonfly, Dragonfly, "dragonfly")
            with _unsupported("Dragonfly settings"):
                self.set_string(_ffi.OPT_DRAGONFLY_ENDPOINT, dragonfly.endpoint, "Dragonfly endpoint")
                self.set_int(_ffi.OPT_DRAGONFLY_FALLBACK, dragonfly.fallback)
                self.set_int(_ffi.OPT_DRAGONFLY_REPLICAS, dragonfly.replicas)
                self.set_int(_ffi.OPT_DRAGONFLY_TTL_SECONDS, dragonfly.ttl_seconds)
                self.set_int(_ffi.OPT_DOWNLOAD_CONCURRENCY, dragonfly.download_concurrency)
        if gc is not None:
            _require(gc, GCOptions, "gc")
            self.set_int(_ffi.OPT_GC_INTERVAL_SECONDS, gc.interval_seconds)
            self.set_int(_ffi.OPT_GC_HIGH_WATERMARK_PERCENT, gc.high_watermark_percent)
            self.set_int(_ffi.OPT_GC_LOW_WATERMARK_PERCENT, gc.low_watermark_percent)
            self.set_int(_ffi.OPT_GC_BATCH_SIZE, gc.batch_size)
            self.set_int(_ffi.OPT_GC_MIN_RETENTION_SECONDS, gc.min_retention_seconds)
            self.set_int(_ffi.OPT_GC_MAX_STORE_BYTES, gc.max_store_bytes)
        return self


def _require(value: object, cls: type, what: str) -> None:
    if not isinstance(value, cls):
        raise TypeError(f"{what} must be a snapshotter.{cls.__name__}, not {type(value).__name__}")


class _unsupported:
    """Turns the library's EUNSUPPORTED into an error that says which settings
    could not be applied, instead of letting them be dropped."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if isinstance(exc, SnapshotterError) and exc.code == _ffi.EUNSUPPORTED:
            version = _ffi.load().version_string
            raise UnsupportedError(
                exc.code,
                f"{self.what} cannot be applied: libsnapshotter {version} does not support them "
                f"yet ({exc.message or exc.status_name})",
            ) from exc
