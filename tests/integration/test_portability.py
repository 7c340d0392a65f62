"""envbuild imports where POSIX-only modules are missing (Windows): the scheduler locks win-64
there, and the package must at least import and take its locks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from ..conftest import REPO

# every module of the package, imported with the POSIX-only standard modules made unimportable
# (a None entry in sys.modules makes `import x` raise ImportError, as on Windows)
_IMPORT_ALL = textwrap.dedent(
    """
    import sys
    for name in ("fcntl", "pwd", "grp", "termios", "resource"):
        sys.modules[name] = None
    import importlib, pathlib, tempfile
    root = pathlib.Path("envbuild")
    names = sorted(
        ".".join(p.with_suffix("").parts).removesuffix(".__init__")
        for p in root.rglob("*.py")
    )
    for name in names:
        importlib.import_module(name)
    from envbuild.util.mutex import hold, try_hold
    with tempfile.TemporaryDirectory() as tmp:
        with hold(pathlib.Path(tmp) / "x.lock", "test"):
            pass
        with try_hold(pathlib.Path(tmp) / "y.lock") as held:
            assert held is False  # no flock: cache entries guarded by it are left alone
    print(len(names), "modules")
    """
)


def test_every_module_imports_without_posix_only_modules() -> None:
    r = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[0]) > 30
