"""The environment's software bill of materials, CycloneDX 1.6 JSON
(https://cyclonedx.org/docs/1.6/json/), written with cyclonedx-python-lib and packageurl-python.

Components:

* one per conda record of the lock (this platform): ``pkg:conda/<name>@<version>?build=...
  &channel=<channel URL>&subdir=...&type=conda|tar.bz2`` (the purl spec's conda type,
  https://github.com/package-url/purl-spec), sha256 and md5 from the lock, the license from the
  package's own record (``conda-meta``), ``depends`` as the dependency graph;
* one per PyPI distribution a conda package ships (a ``*.dist-info``/``*.egg-info`` among its
  files), ``pkg:pypi/<name>@<version>``, because vulnerability scanners match PyPI purls only
  (as pixi-sbom does); the conda component depends on it;
* one per PyPI package of the lock (``manager: pip``), with its sha256 and URL.

Reproducible: bom-refs are the purls, the serial number is a UUID derived from the lock's
sha256, and the timestamp is the lock's epoch. Metadata names the recipe, the lock's sha256
and envbuild's version. Inside the tarball and the image it is at
``<prefix>/etc/envbuild/sbom.cdx.json``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from envbuild.errors import EnvBuildError
from envbuild.prefix.meta import records_by_name
from envbuild.project import Project
from envbuild.records import BuildInfo
from envbuild.util.fs import atomic_link, atomic_write

SBOM_IN_PREFIX = "etc/envbuild/sbom.cdx.json"
_NAMESPACE = uuid.UUID("6f1d7f3e-8a8e-4c4e-9a0e-0d5b2b0e2b3c")  # envbuild's uuid5 namespace


def sbom_path(dist: Path, name: str, platform: str) -> Path:
    """``<dist>/<name>-<platform>.cdx.json``."""
    return dist / f"{name}-{platform}.cdx.json"


def kept_sbom(project: Project, name: str, build_id: str) -> Path:
    """``dist/history/<name>/<build id>.cdx.json``: the SBOM kept with one build (promotion
    and rollback publish it again; gc removes it with the build)."""
    return project.path("dist") / "history" / name / f"{build_id}.cdx.json"


def write_sbom(
    project: Project, name: str, info: BuildInfo, prefix: Path | None = None,
    current: bool = True,
) -> tuple[Path, str]:  # fmt: skip
    """Write the SBOM of build ``info`` (at ``prefix``, default the current environment):
    kept with the build and, if ``current``, published as ``dist/<name>-<platform>.cdx.json``
    (the same file). Made from the lock kept with the build: the same text whenever it is
    made. Returns the path written and the text."""
    from envbuild.install.build import lock_copy
    from envbuild.lock.epoch import lock_epoch
    from envbuild.lock.lockfile import read_packages

    real = (prefix or project.env_prefix(name)).resolve()
    lock = lock_copy(real)
    text = build_sbom(name, info.platform, read_packages(lock).packages, real,
                      info.lock_sha256, lock_epoch(lock))  # fmt: skip
    kept = kept_sbom(project, name, info.build_id)
    atomic_write(kept, text)
    if not current:
        return kept, text
    path = sbom_path(project.path("dist"), name, info.platform)
    atomic_link(kept, path)
    return path, text


def python_dists(prefix: Path, record: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, version) of each PyPI distribution among the files of conda ``record`` (its
    ``*.dist-info/METADATA`` or ``*.egg-info/PKG-INFO``, read from ``prefix``)."""
    out = []
    for rel in sorted(record.get("files") or []):
        parts = rel.split("/")
        if len(parts) < 2 or parts[-1] not in ("METADATA", "PKG-INFO"):
            continue
        if not parts[-2].endswith((".dist-info", ".egg-info")):
            continue
        try:
            headers = HeaderParser().parsestr((prefix / rel).read_text(errors="replace"))
        except OSError:
            continue
        if headers.get("Name") and headers.get("Version"):
            out.append((str(headers["Name"]), str(headers["Version"])))
    return out


def _license(factory: Any, value: str) -> Any:
    """The record's license: an SPDX id or expression as such; a long text (some wheels put
    their whole license file there) as a name, its first line, with the text attached."""
    from cyclonedx.model import AttachedText
    from cyclonedx.model.license import DisjunctiveLicense

    value = value.strip()
    if len(value) <= 200 and "\n" not in value:
        return factory.make_from_string(value)
    first = next((ln.strip() for ln in value.splitlines() if ln.strip()), "")[:120]
    return DisjunctiveLicense(name=first or "see text", text=AttachedText(content=value))


def _dep_name(spec: str) -> str:
    return spec.split()[0].split("[")[0] if spec.strip() else ""


