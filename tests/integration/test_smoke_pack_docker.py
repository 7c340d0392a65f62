"""Smoke isolation, tarball proof and Dockerfile rendering against a real built environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from envbuild.errors import PackError, ProcessError, SmokeError
from envbuild.recipe.load import PackOptions, Smoke
from envbuild.ship import pack
from envbuild.ship.smoke import run_checks, smoke_env
from envbuild.util import fs, proc

from ..conftest import Project


@pytest.fixture
def built(project: Project) -> Path:
    project.doit("build")
    return project.root / "envs" / "tiny"


def test_smoke_is_isolated_from_caller(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "leaked_module.py").write_text("")
    (shadow / "python").write_text("#!/bin/sh\nexit 99\n")
    (shadow / "python").chmod(0o755)
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    monkeypatch.setenv("PATH", f"{shadow}:{os.environ['PATH']}")
    results = run_checks(
        Smoke(imports=("leaked_module",), commands=("python -c 'import sys; print(sys.prefix)'",)),
        built,
    )
    assert not results[0].ok and "ModuleNotFoundError" in results[0].stderr
    assert results[1].ok  # `python` is the environment's own, not the shadow on PATH


def test_imports_share_one_interpreter_until_one_fails(built: Path, tmp_path: Path) -> None:
    """Passing imports run in one isolated interpreter; after a failure (here a hard crash)
    the remaining ones run alone, so the culprit is still named with its exit code."""
    site = next((built / "lib").glob("python3.*/site-packages"))
    pids = tmp_path / "pids"
    for mod in ("probe_a", "probe_b", "probe_c"):
        (site / f"{mod}.py").write_text(
            f"import os\nopen({str(pids)!r}, 'a').write('{mod} %d\\n' % os.getpid())\n"
        )
    (site / "probe_crash.py").write_text("import os\nos.abort()\n")
    results = run_checks(Smoke(imports=("probe_a", "probe_b")), built)
    assert [r.ok for r in results] == [True, True]
    first = dict(ln.split() for ln in pids.read_text().splitlines())
    assert first["probe_a"] == first["probe_b"]  # one interpreter for both
    pids.unlink()
    results = run_checks(Smoke(imports=("probe_a", "probe_crash", "probe_c")), built)
    assert [(r.target, r.ok) for r in results] == [
        ("probe_a", True), ("probe_crash", False), ("probe_c", True)
    ]  # fmt: skip
    assert results[1].returncode == -6  # SIGABRT, from its own interpreter
    runs = [ln.split() for ln in pids.read_text().splitlines()]
    assert [m for m, _ in runs] == ["probe_a", "probe_c"]  # probe_c alone after the crash


def test_smoke_failure_names_module_exit_code_and_stderr(built: Path) -> None:
    with pytest.raises(SmokeError) as e:
        smoke_env("tiny", Smoke(imports=("dateutil", "nope_mod"), commands=("exit 3",)), built)
    msg = str(e.value)
    assert "import nope_mod: exit code 1" in msg
    assert "No module named 'nope_mod'" in msg
    assert "command `exit 3`: exit code 3" in msg
    assert "dateutil" not in msg.split("\n", 1)[1]  # passing checks are not reported


def test_packed_tarball_works_elsewhere(built: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dist" / "tiny.tar.zst"
    pack.pack_env("tiny", built, dest, PackOptions(), Smoke(imports=("dateutil",)))
    unpacked = tmp_path / "elsewhere" / "env"
    pack.extract(dest, unpacked)
    py = str(unpacked / "bin" / "python")
    subprocess.run([py, str(unpacked / "bin" / "conda-unpack")], check=True, timeout=120)
    out = subprocess.run(
        [py, "-I", "-c", "import dateutil, sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == str(unpacked)
    # text files with the prefix were rewritten for the new location (conda-pack skips
    # bin/python* by design, so check a pkg-config file and the sysconfig data)
    for rel in (
        "lib/pkgconfig/python-3.11.pc",
        "lib/python3.11/_sysconfigdata__linux_x86_64-linux-gnu.py",
    ):
        text = (unpacked / rel).read_text()
        assert str(built.resolve()) not in text and str(unpacked) in text, rel


def test_pack_gz_and_failed_proof_keeps_old_tarball(built: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dist" / "tiny.tar.gz"
    pack.pack_env("tiny", built, dest, PackOptions(format="tar.gz"), Smoke(imports=("json",)))
    before = dest.read_bytes()
    with pytest.raises(PackError, match="fails its imports"):
        pack.pack_env(
            "tiny", built, dest, PackOptions(format="tar.gz"), Smoke(imports=("nope_mod",))
        )
    assert dest.read_bytes() == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tiny.tar.gz"]  # no temporaries


@pytest.mark.serial  # looks at all of /dev/shm: no other test may pack meanwhile
@pytest.mark.skipif(fs.ram_scratch(1) is None, reason="needs a writable, exec /dev/shm (Linux)")
def test_proof_copy_in_ram_is_removed_and_a_killed_runs_copy_too(
    built: Path, tmp_path: Path
) -> None:
    """The proof unpacks into /dev/shm; nothing is left there, and a copy left by a run that
    was killed (its pid gone) is removed by the next pack, not one of a running process."""
    stale = fs.RAM_DIR / f"{pack.PROVE_PREFIX}{2**22 + 12345}-x"  # above pid_max's default
    live = fs.RAM_DIR / f"{pack.PROVE_PREFIX}{os.getpid()}-y"
    try:
        for d in (stale, live):
            (d / "env").mkdir(parents=True)
        before = set(fs.RAM_DIR.iterdir())
        dest = tmp_path / "dist" / "tiny.tar.zst"
        pack.pack_env("tiny", built, dest, PackOptions(), Smoke(imports=("dateutil",)))
        assert set(fs.RAM_DIR.iterdir()) == before - {stale}
        assert live.exists()
    finally:
        for d in (stale, live):
            fs.remove_tree(d)


def test_proof_of_a_truncated_tarball_fails(built: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dist" / "tiny.tar.zst"
    pack.pack_env("tiny", built, dest, PackOptions(), Smoke(imports=("dateutil",)))
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(dest.read_bytes()[: dest.stat().st_size // 2])
    with pytest.raises(PackError, match=r"cut\.tar\.zst: cannot be unpacked"):
        pack.prove(cut, Smoke(imports=("dateutil",)), "tiny", size=10**6)


def test_streaming_into_a_command_reports_its_failure(tmp_path: Path) -> None:
    """proc.feeding: a command that fails, or stops reading, is a ProcessError with its
    exit status and stderr, not a BrokenPipeError."""
    failing = ["sh", "-c", "echo went wrong >&2; exit 3"]
    with (
        pytest.raises(ProcessError, match=r"exit code 3[\s\S]*went wrong"),
        proc.feeding(failing) as stdin,
    ):
        for _ in range(64):
            stdin.write(b"x" * 65536)
    with (
        pytest.raises(ProcessError, match="command not found: no-such-tool-xyz"),
        proc.feeding(["no-such-tool-xyz"]),
    ):
        pass
    with proc.feeding(["sh", "-c", f"cat > {tmp_path / 'out'}"]) as stdin:
        stdin.write(b"all of it")
    assert (tmp_path / "out").read_bytes() == b"all of it"
