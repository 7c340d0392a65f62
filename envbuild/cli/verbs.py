"""The table of ``envbuild`` verbs: each verb with its summary, whether it takes recipe NAMEs,
its other arguments and its options, declared once. The help (:mod:`envbuild.cli.help`), the
did-you-mean for an unknown verb, the shell completion (:mod:`envbuild.cli.completion`) and
the mapping onto doit's command line (:func:`to_doit`) are all generated from it, as pip's
``commands/__init__.py`` table of ``CommandInfo`` drives pip's
(https://github.com/pypa/pip/blob/main/src/pip/_internal/commands/__init__.py).

The grammar is ``envbuild VERB [NAME...] [--option [VALUE]]``. A ``task`` verb runs the doit
task of that name (:func:`envbuild.graph.factory.task_names` names them): NAMEs become
``env=NAME,NAME`` and each option becomes what the task reads, a command-line variable
(``--update numpy`` -> ``update=numpy``, ``--force`` -> ``force=1``) or a task parameter
passed as is (``--json``). ``doit <task> env=NAME`` is the make-style equivalent; the old
spellings (``key=value``, doit's own run options such as ``-n 2``) still pass through.
"""

from __future__ import annotations

from dataclasses import dataclass

from envbuild.errors import EnvBuildError
from envbuild.util.schema import did_you_mean


class UsageError(EnvBuildError):
    """The command line does not fit the grammar (exit status 2); the message starts with
    ``envbuild``."""


@dataclass(frozen=True, slots=True)
class Option:
    """One ``--flag``: ``metavar`` empty for a switch, else the value's name (``PKG``).
    ``doit`` says what doit gets: ``"update"`` -> ``update=VALUE`` (a switch: ``force=1``),
    empty -> the option as typed (a doit task parameter). ``complete`` is what shell
    completion offers for the value: ``"file"``, ``"dir"`` or nothing. ``required``: the verb
    cannot run without it (shown without brackets in the usage line)."""

    flag: str
    help: str
    metavar: str = ""
    doit: str = ""
    complete: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Verb:
    """One verb. ``kind``: ``"task"`` (a doit task of the project), ``"own"`` (envbuild's,
    needing no project) or ``"doit"`` (doit's own command, arguments passed through).
    ``names``: takes recipe NAMEs; ``args``: other positional arguments as shown in the
    usage line, with ``choices`` for completion, else ``args_help`` saying what they are;
    ``group``: its section in the help."""

    name: str
    summary: str
    group: str
    kind: str = "task"
    names: bool = False
    args: str = ""
    choices: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    args_help: str = ""

    def option(self, flag: str) -> Option | None:
        """The option spelled ``flag`` (``--update``), or None."""
        return next((o for o in self.options if o.flag == flag), None)


JSON = Option("--json", "print JSON instead of a table")
PREFIX = Option("--prefix", "the conda environment's directory", "PATH", "prefix", "dir", True)

# the help's sections, in order
GROUPS = {
    "start": "Start",
    "stages": "Stages, per environment (no NAME: every recipe)",
    "ops": "Operations",
    "conda": "Any conda environment",
    "doit": "doit's own commands (https://pydoit.org/cmd-other.html)",
}

