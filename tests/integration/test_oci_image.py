"""Images written without an engine: reproducible digests, bad bases, a full disk, the SBOM,
and (where an engine is reachable) the written image loaded and checked inside."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from envbuild.errors import ImageError
from envbuild.ship import base_image, oci, oci_stage, sbom

from ..conftest import CACHE, TINY_RECIPE, Project

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def _with_base(project: Project, base: str) -> Project:
    cfg = project.root / "envbuild.toml"
    cfg.write_text(cfg.read_text() + f'[image]\nbase = "{base}"\n')
    return project


def _record(project: Project, name: str = "tiny") -> dict[str, object]:
    return json.loads((project.root / "build" / "state" / f"{name}.image.json").read_text())


def _second_project(project: Project, tmp_path: Path) -> Project:
    """A copy of ``project``'s sources at another path, with its own package cache."""
    other = tmp_path / "elsewhere" / "clone"
    other.mkdir(parents=True)
    shutil.copytree(project.root / "recipes", other / "recipes")
    shutil.copy(project.root / "dodo.py", other / "dodo.py")
    cfg = (project.root / "envbuild.toml").read_text()
    own_cache = tmp_path / "elsewhere" / "pkgs"
    lines = [ln if not ln.startswith("package_cache") else f'package_cache = "{own_cache}"'
             for ln in cfg.splitlines()]  # fmt: skip
    (other / "envbuild.toml").write_text("\n".join(lines) + "\n")
    return Project(other)


def test_written_without_engine_same_digest_in_two_clones(
    project: Project, base: Path, tmp_path: Path
) -> None:
    _with_base(project, str(base))
    proc = project.doit("docker", env=NO_ENGINE)
    assert "in-container smoke checks did not run" in proc.stderr
    first = _record(project)
    assert first["smoke"] == oci_stage.NOT_RUN and str(first["digest"]).startswith("sha256:")
    assert f"image dist/tiny-linux-64.oci.tar {first['digest']}" in proc.stdout
    archive = project.root / str(first["archive"])
    with tarfile.open(archive) as tf:
        names = tf.getnames()
        assert {m.mtime for m in tf.getmembers()} == {first_epoch(project)}
    assert names[:3] == ["oci-layout", "blobs", "blobs/sha256"]
    assert "index.json" in names and "manifest.json" in names
    assert oci.archive_digest(archive) == first["digest"]
    # the manifest pins the tarball packed for the same build, and the published SBOM
    from envbuild.ship.oci_image import (
        ANN_ENV_DIGEST,
        ANN_ENV_SIZE,
        ANN_ENV_UNPACKED,
        ANN_SBOM_DIGEST,
    )
    from envbuild.ship.pack import unpacked_size
    from envbuild.util.fs import file_sha256

    with tarfile.open(archive) as tf:
        blob = tf.extractfile(f"blobs/sha256/{first['digest'].split(':')[1]}")
        ann = json.loads(blob.read())["annotations"]  # type: ignore[union-attr]
    tarball = project.root / "dist" / "tiny-linux-64.tar.zst"
    assert ann[ANN_ENV_DIGEST] == "sha256:" + file_sha256(tarball)
    assert ann[ANN_ENV_SIZE] == str(tarball.stat().st_size)
    assert ann[ANN_ENV_UNPACKED] == str(unpacked_size(tarball))
    assert ann[ANN_SBOM_DIGEST] == "sha256:" + file_sha256(
        project.root / "dist" / "tiny-linux-64.cdx.json"
    )
    out = project.doit("status", "--json", env=NO_ENGINE).stdout
    status = json.loads(out[out.index("[") :])
    assert status[0]["image_digest"] == first["digest"]
    assert status[0]["image_smoke"] == oci_stage.NOT_RUN
    # a rebuild of the same lock: the same digest
    project.doit("--always-execute", "build", env=NO_ENGINE)
    project.doit("docker", env=NO_ENGINE)
    assert _record(project)["digest"] == first["digest"]
    # another clone at another path, with its own package and bytecode caches
    other = _second_project(project, tmp_path)
    shutil.copytree(project.root / "locks", other.root / "locks")
    other.doit("docker", env=NO_ENGINE)
    assert _record(other)["digest"] == first["digest"]
    assert (other.root / "dist" / "tiny-linux-64.oci.tar").read_bytes() == archive.read_bytes()


