"""Docker's conventions for reaching a registry: which ``config.json`` holds the credentials,
which CA a registry's TLS is checked against, which hosts may be spoken to in plain http.

TLS is verified, with the system's CAs plus a registry's own CA where Docker keeps one
(``/etc/docker/certs.d/HOST[:PORT]/*.crt``; the directory is ``$ENVBUILD_CERTS_D`` when set).
Plain http is used only for a loopback registry that does not speak TLS (as Docker allows), or
with ``insecure`` (TLS unverified, else http): :func:`envbuild.deliver.registry.connect` decides.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from envbuild.deliver.registry_http import is_loopback as is_loopback  # re-exported
from envbuild.errors import RegistryError

CERTS_D_ENV = "ENVBUILD_CERTS_D"


def docker_config() -> Path:
    """The ``config.json`` Docker reads: ``$DOCKER_CONFIG/config.json``, else
    ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def registry_ca(host: str) -> list[Path]:
    """A registry's own CA certificates where Docker keeps them:
    ``<certs.d>/<host>/*.crt`` (client certificates ``*.cert`` are not CAs)."""
    root = Path(os.environ.get(CERTS_D_ENV) or "/etc/docker/certs.d")
    return sorted((root / host).glob("*.crt"))


def tls_fix(host: str) -> str:
    root = os.environ.get(CERTS_D_ENV) or "/etc/docker/certs.d"
    return (
        f"if the registry uses its own CA, put it at {root}/{host}/ca.crt (as for Docker); "
        "for a registry without valid TLS set insecure = true in [publish] (or --insecure)"
    )


def verify_for(host: str, insecure: bool) -> bool | str:
    """requests' ``verify``: False with ``insecure``; a bundle of certifi's CAs plus the
    registry's own (Docker's certs.d) if it has one; else True."""
    if insecure:
        return False
    own = registry_ca(host)
    if not own:
        return True
    import certifi

    fd, bundle = tempfile.mkstemp(prefix="envbuild-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as f:
        f.write(Path(certifi.where()).read_text())
        for ca in own:
            f.write("\n" + ca.read_text())
    atexit.register(_unlink, bundle)
    return bundle


def read_docker_config(path: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        cfg = {}
    except (OSError, ValueError) as e:
        msg = f"{path}: not a readable Docker config ({e}); fix or remove it"
        raise RegistryError(msg) from None
    auths = {
        re.sub(r"^https?://", "", k).split("/")[0]: v for k, v in (cfg.get("auths") or {}).items()
    }
    return {
        "auths": auths,
        "credsStore": cfg.get("credsStore"),
        "credHelpers": cfg.get("credHelpers") or {},
    }


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
