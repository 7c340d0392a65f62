"""Issue 21: bytecode compiled in parallel, while the installer runs, and only where the
package ships none; the same bytes as one ``compileall`` in the prefix; failures, retries and
two builds sharing one bytecode cache leave nothing half made."""

from __future__ import annotations

import hashlib
import json
import os
import py_compile
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envbuild.errors import BuildError
from envbuild.install import build, bytecode, compiler, pyc_cache
from envbuild.layout import read_marker
from envbuild.lock.lockfile import read_lockfile
from envbuild.prefix import verify
from envbuild.project import load_project
from envbuild.rattler import client as rattler_client
from envbuild.rattler.protocol import FailureKind
from envbuild.recipe.load import load_recipe
from envbuild.recipe.model import current_subdir

from ..conftest import TINY_RECIPE, Project, imports_ok
from ..support.fakechannel import index, write_package

SP = "lib/python3.11/site-packages"


def _own_bytecode_cache(project: Project, where: Path) -> Path:
    """Give ``project`` a bytecode cache of its own (empty: every build compiles first)."""
    toml = project.root / "envbuild.toml"  # its [paths] table is the last one
    toml.write_text(toml.read_text() + f'bytecode_cache = "{where}"\n')
    return where


def _pycs(prefix: Path) -> dict[str, str]:
    return {
        str(p.relative_to(prefix)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in prefix.rglob("*.pyc")
    }


def _pyc_records(prefix: Path) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for meta in (prefix / "conda-meta").glob("*.json"):
        paths = json.loads(meta.read_text())["paths_data"]["paths"]
        out[meta.name] = [(e["_path"], e["sha256"]) for e in paths if e["path_type"] == "pyc_file"]
    return out


def _clean(project: Project, prefix: Path, name: str = "tiny") -> bool:
    lock = read_lockfile(project.root / "locks" / f"{name}.conda-lock.yml")
    info = read_marker(prefix)
    return verify.verify_prefix(prefix, lock, current_subdir(), info.prefix if info else "") == []


def _unbuilt_copy(prefix: Path, dest: Path) -> Path:
    """``prefix`` copied without its bytecode and without the records of it."""
    shutil.copytree(prefix, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for meta in (dest / "conda-meta").glob("*.json"):
        data = json.loads(meta.read_text())
        paths = data["paths_data"]["paths"]
        data["paths_data"]["paths"] = [e for e in paths if e["path_type"] != "pyc_file"]
        data["files"] = [f for f in data["files"] if not f.endswith(".pyc")]
        meta.write_text(json.dumps(data))
    return dest


def test_parallel_compile_gives_the_bytes_of_one_compileall(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _own_bytecode_cache(project, tmp_path / "pyc")  # compiled in this prefix, not linked
    project.doit("build")
    built = (project.root / "envs" / "tiny").resolve()
    # the reference: one compileall over the listed files, as the first version ran it
    one = _unbuilt_copy(built, tmp_path / "one")
    listing = "".join(f"{one / s}\n" for p in bytecode.plan(one) for s in p.sources)
    argv = [str(one / "bin" / "python"), "-I", "-B", "-m", "compileall", "-q", "-f",
            "--invalidation-mode", "checked-hash", "-s", str(one), "-i", "-"]  # fmt: skip
    subprocess.run(argv, input=listing, text=True, check=False, timeout=600)
    # three interpreters, chunks of five files: many chunks, any order
    monkeypatch.setattr(compiler, "CHUNK_FILES", 5)
    many = _unbuilt_copy(built, tmp_path / "many")
    records = [json.loads(m.read_text()) for m in (many / "conda-meta").glob("*.json")]
    reused, compiled = bytecode.Bytecode(many, tmp_path / "cache", records, workers=3).finish()
    assert (reused, compiled) == (0, len(bytecode.plan(one)))
    assert len(_pycs(one)) > 20  # noarch packages' (python ships its own, as conda-forge's)
    assert _pycs(one) == _pycs(many)
    assert _pycs(one).items() <= _pycs(built).items()  # the build's, compiled meanwhile
    assert _pyc_records(many) == _pyc_records(built)


def test_bytecode_the_package_ships_is_used_and_the_rest_compiled(
    make_project: Callable[..., Project], channel: Path, tmp_path: Path
) -> None:
    own = tmp_path / "own"
    shutil.copytree(channel, own)
    src = tmp_path / "src"
    src.mkdir()
    (src / "shipped.py").write_text("WHO = 'shipped'\n")
    py_compile.compile(
        str(src / "shipped.py"), cfile=str(src / "shipped.pyc"), dfile=f"{SP}/shipped.py",
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )  # fmt: skip
    files = {
        f"{SP}/shipped.py": (src / "shipped.py").read_bytes(),
        f"{SP}/__pycache__/shipped.cpython-311.pyc": (src / "shipped.pyc").read_bytes(),
        f"{SP}/other.py": b"WHO = 'other'\n",
        f"{SP}/__pycache__/other.cpython-312.pyc": b"another interpreter's bytecode",
    }
    index_json = {"name": "shipper", "version": "1.0", "build": "py311_0", "build_number": 0,
                  "depends": ["python 3.11.*"], "subdir": current_subdir()}  # fmt: skip
    write_package(own, current_subdir(), index_json, files)
    index(own)
    recipe = TINY_RECIPE.format(name="tiny").replace("python-dateutil\n", "shipper\n")
    project = make_project(mirror=str(own), recipes={"tiny": recipe})
    project.doit("build")
    prefix = (project.root / "envs" / "tiny").resolve()
    pycs = dict(_pyc_records(prefix)["shipper-1.0-py311_0.json"])
    assert list(pycs) == [f"{SP}/__pycache__/other.cpython-311.pyc"]  # only what it lacks
    shipped = prefix / SP / "__pycache__" / "shipped.cpython-311.pyc"
    assert shipped.read_bytes() == files[f"{SP}/__pycache__/shipped.cpython-311.pyc"]
    out = subprocess.run(
        [str(prefix / "bin" / "python"), "-I", "-v", "-c", "import shipped, other"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert f"code object from '{shipped}'" in out.stderr and "# wrote" not in out.stderr
    assert _clean(project, prefix)


def _after_a_real_install(
    monkeypatch: pytest.MonkeyPatch, failure: str, message: str, kind: str
) -> list[Path]:
    """The first install really installs, stays a moment (compiling has begun) and then
    reports ``failure``: the one fault a local channel cannot cause (a connection that
    breaks once the archives are in). Returns the prefixes installed into."""
    real = rattler_client.call
    seen: list[Path] = []

    def breaks_once(op: str, req: dict[str, Any], **kw: Any) -> Any:
        out = real(op, req, **kw)
        if op == "install" and not seen:
            seen.append(Path(req["prefix"]))
            time.sleep(1.5)  # the background compile of the install getting under way
            raise rattler_client.RattlerCallError(
                rattler_client.WorkerFailure(failure, message, kind=FailureKind(kind))
            )
        return out

    monkeypatch.setattr(rattler_client, "call", breaks_once)
    return seen


def _compile_workers() -> list[int]:
    """Processes of this one running the compile driver."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"\nPPid:\t{os.getpid()}\n" in status and b"compileall" in cmdline:
            out.append(int(pid))
    return out


def test_retry_after_compiling_began_gives_a_complete_build(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVBUILD_RETRY_BACKOFF", "0.05")
    cache = _own_bytecode_cache(project, tmp_path / "pyc")
    project.doit("lock")
    seen = _after_a_real_install(
        monkeypatch, "FetchRepoDataError", "connection reset by peer", "network"
    )
    p = load_project(project.root)
    prefix, _ = build.install_build(load_recipe(p.recipe_file("tiny")), p, p.lockfile("tiny"))
    assert seen == [prefix]  # the same prefix, emptied and installed again
    assert _clean(project, prefix)
    keys = bytecode.keys_in_use(prefix)
    assert len(keys) >= 2
    assert all(pyc_cache.cached(cache / key) is not None for key in keys)
    assert _compile_workers() == []


def test_failed_install_leaves_no_compiler_writing(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _own_bytecode_cache(project, tmp_path / "pyc")
    project.doit("lock")
    seen = _after_a_real_install(monkeypatch, "InstallError", "the disk is full", "disk")
    p = load_project(project.root)
    with pytest.raises(BuildError, match="the disk is full"):
        build.install_build(load_recipe(p.recipe_file("tiny")), p, p.lockfile("tiny"))
    assert _compile_workers() == []
    time.sleep(0.5)  # a compiler left running would write into the removed prefix by now
    assert not seen[0].exists()  # removed, and nothing made it again


def test_two_cold_builds_sharing_one_bytecode_cache(project: Project, tmp_path: Path) -> None:
    cache = _own_bytecode_cache(project, tmp_path / "pyc")
    project.doit("lock")
    other = Project(tmp_path / "other")
    shutil.copytree(project.root, other.root)
    procs = [p.popen("build", output=True) for p in (project, other)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, out + err
    prefixes = [(p.root / "envs" / "tiny").resolve() for p in (project, other)]
    for p, prefix in zip((project, other), prefixes, strict=True):
        assert _clean(p, prefix) and imports_ok(prefix)
    first, second = _pycs(prefixes[0]), _pycs(prefixes[1])
    assert first.keys() == second.keys()
    # the same bytes, but where the source names its own prefix (python's sysconfig data)
    differ = [rel for rel in first if first[rel] != second[rel]]
    assert 0 < len(differ) <= 2  # _sysconfigdata_*.py, python-config.py
    for rel in differ:
        head, _, name = rel.partition("/__pycache__/")
        source = prefixes[0] / head / (name.split(".")[0] + ".py")
        assert str(prefixes[0]).encode() in source.read_bytes(), rel
    entries = [e for e in cache.iterdir() if e.is_dir()]
    assert entries and all(pyc_cache.cached(e) is not None for e in entries)


def test_damaged_cache_entries_are_compiled_again(project: Project, tmp_path: Path) -> None:
    cache = _own_bytecode_cache(project, tmp_path / "pyc")
    project.doit("build")
    entries = sorted(e for e in cache.iterdir() if e.is_dir())
    assert len(entries) >= 2
    (entries[0] / pyc_cache.MANIFEST).write_text("{")  # torn manifest
    manifest = json.loads((entries[1] / pyc_cache.MANIFEST).read_text())
    (entries[1] / next(iter(manifest))).unlink()  # a file gone
    (project.root / "envs" / "tiny").unlink()
    proc = project.doit("build")
    assert "2 compiled" in proc.stderr, proc.stderr
    prefix = (project.root / "envs" / "tiny").resolve()
    assert _clean(project, prefix)
    assert all(pyc_cache.cached(e) is not None for e in entries)
