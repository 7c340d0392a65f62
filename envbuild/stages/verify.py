"""The verify stage: compare ``envs/<name>`` with its lockfile; runs whenever asked.

Its record, ``reports/<name>.verify.json``, names the build it examined and whether it was
clean; a drifted build is not current for the build stage (:mod:`envbuild.stages.build`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envbuild.errors import VerifyError
from envbuild.layout import read_marker, verify_report
from envbuild.project import Project
from envbuild.records import VerifyReport
from envbuild.stages.registry import Stage, register

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe


def verify(project: Project, recipe: Recipe, name: str) -> None:
    """Compare envs/<name> with its lock; print a table, write reports/<name>.verify.json.
    Raises VerifyError if anything differs."""
    from envbuild.lock import solve as lock_mod
    from envbuild.prefix import verify as verify_mod
    from envbuild.recipe.model import current_subdir
    from envbuild.recipe.validate import display

    lockfile = lock_mod.read_lockfile(project.lockfile(name))
    prefix = project.env_prefix(name)
    info = read_marker(prefix)
    findings = verify_mod.verify_prefix(
        prefix, lockfile, current_subdir(), info.prefix if info else ""
    )
    print(f"{name}: {verify_mod.table(findings)}")
    report = verify_report(project, name)
    verify_mod.write_report(report, name, info.build_id if info else "", findings)
    if findings:
        kinds = sorted({f.kind for f in findings})
        msg = (
            f"environment '{name}' does not match {display(project.lockfile(name))}: "
            f"{len(findings)} finding(s) ({', '.join(kinds)}); details in "
            f"{display(report)}; `doit build env={name}` recreates it from the lock"
        )
        raise VerifyError(msg)


STAGE = register(
    Stage(
        name="verify",
        doc="compare each environment with its lockfile; fails on any drift",
        run=verify,
        record=verify_report,
        record_type=VerifyReport,
        shown=False,
        column=False,
    )
)
