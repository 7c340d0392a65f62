"""Smoke stage: import modules and run commands with the environment's own interpreter.

Isolated from the caller: Python runs with ``-I`` (no PYTHONPATH, no user site-packages, no
current directory on sys.path) and commands get a PATH of the prefix's ``bin`` plus the system
directories only, with PYTHON* variables removed.
"""

from __future__ import annotations

import keyword
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from envbuild.errors import SmokeError
from envbuild.recipe.model import Smoke
from envbuild.recipe.validate import display
from envbuild.records import PASSED, SmokeRecord, StageStamp
from envbuild.util import proc

log = logging.getLogger("envbuild")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
_KEEP_ENV = ("HOME", "LANG", "LC_ALL", "TERM", "TZ", "USER", "LOGNAME")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One smoke check: ``kind`` is ``import`` or ``command``; ``seconds`` is wall time."""

    kind: str
    target: str
    returncode: int
    seconds: float
    stderr: str
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def activated_env(prefix: Path, variables: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """The environment variables of a shell with ``prefix`` activated and nothing else, plus
    the recipe's ``variables`` (environment.yml's ``variables:``)."""
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env.update(
        PATH=f"{prefix}/bin:{SYSTEM_PATH}",
        CONDA_PREFIX=str(prefix),
        CONDA_DEFAULT_ENV=str(prefix),
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(variables)
    return env


# Imports every module named on the command line in one interpreter, reporting each one's
# start and success on stdout, so that a failure or crash still names its module.
_IMPORT_ALL = """
import importlib, sys, time
for m in sys.argv[1:]:
    t = time.perf_counter()
    importlib.import_module(m)
    print("\\x1eenvbuild-ok", m, round(time.perf_counter() - t, 3), flush=True)
"""
_OK = "\x1eenvbuild-ok "
# One module, named as data (argv), never pasted into the source
_IMPORT_ONE = "import importlib, sys; importlib.import_module(sys.argv[1])"


def is_module_name(name: str) -> bool:
    """Whether ``name`` is a dotted Python module name: each part an identifier
    (``str.isidentifier``) and not a keyword (the grammar of ``import a.b.c``,
    https://docs.python.org/3/reference/simple_stmts.html#the-import-statement)."""
    parts = name.split(".")
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in parts)


def plan(smoke: Smoke, prefix: Path) -> list[tuple[str, str, list[str]]]:
    """(kind, target, argv) for each check, imports first (pure). Each import alone in an
    isolated interpreter (-I: not the caller's paths; -B: no bytecode written into the
    prefix), the module's name an argument of a fixed script, never part of its source;
    :func:`run_checks` first tries them all in one. Raises SmokeError for an import that is
    not a module name (:func:`is_module_name`)."""
    python = str(prefix / "bin" / "python")
    bad = [m for m in smoke.imports if not is_module_name(m)]
    if bad:
        msg = f"smoke imports {[*bad]!r}: not Python module names; nothing was run"
        raise SmokeError(msg)
    checks = [("import", m, [python, "-I", "-B", "-c", _IMPORT_ONE, m]) for m in smoke.imports]
    checks += [("command", c, ["/bin/sh", "-c", c]) for c in smoke.commands]
    return checks


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    try:
        r = proc.run(argv, cwd=cwd, env=env, timeout=timeout, check=False)
    except proc.ProcessError as e:
        return 124, "", str(e)
    return r.returncode, r.stdout, r.stderr


def _imports_at_once(
    smoke: Smoke, prefix: Path, cwd: Path, env: dict[str, str], timeout: float
) -> dict[str, float]:
    """module -> seconds for the imports that succeeded in one shared isolated interpreter
    (all of them, unless one failed or crashed)."""
    if not smoke.imports:
        return {}
    argv = [str(prefix / "bin" / "python"), "-I", "-B", "-c", _IMPORT_ALL, *smoke.imports]
    _, out, _ = _run(argv, cwd, env, timeout)
    done = {}
    for line in out.split("\n"):  # not splitlines(): it splits at the \x1e marker too
        if line.startswith(_OK):
            module, seconds = line[len(_OK) :].rsplit(" ", 1)
            done[module] = float(seconds)
    return done


