"""OCI documents read from a registry, checked before use: descriptors, image manifests,
artifact manifests and indexes (OCI image spec, descriptor.md, manifest.md,
image-index.md: https://github.com/opencontainers/image-spec).

Everything here is data from a stranger: :func:`parse_json` accepts only a JSON object of
UTF-8 text (no NaN, no nesting that exhausts the stack); :func:`descriptor` only a
``sha256:<64 hex>`` digest, a size that is an int in ``0..MAX_BLOB`` and strings where strings
belong. Any other shape raises RegistryError, one line naming ``where`` (the registry and the
request) and the key that is wrong; no other exception escapes (fuzzed in
tests/unit/test_registry_hostile.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from envbuild.deliver.registry_http import MAX_BLOB, checked_size
from envbuild.errors import RegistryError
from envbuild.util.redact import printable
from envbuild.util.reference import is_digest

_MAX_ANNOTATIONS = 1000


@dataclass(frozen=True, slots=True)
class Descriptor:
    """One checked OCI descriptor: ``media_type`` ("" if absent), ``digest``
    (``sha256:<64 hex>``), ``size`` in bytes, ``annotations`` (str -> str), ``artifact_type``
    ("" if absent), ``platform_os``/``platform_architecture`` ("" if absent; index entries)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    artifact_type: str = ""
    platform_os: str = ""
    platform_architecture: str = ""

    def to_json(self) -> dict[str, Any]:
        """The descriptor as OCI JSON (keys absent when empty)."""
        out: dict[str, Any] = {"mediaType": self.media_type} if self.media_type else {}
        out |= {"digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform_os or self.platform_architecture:
            out["platform"] = {"os": self.platform_os,
                               "architecture": self.platform_architecture}  # fmt: skip
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """One checked manifest or index: ``media_type`` (its ``mediaType``, else "");
    ``artifact_type``; ``config`` (None for an index); ``layers`` (image/artifact) or
    ``manifests`` (index); ``subject`` (None if absent); ``annotations``."""

    media_type: str
    artifact_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    annotations: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def is_index(self) -> bool:
        return self.config is None


def _fail(where: str, what: str) -> RegistryError:
    return RegistryError(f"{where}: {what}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes, where: str) -> dict[str, Any]:
    """``data`` as a JSON object. Raises RegistryError naming ``where`` for anything else
    (not UTF-8, not JSON, HTML, a list, NaN, nesting too deep)."""
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _fail(where, "the answer is not UTF-8 text (not JSON)") from None
    except (ValueError, RecursionError) as e:
        start = data[:40].decode("utf-8", "replace")
        why = type(e).__name__ if isinstance(e, RecursionError) else str(e).split(":")[0]
        msg = f"the answer is not JSON ({printable(why, 80)}; it starts {printable(start, 40)!r})"
        raise _fail(where, msg) from None
    if not isinstance(obj, dict):
        raise _fail(where, f"expected a JSON object, got a JSON {_kind(obj)}")
    return obj


def _kind(obj: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(obj), "null")


def text(obj: dict[str, Any], key: str, where: str, required: bool = False) -> str:
    """``obj[key]`` as a string ("" if absent and not ``required``). Raises RegistryError."""
    if key not in obj:
        if required:
            raise _fail(where, f"no {key!r}")
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise _fail(where, f"{key!r} is a {_kind(value)}, not a string")
    return value


def annotations_of(obj: dict[str, Any], where: str) -> dict[str, str]:
    """``obj["annotations"]`` checked as a str -> str map ({} if absent)."""
    value = obj.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > _MAX_ANNOTATIONS:
        raise _fail(where, "'annotations' is not a map of at most 1000 strings")
    for k, v in value.items():
        if not isinstance(v, str):
            raise _fail(where, f"annotation {printable(k, 80)!r} is not a string")
    return dict(value)


def digest_of(value: Any, where: str) -> str:
    """``value`` if it is ``sha256:<64 lower-case hex>``. Raises RegistryError otherwise."""
    if not isinstance(value, str) or not is_digest(value):
        shown = printable(value, 80) if isinstance(value, str) else f"a {_kind(value)}"
        raise _fail(where, f"digest {shown} is not sha256:<64 lower-case hex>")
    return value


def descriptor(obj: Any, where: str) -> Descriptor:
    """``obj`` as a :class:`Descriptor`: a JSON object with a ``digest`` (sha256 only) and a
    ``size`` (int, ``0..MAX_BLOB``); ``mediaType``, ``artifactType``, ``annotations`` and
    ``platform`` checked where present. Raises RegistryError naming ``where`` and the key."""
    if not isinstance(obj, dict):
        raise _fail(where, f"expected a descriptor (a JSON object), got a JSON {_kind(obj)}")
    if "digest" not in obj:
        raise _fail(where, "no 'digest'")
    if "size" not in obj:
        raise _fail(where, "no 'size'")
    digest = digest_of(obj["digest"], where)
    size = obj["size"]
    if isinstance(size, str):  # a size is a JSON number, never text
        raise _fail(where, "'size' is a string, not an integer number of bytes")
    size = checked_size(size, f"{where}: 'size'", MAX_BLOB)
    platform = obj.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise _fail(where, f"'platform' is a {_kind(platform)}, not an object")
    platform = platform or {}
    return Descriptor(
        media_type=text(obj, "mediaType", where),
        digest=digest,
        size=size,
        annotations=annotations_of(obj, where),
        artifact_type=text(obj, "artifactType", where),
        platform_os=text(platform, "os", f"{where}: platform"),
        platform_architecture=text(platform, "architecture", f"{where}: platform"),
    )


def _list(obj: dict[str, Any], key: str, where: str) -> tuple[Descriptor, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(where, f"{key!r} is a {_kind(value)}, not a list")
    return tuple(descriptor(d, f"{where}: {key}[{i}]") for i, d in enumerate(value))


def manifest(data: bytes | dict[str, Any], where: str) -> Manifest:
    """``data`` (bytes, or an object already parsed) as a :class:`Manifest`: an index (it
    has ``manifests`` and no ``config``) or an image/artifact manifest (a ``config``
    descriptor and ``layers``). Raises RegistryError naming ``where`` and the key."""
    obj = parse_json(data, where) if isinstance(data, bytes) else data
    if not isinstance(obj, dict):
        raise _fail(where, f"expected a JSON object, got a JSON {_kind(obj)}")
    is_index = "config" not in obj
    if is_index and "manifests" not in obj:
        raise _fail(where, "neither an image manifest ('config') nor an index ('manifests')")
    config = None if is_index else descriptor(obj["config"], f"{where}: config")
    subject = obj.get("subject")
    return Manifest(
        media_type=text(obj, "mediaType", where),
        artifact_type=text(obj, "artifactType", where),
        config=config,
        layers=() if is_index else _list(obj, "layers", where),
        manifests=_list(obj, "manifests", where) if is_index else (),
        subject=None if subject is None else descriptor(subject, f"{where}: subject"),
        annotations=annotations_of(obj, where),
    )
