"""The package's layout rules (docs/explanation/architecture.md), checked with the standard library's ast.

Each module belongs to a layer; it may import modules of its own layer's group and of the
layers below, never above. Function-local imports and ``if TYPE_CHECKING:`` imports count
too: a cycle hidden inside a function is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent.parent / "envbuild"

# bottom to top; a group may import itself and every group listed before it, except that
# groups on the same rank (a tuple) may not import each other
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("util",),
    ("channels",),
    ("project",),
    ("records",),
    ("layout",),
    ("recipe",),
    ("prefix",),
    ("rattler",),
    ("lock",),
    ("install",),
    ("ship", "offline"),
    ("deliver",),
    ("stages",),
    ("graph",),
    ("ops",),
    ("commands",),
    ("dodo",),
    ("cli", "__main__"),
]
RANK = {group: i for i, groups in enumerate(LAYERS) for group in groups}
MAX_TOP_LEVEL_MODULES = 12
MAX_LINES = 400


def group_of(module: str) -> str:
    """``envbuild.install.build`` -> ``install``; ``envbuild.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported envbuild module) for every import in ``path``, nested ones included."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("envbuild")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "envbuild":  # a module, or a name of envbuild/__init__.py
                found += [
                    (node.lineno, f"envbuild.{a.name}" if _is_module(a.name) else "envbuild")
                    for a in node.names
                ]
            elif node.module.startswith("envbuild."):
                found.append((node.lineno, node.module))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_group_has_a_layer() -> None:
    groups = {group_of(module_name(p)) for p in MODULES} - {"__init__"}
    assert groups <= set(RANK), (
        f"add {sorted(groups - set(RANK))} to LAYERS and docs/explanation/architecture.md"
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_only(path: Path) -> None:
    here = group_of(module_name(path))
    if here == "__init__":
        return
    bad = []
    for line, target in imports(path):
        there = group_of(target)
        if there == here or there == "__init__":
            continue
        if RANK[there] >= RANK[here]:
            bad.append(f"{path.relative_to(PACKAGE)}:{line}: {here} imports {target} ({there})")
    assert not bad, "\n".join(bad)


def test_no_private_names_across_modules() -> None:
    bad = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("envbuild"):
                bad += [
                    f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not bad, "\n".join(bad)


def test_few_modules_on_top_and_every_module_small() -> None:
    top = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, sorted(top)
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in MODULES
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_every_action_names_a_function() -> None:
    """The table of executors (graph/actions.py) and every registered stage: each names a
    function that exists."""
    from envbuild.graph import actions
    from envbuild.stages import registry

    for name in [*actions.EXECUTORS, *(s.name for s in registry.stages())]:
        assert callable(actions.executor(name)), name
    for stage in registry.stages():
        assert callable(stage.runner()), stage.name
    with pytest.raises(KeyError, match="no action named 'buidl'"):
        actions.check("buidl")


def stage_definitions(paths: list[Path], base: Path = PACKAGE) -> dict[str, list[str]]:
    """stage name -> the modules (relative to ``base``) with a ``Stage(name=...)`` call."""
    found: dict[str, list[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if callee != "Stage":
                continue
            name = next((k.value for k in node.keywords if k.arg == "name"), None)
            label = name.value if isinstance(name, ast.Constant) else "<not a literal>"
            found.setdefault(str(label), []).append(str(path.relative_to(base)))
    return found


def misplaced_stages(found: dict[str, list[str]]) -> list[str]:
    """Each stage must be defined once, in ``stages/<its name>.py``."""
    return [
        f"stage {name!r} defined in {', '.join(homes)} (expected once, in stages/{name}.py)"
        for name, homes in sorted(found.items())
        if homes != [f"stages/{name}.py"]
    ]


def test_one_definition_per_stage() -> None:
    """Every stage is one ``Stage(...)`` in its own module, ``envbuild/stages/<name>.py``,
    and the registry's built-in ones are exactly those."""
    from envbuild.stages import registry

    found = stage_definitions(MODULES)
    assert misplaced_stages(found) == []
    assert sorted(found) == sorted(registry.BUILTIN)
    assert [s.name for s in registry.stages()] == list(registry.BUILTIN)


def test_the_stage_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "pack.py").write_text(
        'A = Stage(name="pack", doc="", run=f)\nB = registry.Stage(name="smoke", run=f)\n'
    )
    (tmp_path / "graph.py").write_text('C = Stage(name="pack", doc="", run=f)\n')
    found = stage_definitions(sorted(tmp_path.rglob("*.py")), tmp_path)
    assert found == {"pack": ["graph.py", "stages/pack.py"], "smoke": ["stages/pack.py"]}
    assert len(misplaced_stages(found)) == 2


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule above can fail: an ``install`` module importing ``graph`` is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from envbuild.graph import tasks\n")
    assert imports(bad) == [(2, "envbuild.graph")]
    assert RANK[group_of("envbuild.graph")] > RANK[group_of("envbuild.install.build")]


# One reader per format (issue 29): each pattern may appear in the listed modules only. The
# patterns are read from the source text (comments and docstrings included, so a pattern
# quoted in prose must be reworded).
SINGLE_HOMES: dict[str, tuple[str, set[str]]] = {
    "conda-meta records read": (  # prefix/meta.py; the writer (rattler/records.py) and
        # doctor.py (for MatchSpec.matches) also build py-rattler's PrefixRecord
        r'"conda-meta"\)\.glob\(|glob\(\s*"conda-meta/|PrefixRecord\.from_path',
        {"prefix/meta.py", "prefix/doctor.py", "rattler/records.py"},
    ),
    "media type literal": (r"[\"']application/vnd\.", {"util/mediatypes.py"}),
    "image reference or digest pattern": (
        r"\[0-9a-f\]\{64\}|\[a-f0-9\]\{64\}|\.partition\(\"@\"\)",
        {"util/reference.py", "rattler/protocol.py", "offline/pins.py"},  # the last two: not refs
    ),
    "name selector": (r"env\b[^\n]*\.split\(\",\"\)", {"project.py"}),
    "py-rattler parse guard": (r"except \(KeyboardInterrupt, SystemExit\)", {"util/guard.py"}),
}


def homes_of(pattern: str, paths: list[Path], base: Path = PACKAGE) -> set[str]:
    """The modules (relative to ``base``) whose text matches ``pattern``."""
    import re

    rx = re.compile(pattern)
    return {str(p.relative_to(base)) for p in paths if rx.search(p.read_text())}


@pytest.mark.parametrize("what", SINGLE_HOMES)
def test_one_reader_per_format(what: str) -> None:
    pattern, allowed = SINGLE_HOMES[what]
    found = homes_of(pattern, MODULES)
    assert found == allowed, f"{what}: found in {sorted(found - allowed)}, expected only {allowed}"


def test_the_single_home_check_can_fail(tmp_path: Path) -> None:
    """A second definition of a media type, a second guard, a second records reader, a
    digest regex and a second selector are each seen."""
    twin = tmp_path / "twin.py"
    twin.write_text(
        'MANIFEST = "application/vnd.oci.image.manifest.v1+json"\n'
        "try:\n    pass\nexcept (KeyboardInterrupt, SystemExit):\n    raise\n"
        'metas = sorted((prefix / "conda-meta").glob("*.json"))\n'
        'DIGEST = re.compile(r"sha256:[0-9a-f]{64}")\n'
        'names = [e for e in env.split(",") if e]\n'
    )
    for what, (pattern, _) in SINGLE_HOMES.items():
        assert homes_of(pattern, [twin], tmp_path) == {"twin.py"}, what


TESTS = Path(__file__).resolve().parent.parent


def unexplained_sleeps(root: Path) -> list[str]:
    """``path:line`` (relative to ``root``) of every call of a sleep in the ``*.py`` files under
    ``root`` without a comment after it on the same line naming what it waits for."""
    import re

    found = []
    for path in sorted(root.rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            call = re.search(r"\bsleep\(", line)
            if call and not re.search(r"#\s*\w", line[call.end() :]):
                found.append(f"{path.relative_to(root)}:{n}")
    return found


def test_every_sleep_in_the_tests_says_what_it_waits_for() -> None:
    """Tests do not sleep to let time pass (inject the clock: ``night_cutoff(now=...)``,
    ``new_build_id(now=...)``); a sleep that waits for something else names it."""
    assert unexplained_sleeps(TESTS) == []


def test_the_sleep_check_can_fail(tmp_path: Path) -> None:
    call = "time.sleep" + "(1)"  # split, so this line is no call itself
    (tmp_path / "t.py").write_text(f"{call}\n{call}  # the registry opening its port\n{call}  #\n")
    assert unexplained_sleeps(tmp_path) == ["t.py:1", "t.py:3"]


def kill_point_calls(paths: list[Path]) -> list[tuple[str, str | None]]:
    """(module, point) for every ``kill_points.reached(...)`` call in ``paths``; point is None
    when the argument is not a string literal."""
    out: list[tuple[str, str | None]] = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "reached"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "kill_points"
            ):
                arg = node.args[0] if node.args else None
                literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                out.append((path.name, arg.value if literal else None))  # type: ignore[union-attr]
    return out


def test_kill_points_are_registered_reached_and_armed() -> None:
    """Every kill point called in the package is a literal registered in util/kill_points.py;
    every registered point is reached somewhere and armed by an integration test (named as a
    string there, or one of the switch's steps, which test_promotion arms one by one)."""
    from envbuild.ops.promotion import STEPS
    from envbuild.util.kill_points import POINTS

    calls = kill_point_calls(MODULES)
    assert [c for c in calls if c[1] not in POINTS] == []
    assert set(POINTS) == {point for _, point in calls}
    text = "\n".join(p.read_text() for p in (TESTS / "integration").glob("*.py"))
    unarmed = {p for p in POINTS if f'"{p}"' not in text and p not in STEPS}
    assert unarmed == set(), f"kill points no test arms: {sorted(unarmed)}"


def test_the_kill_point_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text('kill_points.reached("journal")\nkill_points.reached(name)\n')
    assert kill_point_calls([bad]) == [("m.py", "journal"), ("m.py", None)]


# Typed records (issue 29): the keys of envbuild's JSON records are spelled only in their
# classes (envbuild/records/); everywhere else a record is a typed object. The distinctive keys:
RECORD_KEYS = (
    "build_id", "lock_sha256", "lockfile_sha256", "tarball_sha256", "template_sha256",
    "inputs", "sources", "kernel_spec", "unpacked_size", "smoke_imports", "dist_tarball",
    "registry_image", "reproduced", "known", "tags_moved", "signing_keyid",
)  # fmt: skip
RECORDS_HOME = "records"


def record_key_literals(paths: list[Path], base: Path = PACKAGE) -> list[str]:
    """``path:line: "key"`` for each record key written as a string literal (either quote)
    in ``paths`` outside the records package."""
    import re

    keys = "|".join(RECORD_KEYS)
    rx = re.compile(rf"""["']({keys})["']""")
    found = []
    for path in paths:
        rel = path.relative_to(base)
        if rel.parts[0] == RECORDS_HOME:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            found += [f"{rel}:{n}: {m.group(0)}" for m in rx.finditer(line)]
    return found


def test_no_record_key_literal_outside_the_records() -> None:
    assert record_key_literals(MODULES) == []


def test_the_record_key_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / RECORDS_HOME).mkdir()
    bad = tmp_path / "ops" / "bad.py"
    bad.write_text("x = data.get('build_id')\ny = {\"inputs\": 1, \"sources\": 2}\nz = 'status'\n")
    home = tmp_path / RECORDS_HOME / "ok.py"
    home.write_text('KEY = "build_id"\n')
    assert record_key_literals([bad, home], tmp_path) == [
        "ops/bad.py:1: 'build_id'",
        'ops/bad.py:2: "inputs"',
        'ops/bad.py:2: "sources"',
    ]
