"""The one registry of stages: each stage is a :class:`Stage`, defined once, in its own module.

A stage module (``envbuild/stages/<name>.py``) declares everything about its stage in one
``Stage(...)``: the doit task graph (:mod:`envbuild.graph.tasks`), the executors
(:mod:`envbuild.graph.actions`, :mod:`envbuild.commands.stages`), the up-to-date checks and
``doit status`` are derived from the registry, so adding a stage touches that module only
(and :data:`BUILTIN`, the order of the built-in ones). Loading the registry imports the stage
modules, which import only the standard library and light floors at module level (the no-op
path stays free of conda-lock, pydantic and py-rattler); what a stage runs is imported when it
runs. ``tests/unit/test_architecture.py`` checks one definition per stage. A test adds a stage
for its own duration with :func:`temporarily`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from envbuild.project import Project
    from envbuild.recipe.model import Recipe
    from envbuild.records import Record

# the built-in stages, in the order doit lists and runs them; each is envbuild/stages/<name>.py
BUILTIN = ("lock", "verify", "build", "smoke", "pack", "docker", "publish", "export")

Hold = Literal["own", "five"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of an environment: what it makes, from what, when it is current, what it runs.

    * ``name``: the doit task group (``<name>:<environment>``) and the action's name;
    * ``doc``: one line for ``doit list``;
    * ``after``: the tasks run first, ``"{name}"`` standing for the environment
      (``("lock:{name}",)``), or a function of the project giving them;
    * ``target``: the file it makes for environment ``name`` (doit's ``targets``), or None;
    * ``record``: where its record of environment ``name`` is kept (a JSON file), or None;
    * ``record_type``: the class of that record (a :class:`envbuild.records.Record`, whose
      fields are the file's keys), or None;
    * ``inputs``: the fingerprint of the recipe keys it reads (sha256 hex; see
      :mod:`envbuild.stages.inputs`), or None;
    * ``is_current``: ``(project root, name) -> bool``, doit's up-to-date check; reads small
      records only (no conda-lock, pydantic or py-rattler). None: the stage runs whenever asked;
    * ``run``: ``(project, recipe, name, *variables) -> None``, raising EnvBuildError for
      anything the user must fix; or ``"module:function"`` naming it, imported when it runs;
    * ``hold``: the mutexes it runs under, in order: ``"own"`` (this stage of this
      environment, one process at a time), ``"five"`` (the environment's build mutex, which
      guards its five published artifacts; a switch by another process while waiting is
      recovered first, and the stage is skipped if it is then current);
    * ``precheck``: ``(project, recipe, name)``, run before any mutex is waited for;
    * ``variables``: doit command-line variables passed to ``run`` (a given one makes the
      task always run: ``update=`` of lock);
    * ``clean``: ``doit clean <name>:<environment>`` removes what it made
      (:mod:`envbuild.commands.clean`);
    * ``shown``: its run is one line with its duration (:mod:`envbuild.util.progress`);
    * ``warm``: start the py-rattler worker while the stage's modules import; returns whether
      that call draws progress bars;
    * ``column``: ``doit status`` shows it as a column of its own, "current" or "-" (the
      built-in ones have richer columns there).
    """

    name: str
    doc: str
    run: Callable[..., None] | str
    after: tuple[str, ...] | Callable[[Project], tuple[str, ...]] = ()
    target: Callable[[Project, str], Path] | None = None
    record: Callable[[Project, str], Path] | None = None
    record_type: type[Record] | None = None
    inputs: Callable[[Recipe], str] | None = None
    is_current: Callable[[Path, str], bool] | None = None
    hold: tuple[Hold, ...] = ()
    precheck: Callable[[Project, Recipe, str], None] | None = None
    variables: tuple[str, ...] = ()
    clean: bool = False
    shown: bool = True
    warm: Callable[[], bool] | None = None
    column: bool = True

    def runner(self) -> Callable[..., None]:
        """``run``, imported now if it is named by ``"module:function"``."""
        if callable(self.run):
            return self.run
        module, _, function = self.run.partition(":")
        found: Callable[..., None] = getattr(importlib.import_module(module), function)
        return found

    def after_for(self, project: Project, name: str) -> list[str]:
        """The doit ``task_dep`` of this stage for environment ``name``."""
        after = self.after(project) if callable(self.after) else self.after
        return [a.format(name=name) for a in after]


_REGISTRY: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add ``stage``; raises ValueError if a stage of that name is registered already."""
    if stage.name in _REGISTRY:
        msg = f"a stage named {stage.name!r} is registered already"
        raise ValueError(msg)
    _REGISTRY[stage.name] = stage
    return stage


def _load_builtin() -> None:
    for name in BUILTIN:
        if name not in _REGISTRY:
            # __import__, not importlib.import_module: `python -X importtime` (how the tests
            # check that the no-op path stays light) sees only the former
            __import__(f"envbuild.stages.{name}")


def stages() -> tuple[Stage, ...]:
    """Every registered stage: the built-in ones in :data:`BUILTIN` order, then the others."""
    _load_builtin()
    return (
        *(_REGISTRY[n] for n in BUILTIN),
        *(s for n, s in _REGISTRY.items() if n not in BUILTIN),
    )


def get(name: str) -> Stage:
    """The stage ``name``; raises KeyError naming the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        msg = f"no stage named {name!r} (known: {', '.join(_REGISTRY)})"
        raise KeyError(msg)
    return _REGISTRY[name]


def is_stage(name: str) -> bool:
    _load_builtin()
    return name in _REGISTRY


@contextlib.contextmanager
def temporarily(stage: Stage) -> Iterator[Stage]:
    """``stage`` registered for the duration of the ``with`` block (for tests)."""
    _load_builtin()
    register(stage)
    try:
        yield stage
    finally:
        del _REGISTRY[stage.name]
