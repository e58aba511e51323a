"""Every name a job gives the backend, checked against what the backend has (pure).

A1111 does not refuse an unknown sampler, scheduler or model override: it silently generates
something else. So a job whose names the backend does not know is refused before it is queued
(when the backend can be asked) and fails before its first call otherwise, with the closest
known names in the message.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from stablenew.jobs.spec import JobSpec
from stablenew.webui.lists import BackendLists

LORA = re.compile(r"<lora:([^<>:]+)(?::[^<>]*)?>")
EMBEDDING = re.compile(r"<embedding:([^<>:]+)>")
VAE_CHOICES = frozenset({"Automatic", "None"})  # A1111's own values for sd_vae
NONE: frozenset[str] = frozenset()


def _known(value: str, pool: Iterable[str]) -> bool:
    lowered = value.casefold()
    return any(lowered == name.casefold() for name in pool)


HASH_OR_TITLE = re.compile(r"^[0-9a-f]{8,}$|\s\[[0-9a-f]+\]$")  # spellings no one types


def _problem(field: str, value: str, pool: Iterable[str]) -> str:
    names = sorted(n for n in set(pool) if not HASH_OR_TITLE.search(n))
    close = difflib.get_close_matches(value, names, n=3, cutoff=0.4)
    if close:
        hint = f"did you mean {', '.join(repr(c) for c in close)}?"
    else:
        hint = f"it has {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}"
    return f"{field}: the backend has no {value!r} ({hint})"


def unknown_names(spec: JobSpec, lists: BackendLists) -> list[str]:
    """One line per name the backend does not know (empty: all known, or not checkable)."""
    problems: list[str] = []

    def check(
        field: str, value: str | None, pool: frozenset[str] | None, extra: frozenset[str] = NONE
    ) -> None:
        if value is None or pool is None or _known(value, pool | extra):
            return
        problems.append(_problem(field, value, pool | extra))

    check("model", spec.model, lists.models)
    check("txt2img.refiner_checkpoint", spec.txt2img.refiner_checkpoint, lists.models)
    check("vae", spec.vae, lists.vaes, VAE_CHOICES)
    if not _legacy_sampler(spec.sampler, lists):
        check("sampler", spec.sampler, lists.samplers)
    check("scheduler", spec.scheduler, lists.schedulers)
    stages = spec.stages()
    if "upscale" in stages:
        check("upscale.upscaler", spec.upscale.upscaler, lists.upscalers)
    hires = spec.txt2img.hr_upscaler
    if "txt2img" in stages and spec.txt2img.enable_hr and not hires.startswith("Latent"):
        check("txt2img.hr_upscaler", hires, lists.upscalers)
    texts = [spec.prompt, spec.negative_prompt]
    for lora in dict.fromkeys(n.strip() for t in texts for n in LORA.findall(t)):
        check("prompt: LoRA", lora, lists.loras)
    for name in dict.fromkeys(n.strip() for t in texts for n in EMBEDDING.findall(t)):
        check("prompt: embedding", name, lists.embeddings)
    return problems


def _legacy_sampler(value: str, lists: BackendLists) -> bool:
    """ "DPM++ 2M Karras": a sampler and a schedule in one name, which A1111 splits."""
    if lists.samplers is None or lists.schedulers is None:
        return False
    return any(
        value.casefold().endswith(" " + label.casefold())
        and _known(value[: -len(label) - 1], lists.samplers)
        for label in lists.schedulers
    )