def build_sbom(
    name: str,
    platform: str,
    packages: tuple[dict[str, Any], ...],
    prefix: Path,
    lock_sha256: str,
    epoch: int,
) -> str:
    """The SBOM of environment ``name`` as CycloneDX 1.6 JSON text: ``packages`` are the
    lockfile's ``package`` entries (every platform; ``platform``'s are taken), ``prefix`` the
    built environment (licenses and Python distributions). Raises EnvBuildError if a locked
    conda package has no record in ``prefix``."""
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    from envbuild import __version__

    records = records_by_name(prefix)
    licenses = LicenseFactory()
    bom = Bom(serial_number=uuid.uuid5(_NAMESPACE, lock_sha256))
    bom.metadata.timestamp = datetime.fromtimestamp(epoch, UTC)
    bom.metadata.component = root = Component(
        type=ComponentType.APPLICATION, name=name, version=lock_sha256[:12],
        bom_ref=f"envbuild:{name}@{lock_sha256[:12]}",
        description=f"conda environment '{name}' ({platform}) built by envbuild",
    )  # fmt: skip
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="envbuild", version=__version__)
    )
    bom.metadata.properties.update([
        Property(name="envbuild:recipe", value=name),
        Property(name="envbuild:lock-sha256", value=lock_sha256),
        Property(name="envbuild:platform", value=platform),
        Property(name="envbuild:epoch", value=str(epoch)),
        Property(name="envbuild:envbuild-version", value=__version__),
    ])  # fmt: skip
    conda: dict[str, Component] = {}
    depends: dict[str, list[str]] = {}
    provides: dict[str, list[Component]] = {}
    chosen = [p for p in packages if p.get("platform") == platform]
    for pkg in sorted(chosen, key=lambda p: (p["manager"], p["name"])):
        hashes = pkg.get("hash") or {}
        if pkg["manager"] != "conda":
            purl = PackageURL("pypi", name=pkg["name"].lower(), version=pkg["version"])
            comp = Component(
                type=ComponentType.LIBRARY, name=pkg["name"], version=pkg["version"],
                purl=purl, bom_ref=purl.to_string(),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=hashes["sha256"])],
            )  # fmt: skip
            bom.components.add(comp)
            bom.register_dependency(root, [comp])
            continue
        record = records.get(pkg["name"])
        if record is None:
            msg = (
                f"{prefix}: no conda-meta record for locked package {pkg['name']}; the "
                f"environment does not match its lock (`doit verify env={name}`)"
            )
            raise EnvBuildError(msg)
        url = str(pkg["url"])
        fname = url.rsplit("/", 1)[-1]
        qualifiers = {
            "build": str(record.get("build", "")),
            "channel": str(record.get("channel") or url.rsplit("/", 2)[0]),
            "subdir": str(record.get("subdir") or url.rsplit("/", 2)[-2]),
            "type": "tar.bz2" if fname.endswith(".tar.bz2") else "conda",
        }
        purl = PackageURL("conda", name=pkg["name"], version=pkg["version"], qualifiers=qualifiers)
        comp = Component(
            type=ComponentType.LIBRARY, name=pkg["name"], version=pkg["version"],
            purl=purl, bom_ref=purl.to_string(),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=hashes["sha256"]),
                    HashType(alg=HashAlgorithm.MD5, content=hashes["md5"])],
        )  # fmt: skip
        if record.get("license"):
            comp.licenses.add(_license(licenses, str(record["license"])))
        conda[pkg["name"]] = comp
        depends[pkg["name"]] = [_dep_name(d) for d in record.get("depends") or []]
        provides[pkg["name"]] = []
        for dist, version in python_dists(prefix, record):
            ppurl = PackageURL("pypi", name=dist.lower().replace("_", "-"), version=version)
            pcomp = Component(
                type=ComponentType.LIBRARY, name=dist, version=version, purl=ppurl,
                bom_ref=f"{ppurl.to_string()}#{pkg['name']}",
                properties=[Property(name="envbuild:provided-by", value=purl.to_string())],
            )  # fmt: skip
            provides[pkg["name"]].append(pcomp)
            bom.components.add(pcomp)
        bom.components.add(comp)
    bom.register_dependency(root, list(conda.values()))
    for pkg_name, comp in conda.items():
        deps = [conda[d] for d in depends[pkg_name] if d in conda]
        bom.register_dependency(comp, deps + provides[pkg_name])
    return str(JsonV1Dot6(bom).output_as_string(indent=2)) + "\n"


def validate(text: str) -> None:
    """Check ``text`` against the CycloneDX 1.6 JSON schema (the library's strict
    validator). Raises EnvBuildError with the first violation."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        msg = f"the SBOM is not valid CycloneDX 1.6: {error}"
        raise EnvBuildError(msg)
