"""Failure artifacts: what was sent (sanitized) and what the backend printed before it failed.

Nothing here may raise: an artifact that cannot be written is reported in its place, never
allowed to hide the failure being recorded. Prompts become length + sha256, images their size,
credentials are redacted, and prompt text is scrubbed from the backend's output tail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from stablenew import redact
from stablenew.jobs.outcome import Cause
from stablenew.jobs.references import image_bytes

PROMPT_KEYS = {
    "prompt",
    "negative_prompt",
    "hr_prompt",
    "hr_negative_prompt",
    "ad_prompt",
    "ad_negative_prompt",
}
IMAGE_KEYS = {"init_images", "image", "mask", "firstpass_image", "images", "input_image"}
SECRET_KEY = re.compile(r"pass|secret|token|auth|api_key|credential", re.IGNORECASE)


def summarize_text(text: str) -> dict[str, object]:
    return {"length": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _summarize_image(value: Any) -> Any:
    """An image (base64) as its size and hash: enough to know which one, nothing to carry.
    ControlNet nests one (`{"image": {"image": ..., "mask": ...}}`): a dict is looked into."""
    if isinstance(value, dict):
        return {k: _summarize_image(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_summarize_image(v) for v in value]
    if isinstance(value, str):
        text = value.partition(",")[2] if value.startswith("data:") else value
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return {"base64_chars": len(value)}
        return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return value


def _looks_like_image(value: str) -> bool:
    return value.startswith("data:image/") or image_bytes(value) is not None


def sanitize(value: Any, key: str = "") -> Any:
    if key in PROMPT_KEYS and isinstance(value, str):
        return summarize_text(value)
    if key in IMAGE_KEYS or (isinstance(value, str) and _looks_like_image(value)):
        return _summarize_image(value)
    if key and SECRET_KEY.search(key) and isinstance(value, str | bytes):
        return "***"
    if isinstance(value, dict):
        return {k: sanitize(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    return value


def prompt_texts(payload: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if key in PROMPT_KEYS and isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(payload)
    return found


def scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, f"<prompt {summarize_text(secret)['sha256']}>")
    return text


def write_failure_artifacts(
    folder: Path,
    stage: str,
    payload: dict[str, Any],
    error: BaseException,
    tails: dict[str, str],
) -> list[str]:
    """Write `stage_failure_payload.json` and `webui_tail.log`; return the paths written."""
    written: list[str] = []
    record = {
        "stage": stage,
        "error": Cause.of(error).model_dump(),
        "payload": sanitize(payload),
    }
    prompts = prompt_texts(payload)
    tail = "\n".join(
        f"--- {name} (last lines) ---\n{scrub(text, prompts)}" for name, text in tails.items()
    )
    for name, content in (
        ("stage_failure_payload.json", json.dumps(record, indent=2, default=str)),
        ("webui_tail.log", tail + "\n"),
    ):
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(redact.text(scrub(content, prompts)), encoding="utf-8")
            written.append(str(path))
        except OSError as exc:
            written.append(f"<could not write {path}: {exc}>")
    return written