VERBS: tuple[Verb, ...] = (
    Verb("init", "start a project in the current (empty) directory", "start", "own",
         options=(Option("--ci", "also write the scheduled GitHub workflow"),)),
    Verb("schema", "print the JSON Schema of recipes or envbuild.toml, for editors", "start",
         "own", args="recipe|config", choices=("recipe", "config"),
         options=(Option("--path", "print where the packaged file is instead"),)),
    Verb("completion", "print the shell completion script (eval it in your shell's rc file)",
         "start", "own", args="bash|zsh", choices=("bash", "zsh")),
    Verb("lock", "solve each recipe and write locks/NAME.conda-lock.yml", "stages", names=True,
         options=(Option("--update", "update only these packages (comma-separated); every "
                         "other locked package stays", "PKG[,PKG]", "update"),)),
    Verb("check", "list recipes whose lockfile is stale (no solve, no network); fails if any",
         "stages", names=True),
    Verb("build", "install exactly the locked packages into a fresh prefix; switch envs/NAME",
         "stages", names=True),
    Verb("smoke", "import the recipe's modules and run its smoke commands", "stages",
         names=True),
    Verb("verify", "compare the environment with its lockfile; fails on any finding",
         "stages", names=True),
    Verb("pack", "conda-pack into dist/NAME-PLATFORM.tar.zst and prove the tarball",
         "stages", names=True),
    Verb("docker", "render docker/NAME/ (and write the image where configured)", "stages",
         names=True),
    Verb("export", "write dist/NAME.environment.yml and the explicit files", "stages",
         names=True),
    Verb("publish", "push the current build to the [publish] registry", "stages",
         names=True),
    Verb("status", "one line per environment: lock, build, smoke, tarball, image, verify",
         "ops", names=True, options=(JSON,)),
    Verb("nightly", "fresh solve, new build, smoke + verify, promote if all pass; report",
         "ops", names=True),
    Verb("relock", "fresh solve of each recipe for all its platforms; write changed locks",
         "ops", names=True),
    Verb("ci_merge", "scheduled workflow: accept each new lock only if every platform built",
         "ops", names=True, options=(Option("--dir", "the directory the workflow downloaded "
                                            "its artifacts into", "DIR", complete="dir"),)),
    Verb("rollback", "switch each named environment back to its previous build", "ops",
         names=True),
    Verb("gc", "remove old builds, their tarballs and images, unreferenced cached packages",
         "ops", options=(Option("--dry-run", "only list what would be removed, with sizes"),)),
    Verb("schedule", "write the GitHub Actions, systemd and cron definitions of the nightly",
         "ops", names=True),
    Verb("offline_channel", "build the local file:// channel of the offline demo", "ops"),
    Verb("doctor", "examine any conda environment; fails on problems", "conda",
         options=(PREFIX, JSON)),
    Verb("adopt", "turn a conda environment into recipes/NAME.yml, rebuild it, report",
         "conda", options=(PREFIX,
                           Option("--name", "the recipe's name", "NAME", "name", required=True),
                           Option("--force", "write over an existing recipe", doit="force"))),
    Verb("pull", "put a published environment at PATH, checked (no project needed)", "conda",
         "own", args="[REF]", args_help="the published image, HOST/NAMESPACE/NAME[:TAG|"
         "@sha256:HEX]; none with --rollback", options=(
             Option("--prefix", "where the environment goes", "PATH", complete="dir",
                    required=True),
             Option("--rollback", "switch back to the previous environment (no REF)"),
             Option("--verify-key", "refuse unless signed by this public key (PEM)",
                    "PUB.pem", complete="file"),
             Option("--insecure", "allow plain http / bad TLS"),
             Option("--json", "print the record as JSON"))),
)  # fmt: skip

# doit's own commands: passed through unchanged; their summaries are doit's (help.py)
DOIT_VERBS = ("list", "info", "forget", "clean", "ignore", "dumpdb", "strace", "run", "help")
GLOBAL = (
    Option("--help", "this text; envbuild VERB --help: the verb's"),
    Option("--version", "print envbuild's version"),
    Option("--quiet", "no progress output (errors still show)"),
)
BY_NAME = {v.name: v for v in VERBS}
# the command-line variables the tasks read (doit's ``key=value``): the recipe NAMEs and each
# option that becomes one
VARIABLES = frozenset({"env", *(o.doit for v in VERBS for o in v.options if o.doit)})


def verb(name: str) -> Verb:
    """The verb called ``name``. Raises UsageError, with the closest verb, for any other."""
    if name in BY_NAME:
        return BY_NAME[name]
    if name in DOIT_VERBS:
        return Verb(name, "", "doit", "doit")
    choices = [*BY_NAME, *DOIT_VERBS]
    close = did_you_mean(name, choices)
    msg = f"envbuild: unknown command {name!r}{close}; `envbuild --help` lists them"
    raise UsageError(msg)


