"""The prefix's interpreter, as the doctor checks it: can it start, import its standard library
(``ssl``, ``sqlite3``, ``ctypes``), which ``sys.path`` entries reach outside the prefix, and do
its shared libraries resolve inside the prefix (``ldd``, Linux). Runs the interpreter with a
clean environment."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from envbuild.prefix.findings import Finding, finding


def _python(prefix: Path) -> Path | None:
    for candidate in (prefix / "bin" / "python", prefix / "python.exe"):
        if candidate.exists():
            return candidate
    return None


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def interpreter_findings(
    prefix: Path, reported_pth: set[str], owned: frozenset[str] = frozenset()
) -> list[Finding]:
    """Findings about the interpreter of ``prefix`` (none if it has no ``bin/python``).
    ``reported_pth``: paths .pth findings already name; ``owned``: prefix-relative paths the
    conda-meta records list (a library they list must resolve inside the prefix)."""
    python = _python(prefix)
    if python is None:
        return []
    out = []
    real = prefix.resolve()
    try:
        r = _run([str(python), "-c", "import json, sys; print(json.dumps(sys.path))"])
        started = r.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as e:
        r, started = None, False
        out.append(finding("interpreter", "python", "bin/python", f"cannot start: {e}"))
    if r is not None and not started:
        out.append(
            finding(
                "interpreter",
                "python",
                "bin/python",
                f"exit {r.returncode}: {r.stderr.strip()[-300:]}",
            )
        )
    if started and r is not None:
        for entry in json.loads(r.stdout):
            resolved = Path(entry).resolve()
            if entry and not resolved.is_relative_to(real) and str(resolved) not in reported_pth:
                out.append(finding("path-outside", "", "sys.path", f"sys.path has {entry}"))
        imp = _run([str(python), "-I", "-c", "import ssl, sqlite3, ctypes"])
        if imp.returncode != 0:
            out.append(
                finding(
                    "interpreter",
                    "python",
                    "bin/python",
                    f"import ssl, sqlite3, ctypes: {imp.stderr.strip()[-300:]}",
                )
            )
    return out + _libraries(prefix, python, owned)


def _libraries(prefix: Path, python: Path, owned: frozenset[str]) -> list[Finding]:
    """``ldd`` of the interpreter and its ssl/sqlite3/ctypes extensions: a library "not
    found", or found outside the prefix although the prefix ships that soname."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    targets = [
        python.resolve(),
        *sorted(prefix.glob("lib/python*/lib-dynload/_ssl*.so")),
        *sorted(prefix.glob("lib/python*/lib-dynload/_sqlite3*.so")),
        *sorted(prefix.glob("lib/python*/lib-dynload/_ctypes*.so")),
    ]
    real = prefix.resolve()
    out = []
    for target in targets:
        r = _run([ldd, str(target)], timeout=60)
        for line in r.stdout.splitlines():
            soname, _, where = line.strip().partition(" => ")
            where = where.split(" (")[0].strip()
            rel = str(target.relative_to(real)) if target.is_relative_to(real) else str(target)
            if where == "not found":
                out.append(finding("shared-library", "", rel, f"{soname}: not found"))
            elif (
                where
                and ((real / "lib" / soname).exists() or f"lib/{soname}" in owned)
                and not Path(where).resolve().is_relative_to(real)
            ):
                out.append(
                    finding(
                        "shared-library",
                        "",
                        rel,
                        f"{soname} resolves to {where}, not the prefix's lib/{soname}",
                    )
                )
    return out