def run_checks(
    smoke: Smoke,
    prefix: Path,
    *,
    variables: tuple[tuple[str, str], ...] = (),
    timeout: float = 600,
) -> list[CheckResult]:
    """Run every check of ``smoke`` in ``prefix`` (each in a fresh empty working directory).

    Imports run together in one isolated interpreter; only if one fails are the remaining
    ones run each alone, so a failure still names its module, exit code and stderr.
    Output: one CheckResult per check, in plan order (an import that passed in the shared
    interpreter has its own import time and exit code 0). Never raises for a failing check;
    raises SmokeError, running nothing, for an import that is not a module name.
    """
    env = activated_env(prefix, variables)
    checks = plan(smoke, prefix)  # names checked before anything runs
    results = []
    with tempfile.TemporaryDirectory(prefix="envbuild-smoke-") as tmp:
        cwd = Path(tmp)
        passed = _imports_at_once(smoke, prefix, cwd, env, timeout)
        for kind, target, argv in checks:
            if kind == "import" and target in passed:
                results.append(CheckResult(kind, target, 0, passed[target], ""))
                continue
            start = time.monotonic()
            code, out, err = _run(argv, cwd, env, timeout)
            results.append(
                CheckResult(
                    kind, target, code, round(time.monotonic() - start, 3), err[-4000:], out[-4000:]
                )
            )
    return results


def failure_message(name: str, prefix: Path, results: list[CheckResult]) -> str:
    """A message listing each failed check with its exit code and stderr (indented)."""
    lines = [f"smoke checks failed for environment '{name}' ({display(prefix)}):"]
    for r in results:
        if r.ok:
            continue
        what = f"import {r.target}" if r.kind == "import" else f"command `{r.target}`"
        lines.append(f"  {what}: {proc.describe_exit(r.returncode)}")
        lines.extend("      " + ln for ln in (r.stderr.strip() or "(no stderr)").splitlines()[-15:])
    return "\n".join(lines)


def smoke_env(
    name: str,
    smoke: Smoke,
    prefix: Path,
    report: Path | None = None,
    build_id: str = "",
    variables: tuple[tuple[str, str], ...] = (),
    stamp: StageStamp | None = None,
    kernel_spec: str = "",
) -> list[CheckResult]:
    """Run the smoke checks; on success write ``report`` (:class:`envbuild.records.SmokeRecord`)
    atomically, with ``stamp`` (what the checks were made from: :mod:`envbuild.stages.inputs`)
    and ``kernel_spec``.

    Raises SmokeError naming each failed module/command, its exit code and stderr; the report
    is then not written (so later stages see the checks as not passed).
    """
    results = run_checks(smoke, prefix, variables=variables)
    for r in results:
        last = r.stdout.strip().splitlines()[-1:] if r.stdout.strip() else []
        log.info(
            "smoke %s: %s %s %s (%.2f s)%s",
            name,
            "ok" if r.ok else "FAILED",
            r.kind,
            r.target if len(r.target) < 60 else r.target[:57] + "...",
            r.seconds,
            f": {last[0]}" if last else "",
        )
    if not all(r.ok for r in results):
        raise SmokeError(failure_message(name, prefix, results))
    if report is not None:
        write_report(report, name, build_id, results, stamp, kernel_spec)
    return results


def write_report(
    report: Path,
    name: str,
    build_id: str,
    results: list[CheckResult],
    stamp: StageStamp | None = None,
    kernel_spec: str = "",
) -> None:
    """Record (:class:`envbuild.records.SmokeRecord`, atomically) that build ``build_id`` of
    ``name`` passed ``results`` (``stamp``: what the checks were made from; ``kernel_spec``:
    the kernelspec registered with it, "" if none)."""
    SmokeRecord(
        recipe=name,
        build_id=build_id,
        status=PASSED,
        checks=[asdict(r) for r in results],
        inputs=stamp.inputs if stamp else "",
        sources=dict(stamp.sources) if stamp else {},
        kernel_spec=kernel_spec,
    ).save(report)
