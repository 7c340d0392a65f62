"""The private key of ``[publish] signing_key``: found, read and checked (here, below
:mod:`envbuild.project`, so that ``envbuild.toml`` is refused when it is read, before any task
runs). Signing itself is :mod:`envbuild.deliver.attest`.

Accepted: a PEM PKCS#8 private key (``-----BEGIN PRIVATE KEY-----``, RFC 5208 / RFC 5958),
Ed25519 or ECDSA P-256, unencrypted, as ``openssl genpkey -algorithm ed25519`` or
``openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`` writes it. The setting is
a path (relative to the project root) or ``${VAR}``: the environment variable ``VAR`` holds
the path (a CI secret), read when it is needed, as :mod:`envbuild.channels` reads ``${VAR}``
credentials. No message ever quotes the key file's content.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from envbuild.errors import ConfigError
from envbuild.util.fs import read_bounded

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

MAX_KEY_BYTES = 64 << 10  # a PEM key is a few hundred bytes
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PKCS8_HEADER = b"-----BEGIN PRIVATE KEY-----"
MAKE_ONE = (
    "make one with `openssl genpkey -algorithm ed25519 -out signing.pem` (or `-algorithm EC "
    "-pkeyopt ec_paramgen_curve:P-256`) and keep it private (chmod 600)"
)


def configured_key(value: object, root: Path, where: str) -> str:
    """``[publish] signing_key`` as the project keeps it: "" (not set), ``${VAR}``, or an
    absolute path (``value`` relative to ``root``). Checks the key it names now when it can
    (a path, or ``${VAR}`` set): :func:`load_private_key`. Raises ConfigError naming
    ``where`` (``<envbuild.toml>: publish.signing_key``) and the fix."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        msg = f'{where}: expected a string, e.g. "keys/signing.pem" or "${{ENVBUILD_SIGNING_KEY}}"'
        raise ConfigError(msg)
    if "${" in value and not _VAR.fullmatch(value):
        msg = f"{where}: write a path, or ${{VAR}} alone (an environment variable naming the file)"
        raise ConfigError(msg)
    stored = value if _VAR.fullmatch(value) else str(root / value)
    var = _VAR.fullmatch(stored)
    if var is None or os.environ.get(var.group(1)):  # an unset VAR: checked when signing
        load_private_key(key_file(stored, where), where)
    return stored


def key_file(stored: str, where: str) -> Path:
    """The key file a stored setting (:func:`configured_key`) names: the path, or the
    value of ``VAR`` for ``${VAR}``. Raises ConfigError if ``VAR`` is unset or empty."""
    var = _VAR.fullmatch(stored)
    if var is None:
        return Path(stored)
    if path := os.environ.get(var.group(1), ""):
        return Path(path)
    msg = (
        f"{where}: names ${{{var.group(1)}}}, but {var.group(1)} is not set in the "
        "environment; export it as the path of the private key file (keys are never stored "
        "in envbuild.toml)"
    )
    raise ConfigError(msg)


def load_private_key(path: Path, where: str) -> PrivateKeyTypes:
    """The private key in ``path`` (see the module docstring for what is accepted), with
    cryptography (https://cryptography.io/en/latest/hazmat/primitives/asymmetric/serialization/).
    Raises ConfigError naming ``where``, the file and the fix: unreadable, not PEM PKCS#8,
    encrypted, or another algorithm than Ed25519 / ECDSA P-256."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = read_bounded(path, MAX_KEY_BYTES)
    except OSError as e:
        msg = f"{where}: {path}: cannot read it ({e.strerror}); name the key file, or {MAKE_ONE}"
        raise ConfigError(msg) from None
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
        msg = (
            f"{where}: {path}: the key is encrypted with a passphrase, which an unattended "
            f"publish cannot type; write it unencrypted (`openssl pkey -in {path} -out "
            "signing.pem`) and keep that file private (chmod 600, a CI secret)"
        )
        raise ConfigError(msg)
    if PKCS8_HEADER not in data:
        msg = (
            f"{where}: {path}: not a PEM PKCS#8 private key (no '{PKCS8_HEADER.decode()}' "
            f"line); convert one with `openssl pkcs8 -topk8 -nocrypt -in OLD.pem -out "
            f"signing.pem`, or {MAKE_ONE}"
        )
        raise ConfigError(msg)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # its text may quote the key: dropped
        msg = f"{where}: {path}: not a readable PEM PKCS#8 private key; {MAKE_ONE}"
        raise ConfigError(msg) from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    kind = getattr(getattr(key, "curve", None), "name", "") or type(key).__name__
    msg = (
        f"{where}: {path}: a {kind.removesuffix('PrivateKey')} key; envbuild signs with "
        f"Ed25519 or ECDSA P-256 only: {MAKE_ONE}"
    )
    raise ConfigError(msg)
