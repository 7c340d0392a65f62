"""Shared fixtures: a real local channel built once per session, temporary projects.

The channel holds this interpreter repackaged as ``python`` plus small real PyPI wheels
converted with whl2conda. Wheels and converted packages are cached across sessions in
``$ENVBUILD_TEST_CACHE`` (default ``~/.cache/envbuild-tests``), so only the first run downloads.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from envbuild.offline.channel import build_offline_channel
from envbuild.offline.pins import read_pins

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ENVBUILD_TEST_CACHE", Path.home() / ".cache" / "envbuild-tests"))
# the test channel's inputs, pinned with hashes (python-dateutil, threadpoolctl, pip, ipykernel
# and cloudpickle, which test_doctor pip-installs from the wheel cache): versions come from here
TEST_PINS = REPO / "pins" / "offline-tests.txt"
DEMO_PINS = REPO / "pins" / "offline-demo.txt"
SMALL_REQUIREMENTS = read_pins(TEST_PINS).requirements


def pinned(name: str, pins: Path = TEST_PINS) -> str:
    """The version of ``name`` pinned in ``pins`` (never a version a registry serves today)."""
    return read_pins(pins).version(name)


TINY_RECIPE = """\
name: {name}
channels: [conda-forge]
dependencies:
  - python 3.11.*
  - python-dateutil
smoke:
  imports: [dateutil, json]
  commands:
    - python -c "import dateutil.parser as p; print(p.parse('2024-01-02').year)"
"""


@contextmanager
def cache_lock() -> Iterator[None]:
    """Hold an exclusive lock on ``CACHE`` (``fcntl.flock`` on ``CACHE/.lock``), so that
    pytest-xdist workers building their channels from the shared wheel cache take turns
    (the first fills the cache; the others then read it)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real local channel: python, python_abi and the wheels pinned in ``TEST_PINS``
    (one per session, or per xdist worker: each has its own temporary directory)."""
    root = tmp_path_factory.mktemp("channel") / "channel"
    with cache_lock():
        return build_offline_channel(root, CACHE / "offline-cache", TEST_PINS)


# Under pytest-xdist (``-n 2 --dist loadfile``, scripts/test.sh) a file's tests stay on one
# worker (its module fixtures are built once). Tests that may use the Docker engine take turns
# through a machine-wide lock (they share tags such as envbuild/tiny:current, and gc and prune
# look at all images). Tests marked ``serial`` look at all of /dev/shm and run after the
# parallel part, alone. (``--dist loadgroup`` with xdist_group markers would be the tool, but
# pytest-xdist 3.8 cannot rename node ids under pytest 9, so its groups are ignored.)
# (integration files only: tests/unit has files of the same names that never touch the engine)
ENGINE_FILES = frozenset(
    {"test_image.py", "test_leaks.py", "test_ml_end_to_end.py", "test_nightly.py",
     "test_oci_image.py", "test_promotion.py", "test_publish_nightly.py", "test_races.py",
     "test_security.py", "test_tasks.py"}
)  # fmt: skip
INTEGRATION = Path(__file__).resolve().parent / "integration"


@pytest.fixture(autouse=True)
def own_environment() -> Iterator[None]:
    """``os.environ`` as it was before each test: an in-process ``envbuild -q`` sets
    ``ENVBUILD_QUIET`` for its process, and under pytest-xdist a later test on the same worker
    (test_progress's terminal) inherited it."""
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


@pytest.fixture(autouse=True)
def engine_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """For a test that may use the Docker engine: hold ``CACHE/engine.lock`` (``flock``) from
    before its function fixtures to after their teardown; other tests pass straight through."""
    path = request.node.path
    engine_file = path.parent == INTEGRATION and path.name in ENGINE_FILES
    if "engine" not in request.fixturenames and not engine_file:
        yield
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "engine.lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


def _shared_data() -> Path:
    """``shared/data`` beside the checkout, as on our machines; ``ENVBUILD_SHARED_DATA`` or the
    workplace's ``/work/shared/data`` for a clone elsewhere (CI clones to a fresh path)."""
    candidates = [os.environ.get("ENVBUILD_SHARED_DATA", ""), REPO.parent / "shared" / "data"]
    candidates.append("/work/shared/data")
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), REPO.parent / "shared")


SAMPLE = _shared_data() / "conda-forge-sample"


