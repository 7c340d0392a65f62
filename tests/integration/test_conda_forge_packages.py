"""Real conda-forge packages (``shared/data/conda-forge-sample``) through the whole chain: lock,
install with binary and text prefix replacement, entry points, faithful ``conda-meta``, verify,
pack and relocation."""

from __future__ import annotations

import json
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from envbuild.ship.pack import open_tar_stream

from ..conftest import SAMPLE, Project

RECIPE = """\
name: cf
channels: [conda-forge]
dependencies:
  - python 3.11.*
  - python_abi
  - xz
  - openssl
  - tk
  - tqdm
  - pip
  - archspec
smoke:
  imports: [tqdm, archspec.cpu]
  commands: ["xz --version", "tqdm --version", "pip --version", "archspec --help"]
"""
PLACEHOLDER = b"_h_env_placehold"


@pytest.fixture(scope="module")
def cf(tmp_path_factory: pytest.TempPathFactory, cf_channel: Path) -> Project:
    """A project with the recipe built, smoke-tested and packed (once for the module)."""
    root = tmp_path_factory.mktemp("cfproj") / "proj"
    (root / "recipes").mkdir(parents=True)
    (root / "recipes" / "cf.yml").write_text(RECIPE)
    (root / "dodo.py").write_text((Path(__file__).parent.parent.parent / "dodo.py").read_text())
    (root / "envbuild.toml").write_text(
        f'[mirrors]\nconda-forge = "{cf_channel}"\n'
        f'[paths]\npackage_cache = "{root.parent / "pkgs"}"\n'
    )
    project = Project(root)
    project.doit("pack")
    return project


def _truth() -> dict[str, dict[str, object]]:
    """fn -> the package's own index.json fields, as the sample's manifest (read from each
    archive independently of py-rattler) records them, plus build_number and license from
    the channel's repodata."""
    out: dict[str, dict[str, object]] = {}
    for subdir in ("linux-64", "noarch"):
        data = json.loads((SAMPLE / subdir / "repodata.json").read_text())
        for fn, rec in {**data["packages"], **data["packages.conda"]}.items():
            out[fn] = {"build_number": rec["build_number"], "license": rec.get("license")}
    for m in json.loads((SAMPLE / "manifest.json").read_text()):
        out[m["file"]].update(
            depends=m["depends"],
            constrains=m["constrains"] or None,
            noarch=m["noarch"],
            size=m["size"],
            sha256=m["sha256"],
            md5=m["md5"],
            subdir=m["subdir"],
            timestamp=m["build_timestamp_ms"],
        )
    return out


def test_records_are_what_the_packages_say(cf: Project) -> None:
    prefix = cf.root / "envs" / "cf"
    truths = _truth()
    metas = sorted((prefix / "conda-meta").glob("*.json"))
    sample = [m for m in metas if json.loads(m.read_text())["fn"] in truths]
    assert len(sample) == len(metas) - 2 >= 15  # all but python and python_abi
    for meta in sample:
        record = json.loads(meta.read_text())
        truth = truths[record["fn"]]
        for key, value in truth.items():
            assert record.get(key) == value, (record["fn"], key)
        assert (
            record["url"]
            == f"https://conda.anaconda.org/conda-forge/{truth['subdir']}/{record['fn']}"
        )
        assert record["channel"] == "https://conda.anaconda.org/conda-forge"
        assert stat.S_IMODE(meta.stat().st_mode) == 0o644
        # as conda: the hash as installed for every file, not for symlinks or entry points
        unhashed = ("directory", "softlink", "unix_python_entry_point")
        paths = record["paths_data"]["paths"]
        assert all("sha256_in_prefix" in p for p in paths if p["path_type"] not in unhashed)
        assert not [p for p in paths if p["path_type"] in unhashed and "sha256_in_prefix" in p]
    by_name = {json.loads(m.read_text())["name"]: json.loads(m.read_text()) for m in metas}
    assert by_name["openssl"]["constrains"] == ["pyopenssl >=22.1"]
    assert by_name["openssl"]["build_number"] == 1
    assert by_name["libgcc-ng"]["depends"] == ["libgcc 14.2.0 h77fa898_1"]
    assert by_name["tqdm"]["noarch"] == "python"
    assert by_name["tqdm"]["requested_spec"] == "tqdm"
    assert by_name["python_abi"]["build_number"] == 8


