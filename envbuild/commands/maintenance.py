"""Executors of the commands that are not stages (they always run when asked): ``relock``,
``ci_merge``, ``doctor``, ``adopt``, ``nightly_env``, ``nightly_report``, ``rollback``, ``gc``,
``status``, ``schedule``. Same contract as :mod:`envbuild.commands.stages`:
``(project root, arguments as strings)`` -> side effect, EnvBuildError for anything the user
must fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from envbuild.errors import EnvBuildError, RecordError
from envbuild.install import conda_envs
from envbuild.layout import nightly_result, project_at, state_file
from envbuild.lock import diff as lockdiff
from envbuild.lock import solve as lock_mod
from envbuild.ops import promotion
from envbuild.project import Project, load_project
from envbuild.recipe.validate import display
from envbuild.records import NightlyResult, PublishRecord
from envbuild.ship import kernels
from envbuild.stages.common import exclusive, load
from envbuild.stages.lock import write_lock_stamp
from envbuild.stages.pack import tarball
from envbuild.util.fs import atomic_write, remove_tree


def relock(root: str, name: str) -> None:
    """A nightly's lock step alone: solve ``name`` afresh for every platform it names (the
    current lock never constrains it; cutoff as the nightly's) and publish the lockfile,
    explicit files and diff reports only if the packages changed. Prints one line."""
    from envbuild.ops.nightly import night_cutoff, same_packages

    project, recipe = load(root, name)
    with exclusive(project, name, "lock"):
        path = project.lockfile(name)
        old = lock_mod.read_lockfile(path) if path.exists() else None
        new = lock_mod.plan_lock(recipe, project, cutoff=night_cutoff(recipe, project))
        if same_packages(old, new):
            print(f"{name}: unchanged")
            return
        result = lock_mod.publish_lock(recipe, project, new, old)
        write_lock_stamp(project, name, recipe.sources, lock_mod.fingerprint(recipe, project))
    print(f"{name}: relocked ({lockdiff.summary(list(result.changes))})")


def ci_merge(root: str, artifacts: str, env: str = "") -> None:
    """The scheduled workflow's merge step (see :mod:`envbuild.ops.ci`): print the outcome per
    recipe; the pull-request body goes to reports/nightly-pr.md, the outcome as a page to
    reports/index.html (:mod:`envbuild.ops.nightly_page`)."""
    from envbuild.ops import ci

    project = load_project(Path(root))
    recipes = [load(root, n)[1] for n in project.selected(env)]
    from envbuild.ops import nightly_page

    merged = ci.merge(project, recipes, Path(root) / artifacts)
    for name, what in merged.outcome.items():
        print(f"{name}: {what}")
    print(f"wrote {display(merged.body)}")
    diffs = Path(root) / artifacts / ci.LOCKS_ARTIFACT / "reports"
    page = nightly_page.write_page(project, nightly_page.merged_results(merged.outcome, diffs))
    print(f"wrote {display(page)}")


def doctor_report_name(prefix: Path) -> str:
    """``<base name>-<8 hex of the path's sha256>.json``: two prefixes with one base name
    (``~/a/envs/py``, ``~/b/envs/py``) keep reports apart, one prefix keeps one report."""
    import hashlib

    digest = hashlib.sha256(os.fsencode(prefix.resolve())).hexdigest()[:8]
    return f"{prefix.name or 'root'}-{digest}.json"


def doctor(root: str, prefix: str, as_json: bool = False) -> None:
    """``doit doctor prefix=PATH [--json]``: examine any conda prefix; print a table (or
    JSON), write ``reports/doctor/<prefix name>-<path hash>.json``; EnvBuildError (non-zero
    exit) if there are findings."""
    from envbuild.prefix import doctor as doctor_mod
    from envbuild.prefix.findings import problems

    if not prefix:
        msg = "doit doctor needs the environment to examine: doit doctor prefix=PATH"
        raise EnvBuildError(msg)
    path = Path(prefix).expanduser().absolute()
    findings = doctor_mod.examine(path)
    project = load_project(Path(root))
    report = project.path("reports") / "doctor" / doctor_report_name(path)
    atomic_write(report, doctor_mod.to_json(path, findings))
    print(doctor_mod.to_json(path, findings) if as_json else doctor_mod.table(path, findings))
    bad = problems(findings)
    if bad:
        msg = f"{path}: {len(bad)} problem(s); details in {display(report)}"
        raise EnvBuildError(msg)


def nightly_env(root: str, name: str) -> None:
    """One recipe's nightly rebuild; the outcome (never an exception for an expected failure)
    goes to build/state/nightly/<name>.result.json for :func:`nightly_report`."""
    from envbuild.ops.nightly import nightly_recipe

    project = load_project(Path(root))
    try:
        _, recipe = load(root, name)
        result = nightly_recipe(recipe, project)
        if result.status == "promoted":
            kernels.register(project, recipe)  # stable path: a no-op rewrite if it existed
            conda_envs.register(project, name)
    except EnvBuildError as e:
        result = NightlyResult(recipe=name, status="failed", stage="recipe", error=str(e))
    result.save(nightly_result(project, name))


def nightly_report(root: str, env: str = "") -> None:
    """Write reports/nightly.md and .json and the page reports/index.html
    (:mod:`envbuild.ops.nightly_page`) from the selected recipes' results; raise (non-zero exit)
    if any environment failed. Reports that cannot be written are said in one line; the exit
    status is still the builds'."""
    from envbuild.ops.nightly import write_report

    project = load_project(Path(root))
    names = project.selected(env)
    results = []
    for name in names:
        try:
            found = NightlyResult.load(nightly_result(project, name))
            why = "no result (the run did not finish)"
        except RecordError as e:
            found, why = None, str(e)
        results.append(
            found or NightlyResult(recipe=name, status="failed", stage="nightly", error=why)
        )
    from envbuild.ops.nightly_page import write_page

    md = project.path("reports") / "nightly.md"
    try:  # the reports are a view: one that cannot be written does not change the exit status
        md, _ = write_report(project, results)
        print(md.read_text())
        print(f"wrote {display(write_page(project, results))}")
    except OSError as e:
        print(
            f"nightly: reports not written: {e.filename or display(md.parent)}: {e.strerror or e}"
        )
    failed = [r.recipe for r in results if r.status not in ("promoted", "proposed", "unchanged")]
    if failed:
        msg = (
            f"nightly failed for {', '.join(failed)}; see {display(md)} (a failed candidate "
            "changed nothing; a failed switch is finished by the next command)"
        )
        raise EnvBuildError(msg)


