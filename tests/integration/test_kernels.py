"""Issue 11: a recipe may ask for a Jupyter kernel. It is registered after a build passed its
smoke checks, runs the environment's stable path (so rebuilds and rollbacks keep it working),
starts and executes code through jupyter_client, and gc removes it with its recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import Project

NOTEBOOK = """\
dependencies: ['python 3.11.*', ipykernel, python-dateutil]
smoke: {imports: [ipykernel, dateutil]}
jupyter: {kernel: true, display_name: "Python (nb)"}
"""


def _execute(kernel: str, code: str) -> str:
    """Start ``kernel`` with jupyter_client, run ``code``, return its stdout, shut it down."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel, startup_timeout=120)
    try:
        msg_id = kc.execute(code)
        out = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            if msg["msg_type"] == "error":
                out.append("ERROR " + msg["content"]["evalue"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.slow
def test_kernel_registered_started_kept_across_rebuilds_and_removed_by_gc(
    make_project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jupyter = tmp_path / "jupyter"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(jupyter))  # for doit below and jupyter_client
    p: Project = make_project(recipes={"nb": NOTEBOOK})
    p.doit("smoke", "env=nb")
    spec_file = jupyter / "kernels" / "envbuild-nb" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["argv"][0] == str(p.root / "envs" / "nb" / "bin" / "python")  # the stable path
    assert spec["display_name"] == "Python (nb)"
    out = _execute("envbuild-nb", "import sys, dateutil; print(sys.prefix, dateutil.__name__)")
    assert out == f"{p.root / 'envs' / 'nb'} dateutil\n"
    # a rebuild switches envs/nb to a new build: the same kernel runs it, unregistered nothing
    before = (p.root / "envs" / "nb").resolve()
    p.doit("--always-execute", "build:nb")
    assert (p.root / "envs" / "nb").resolve() != before
    assert "dateutil" in _execute("envbuild-nb", "import dateutil; print(dateutil.__name__)")
    # the recipe goes away: gc unregisters its kernel (and leaves other kernels alone)
    other = jupyter / "kernels" / "someone-else"
    other.mkdir(parents=True)
    (other / "kernel.json").write_text(
        '{"argv": ["python"], "display_name": "x", "language": "python"}'
    )
    (p.root / "recipes" / "nb.yml").unlink()
    gc = p.doit("gc")
    assert "removed Jupyter kernel envbuild-nb" in gc.stdout
    assert not spec_file.parent.exists() and other.exists()