def first_epoch(project: Project) -> int:
    from envbuild.lock.epoch import lock_epoch

    return lock_epoch(project.root / "locks" / "tiny.conda-lock.yml")


def test_image_layers_sorted_owned_by_root_user_layer_numeric(project: Project, base: Path) -> None:
    _with_base(project, str(base))
    project.write_recipe(
        "tiny", TINY_RECIPE.format(name="tiny") + "variables: {GREETING: 'hi $X'}\n"
    )
    project.doit("docker", env=NO_ENGINE)
    with oci.Layout(project.root / "dist" / "tiny-linux-64.oci.tar") as layout:
        image = layout.image("amd64")
        cfg = image.config["config"]
        assert cfg["User"] == "1000:1000" and cfg["WorkingDir"] == "/home/envbuild"
        assert (
            cfg["Env"][-5].startswith("PATH=/opt/env/bin:") and cfg["Env"][-1] == "GREETING=hi $X"
        )
        assert cfg["Labels"]["org.envbuild.recipe"] == "tiny"
        assert image.manifest["annotations"]["org.opencontainers.image.revision"] == cfg[
            "Labels"]["org.envbuild.lock-sha256"]  # fmt: skip
        assert not any("build-id" in k for k in cfg["Labels"])  # no per-build ids
        import gzip

        with (
            layout.open(oci.blob_name(image.layers[-2].digest)) as raw,
            tarfile.open(fileobj=gzip.GzipFile(fileobj=raw), mode="r|") as tf,
        ):
            members, records = [], []
            for m in tf:
                members.append(m)
                if m.name.startswith("opt/env/conda-meta/") and m.name.endswith(".json"):
                    f = tf.extractfile(m)
                    assert f is not None
                    records.append(json.load(f))
    names = [m.name for m in members]
    # every file a record names is in the layer: bytecode left out (compiled from a source
    # naming the build's prefix) has no record, whose hash would name the build's path
    described = {f"opt/env/{p['_path']}" for r in records for p in r["paths_data"]["paths"]}
    assert records and described <= set(names), sorted(described - set(names))[:5]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {(m.uid, m.gid, m.uname) for m in members} == {(0, 0, "")}
    assert not any(m.islnk() for m in members)
    assert "opt/env/etc/envbuild/sbom.cdx.json" in names
    assert "opt/env/bin/conda-unpack" not in names  # relocated at pack time
    assert "opt/env/etc/conda/activate.d/envbuild-variables.sh" in names


def _write_fails(project: Project, *args: str) -> str:
    proc = project.doit("docker", *args, check=False, env=NO_ENGINE)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr  # doit reports a failed task on stdout
    assert "Traceback" not in out, out
    return out


@pytest.mark.parametrize(
    ("base_value", "expected"),
    [
        ("missing.oci.tar", "missing.oci.tar does not exist"),
        ("notoci.tar", "no index.json: not an OCI image layout"),
        ("text.txt", "not an OCI image layout archive"),
    ],
)
def test_bad_base_is_one_message(project: Project, base_value: str, expected: str) -> None:
    (project.root / "text.txt").write_text("hello\n")
    with tarfile.open(project.root / "notoci.tar", "w") as tf:
        tf.add(project.root / "text.txt", "text.txt")
    project.doit("pack")
    _with_base(project, base_value)
    err = _write_fails(project)
    assert expected in err and len(err.splitlines()) < 25
    assert not list((project.root / "dist").glob("*.oci.tar*"))
    assert not list((project.root / "dist").glob(".tiny*"))