def rollback(root: str, name: str) -> None:
    project, recipe = load(root, name)
    build_id = promotion.rollback(project, recipe, tarball(project, name))
    print(f"{name}: now at build {build_id}")
    if project.publish_registry:  # moved inside the switch's journal
        record = PublishRecord.peek(state_file(project, name, "publish"))
        print(f"{record.repository if record else '?'}:current is "
              f"{record.image if record else '?'}")  # fmt: skip


def gc(root: str, dry_run: bool = False) -> None:
    """Remove (or with ``dry_run`` only list) what :func:`envbuild.ops.gc.plan` finds."""
    from envbuild.ops import gc as gc_mod

    project = load_project(Path(root))
    items = gc_mod.plan(project)
    print(gc_mod.table(items))
    if dry_run:
        print("dry run: nothing removed")
        return
    freed = gc_mod.collect(project, items)
    print(f"freed {freed / 1e6:.1f} MB")
    for directory in kernels.prune(project, _kernel_recipes(root, project)):
        print(f"removed Jupyter kernel {directory.name} (its recipe no longer asks for it)")
    for path in conda_envs.prune(project, set(project.recipe_names())):
        print(f"removed {path} from {conda_envs.environments_txt()}")


def _kernel_recipes(root: str, project: Project) -> set[str]:
    """Recipes that exist, load and ask for a Jupyter kernel."""
    wanted = set()
    for name in project.recipe_names():
        try:
            if load(root, name)[1].jupyter.kernel:
                wanted.add(name)
        except EnvBuildError:
            wanted.add(name)  # a recipe with an error keeps its kernel until it is fixed
    return wanted


def status(root: str, env: str = "", as_json: bool = False) -> None:
    """Print every selected environment's status (table, or JSON with ``as_json``)."""
    from envbuild.ops import status as status_mod

    project = project_at(Path(root))
    rows = [status_mod.env_status(project, name) for name in project.selected(env)]
    print(status_mod.to_json(rows) if as_json else status_mod.table(rows))


def schedule(root: str, env: str = "") -> None:
    from envbuild.ops import schedule as schedule_mod

    project = load_project(Path(root))
    names = project.selected(env)
    recipes = [load(root, n)[1] for n in names]
    for path in schedule_mod.write(project, recipes):
        print(f"wrote {display(path)}")