def to_doit(
    v: Verb,
    args: list[str],
    takes_value: frozenset[str] = frozenset(),
    switches: frozenset[str] | None = None,
) -> list[str]:
    """``envbuild VERB ARGS`` (``v`` a task verb) -> doit's arguments: ``[doit's run options...,
    VERB, the verb's task parameters..., key=value..., env=NAME,NAME]`` (doit reads its run
    options before the task and a task's parameters after it). ``takes_value``: doit's run
    options that take a value (``-n``, ``--process``), so the word after one is its value, not
    a NAME; ``switches``: those that take none (``-a``, ``--continue``); when given, any other
    option is refused. After ``--`` every word is a NAME. Raises UsageError for a NAME given to
    a verb taking none, a missing value, an unknown ``--option`` or ``key=value``."""
    names: list[str] = []
    run: list[str] = []
    params: list[str] = []
    values: dict[str, list[str]] = {}
    words = iter(args)
    for word in words:
        if word == "--":  # the end of the options
            names += words
            break
        flag, eq, inline = word.partition("=")
        opt = v.option(flag) if word.startswith("--") else None
        if opt is not None:
            value = inline if eq else ""
            if opt.metavar and not eq:
                value = next(words, "")
                if not value or value.startswith("-"):
                    msg = f"envbuild {v.name}: {flag} needs a value ({opt.metavar})"
                    raise UsageError(msg)
            if not opt.doit:
                params += [flag, value] if opt.metavar else [flag]
            else:
                values.setdefault(opt.doit, []).append(value if opt.metavar else "1")
        elif word.startswith("-"):
            close = did_you_mean(flag, [o.flag for o in v.options])
            if switches is None:  # nothing to check against: refuse only a near miss
                unknown = bool(close) and flag[:2] == "--" and flag not in takes_value and not eq
            else:
                unknown = not known_flag(flag, takes_value, switches)
            if unknown:
                what = flag if flag.isprintable() else repr(flag)
                msg = f"envbuild {v.name}: unknown option {what}{close}"
                raise UsageError(f"{msg}; `envbuild {v.name} --help` lists them")
            run.append(word)
            if flag in takes_value and not eq:
                run.append(next(words, ""))
        elif eq:  # key=value, doit's spelling
            if flag not in VARIABLES:
                close = did_you_mean(flag, sorted(VARIABLES))
                msg = f"envbuild {v.name}: {_shown(word)}: no variable {flag!r}{close}"
                raise UsageError(f"{msg}; the variables are {', '.join(sorted(VARIABLES))}")
            params.append(word)
        else:
            names.append(word)
    for o in v.options:
        if o.required and o.doit and not values.get(o.doit) and not _given(o.doit, params):
            msg = f"envbuild {v.name}: {o.flag} {o.metavar} is required ({o.help})"
            raise UsageError(f"{msg}; `envbuild {v.name} --help`")
    if names and not v.names:
        msg = (
            f"envbuild {v.name}: takes no NAME, got {_shown(names[0])}; `envbuild {v.name} --help`"
        )
        raise UsageError(msg)
    params += [f"{key}={','.join(vals)}" for key, vals in values.items()]
    return [*run, v.name, *params, *([f"env={','.join(names)}"] if names else [])]


def _given(key: str, params: list[str]) -> bool:
    """Whether ``key=VALUE`` (doit's spelling) is among ``params``."""
    return any(p.startswith(f"{key}=") for p in params)


def _shown(word: str) -> str:
    """``'word'``, or its repr when it holds a control or other unprintable character."""
    return f"'{word}'" if word.isprintable() else repr(word)


def known_flag(flag: str, takes_value: frozenset[str], switches: frozenset[str]) -> bool:
    """Whether doit's run accepts ``flag`` (``--process``, ``-n``, ``-n2``, ``-ac``)."""
    known = takes_value | switches
    if flag in known:
        return True
    if flag.startswith("--") or len(flag) < 2:
        return False
    if f"-{flag[1]}" in takes_value:  # -n2: the value attached
        return True
    return all(f"-{c}" in switches for c in flag[1:])  # -ac: switches bundled
