from __future__ import annotations

from envbuild.lock import solve as lock


def test_explicit_render_matches_conda_lock_renderer() -> None:
    """envbuild renders @EXPLICIT files without importing conda-lock's CLI module; the lines
    must be what conda-lock's own renderer gives: topological order, virtual packages left
    out, pip packages as `# pip` lines, per platform."""
    from conda_lock.conda_lock import render_lockfile_for_platform
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile

    base = "https://conda.anaconda.org/conda-forge"

    def conda(name: str, platform: str, deps: dict[str, str]) -> LockedDependency:
        return LockedDependency(
            name=name,
            version="1.0",
            build="h0_0",
            manager="conda",
            platform=platform,
            dependencies=deps,
            url=f"{base}/{platform}/{name}-1.0-h0_0.conda",
            hash=HashModel(md5=name[:1] * 32, sha256=name[:1] * 64),
        )

    packages = []
    for plat in ("linux-64", "osx-arm64"):
        packages += [
            conda("zlib", plat, {"__glibc": ">=2.17"}),
            conda("python", plat, {"zlib": ">=1", "openssl": ""}),
            conda("openssl", plat, {}),
            conda("__glibc", plat, {}),
            conda("numpy", plat, {"python": ">=3.11"}),
        ]
    packages.append(
        LockedDependency(
            name="requests",
            version="2.32.3",
            manager="pip",
            platform="linux-64",
            dependencies={"urllib3": ""},
            url="https://files.pythonhosted.org/packages/requests-2.32.3-py3-none-any.whl",
            hash=HashModel(sha256="f" * 64),
        )
    )
    lockfile = Lockfile(
        package=packages,
        metadata=LockMeta(
            content_hash={"linux-64": "a" * 64, "osx-arm64": "b" * 64},
            channels=[base],
            platforms=["linux-64", "osx-arm64"],
            sources=["recipes/x.yml"],
        ),
    )
    before = lockfile.model_dump()
    for plat in ("linux-64", "osx-arm64"):
        theirs = render_lockfile_for_platform(
            lockfile=lockfile.model_copy(deep=True),
            include_dev_dependencies=False,
            extras=None,
            kind="explicit",
            platform=plat,
            suppress_warning_for_pip_and_explicit=True,
        )
        assert lock.render_explicit(lockfile, plat) == theirs
    assert lockfile.model_dump() == before  # not reordered in place