def test_conda_reads_history_and_records(cf: Project) -> None:
    """conda's own History and PrefixRecord (conda's code, vendored by conda-lock) accept
    them: `conda env export --from-history` would list the recipe's specs."""
    from conda_lock._vendor.conda.history import History
    from conda_lock._vendor.conda.models.records import PrefixRecord

    prefix = cf.root / "envs" / "cf"
    specs = History(str(prefix)).get_requested_specs_map()
    assert sorted(specs) == sorted(
        ["python", "python_abi", "xz", "openssl", "tk", "tqdm", "pip", "archspec"]
    )
    assert str(specs["python"]) == "python=3.11"
    record = PrefixRecord(
        **json.loads(next((prefix / "conda-meta").glob("openssl-*.json")).read_text())
    )
    assert record.channel.canonical_name == "conda-forge"
    assert record.constrains == ("pyopenssl >=22.1",)


def test_binary_and_text_prefixes_replaced_and_entry_points_run(cf: Project) -> None:
    prefix = (cf.root / "envs" / "cf").resolve()
    libcrypto = (prefix / "lib" / "libcrypto.so.3").read_bytes()
    assert str(prefix).encode() in libcrypto and PLACEHOLDER not in libcrypto
    pc = (prefix / "lib" / "pkgconfig" / "openssl.pc").read_text()
    assert f"prefix={prefix}" in pc
    env = {"PATH": f"{prefix / 'bin'}:/usr/bin:/bin"}
    for argv, expect in (
        (["xz", "--version"], "xz (XZ Utils) 5.2.6"),
        (["tqdm", "--version"], "4.66.2"),
        (["pip", "--version"], "pip 25.3"),
        (["openssl", "version"], "OpenSSL 3.3.1"),
    ):
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and expect in out.stdout, (argv, out.stderr)
    shebang = (prefix / "bin" / "tqdm").read_text().splitlines()[0]
    assert shebang == f"#!{prefix}/bin/python3.11"


def test_verify_clean_then_names_an_edited_binary(cf: Project) -> None:
    cf.doit("verify")
    lib = (cf.root / "envs" / "cf" / "lib" / "libtcl8.6.so").resolve()
    original = lib.read_bytes()
    try:
        data = bytearray(original)
        data[len(data) // 2] ^= 0x01
        lib.write_bytes(bytes(data))
        proc = cf.doit("verify", check=False)
        assert proc.returncode != 0
        report = json.loads((cf.root / "reports" / "cf.verify.json").read_text())
        found = {(f["kind"], f["package"], f["path"]) for f in report["findings"]}
        assert found == {("modified-file", "tk", "lib/libtcl8.6.so")}
    finally:
        lib.write_bytes(original)
    cf.doit("verify")


def test_packed_tarball_relocates(cf: Project, tmp_path: Path) -> None:
    tarball = next((cf.root / "dist").glob("cf-linux-64.tar.*"))
    dest = tmp_path / "elsewhere" / "env"
    dest.mkdir(parents=True)
    with open_tar_stream(tarball) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        tar.extractall(dest, filter="fully_trusted")
    records = {json.loads(m.read_text())["name"] for m in (dest / "conda-meta").glob("*.json")}
    assert {"openssl", "tk", "xz", "tqdm"} <= records
    subprocess.run(
        [str(dest / "bin" / "python"), str(dest / "bin" / "conda-unpack")], check=True, timeout=300
    )
    libcrypto = (dest / "lib" / "libcrypto.so.3").read_bytes()
    assert str(dest).encode() in libcrypto
    assert str((cf.root / "envs" / "cf").resolve()).encode() not in libcrypto
    env = {"PATH": f"{dest / 'bin'}:/usr/bin:/bin"}
    out = subprocess.run(
        ["tqdm", "--version"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "4.66.2" in out.stdout, out.stderr
    # conda-pack makes entry points relocatable with an env shebang
    assert (dest / "bin" / "tqdm").read_text().splitlines()[0] == "#!/usr/bin/env python3.11"
