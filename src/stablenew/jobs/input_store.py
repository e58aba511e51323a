"""The home's input store: images a job starts from, kept by content (sha256).

A job names its input images by hash; the bytes are copied here when the job is submitted, and
into its run folder when it runs, so a job resumed after a crash never depends on the file the
user pointed at (which may be gone by then). Storing the same image twice costs nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from stablenew import private_files
from stablenew.errors import InputError
from stablenew.jobs.spec import InputImage

# What Pillow reads and A1111 takes as an init image (it opens any of them with Pillow).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jfif", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass(frozen=True)
class ReadImage:
    data: bytes
    image: InputImage


def display_name(path: Path | str) -> str:
    """A path as text that can be stored and printed: a name in another system's encoding (not
    UTF-8, as Python holds it with lone surrogates that JSON refuses) gets \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def why_not(exc: Exception) -> str:
    """Pillow's reason an image did not open, in words for a user (it names a BytesIO)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not PNG, JPEG, WebP, BMP, TIFF or GIF data"
    said = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", " the data", str(exc))
    return said or type(exc).__name__


def read_image(path: Path) -> ReadImage:
    """An image file as a job input; a file that is not an image is an error naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    return image_input(data, display_name(path.name), shown=str(path))


def image_input(data: bytes, name: str, shown: str | None = None) -> ReadImage:
    """Image bytes as a job input (a file's, an upload's), checked the same way whichever door
    they came through; an error names them (`shown`, else `name`)."""
    shown = shown or name
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            infotext = str(image.info.get("parameters", "")) if image.format == "PNG" else ""
    except Image.DecompressionBombError as exc:
        raise InputError(f"{shown}: too large an image ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{shown}: not an image StableNew can read ({why_not(exc)})") from exc
    sha = hashlib.sha256(data).hexdigest()
    return ReadImage(data, InputImage(sha256=sha, name=name, size=size, infotext=infotext))


class InputStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if not target.exists():
            try:
                private_files.write(target, data)
            except OSError as exc:
                raise InputError(f"cannot keep an input image in {self.folder}: {exc}") from exc
        return sha

    def put_all(self, images: Iterable[bytes]) -> list[str]:
        """Keep several images, or none: when one cannot be written (a full disk), the ones
        this call added are removed again, so a refused submit leaves nothing behind. (An
        image that was here before is never removed: another job may use it.)"""
        added: list[Path] = []
        shas: list[str] = []
        try:
            for data in images:
                sha = hashlib.sha256(data).hexdigest()
                if not self.path(sha).exists():
                    added.append(self.path(sha))
                shas.append(self.put(data))
        except InputError:
            for path in added:
                path.unlink(missing_ok=True)
            raise
        return shas

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def get(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
