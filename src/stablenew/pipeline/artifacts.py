"""What a run leaves on disk: its folder, its PNGs with provenance chunks, its manifests.

Text chunks are spliced into the backend's PNG bytes instead of re-encoding the image, so pixels
and the backend's own chunks stay byte-for-byte what the backend sent.
"""

from __future__ import annotations

import errno
import io
import re
import struct
import unicodedata
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from PIL import Image

from stablenew.errors import OutputError
from stablenew.jobs.job import Job
from stablenew.webui.artifacts import sanitize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def slug(text: str, limit: int = 40) -> str:
    """A folder-name fragment: words of any script (a Japanese prompt keeps its characters).
    NFC first: macOS types "é" as e + a combining accent, which is not a word character."""
    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFC", text).casefold())
    return "-".join(words)[:limit].strip("-") or "job"


def run_dir_for(job: Job, root: Path, now: datetime) -> Path:
    """Under the output root the job was submitted with (absolute), else the configured one."""
    spec = job.spec
    label = spec.output.label or spec.provenance.pack_id or spec.prompt
    base = Path(spec.output.root) if spec.output.root else root
    return base.absolute() / now.strftime("%Y-%m-%d") / f"{job.short_id}_{slug(label)}"


_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def output_error(exc: OSError, path: Path) -> OSError:
    """An output write that failed because of the folder (full, read-only) as an OutputError;
    any other OSError as it is."""
    if exc.errno in _FULL:
        return OutputError(
            f"the disk is full: cannot write {path}", reason="output_full", path=str(path)
        )
    if exc.errno in _UNWRITABLE:
        return OutputError(
            f"cannot write {path}: {exc.strerror}", reason="output_unwritable", path=str(path)
        )
    return exc


def make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, path) from exc


def _write_atomically(path: Path, data: bytes) -> None:
    """Whole or absent, never half-written; a failed write leaves no temp file behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(exc, path) from exc


def image_name(index: int, total: int, stage: str, variant: str = "") -> str:
    suffix = f"_{slug(variant, 60)}" if variant else ""
    return f"{index:0{len(str(total))}d}_{stage}{suffix}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _text_chunk(key: str, value: str) -> bytes:
    try:
        return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))


def as_png(data: bytes) -> bytes:
    if data.startswith(PNG_SIGNATURE):
        return data
    buf = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.save(buf, format="PNG")
    return buf.getvalue()


def png_text_keys(data: bytes) -> set[str]:
    """The keywords of a PNG's text chunks, read from the chunk headers (no pixel decoding,
    which Pillow's `.text` would do)."""
    keys: set[str] = set()
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            body = data[pos + 8 : pos + 8 + min(length, 80)]
            keys.add(body.split(b"\0", 1)[0].decode("latin-1"))
        elif kind == b"IEND":
            break
        pos += 12 + length
    return keys


def add_png_text(data: bytes, chunks: dict[str, str]) -> bytes:
    """Insert text chunks just before IEND (PNG allows text chunks anywhere after IHDR)."""
    png = as_png(data)
    iend = png.rfind(b"IEND") - 4
    if iend < len(PNG_SIGNATURE):
        raise ValueError("not a complete PNG (no IEND chunk)")
    extra = b"".join(_text_chunk(k, v) for k, v in chunks.items())
    return png[:iend] + extra + png[iend:]


def image_size(data: bytes) -> tuple[int, int]:
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def write_json(path: Path, record: dict[str, Any]) -> None:
    # orjson: the standard library falls back to its pure-Python encoder when indenting.
    _write_atomically(path, orjson.dumps(record, default=str, option=orjson.OPT_INDENT_2))


def write_image(path: Path, data: bytes) -> None:
    _write_atomically(path, data)


def sanitized_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """For manifests: prompts are kept (they are the provenance), image data is not."""
    record: dict[str, Any] = sanitize(payload)
    for key in ("prompt", "negative_prompt"):
        if key in payload:
            record[key] = payload[key]
    return record
