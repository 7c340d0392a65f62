"""Issue 32: ``envbuild completion bash|zsh`` completes in the real shells: the completion
function is called as the shell's completion system calls it (bash: ``COMP_WORDS`` and
``COMP_CWORD`` set, answer in ``COMPREPLY``; zsh: ``words`` and ``CURRENT``, answers through
``compadd``/``_describe``, stubbed here to print what they were given)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from envbuild.cli.completion import script

BASH_CALL = """
set -u  # as in a user's shell that sets it
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
_envbuild
printf '%s\\n' "${COMPREPLY[@]}"
"""

ZSH_CALL = """
source "$1"; shift
_describe() { print -rl -- ${(P)${@[-1]}%%:*} }
compadd() { if [[ $1 == -a ]]; then print -rl -- ${(P)2}; else print -rl -- "$@"; fi }
_files() { print -r -- "<files $*>" }
words=("$@"); CURRENT=$#; PREFIX=${@[-1]}
_envbuild
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with recipes ``ml``, ``notes`` and files that are no recipe name (``gpu
    $(touch pwned)``, a glob, quotes, upper case: never run, never offered: bash and zsh
    insert a completion as typed, so the name would run when the line is entered), and the
    working directory below it."""
    (tmp_path / "envbuild.toml").write_text("")
    (tmp_path / "recipes").mkdir()
    for name in ("ml", "gpu $(touch pwned)", "notes", "*", "it's", "a;id", "Upper", "é"):
        (tmp_path / "recipes" / f"{name}.yml").write_text("name: x\n")
    (tmp_path / "recipes" / "README.md").write_text("")
    (tmp_path / "sub").mkdir()
    return tmp_path


def complete(shell: str, cwd: Path, *words: str) -> list[str]:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"no {shell} (scripts/services.sh installs it)")
    file = cwd / f"completion.{shell}"
    file.write_text(script(shell))
    call = BASH_CALL if shell == "bash" else ZSH_CALL
    flags = ["--norc", "--noprofile"] if shell == "bash" else ["-f"]
    proc = subprocess.run([exe, *flags, "-c", call, shell, str(file), "envbuild", *words],
                          cwd=cwd, capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    file.unlink()
    return [ln for ln in proc.stdout.splitlines() if ln]


def test_bash_completes_verbs_options_names_and_paths(project: Path) -> None:
    sub = project / "sub"
    assert complete("bash", sub, "bu") == ["build"]
    assert complete("bash", sub, "-q", "sta") == ["status"]
    assert complete("bash", sub, "--v") == ["--version"]
    assert sorted(complete("bash", sub, "lock", "")) == ["--help", "--update", "ml", "notes"]
    assert complete("bash", sub, "build", "n") == ["notes"]
    assert complete("bash", sub, "lock", "--") == ["--update", "--help"]
    assert complete("bash", sub, "lock", "--update", "") == []  # a package: nothing to offer
    assert complete("bash", sub, "gc", "") == ["--dry-run", "--help"]  # no NAMEs
    assert complete("bash", sub, "schema", "") == ["recipe", "config", "--path", "--help"]
    (sub / "envs-dir").mkdir()
    assert complete("bash", sub, "doctor", "--prefix", "env") == ["envs-dir"]
    assert complete("bash", project.parent, "build", "") == ["--help"]  # outside: no names
    assert not (sub / "pwned").exists() and not (project / "pwned").exists()


def test_zsh_completes_verbs_options_names_and_paths(project: Path) -> None:
    sub = project / "sub"
    top = complete("zsh", sub, "")
    assert top[:3] == ["init", "schema", "completion"] and "pull" in top and "list" in top
    assert "--version" in top
    assert complete("zsh", sub, "-q", "lock", "") == ["--update", "--help", "ml", "notes"]
    assert complete("zsh", sub, "lock", "--") == ["--update", "--help"]
    assert complete("zsh", sub, "doctor", "--prefix", "") == ["<files -/>"]
    assert complete("zsh", sub, "pull", "--verify-key", "") == ["<files >"]  # any file
    assert complete("zsh", sub, "gc", "") == ["--dry-run", "--help"]
    assert not (sub / "pwned").exists() and not (project / "pwned").exists()
