"""Issue 10: `doit doctor prefix=PATH` on environments rotted the way the seeds describe it
happening (a real environment installed with py-rattler, then real pip installs, deleted and
edited files, record changes of the kind forced installs leave, a .pth outside, a moved
prefix), and `doit adopt` from such an environment to a recipe that locks, builds and passes
its smoke checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envbuild.prefix import doctor
from envbuild.prefix.findings import DoctorError


def test_history_with_unknown_syntax_names_the_line(tmp_path: Path) -> None:
    from envbuild.prefix.adopt import requested_specs

    history = tmp_path / "history"
    history.write_text("==> 2024-01-01 00:00:00 <==\n# cmd: conda install numpy\n"
                       "# update specs: ['numpy'\n")  # fmt: skip
    with pytest.raises(DoctorError) as e:
        requested_specs(history)
    assert f"{history}:3: cannot read the specs line" in str(e.value)
    history.write_text("# update specs: ['numpy', 'python=3.11']\n# remove specs: ['numpy']\n"
                       "# install specs: ['conda-forge::pandas >=2']\n")  # fmt: skip
    assert requested_specs(history) == {
        "python": "python=3.11",
        "pandas": "conda-forge::pandas >=2",
    }


def _write_record(prefix: Path, name: str, version: str, depends: list[str]) -> None:
    """A conda-meta record of a package with no files, for this machine's platform."""
    from envbuild.recipe.model import current_subdir

    fn = f"{name}-{version}-0.conda"
    record = {"name": name, "version": version, "build": "0", "build_number": 0,
              "subdir": current_subdir(), "depends": depends, "channel": "conda-forge",
              "fn": fn, "files": [], "paths_data": {"paths": [], "paths_version": 1},
              "url": f"https://conda.anaconda.org/conda-forge/{current_subdir()}/{fn}"}  # fmt: skip
    (prefix / "conda-meta").mkdir(exist_ok=True)
    (prefix / "conda-meta" / f"{name}-{version}-0.json").write_text(json.dumps(record))


def test_only_the_pip_conda_adds_to_python_is_spared(tmp_path: Path) -> None:
    """conda appends the bare ``pip`` to python 2.* and 3.* (add_pip_as_python_dependency):
    without pip that is a note; the same entry elsewhere, or a pip spec of the package's own,
    is still an unsatisfied dependency (test_conda_interop shows the real case)."""
    from envbuild.prefix.adopt import leaves

    _write_record(tmp_path, "python", "3.11.7", ["pip"])
    _write_record(tmp_path, "tool", "1", ["python", "pip"])
    _write_record(tmp_path, "python2tool", "4.0", ["python", "pip >=20"])
    found = [(f.kind, f.package, f.severity) for f in doctor.examine(tmp_path)]
    assert [f for f in found if f[0] in ("implied-pip", "unsatisfied-depends")] == [
        ("implied-pip", "python 3.11.7 0", "note"),
        ("unsatisfied-depends", "python2tool 4.0 0", "problem"),
        ("unsatisfied-depends", "tool 1 0", "problem"),
    ]
    # adopt without history: conda's entry does not make an installed pip a dependency
    env = tmp_path / "with-pip"
    env.mkdir()
    for name, version, depends in [("python", "3.11.7", ["pip"]), ("pip", "26.3", []),
                                   ("app", "1", ["python"])]:  # fmt: skip
        _write_record(env, name, version, depends)
    assert leaves(doctor.read_records(env)) == ["app", "pip"]