@pytest.fixture(scope="session")
def cf_channel(tmp_path_factory: pytest.TempPathFactory, channel: Path) -> Path:
    """Real conda-forge archives (``shared/data/conda-forge-sample``: binary and text prefix
    placeholders, noarch: python with entry points, constrains) plus this interpreter
    repackaged as python 3.11, indexed as one channel."""
    if not SAMPLE.is_dir():
        pytest.skip(f"{SAMPLE} (real conda-forge archives) is not on this machine")
    from envbuild.rattler import client as rattler_client

    root = tmp_path_factory.mktemp("cf") / "channel"
    for subdir in ("linux-64", "noarch"):
        (root / subdir).mkdir(parents=True)
        for archive in [*(SAMPLE / subdir).glob("*.conda"), *(SAMPLE / subdir).glob("*.tar.bz2")]:
            shutil.copyfile(archive, root / subdir / archive.name)
    for archive in (channel / "linux-64").glob("python*.conda"):
        shutil.copyfile(archive, root / "linux-64" / archive.name)
    rattler_client.call("index", {"channel_dir": str(root)})
    return root


@pytest.fixture(scope="session", autouse=True)
def conda_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch home for conda's user files: envbuild registers environments in its
    ``.conda/environments.txt`` (``ENVBUILD_CONDA_ENVIRONMENTS_TXT``, inherited by every doit
    the tests start), never in the real user's; the conda peer runs with it as ``HOME``."""
    home = tmp_path_factory.mktemp("conda-home")
    os.environ["ENVBUILD_CONDA_ENVIRONMENTS_TXT"] = str(home / ".conda" / "environments.txt")
    return home


def _conda_peer_dir() -> Path | None:
    """``shared/tools/conda-peer`` (a real conda's wheel and installer), found as
    :func:`_shared_data` finds the data; ``ENVBUILD_CONDA_PEER`` names another copy."""
    candidates = [
        os.environ.get("ENVBUILD_CONDA_PEER", ""),
        str(REPO.parent / "shared" / "tools" / "conda-peer"),
    ]
    candidates.append("/work/shared/tools/conda-peer")
    return next((Path(c) for c in candidates if c and (Path(c) / "install.sh").is_file()), None)


