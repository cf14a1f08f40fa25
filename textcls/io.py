"""Atomic writes (a crash leaves either the previous file or the complete new one, never half of one), and what a full
disk looks like."""

import errno
import json
import os
import shutil
import uuid


def write_text_atomic(path: str, text: str) -> None:
    write_lines_atomic(path, [text])


def write_lines_atomic(path: str, pieces) -> None:
    """The pieces of text one after another (any iterable: a generator of a million lines is never held whole)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Same folder, so the rename cannot cross filesystems; hidden and .tmp, so a leftover is never taken for output.
    # Created with open(), not mkstemp, so the file gets the usual umask permissions rather than 0600.
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    # The rename itself survives a power cut only once the folder is synced.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl_atomic(path: str, rows) -> None:
    write_lines_atomic(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def is_disk_full(e: BaseException) -> bool:
    """ENOSPC or a quota, as an OSError, or as torch's zip writer reports it (a RuntimeError: 'unexpected pos' or
    'file write failed', its errno lost)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        s in text for s in ("No space left", "unexpected pos", "file write failed")
    )


def free_bytes(path: str) -> int:
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path or ".").free


def size_text(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
