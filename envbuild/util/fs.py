"""Every file envbuild writes goes through here: atomic files, staged directories.

A final path is never written in place: data goes to a temporary sibling which replaces the
destination with ``os.replace`` only when complete, so a failure or Ctrl-C leaves either the old
content or the new, never half of one. (pypa/build ``_write_report``; pre-commit
``clean_path_on_failure``.)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

PARTIAL_SUFFIX = ".partial"


def open_regular(path: Path, follow_symlinks: bool = True) -> BinaryIO:
    """``path`` opened for reading if it is a regular file (after symlinks, unless
    ``follow_symlinks`` is False: then a symlink is refused, ``ELOOP``); OSError otherwise.
    Opened without blocking first, so a FIFO cannot hang the caller, and checked on the open
    descriptor, so it cannot be swapped between the check and the read."""
    nofollow = 0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | nofollow)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "a directory")
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or directory)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: Path, limit: int, follow_symlinks: bool = True) -> bytes:
    """The bytes of regular file ``path``, checking its size before reading: OSError (with
    ``strerror`` saying why) for a FIFO, device or directory, a symlink if not
    ``follow_symlinks``, or more than ``limit`` bytes (``EFBIG``; ``/dev/zero`` behind a
    symlink is never read)."""
    with open_regular(path, follow_symlinks) as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(limit + 1) if size <= limit else b""
        if size > limit or len(data) > limit:
            raise OSError(errno.EFBIG, f"{max(size, len(data))} bytes is over the limit of {limit}")
    return data


def file_sha256(path: Path) -> str:
    """Hex sha256 of a regular file's bytes, read in 1 MiB chunks (OSError for anything
    else: a FIFO must not hang an up-to-date check)."""
    h = hashlib.sha256()
    with open_regular(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_bytes(path: Path) -> int:
    """Bytes of the file ``path``, or of every file under the directory ``path``, each inode
    counted once (files hard-linked together or with the package cache take space once).
    Symlinks count their own size; directories nothing."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size if path.exists() or path.is_symlink() else 0
    total, seen, stack = 0, set(), [str(path)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    continue
                st = e.stat(follow_symlinks=False)
                if st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
    return total


def atomic_write(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically, creating parents.

    The temporary file is made with ``mkstemp`` in the destination directory (same
    filesystem), fsync'ed, chmod'ed to ``mode`` and moved over ``path`` with ``os.replace``; it
    is removed if anything fails.
    """
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staged_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it replaces ``final``.

    For writers that insist on a path of their own (conda-pack, conda-lock's writer). On any
    exception, including KeyboardInterrupt, the temporary file is removed and ``final`` is
    untouched.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as conda-pack refuse to overwrite
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield ``<final>.partial`` (emptied first); on success it replaces ``final``.

    On failure the partial directory is removed and ``final`` is left as it was. Replacing an
    existing directory is two renames (old aside, new in), with the old removed afterwards.
    """
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    remove_tree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        remove_tree(partial)
        raise
    replace_dir(partial, final)


def replace_dir(src: Path, final: Path) -> None:
    """Move directory ``src`` to ``final``, replacing any existing ``final`` directory."""
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        remove_tree(old)
        os.replace(final, old)
        os.replace(src, final)
        remove_tree(old)
    else:
        os.replace(src, final)


def atomic_link(src: Path, dest: Path) -> None:
    """Make ``dest`` a hard link to ``src`` (same file, second name), replacing ``dest``
    atomically; falls back to a copy across filesystems. A no-op if ``dest`` already is
    ``src``: renaming a link onto the same inode does nothing (POSIX rename(2)) and would
    leave the temporary name behind. The temporary name is removed on any failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if os.path.samefile(src, dest):
            return
    tmp = dest.with_name(f".{dest.name}.link-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # still there only if the rename failed or did nothing


def replace_symlink(link: Path, target: str) -> None:
    """Point symlink ``link`` at ``target`` (a relative path) in one atomic step."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.link-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def clean_temporaries(final: Path) -> list[Path]:
    """Remove leftovers of interrupted writes of ``final``: siblings named ``.<name>.*``
    (staged files, work directories) and ``<name>.partial``. Call while holding the
    artifact's mutex. Returns what was removed."""
    if not final.parent.is_dir():
        return []
    removed = [
        p
        for p in final.parent.iterdir()
        if p.name.startswith(f".{final.name}.") or p.name == final.name + PARTIAL_SUFFIX
    ]
    for p in removed:
        remove_tree(p)
    return removed


RAM_DIR = Path("/dev/shm")  # tmpfs on Linux (glibc's shm_open directory)


def ram_scratch(need: int) -> Path | None:
    """A RAM-backed directory (``/dev/shm``) for a throwaway tree of about ``need`` bytes, or
    None: only on Linux, when it is a writable directory not mounted ``noexec`` (programs will
    run from it) with ``need`` bytes free. Never raises. Creating thousands of files there
    costs a tenth of what it costs on a journaling disk."""
    if not sys.platform.startswith("linux") or not os.access(RAM_DIR, os.W_OK | os.X_OK):
        return None
    try:
        st = os.statvfs(RAM_DIR)
    except OSError:
        return None
    if st.f_flag & getattr(os, "ST_NOEXEC", 8) or st.f_bavail * st.f_frsize < need:
        return None
    return RAM_DIR


def clean_ram_scratch(prefix: str) -> list[Path]:
    """Remove trees ``<RAM_DIR>/<prefix><pid>-*`` left by processes that no longer run (a
    killed run's scratch copy would otherwise hold RAM until reboot). Returns what was
    removed; never raises."""
    removed = []
    with contextlib.suppress(OSError):
        for p in RAM_DIR.glob(f"{prefix}*"):
            pid = p.name.removeprefix(prefix).split("-", 1)[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                remove_tree(p)
                removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def reflink_supported(src_dir: Path, dst_dir: Path) -> bool:
    """Whether files in ``src_dir`` can be reflinked (cloned copy-on-write) into ``dst_dir``:
    tried once with a probe file (Linux ``FICLONE`` ioctl, as ``cp --reflink`` does). macOS
    (APFS clones) says True; other systems False. Never raises.

    py-rattler tries a reflink for every file and falls back on failure, which on ext4 costs
    a failed ioctl per file; asking once lets the installer skip it."""
    if sys.platform == "darwin":
        return True
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    ficlone = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h
    try:
        src_dir.mkdir(parents=True, exist_ok=True)
        dst_dir.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.NamedTemporaryFile(dir=src_dir, prefix=".reflink-") as a,
            tempfile.NamedTemporaryFile(dir=dst_dir, prefix=".reflink-") as b,
        ):
            a.write(b"probe")
            a.flush()
            fcntl.ioctl(b.fileno(), ficlone, a.fileno())
    except OSError:
        return False
    return True


def remove_tree(path: Path) -> None:
    """Remove a file, symlink or directory tree if it exists (read-only files included).

    Never follows a symlink: a link is removed, not what it names. When the removal of an
    entry is refused (a directory without write or read permission for us), only the
    directory that holds it (or an unreadable directory itself) is made ``u+rwx``, after
    checking with ``lstat`` that it is a real directory, and the step is tried once more;
    the mode of a file, and of anything a link names, is never changed."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, onerror=make_removable)


def make_removable(func: Any, path: str, exc: Any) -> None:
    """``shutil.rmtree``'s error handler for :func:`remove_tree`. An entry that could not
    be removed: make its directory owner-writable (never through a symlink) and retry. A
    directory that could not be opened or listed: make it owner-readable and remove it as a
    whole. Anything else (a symlink given as the tree, say) re-raises ``exc`` (rmtree's
    ``exc_info``), as does a step that still fails."""
    if func in (os.unlink, os.remove, os.rmdir):
        _chmod_dir(os.path.dirname(path))
        func(path)
        return
    opening = func in (os.open, os.scandir, os.listdir)
    if opening and _chmod_dir(path) and os.access(path, os.R_OK | os.X_OK):
        shutil.rmtree(path, onerror=make_removable)
        return
    raise exc[1]


def _chmod_dir(path: str) -> bool:
    """``chmod u+rwx path`` if ``path`` is a directory and not a symlink (checked by lstat,
    and with ``follow_symlinks=False`` where the platform has it). Returns whether it did."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    mode = stat.S_IMODE(st.st_mode) | stat.S_IRWXU
    if os.chmod in os.supports_follow_symlinks:
        os.chmod(path, mode, follow_symlinks=False)
    else:
        os.chmod(path, mode)
    return True
