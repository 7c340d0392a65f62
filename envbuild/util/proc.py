"""The only module that starts subprocesses.

Every external command of envbuild goes through :func:`run`, so that failures read the same
everywhere: the argv, the exit code (or the signal), and stdout/stderr indented beneath.
(Modelled on pre-commit's ``util.cmd_output_b`` and pypa/build's runner.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

from envbuild.errors import ProcessError

log = logging.getLogger("envbuild")


class Result(NamedTuple):
    """A finished process: ``returncode`` (negative = killed by that signal), decoded output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def _indent(text: str) -> str:
    text = text.rstrip()
    if not text:
        return "    (none)"
    return "\n".join("    " + line for line in text.splitlines())


def _not_found(args: tuple[str, ...]) -> str:
    return f"command not found: {args[0]} (is it installed and on PATH?)"


def describe_exit(returncode: int) -> str:
    """``'exit code 3'`` or, for a process killed by a signal, ``'signal SIGSEGV'``."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def format_failure(result: Result, what: str = "command failed") -> str:
    """A multi-line message: what failed, argv, exit status, stdout and stderr indented
    (credentials scrubbed)."""
    from envbuild.util.redact import scrub

    return scrub(
        f"{what}: {' '.join(result.argv)}\n"
        f"  {describe_exit(result.returncode)}\n"
        f"  stdout:\n{_indent(result.stdout)}\n"
        f"  stderr:\n{_indent(result.stderr)}"
    )


def _die_with_parent() -> None:
    """In the child before exec (Linux): be sent SIGKILL when the parent dies, so that a
    long command (``docker build``) never outlives a killed envbuild (prctl(2),
    PR_SET_PDEATHSIG). Elsewhere nothing: such children are waited for instead."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    input_text: str | None = None,
    stream_stderr: bool = False,
    die_with_parent: bool = False,
) -> Result:
    """Run ``argv`` to completion and capture its output (``die_with_parent``: the command
    is killed if this process dies, on Linux).

    Inputs: ``argv`` (no shell), ``cwd``, a complete ``env`` (None = inherit), ``timeout`` in
    seconds; ``stream_stderr`` lets the command draw on this process's stderr (progress bars)
    instead of capturing it. Output: a :class:`Result` with stdout/stderr decoded as UTF-8
    (errors replaced; stderr empty when streamed).
    Raises :class:`ProcessError` when the command is missing, times out, or (with ``check``)
    exits non-zero; the message shows argv, exit code/signal and the captured output.
    """
    args = tuple(os.fspath(a) for a in argv)
    log.debug("run: %s", " ".join(args))
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdout=subprocess.PIPE,
            stderr=None if stream_stderr else subprocess.PIPE,
            timeout=timeout,
            check=False,
            input=None if input_text is None else input_text.encode(),
            preexec_fn=_die_with_parent if die_with_parent and os.name == "posix" else None,
        )
    except FileNotFoundError as e:
        raise ProcessError(_not_found(args)) from e
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        err = (e.stderr or b"").decode(errors="replace")
        msg = (
            f"command timed out after {timeout:g} s: {' '.join(args)}\n"
            f"  stdout:\n{_indent(out)}\n  stderr:\n{_indent(err)}"
        )
        raise ProcessError(msg) from e
    result = Result(
        args,
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        (proc.stderr or b"").decode(errors="replace"),
    )
    if result.stdout.strip() or result.stderr.strip():
        log.debug("stdout:\n%s\nstderr:\n%s", result.stdout, result.stderr)
    if check and result.returncode != 0:
        raise ProcessError(format_failure(result))
    return result


