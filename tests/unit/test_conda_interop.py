"""envbuild and a real conda (26.7.1, ``shared/tools/conda-peer``), both ways.

conda -> envbuild: environments conda made (from our explicit file, by its solver with history,
with ``pip install`` on top, relocated by conda-pack + conda-unpack, ``conda env create`` of our
export) are examined by ``doit doctor`` (nothing wrong with a healthy one) and rebuilt by
``doit adopt`` (every package the same). envbuild -> conda: conda installs, updates (dry run)
and removes inside our environments and unpacked tarballs, ``conda doctor`` finds them healthy
(only machine-level checks fail, each named), ``conda env list`` shows them, and our doctor
and verify see what conda changed. Package versions are read from the fixture channel and the
lock, never written here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

# Small checks of the rules above, without conda.

NOARCH_RECORD = {  # conda's record of a noarch: python package (conda 26.7.1)
    "name": "pkg",
    "noarch": "python",
    "files": ["bin/pkg", "lib/python3.11/site-packages/pkg/__init__.py"],
    "paths_data": {
        "paths_version": 1,
        "paths": [
            {"_path": "site-packages/pkg/__init__.py", "path_type": "hardlink"},
            {"_path": "python-scripts/tool", "path_type": "hardlink"},
            {"_path": "bin/pkg", "path_type": "unix_python_entry_point"},
        ],
    },
}


def test_conda_noarch_paths_are_read_where_they_landed() -> None:
    from envbuild.prefix.files import record_entries, site_packages_dir

    site = site_packages_dir([NOARCH_RECORD, {"name": "python", "version": "3.11.7"}])
    assert site == "lib/python3.11/site-packages"
    assert site_packages_dir([NOARCH_RECORD]) == site  # no python record: from the files
    paths = [e["_path"] for e in record_entries(NOARCH_RECORD, site)]
    assert paths == ["lib/python3.11/site-packages/pkg/__init__.py", "bin/tool", "bin/pkg"]
    assert NOARCH_RECORD["paths_data"]["paths"][0]["_path"] == "site-packages/pkg/__init__.py"


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        (
            "conda-forge/linux-64::python==3.11.7=h40eaf8bd_0_cpython",
            "python ==3.11.7 h40eaf8bd_0_cpython",
        ),
        ("conda-forge/noarch::pip==26.3=py_0", "pip ==26.3 py_0"),
        ("bioconda::samtools", "bioconda::samtools"),
        ("python=3.11", "python=3.11"),
        ("numpy >=1.26,<3", "numpy >=1.26,<3"),
        ("scipy=1.11=py311*", "scipy ==1.11 py311*"),
    ],
)
def test_history_specs_become_recipe_lines(spec: str, line: str) -> None:
    from envbuild.prefix.adopt import recipe_spec

    assert recipe_spec(spec, "conda-forge") == line


def _unpacked_env(root: Path, config_names_old_prefix: bool) -> Path:
    """A prefix unpacked by conda-pack and relocated by conda-unpack, whose interpreter's
    bin/python3.11-config (a real conda-forge python's has a prefix placeholder) conda-unpack
    left alone, as it leaves every bin/python*."""
    import hashlib

    old = "/opt/conda-bld/placehold"
    texts = {"lib/pkgconfig/python.pc": "prefix={}\n", "bin/python3.11-config": 'prefix="{}"\n'}
    entries = []
    for rel, text in texts.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        relocated = rel == "lib/pkgconfig/python.pc" or not config_names_old_prefix
        (root / rel).write_text(text.format(root if relocated else old))
        entries.append({
            "_path": rel, "path_type": "hardlink", "file_mode": "text", "prefix_placeholder": old,
            "sha256": hashlib.sha256(text.format(old).encode()).hexdigest(),
            "sha256_in_prefix": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
        })  # fmt: skip
    record = {"name": "python", "version": "3.11.7", "build": "x", "build_number": 0,
              "subdir": "noarch", "depends": [], "files": list(texts), "fn": "python-3.11.7-x.conda",
              "url": "https://example.invalid/noarch/python-3.11.7-x.conda", "channel": "https://example.invalid",
              "paths_data": {"paths": entries, "paths_version": 1}}  # fmt: skip
    (root / "conda-meta").mkdir()
    (root / "conda-meta" / "python-3.11.7-x.json").write_text(json.dumps(record))
    return root


def test_doctor_tells_conda_unpacks_skipped_scripts_from_a_moved_prefix(tmp_path: Path) -> None:
    from envbuild.prefix import doctor

    relocated = doctor.examine(_unpacked_env(tmp_path / "a", config_names_old_prefix=True))
    assert [(f.kind, f.path, f.severity) for f in relocated] == [
        ("not-relocated", "bin/python3.11-config", "note")
    ]
    assert doctor.examine(_unpacked_env(tmp_path / "b", config_names_old_prefix=False)) == []
    moved = tmp_path / "c"  # copied, not relocated: every prefix file names the old place
    shutil.copytree(tmp_path / "b", moved)
    assert [f.kind for f in doctor.examine(moved)] == ["moved-prefix"]


def test_register_is_a_boolean_setting(tmp_path: Path) -> None:
    from envbuild.errors import ConfigError
    from envbuild.project import load_project

    (tmp_path / "envbuild.toml").write_text("[builds]\nregister = false\n")
    assert load_project(tmp_path).register_envs is False
    (tmp_path / "envbuild.toml").write_text('[builds]\nregister = "no"\n')
    with pytest.raises(
        ConfigError, match=r"line 2: builds\.register: expected true or false, got 'no'"
    ):
        load_project(tmp_path)
