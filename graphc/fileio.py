"""Files graphc writes and reads on a user's behalf: one atomic-write helper for the whole
package, and bounded reads that refuse what is not a regular file.

``write_atomic`` writes a temporary file next to the target (named
``<target>.<host>.<pid>.<random>.tmp``), fsyncs it, renames it over the target and fsyncs the
directory: a crash at any point leaves either the old file or the new one under the real
name, never a mix. A temporary file left behind by a process that was killed is removed by
``remove_orphans`` (the Saver calls it before each save): one whose process (on this host) is
gone, or that is over a day old."""

from __future__ import annotations

import os
import re
import secrets
import socket
import stat
import time

from .errors import GraphcError


def _host() -> str:
    """This machine's name as it goes into temporary file names (a pid means something only
    on the host that has it: a directory may be shared)."""
    name = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32]
    return name or "host"


_ORPHAN = re.compile(r"^(?P<base>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
_ORPHAN_AGE_S = 24 * 3600  # a temporary file this old is an orphan whoever made it


def _fsync_dir(directory: str) -> None:
    try:  # make a rename or unlink durable; not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, data) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path``: temporary file, fsync, rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{os.path.abspath(path)}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process's own writes may be in flight on other threads
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_orphans(directory) -> list[str]:
    """Delete the temporary files of ``write_atomic`` in ``directory`` whose process is gone
    (or that are over a day old); return their paths."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now, host = time.time(), _host()
    for name in names:
        m = _ORPHAN.match(name)
        if m is None:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            young = now - st.st_mtime < _ORPHAN_AGE_S
            if young and (m["host"] != host or _alive(int(m["pid"]))):
                continue
            os.unlink(path)
            removed.append(path)
        except OSError:
            continue
    return removed


def read_regular(path, limit: int, what: str, error=GraphcError) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes. Devices, FIFOs and
    sockets are refused before anything is read (opening a FIFO does not block)."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"cannot read {what} {path}: it is not a regular file")
        if st.st_size > limit:
            raise error(
                f"cannot read {what} {path}: it holds {st.st_size:,} bytes, more than "
                f"the limit of {limit:,}"
            )
        chunks, left = [], st.st_size + 1  # +1: a file that grew while we read is refused
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > st.st_size:
            raise error(f"cannot read {what} {path}: it changed while it was read")
        return data
    except GraphcError:
        raise
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from None
    except MemoryError:
        raise error(
            f"cannot read {what} {path}: not enough memory for {os.fstat(fd).st_size:,} bytes"
        ) from None
    finally:
        os.close(fd)


def check_regular(path, what: str, error=GraphcError) -> int:
    """The size of ``path`` if it is a regular file; ``error`` otherwise (without opening it,
    so a FIFO cannot block)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"cannot read {what} {path}: it is not a regular file")
    return st.st_size


__all__ = ["write_atomic", "remove_orphans", "read_regular", "check_regular"]