def _adopt_report(
    project_reports: Path, name: str, data: dict[str, object], changes: list[dict[str, str]]
) -> Path:
    """Write reports/<name>.adopt.json and .md; returns the .md path."""
    import json

    findings = data["findings"]
    assert isinstance(findings, list)
    md = [f"# Adopting {data['prefix']} as `{name}`", "",
          f"Specs taken from its {data['source']}; recipe: `{data['recipe']}`.", "",
          f"## What was wrong with it ({len(findings)} finding(s))", ""]  # fmt: skip
    if findings:
        md += ["| kind | package | path | detail |", "|---|---|---|---|"]
        md += [f"| {f['kind']} | {f['package']} | {f['path']} | {f['detail']} |" for f in findings]
    else:
        md.append("Nothing: the doctor found no problems.")
    if changes:
        md += ["", "## Rebuilt environment vs the old one", "",
               "| package | change | old | new |", "|---|---|---|---|"]  # fmt: skip
        md += [f"| {c['name']} | {c['change']} | {c['old']} | {c['new']} |" for c in changes]
    atomic_write(project_reports / f"{name}.adopt.json", json.dumps({**data, "changes": changes},
                                                                    indent=2))  # fmt: skip
    atomic_write(project_reports / f"{name}.adopt.md", "\n".join(md) + "\n")
    return project_reports / f"{name}.adopt.md"


def _lock_then_write(project: Project, recipe_path: Path, text: str) -> None:
    """Lock the recipe ``text`` from a staged copy, then write it to ``recipe_path``: a
    recipe already there (``force=1``) is replaced only once the new one locked, so a failed
    solve (or a kill) never loses it."""
    from dataclasses import replace

    from envbuild.recipe.load import load_recipe

    name = recipe_path.stem
    staged = project.path("state") / "adopt" / f"{name}.yml"
    atomic_write(staged, text)
    try:
        recipe = load_recipe(staged, project.platforms)
        recipe = replace(recipe, path=recipe_path, sources=(recipe_path,))
        with exclusive(project, name, "lock"):
            lock_mod.lock_recipe(recipe, project)
            atomic_write(recipe_path, text)
            write_lock_stamp(project, name, recipe.sources, lock_mod.fingerprint(recipe, project))
    finally:
        remove_tree(staged)


def adopt(root: str, prefix: str, name: str, force: str = "") -> None:
    """``doit adopt prefix=PATH name=NAME [force=1]``: examine the old environment, write
    recipes/NAME.yml from what was asked for, then lock, build and smoke-test it as
    ``doit lock/build/smoke env=NAME`` would, and report the old environment's findings and
    how the rebuilt one differs (reports/NAME.adopt.md/.json). Never writes to the old
    prefix; never overwrites a recipe unless ``force``. Raises EnvBuildError."""
    from dataclasses import asdict

    from envbuild.commands import stages
    from envbuild.prefix import adopt as adopt_mod
    from envbuild.prefix import doctor as doctor_mod
    from envbuild.recipe.model import NAME_RE, NAME_RULE, current_subdir

    if not prefix or not name:
        msg = "doit adopt needs the environment and a name: doit adopt prefix=PATH name=NAME"
        raise EnvBuildError(msg)
    if not NAME_RE.match(name):
        msg = f"name={name!r} is not a valid environment name ({NAME_RULE})"
        raise EnvBuildError(msg)
    project = load_project(Path(root))
    path = Path(prefix).expanduser().absolute()
    installed = doctor_mod.read_records(path)
    recipe_path = project.path("recipes") / f"{name}.yml"
    if recipe_path.exists() and force not in ("1", "true", "yes"):
        msg = f"{display(recipe_path)} exists; choose another name, or add force=1 to replace it"
        raise EnvBuildError(msg)
    findings = doctor_mod.examine(path)
    adoption = adopt_mod.plan(path, installed)
    text = adopt_mod.recipe_text(name, adoption, current_subdir(), path)
    _lock_then_write(project, recipe_path, text)
    print(f"wrote {display(recipe_path)} ({len(adoption.dependencies)} specs from its "
          f"{adoption.source}, {len(adoption.pypi_dependencies)} PyPI); "
          f"{len(findings)} finding(s) in the old environment")  # fmt: skip
    data: dict[str, object] = {
        "prefix": str(path),
        "recipe": display(recipe_path),
        "source": adoption.source,
        "adoption": asdict(adoption),
        "findings": [asdict(f) for f in findings],
    }
    report = _adopt_report(project.path("reports"), name, data, [])
    for step in ("build", "smoke"):
        stages.execute(step, root, name)
    rebuilt = project.env_prefix(name)
    new = doctor_mod.read_records(rebuilt)
    changes = adopt_mod.compare(
        installed,
        new,
        adopt_mod.pip_installed(path, installed),
        adopt_mod.pip_installed(rebuilt, new),
    )
    report = _adopt_report(project.path("reports"), name, data, changes)
    print(f"rebuilt {name} ({display(project.env_prefix(name))}); report: {display(report)}")
