"""The offline channel's packages ship bytecode as conda-forge's do (envbuild/offline/pycs.py):
checked-hash ``.pyc`` for every ``.py`` except those the installer rewrites, listed in
``info/paths.json`` and ``info/files``."""

from __future__ import annotations

import json
import tarfile

from envbuild.offline.pycs import with_bytecode

TAG = "cpython-311"


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    m = tarfile.TarInfo(name)
    m.size = len(data)
    return m, data


def _pycs(has_prefix: bytes, placeholder: str = "") -> list[str]:
    sources = {"lib/a b/mod.py": b"X = '/old/prefix'\n", "lib/plain.py": b"Y = 1\n",
               "lib/crlf.py": b"Z = 1\n", "lib/py2.py": b"print 'py2'\n", "lib/ok.py": b"x = 1\n"}  # fmt: skip
    paths = [{"_path": placeholder, "prefix_placeholder": "/old/prefix"}] if placeholder else []
    info = [_member("info/has_prefix", has_prefix),
            _member("info/paths.json", json.dumps({"paths": paths}).encode()),
            _member("info/files", "\n".join(sources).encode())]  # fmt: skip
    pkg, info = with_bytecode([_member(k, v) for k, v in sources.items()], info)
    listed = json.loads(dict((m.name, d) for m, d in info)["info/paths.json"])["paths"]
    shipped = sorted(m.name for m, _ in pkg if m.name.endswith(".pyc"))
    assert shipped == sorted(p["_path"] for p in listed if p["_path"].endswith(".pyc"))
    return shipped


def test_rewritten_files_get_no_bytecode_whatever_the_has_prefix_spelling() -> None:
    pyc = lambda d, s: f"{d}/__pycache__/{s}.{TAG}.pyc"  # noqa: E731
    assert _pycs(b'/old/prefix text "lib/a b/mod.py"\r\n/old/prefix text lib/crlf.py\r\n') == [
        pyc("lib", "ok"), pyc("lib", "plain")]  # fmt: skip
    assert _pycs(b"lib/plain.py\n", placeholder="lib/ok.py") == [
        pyc("lib", "crlf"), pyc("lib/a b", "mod")]  # fmt: skip
    # a file that does not compile (Python 2) gets none, without failing the package
    assert pyc("lib", "py2") not in _pycs(b"")
