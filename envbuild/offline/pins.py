"""Pinned inputs of the offline channel: exact versions with hashes, in a committed file.

A pin file is ``uv pip compile --generate-hashes`` output (pip's requirements format, every
line ``name==version`` with its ``--hash=sha256:...`` options) under a header that says what it
was made from::

    # envbuild offline pins: python 3.11
    # requirements: ["numpy", "pandas", "scikit-learn", "pip", "ipykernel"]
    # update: .venv/bin/python -m envbuild.offline.pins pins/offline-demo.txt

The channel is built from these wheels only, each checked against its hashes, so it is the same
channel on any day; a new version enters only by updating the file on purpose::

    .venv/bin/python -m envbuild.offline.pins FILE [REQUIREMENT ...]

re-resolves the requirements (the header's when none are given) for the running interpreter's
version and rewrites FILE.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from envbuild.errors import ConfigError

HEADER = "# envbuild offline pins: python "
_REQS = "# requirements: "
_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)")
PLATFORM = "x86_64-manylinux_2_28"  # uv's name for the wheels this machine type installs


@dataclass(frozen=True, slots=True)
class Pin:
    """One pinned distribution: normalized name, exact version, allowed sha256 digests."""

    name: str
    version: str
    hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PinFile:
    """A parsed pin file: the interpreter version it was made for (``3.11``), the
    requirements it was resolved from, and the pins."""

    path: Path
    python: str
    requirements: tuple[str, ...]
    pins: tuple[Pin, ...]

    def version(self, name: str) -> str:
        """The pinned version of ``name`` (any spelling); KeyError if not pinned."""
        wanted = normalize(name)
        return next(p.version for p in self.pins if p.name == wanted)


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(text: str) -> tuple[str, ...]:
    """The header's requirements: a JSON list (``["numpy >=1.26", "pip"]``), or names
    separated by spaces."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return tuple(text.split())
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def update_command(path: Path) -> str:
    return f".venv/bin/python -m envbuild.offline.pins {path}"


def read_pins(path: Path) -> PinFile:
    """Parse the pin file at ``path``.

    Raises ConfigError naming the file (and line) when it is missing, has no header, or has
    a requirement that is not ``name==version`` with at least one sha256 hash.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = (
            f"{path}: pin file not found (envbuild.toml [offline] pins); create it with "
            f"`{update_command(path)} REQUIREMENT...` and commit it"
        )
        raise ConfigError(msg) from None
    except (OSError, UnicodeDecodeError) as e:
        msg = f"{path}: cannot read the pin file: {e}"
        raise ConfigError(msg) from None
    python = ""
    requirements: tuple[str, ...] = ()
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(HEADER):
            python = line[len(HEADER) :].strip()
        elif line.startswith(_REQS):
            requirements = _requirements(line[len(_REQS) :])
        stripped = re.sub(r"(^|\s)#.*", "", line)
        if not stripped.strip():
            continue
        if not pending:
            start = number
        pending += " " + stripped.strip().rstrip("\\")
        if not stripped.rstrip().endswith("\\"):
            logical.append((start, pending.strip()))
            pending = ""
    if not re.fullmatch(r"\d+\.\d+", python):
        msg = (
            f"{path}: line 1: expected the header '{HEADER}X.Y' (the interpreter the pins "
            f"were made for); regenerate the file with `{update_command(path)}`"
        )
        raise ConfigError(msg)
    pins = []
    for number, entry in logical:
        m = _PIN.fullmatch(entry)
        if not m:
            msg = (
                f"{path}: line {number}: expected 'name==version --hash=sha256:...' "
                f"(uv pip compile --generate-hashes output); regenerate with "
                f"`{update_command(path)}`"
            )
            raise ConfigError(msg)
        hashes = tuple(re.findall(r"sha256:([0-9a-f]{64})", m.group(3)))
        pins.append(Pin(normalize(m.group(1)), m.group(2), hashes))
    if not pins:
        msg = f"{path}: no pins; regenerate with `{update_command(path)} REQUIREMENT...`"
        raise ConfigError(msg)
    return PinFile(path, python, requirements, tuple(pins))


def check_interpreter(pins: PinFile, version_info: tuple[int, ...] | None = None) -> None:
    """Raise ConfigError when the running interpreter is not the one ``pins`` were made for
    (the channel repackages the running interpreter, and binary wheels are per version)."""
    running = ".".join(map(str, (version_info or sys.version_info)[:2]))
    if running != pins.python:
        msg = (
            f"{pins.path}: pinned for Python {pins.python}, but envbuild runs on Python "
            f"{running} ({sys.executable}). Use a Python {pins.python} (PYTHON=python"
            f"{pins.python} bash scripts/setup.sh, after removing .venv), or re-pin for "
            f"{running} on purpose: {update_command(pins.path)}"
        )
        raise ConfigError(msg)


def compile_pins(path: Path, requirements: tuple[str, ...]) -> Path:
    """Resolve ``requirements`` with ``uv pip compile --generate-hashes`` for this
    interpreter's version (binary wheels only) and write the pin file ``path``.
    Raises ProcessError when uv fails."""
    import json

    from envbuild.util import proc
    from envbuild.util.fs import atomic_write

    short = ".".join(map(str, sys.version_info[:2]))
    uv = Path(sys.executable).parent / "uv"
    argv = [
        str(uv) if uv.exists() else "uv", "pip", "compile", "--quiet", "--generate-hashes",
        "--no-header", "--no-annotate", "--python-version", short, "--python-platform", PLATFORM,
        "--only-binary", ":all:", "-",
    ]  # fmt: skip
    body = proc.run(argv, input_text="\n".join(requirements) + "\n", timeout=600).stdout
    header = (
        f"{HEADER}{short}\n{_REQS}{json.dumps(list(requirements))}\n"
        f"# update: {update_command(path)}\n"
        f"# made by: uv pip compile --generate-hashes --python-version {short} "
        f"--python-platform {PLATFORM} --only-binary :all:\n"
    )
    atomic_write(path, header + body)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m envbuild.offline.pins FILE [REQUIREMENT ...]``: (re)write a pin file."""
    from envbuild.errors import EnvBuildError

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        print("usage: python -m envbuild.offline.pins FILE [REQUIREMENT ...]", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        requirements = tuple(args[1:]) or read_pins(path).requirements
        if not requirements:
            msg = f"{path}: no '{_REQS.strip()}' line; name the requirements"
            raise ConfigError(msg)
        compile_pins(path, requirements)
    except EnvBuildError as e:
        print(f"envbuild: {e}", file=sys.stderr)
        return 1
    print(f"envbuild: pinned {len(read_pins(path).pins)} distributions in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["Pin", "PinFile", "check_interpreter", "compile_pins", "read_pins", "update_command"]
