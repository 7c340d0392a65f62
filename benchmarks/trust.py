"""Publish and pull of ``ml`` through a real registry, unsigned and signed, side by side.

One run on this machine, against Debian's distribution 2.8 on loopback: ``doit docker env=ml``
once (image written without an engine), then for each of unsigned, Ed25519 and ECDSA P-256
(keys made by ``openssl genpkey``): ``doit publish env=ml`` into an empty repository (every
byte uploaded), ``envbuild pull REPO@sha256:<image> --prefix ...`` into a fresh prefix (with
``--verify-key`` when signed), and the same pull again (nothing to do). Beside them, from the
same run: the peer of publish, ``skopeo copy`` of the same image archive into another empty
repository (the image only, no tarball artifact; a fresh HOME, so a non-root user's blob-info
cache cannot mount blobs from the repositories above; root's lives in
/var/lib/containers/cache, so as root only the first round uploads everything); and the
floor of pull's unpack, GNU ``tar`` extracting the same tarball from local disk (no digest,
no filter, no relocation, no imports).

    .venv/bin/python benchmarks/trust.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from _project import REPO, doit, temp_project

sys.path.insert(0, str(REPO))

BASE = REPO / "build" / "base" / "bookworm-minbase.oci.tar"
ENVBUILD = Path(sys.executable).with_name("envbuild")


def _timed(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if r.returncode:
        sys.exit(f"{' '.join(argv)} failed:\n{r.stdout}\n{r.stderr}")
    return time.perf_counter() - start


def _keys(where: Path) -> dict[str, tuple[Path, Path]]:
    out = {}
    p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    for kind, opts in (("ed25519", ["-algorithm", "ed25519"]), ("p256", p256)):
        key, pub = where / f"{kind}.pem", where / f"{kind}.pub"
        subprocess.run(["openssl", "genpkey", *opts, "-out", str(key)], check=True)
        pubout = ["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)]
        subprocess.run(pubout, check=True)
        out[kind] = (key, pub)
    return out


def main() -> None:
    from tests.ociregistry import running_registry

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with temp_project(f'[image]\nbase = "{BASE}"\n') as root, tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        os.environ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # the write alone
        doit(root, "docker", "env=ml")
        del os.environ["DOCKER_HOST"]
        archive = next((root / "dist").glob("ml-*.oci.tar"))
        tarball = next((root / "dist").glob("ml-*.tar.zst"))
        keys = _keys(tmp)
        config = (root / "envbuild.toml").read_text()
        rows: dict[str, dict[str, list[float]]] = {}
        with running_registry(tmp / "registry") as reg:
            for n in range(rounds):
                for mode in ("unsigned", "ed25519", "p256"):
                    ns = f"{reg.host}/r{n}-{mode}"
                    key = f'signing_key = "{keys[mode][0]}"\n' if mode != "unsigned" else ""
                    (root / "envbuild.toml").write_text(
                        config + f'[publish]\nregistry = "{ns}"\n{key}'
                    )
                    for f in (root / "dist").glob("*.intoto.json"):
                        f.unlink()  # sign anew for this repository
                    row = rows.setdefault(mode, {})
                    row.setdefault("publish", []).append(
                        _timed([sys.executable, "-m", "doit", "publish", "env=ml"], cwd=root)
                    )
                    image = json.loads((root / "build/state/ml.publish.json").read_text())["image"]
                    verify = ["--verify-key", str(keys[mode][1])] if mode != "unsigned" else []
                    pull = [str(ENVBUILD), "-q", "pull", f"{ns}/ml@{image}",
                            "--prefix", str(tmp / f"pulled-{n}-{mode}"), *verify]  # fmt: skip
                    row.setdefault("pull", []).append(_timed(pull))
                    row.setdefault("pull again", []).append(_timed(pull))
                    shutil.rmtree(tmp / f".pulled-{n}-{mode}.pulls")
                    (tmp / f"pulled-{n}-{mode}").unlink()
                to = f"docker://{reg.host}/r{n}-skopeo/ml:x"
                peer = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        f"oci-archive:{archive}", to]  # fmt: skip
                # a fresh HOME: skopeo's blob-info cache would mount the blobs from the
                # repositories above instead of uploading them (root's is not under HOME)
                home = {**os.environ, "HOME": str(tmp / f"skopeo-home-{n}")}
                rows.setdefault("skopeo copy (peer)", {}).setdefault("publish", []).append(
                    _timed(peer, env=home)
                )
                dest = tmp / f"tar-{n}"
                dest.mkdir()
                floor = ["tar", "-x", "--zstd", "-f", str(tarball), "-C", str(dest)]
                rows.setdefault("tar -x (floor)", {}).setdefault("pull", []).append(_timed(floor))
                shutil.rmtree(dest)
        print(f"ml: image {archive.stat().st_size / 1e6:.0f} MB, tarball "
              f"{tarball.stat().st_size / 1e6:.0f} MB; median of {rounds} (min-max), seconds; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
        print(f"{'':22}{'publish':>20}{'pull':>20}{'pull again':>20}")
        for mode, cols in rows.items():
            cells = []
            for col in ("publish", "pull", "pull again"):
                v = cols.get(col)
                cells.append(f"{median(v):7.2f} ({min(v):.2f}-{max(v):.2f})" if v else "-")
            print(f"{mode:22}" + "".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main()
