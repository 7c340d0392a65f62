"""The publish stage: push the current build's image, tarball and SBOM to the ``[publish]``
registry (:mod:`envbuild.deliver.release`); runs whenever asked (it asks the registry, HEAD
requests only when all is there). Its record is ``build/state/<name>.publish.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envbuild.layout import state_file
from envbuild.project import Project
from envbuild.records import PublishRecord
from envbuild.stages.registry import Stage, register

if TYPE_CHECKING:
    from envbuild.recipe.model import Recipe


def publish(project: Project, recipe: Recipe, name: str) -> None:
    """Publish and print what moved (under its own mutex and the build mutex: a nightly or
    rollback switching meanwhile would otherwise be raced, this build's marker read before,
    another build's image archive after)."""
    from envbuild.deliver import release as publish_mod
    from envbuild.stages.pack import pack_is_current

    done = publish_mod.publish_project(project, recipe, pack_is_current)
    print(publish_mod.summary(done))


def without_registry(project: Project, recipe: Recipe, name: str) -> None:
    """Without ``[publish] registry``, say so (ConfigError) before waiting for any lock."""
    from envbuild.deliver import release as publish_mod
    from envbuild.stages.pack import pack_is_current

    if not project.publish_registry:
        publish_mod.publish_project(project, recipe, pack_is_current)


def _after(project: Project) -> tuple[str, ...]:
    # without [publish] the action says so at once, before building anything
    return ("docker:{name}",) if project.publish_registry else ()


STAGE = register(
    Stage(
        name="publish",
        doc="push image, tarball and SBOM to the [publish] registry; tags :current, :<lock>, "
        ":<date>",
        run=publish,
        after=_after,
        record=lambda project, name: state_file(project, name, "publish"),
        record_type=PublishRecord,
        precheck=without_registry,
        hold=("own", "five"),
        column=False,
    )
)