def test_digest_pin_mismatch_and_changed_base_rebuild(project: Project, base: Path) -> None:
    wrong = "sha256:" + "0" * 64
    _with_base(project, f"{base}@{wrong}")
    err = _write_fails(project)
    assert f"pins {wrong}" in err and "has manifest digest sha256:" in err
    cfg = project.root / "envbuild.toml"
    right = base_image.manifest_digest(base)
    cfg.write_text(cfg.read_text().replace(wrong, right))
    project.doit("docker", env=NO_ENGINE)
    assert Project.executed(project.doit("docker", env=NO_ENGINE)) == []
    # another base: the image is written again
    copy = project.root / "base2.oci.tar"
    base_image.from_rootfs(CACHE / "minbase-bookworm.tar", copy, epoch=1)
    cfg.write_text(cfg.read_text().replace(f"{base}@{right}", str(copy)))
    assert Project.executed(project.doit("docker", env=NO_ENGINE)) == ["docker:tiny"]
    assert _record(project)["base"] == base_image.manifest_digest(copy)


def test_full_disk_leaves_the_previous_image(project: Project, base: Path) -> None:
    _with_base(project, str(base))
    project.doit("docker", env=NO_ENGINE)
    archive = project.root / "dist" / "tiny-linux-64.oci.tar"
    before = archive.read_bytes()
    (project.root / "build" / "state" / "tiny.image.json").unlink()  # written again

    def small_files() -> None:  # EFBIG past 20 MB (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 << 20, 20 << 20))

    proc = subprocess.run(
        [sys.executable, "-m", "doit", "docker"], cwd=project.root,
        env={**Project.env(), **NO_ENGINE}, capture_output=True, text=True,
        preexec_fn=small_files, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "File too large" in out, out
    assert "Traceback" not in out and ("is unchanged" in out or "is kept" in out)
    assert archive.read_bytes() == before
    assert sorted(p.name for p in archive.parent.iterdir() if p.name.startswith(".")) == []


def test_engine_refusing_the_load(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.oci.tar"
    bogus.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="the engine refused the image"):
        oci_stage.load(bogus, "envbuild/bogus:000000000000")


def test_sbom_valid_and_complete(project: Project, base: Path) -> None:
    _with_base(project, str(base))
    project.doit("docker", env=NO_ENGINE)
    text = (project.root / "dist" / "tiny-linux-64.cdx.json").read_text()
    sbom.validate(text)
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    purls = {c["purl"] for c in doc["components"]}
    lock = __import__("yaml").safe_load(
        (project.root / "locks" / "tiny.conda-lock.yml").read_text()
    )
    for pkg in lock["package"]:
        assert any(
            p.startswith(f"pkg:conda/{pkg['name']}@{pkg['version']}?build=") for p in purls
        ), pkg["name"]
    assert any(p.startswith("pkg:pypi/python-dateutil@") for p in purls)
    props = {p["name"]: p["value"] for p in doc["metadata"]["properties"]}
    assert props["envbuild:recipe"] == "tiny" and len(props["envbuild:lock-sha256"]) == 64
    dateutil = next(
        c for c in doc["components"] if c["purl"].startswith("pkg:conda/python-dateutil")
    )
    assert {h["alg"] for h in dateutil["hashes"]} == {"SHA-256", "MD5"}
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert any(r.startswith("pkg:conda/python@") for r in deps[dateutil["bom-ref"]])
    # the same SBOM inside the tarball (the image's is checked by the loaded-image test)
    from envbuild.ship.pack import open_tar_stream

    with open_tar_stream(project.root / "dist" / "tiny-linux-64.tar.zst") as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tf:  # fmt: skip
        inside = next(tf.extractfile(m) for m in tf if m.name == sbom.SBOM_IN_PREFIX)
        assert inside is not None and inside.read().decode() == text


def test_sbom_lists_what_pixi_sbom_lists(project: Project, base: Path) -> None:
    beside = Path(sys.executable).parent / "pixi-sbom"  # the test extra, in this venv
    exe = (
        os.environ.get("PIXI_SBOM")
        or shutil.which("pixi-sbom")
        or (str(beside) if beside.exists() else "")
    )
    if not exe:
        pytest.skip("pixi-sbom (PyPI) is not installed here")
    _with_base(project, str(base))
    project.doit("docker", env=NO_ENGINE)
    ours = json.loads((project.root / "dist" / "tiny-linux-64.cdx.json").read_text())
    out = project.root / "pixi-sbom.json"
    subprocess.run(
        [exe, "--prefix", str((project.root / "envs" / "tiny").resolve()), "--format",
         "cyclonedx", "--output", str(out)], capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    theirs = json.loads(out.read_text())
    assert len(theirs["components"]) >= 4  # python, python-dateutil, tzdata, and PyPI names
    ours_ids = {c["purl"].split("?")[0].lower() for c in ours["components"]}
    for c in theirs.get("components", []):
        if "purl" in c:
            assert c["purl"].split("?")[0].lower() in ours_ids, c["purl"]


def test_loaded_into_engine_runs_as_non_root(engine: None, project: Project, base: Path) -> None:
    _with_base(project, str(base))
    proc = project.doit("docker")
    record = _record(project)
    assert record["smoke"] == "passed", proc.stderr
    tag = str(record["tag"])
    run = ["docker", "run", "--rm", "--network", "none", tag]
    out = subprocess.run([*run, "sh", "-c", "id -u; python -I -c 'import dateutil; print(1)'; "
                          "test -s /opt/env/etc/envbuild/sbom.cdx.json && echo sbom"],
                         capture_output=True, text=True, check=True, timeout=120).stdout.split()  # fmt: skip
    assert out == ["1000", "1", "sbom"]
    size = int(subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag],
                              capture_output=True, text=True, check=True).stdout)  # fmt: skip
    # the engine's debian:bookworm-slim is the same minbase tar, imported
    base_size = int(subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", "debian:bookworm-slim"],
        capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert size <= base_size + 1.02 * int(str(record["env_bytes"])), (size, base_size, record)


def test_nightly_promotes_and_rollback_restores_the_written_image(
    make_project: Callable[..., Project], base: Path
) -> None:
    p = _with_base(make_project(recipes={"good": None}), str(base))
    (p.root / "envbuild.toml").write_text(
        (p.root / "envbuild.toml").read_text() + "[builds]\nkeep = 3\n"
    )
    p.doit("nightly", "env=good", env=NO_ENGINE)
    archive = p.root / "dist" / "good-linux-64.oci.tar"
    first = oci.archive_digest(archive)
    assert _record(p, "good")["digest"] == first
    assert Project.executed(p.doit("docker", env=NO_ENGINE)) == []  # what nightly made is current
    p.write_recipe("good", TINY_RECIPE.format(name="good").replace(
        "  - python-dateutil\n", "  - python-dateutil\n  - threadpoolctl\n"))  # fmt: skip
    p.doit("_nightly_env:good", env=NO_ENGINE)
    second = oci.archive_digest(archive)
    assert second != first and _record(p, "good")["digest"] == second
    assert "threadpoolctl" in (p.root / "dist" / "good-linux-64.cdx.json").read_text()
    p.doit("rollback", "env=good", env=NO_ENGINE)
    assert oci.archive_digest(archive) == first and _record(p, "good")["digest"] == first
    assert "threadpoolctl" not in (p.root / "dist" / "good-linux-64.cdx.json").read_text()


def test_base_image_command_bad_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notatar.tar").write_text("hello\n")
    for rootfs in (tmp_path / "missing.tar", tmp_path / "notatar.tar"):
        proc = subprocess.run(
            [sys.executable, "-m", "envbuild.ship.base_image", str(rootfs), str(tmp_path / "o.tar")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"envbuild.ship.base_image: {rootfs}"), proc.stderr
        assert not (tmp_path / "o.tar").exists()