class CondaPeer:
    """A real conda client (26.7.1, ``shared/tools/conda-peer``) that works offline: its own
    home (``conda_home``), package cache, envs directory and condarc, with ``conda-forge``
    mapped to a local channel through ``channel_alias`` (as the peer's README shows). Its
    condarc sets only channels, the package cache and offline mode, so conda behaves as its
    users' does (``add_pip_as_python_dependency`` on, flexible channel priority, prompts
    answered by ``-y``); ``solver: classic`` because conda-libmamba-solver is not installed."""

    def __init__(self, exe: Path, root: Path, home: Path, channel: Path) -> None:
        self.exe, self.root, self.home = exe, root, home
        self.alias = root / "alias"
        self.alias.mkdir()
        (self.alias / "conda-forge").symlink_to(channel)
        self.condarc = root / "condarc"
        self.condarc.write_text(
            textwrap.dedent(f"""\
            channels: [conda-forge]
            channel_alias: file://{self.alias}
            pkgs_dirs: [{root / "pkgs"}]
            offline: true
            solver: classic
            """)
        )

    @property
    def environments_txt(self) -> Path:
        return self.home / ".conda" / "environments.txt"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CONDA"))}
        return {**env, "HOME": str(self.home), "CONDARC": str(self.condarc)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``conda ARGS``; fails the test, showing its output, if ``check`` and it fails."""
        proc = subprocess.run(
            [str(self.exe), *args], env=self.env(), capture_output=True, text=True, timeout=600
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"conda {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def local_explicit(self, explicit: Path, dest: Path) -> Path:
        """``explicit`` with conda-forge's URLs pointing at the local channel (conda fetches an
        explicit file's literal URLs), written to ``dest``."""
        canonical = "https://conda.anaconda.org/conda-forge/"
        dest.write_text(
            explicit.read_text().replace(canonical, f"file://{self.alias}/conda-forge/")
        )
        return dest


@pytest.fixture(scope="session")
def conda_peer(
    tmp_path_factory: pytest.TempPathFactory, channel: Path, conda_home: Path
) -> CondaPeer:
    """A real conda installed once per session (about 10 s, from PyPI and the peer's wheel);
    skipped with a reason only where ``shared/tools/conda-peer`` is absent (CI has it)."""
    source = _conda_peer_dir()
    if source is None:
        pytest.skip("shared/tools/conda-peer (a real conda client) is not on this machine")
    root = tmp_path_factory.mktemp("conda-peer")
    subprocess.run(
        ["bash", str(source / "install.sh"), str(root / "conda"), sys.executable],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return CondaPeer(root / "conda" / "bin" / "conda", root, conda_home, channel)


@pytest.fixture(scope="session")
def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pkgs")


def imports_ok(prefix: Path, module: str = "dateutil") -> bool:
    """True if the environment at ``prefix`` imports ``module`` (isolated interpreter)."""
    r = subprocess.run(
        [str(prefix / "bin" / "python"), "-I", "-c", f"import {module}"],
        capture_output=True,
        timeout=60,
    )
    return r.returncode == 0


def kill_after(
    proc: subprocess.Popen[str], seconds: float, sig: signal.Signals = signal.SIGKILL
) -> bool:
    """Wait ``seconds``, then send ``sig`` to the process group of ``proc`` (doit and its
    py-rattler worker) if it is still running; wait for it. True if it was signalled."""
    time.sleep(seconds)  # doit running for `seconds` before the signal (the kill point)
    running = proc.poll() is None
    if running:
        os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    return running


class Project:
    """A temporary envbuild project driven through real doit subprocesses."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write_recipe(self, name: str, text: str | None = None) -> Path:
        path = self.root / "recipes" / f"{name}.yml"
        path.write_text(text if text is not None else TINY_RECIPE.format(name=name))
        return path

    @staticmethod
    def env() -> dict[str, str]:
        """The caller's environment, importing the envbuild under test whatever is installed."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = str(REPO)
        return env

    def popen(self, *args: str, output: bool = False) -> subprocess.Popen[str]:
        """Start ``doit ARGS`` in its own process group (so a test can kill doit and its
        py-rattler worker together); output captured when ``output``, else discarded."""
        pipe = subprocess.PIPE if output else subprocess.DEVNULL
        return subprocess.Popen(
            [sys.executable, "-m", "doit", *args],
            cwd=self.root,
            env=self.env(),
            stdout=pipe,
            stderr=pipe,
            text=True,
            start_new_session=True,
        )

    def doit(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``doit ARGS`` (``env``: extra environment variables)."""
        proc = subprocess.run(
            [sys.executable, "-m", "doit", *args],
            cwd=self.root,
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"doit {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    @staticmethod
    def executed(proc: subprocess.CompletedProcess[str]) -> list[str]:
        """Task names doit ran (lines '.  name'), not those it found up to date ('-- ')."""
        return [ln[3:].strip() for ln in proc.stdout.splitlines() if ln.startswith(".  ")]


@pytest.fixture
def make_project(tmp_path: Path, channel: Path, package_cache: Path) -> Callable[..., Project]:
    def make(mirror: str | None = None, recipes: dict[str, str | None] | None = None) -> Project:
        root = tmp_path / "proj"
        (root / "recipes").mkdir(parents=True)
        shutil.copy(REPO / "dodo.py", root / "dodo.py")
        (root / "envbuild.toml").write_text(
            textwrap.dedent(f"""\
            [mirrors]
            conda-forge = "{mirror or channel}"
            [paths]
            package_cache = "{package_cache}"
            """)
        )
        project = Project(root)
        for name, text in (recipes if recipes is not None else {"tiny": None}).items():
            project.write_recipe(name, text)
        return project

    return make


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    return make_project()


@pytest.fixture
def built_own(make_project, channel: Path, tmp_path: Path) -> tuple[Project, Path]:  # type: ignore[no-untyped-def]
    """A built project on its own copy of the channel (free to break) and its own package
    cache: (project, channel)."""
    own_channel = tmp_path / "own-channel"
    shutil.copytree(channel, own_channel)
    project = make_project(mirror=str(own_channel))
    (project.root / "envbuild.toml").write_text(
        f'[mirrors]\nconda-forge = "{own_channel}"\n[paths]\npackage_cache = "{tmp_path / "pkgs"}"\n'
    )
    project.doit("build")
    return project, own_channel


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer OCI base archive made from the debootstrap minbase tar that
    scripts/services.sh caches (skipped without it)."""
    rootfs = CACHE / "minbase-bookworm.tar"
    if not rootfs.is_file():
        pytest.skip(f"{rootfs} (debootstrap minbase) is missing; scripts/services.sh makes it")
    out = tmp_path_factory.mktemp("base") / "bookworm-minbase.oci.tar"
    from envbuild.ship import base_image

    base_image.from_rootfs(rootfs, out)
    return out


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker engine with the base image, else skip (fail where CI requires one)."""
    from envbuild.ship import engine as image

    ok = (
        image.engine_available()
        and subprocess.run(
            ["docker", "image", "inspect", "debian:bookworm-slim"], capture_output=True
        ).returncode
        == 0
    )
    if not ok:
        if os.environ.get("ENVBUILD_REQUIRE_DOCKER"):
            pytest.fail("no Docker engine with debian:bookworm-slim (run scripts/services.sh)")
        pytest.skip("no Docker engine here; scripts/services.sh starts one (CI requires it)")