class Started:
    """A command started ahead of its input (:func:`start`): :meth:`finish` gives it the
    input and waits, :meth:`cancel` closes its input unused."""

    def __init__(self, args: tuple[str, ...], streams_stderr: bool) -> None:
        self.args, self.streams_stderr = args, streams_stderr
        try:
            self._child = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None if streams_stderr else subprocess.PIPE,
            )
        except FileNotFoundError as e:
            raise ProcessError(_not_found(args)) from e

    def finish(self, data: bytes, timeout: float | None = None) -> Result:
        """Write ``data`` to its stdin, close it and wait (``timeout`` seconds), reading its
        output meanwhile (``communicate``: woken by its exit, no polling). Returns the
        :class:`Result` whatever the exit status; raises ProcessError if it timed out."""
        try:
            out, err = self._child.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.communicate()
            msg = f"command timed out after {timeout:g} s: {' '.join(self.args)}"
            raise ProcessError(msg) from None
        return Result(
            self.args,
            self._child.returncode,
            out.decode(errors="replace"),
            (err or b"").decode(errors="replace"),
        )

    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""
        return self._child.poll()

    def cancel(self) -> None:
        """Close its stdin unused and wait for it to leave (killed after 10 s)."""
        try:
            self._child.communicate(b"", timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.communicate()


def start(argv: Sequence[str | os.PathLike[str]], *, stream_stderr: bool = False) -> Started:
    """Start ``argv`` now, its stdin a pipe for input given later with
    :meth:`Started.finish`: the command's own start-up (an interpreter and its imports)
    overlaps whatever the caller does meanwhile. stdout (and stderr unless
    ``stream_stderr``) are captured. Raises ProcessError if it is missing."""
    args = tuple(os.fspath(a) for a in argv)
    log.debug("start (input later): %s", " ".join(args))
    return Started(args, stream_stderr)


class Dialogue:
    """A command that answers one line of input with one line of output, for as long as it
    runs (:func:`converse`): a pool of interpreters fed work as it comes, without paying
    their start-up per item. It is killed if this process dies (Linux)."""

    def __init__(self, args: tuple[str, ...]) -> None:
        self.args = args
        # a file, not a pipe: a chatty command never blocks on its stderr
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        try:
            self._child = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._err,
                preexec_fn=_die_with_parent if os.name == "posix" else None,
            )
        except FileNotFoundError as e:
            self._err.close()
            raise ProcessError(_not_found(args)) from e

    def ask(self, line: str) -> str:
        """Send ``line`` (no newline in it) and return its one-line answer, without the
        newline. Raises ProcessError (argv, exit status, stderr) if the command has left or
        leaves before answering."""
        stdin, stdout = self._child.stdin, self._child.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
            answer = stdout.readline()
        except BrokenPipeError:
            answer = b""
        if not answer.endswith(b"\n"):
            self._child.kill()
            raise ProcessError(format_failure(self._result(), "command left while asked"))
        return answer[:-1].decode(errors="replace")

    def close(self, timeout: float = 30) -> None:
        """Close its input and wait for it to leave (killed after ``timeout`` seconds)."""
        with contextlib.suppress(OSError):
            if self._child.stdin is not None:
                self._child.stdin.close()
        try:
            self._child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()
        self._err.close()

    def kill(self) -> None:
        """End it now (SIGKILL); :meth:`close` still follows (a thread blocked in
        :meth:`ask` gets a ProcessError)."""
        self._child.kill()

    def _result(self) -> Result:
        self._child.wait()
        self._err.seek(0)
        err = self._err.read().decode(errors="replace")
        return Result(self.args, self._child.returncode, "", err)


def converse(argv: Sequence[str | os.PathLike[str]]) -> Dialogue:
    """Start ``argv`` for a line-by-line exchange (:class:`Dialogue`). Raises ProcessError
    if it is missing."""
    args = tuple(os.fspath(a) for a in argv)
    log.debug("converse: %s", " ".join(args))
    return Dialogue(args)


@contextlib.contextmanager
def feeding(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> Iterator[IO[bytes]]:
    """Start ``argv`` and yield a pipe to its stdin, for streaming bytes into it while they
    are produced (``tar -x`` unpacking an archive this process decompresses).

    On leaving the block: stdin is closed and the command waited for (``timeout`` seconds);
    its stdout/stderr go to temporary files, so a chatty command never blocks the writer.
    Raises :class:`ProcessError` (argv, exit status, output) if it is missing, exits non-zero,
    times out, or stops reading early. If the block raises, the command is killed and the
    block's exception propagates.
    """
    args = tuple(os.fspath(a) for a in argv)
    log.debug("run (stdin streamed): %s", " ".join(args))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen(
                args, cwd=cwd, stdin=subprocess.PIPE, stdout=out, stderr=err, bufsize=1 << 20
            )
        except FileNotFoundError as e:
            raise ProcessError(_not_found(args)) from e
        assert child.stdin is not None
        broken = False
        try:
            try:
                yield child.stdin
            except BrokenPipeError:
                broken = True  # it stopped reading: its exit status and stderr say why
            with contextlib.suppress(BrokenPipeError):
                child.stdin.close()
            returncode = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            msg = f"command timed out after {timeout:g} s: {' '.join(args)}"
            raise ProcessError(msg) from None
        except BaseException:
            child.kill()
            child.wait()
            raise
        out.seek(0)
        err.seek(0)
        result = Result(
            args,
            returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
    if returncode != 0 or broken:
        raise ProcessError(format_failure(result, "command failed while reading its input"))
