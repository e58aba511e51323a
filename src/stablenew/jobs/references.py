"""A JobSpec small enough to travel in every PNG and manifest: extension images by reference.

Extension arguments (a ControlNet unit's input image, a mask) are sent to the backend byte for
byte, so the queued spec keeps them whole. What a PNG's `stablenew` chunk and a manifest carry
instead is the compact form: every embedded image becomes `{"$image": {"sha256", "bytes"}}`,
and the image itself is kept in the run folder's `inputs/`, where a PNG that has left its run
folder finds it again (or names it as missing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Any

from stablenew.jobs.spec import JobSpec

REF = "$image"
MIN_CHARS = 8  # the base64 of an image's magic bytes; any image is longer
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"RIFF", b"GIF8", b"II*\x00", b"MM\x00*")


def image_bytes(value: str) -> bytes | None:
    """The image a string holds (base64 or a data: URI), of any size; None for other text."""
    if len(value) < MIN_CHARS:
        return None
    text = value.partition(",")[2] if value.startswith("data:") else value
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(_MAGIC) else None


def _walk(value: Any, found: dict[str, bytes]) -> Any:
    if isinstance(value, str):
        data = image_bytes(value)
        if data is None:
            return value
        sha = hashlib.sha256(data).hexdigest()
        found[sha] = data
        ref: dict[str, Any] = {"sha256": sha, "bytes": len(data)}
        if value.startswith("data:"):  # restored as it was sent, a data URI or bare base64
            ref["uri"] = value.partition(",")[0] + ","
        return {REF: ref}
    if isinstance(value, dict):
        return {k: _walk(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, found) for v in value]
    return value


def compact(spec: JobSpec) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The spec as JSON data with every image in it (an extension's, a settings override's,
    at any depth) by reference, and those images."""
    data = spec.model_dump(mode="json")
    found: dict[str, bytes] = {}
    compacted: dict[str, Any] = {k: _walk(v, found) for k, v in data.items() if k != "inputs"}
    return {"inputs": data["inputs"], **compacted}, found


def restore(
    data: dict[str, Any], lookup: Callable[[str], bytes | None]
) -> tuple[dict[str, Any], list[str]]:
    """Compact spec data back to a sendable one; returns the hashes of images not found."""
    missing: list[str] = []

    def back(value: Any) -> Any:
        if isinstance(value, dict):
            ref = value.get(REF)
            if isinstance(ref, dict) and len(value) == 1:
                sha = str(ref.get("sha256"))
                image = lookup(sha)
                if image is None:
                    missing.append(sha)
                    return value
                return str(ref.get("uri", "")) + base64.b64encode(image).decode()
            return {k: back(v) for k, v in value.items()}
        if isinstance(value, list):
            return [back(v) for v in value]
        return value

    return back(data), missing
