"""Every name a job gives the backend, checked against what the backend has (pure).

A1111 does not refuse an unknown sampler, scheduler or model override: it silently generates
something else. So a job whose names the backend does not know is refused before it is queued
(when the backend can be asked) and fails before its first call otherwise, with the closest
known names in the message.

A1111 also matches names exactly: "euler a" is as unknown to it as "NoSuchSampler". A name that
matches one of the backend's only when case is ignored is rewritten to the backend's spelling,
so what is queued (and stored) is what the backend will use.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stablenew.jobs.spec import ADetailerPass, JobSpec, Passthrough
from stablenew.webui.lists import BackendLists

LORA = re.compile(r"(<lora:)([^<>:]+)((?::[^<>]*)?>)")
EMBEDDING = re.compile(r"(<embedding:)([^<>:]+)(>)")
VAE_CHOICES = frozenset({"Automatic", "None"})  # A1111's own values for sd_vae
NONE: frozenset[str] = frozenset()
# ADetailer's "inherit the job's value" choices, next to the backend's names.
AD_CHECKPOINT = frozenset({"Use same checkpoint"})
AD_VAE = VAE_CHOICES | {"Use same VAE"}
AD_SAMPLER = frozenset({"Use same sampler"})
AD_SCHEDULER = frozenset({"Use same scheduler"})

HASH_OR_TITLE = re.compile(r"^[0-9a-f]{8,}$|\s\[[0-9a-f]+\]$")  # spellings no one types


@dataclass(frozen=True)
class Resolved:
    """A spec with its names in the backend's spelling, and the names it does not have."""

    spec: JobSpec
    problems: list[str]


def _exact(value: str, pool: Iterable[str]) -> str | None:
    """The backend's spelling of `value`: itself, or a name equal to it ignoring case (a
    scheduler's name and label, "exponential" and "Exponential", are one and the same)."""
    names = set(pool)
    if value in names:
        return value
    lowered = value.casefold()
    return min((name for name in names if name.casefold() == lowered), default=None)


def _problem(field: str, value: str, pool: Iterable[str], owner: str = "the backend") -> str:
    names = sorted(n for n in set(pool) if not HASH_OR_TITLE.search(n))
    close = difflib.get_close_matches(value, names, n=3, cutoff=0.4)
    if close:
        hint = f"did you mean {', '.join(repr(c) for c in close)}?"
    else:
        hint = f"it has {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}"
    return f"{field}: {owner} has no {value!r} ({hint})"


class _Resolver:
    def __init__(self, lists: BackendLists, owner: str) -> None:
        self.lists = lists
        self.owner = owner
        self.problems: list[str] = []

    def name(
        self, field: str, value: str, pool: frozenset[str] | None, extra: frozenset[str] = NONE
    ) -> str:
        if pool is None:
            return value  # the backend does not list these: nothing to check against
        exact = _exact(value, pool | extra)
        if exact is None:
            self.problems.append(_problem(field, value, pool | extra, self.owner))
            return value
        return exact

    def optional(
        self,
        field: str,
        value: str | None,
        pool: frozenset[str] | None,
        extra: frozenset[str] = NONE,
    ) -> str | None:
        return None if value is None else self.name(field, value, pool, extra)

    def sampler(self, field: str, value: str, extra: frozenset[str] = NONE) -> str:
        samplers, schedulers = self.lists.samplers, self.lists.schedulers
        if samplers is None or _exact(value, samplers | extra) is not None:
            return self.name(field, value, samplers, extra)
        # "DPM++ 2M Karras": a sampler and a schedule in one name, which A1111 splits.
        for label in sorted(schedulers or ()):  # "Karras" (the label) before "karras"
            if value.casefold().endswith(" " + label.casefold()):
                sampler = _exact(value[: -len(label) - 1], samplers)
                if sampler is not None:
                    return f"{sampler} {label}"
        return self.name(field, value, samplers, extra)

    def text(self, field: str, text: str) -> str:
        """A prompt with its `<lora:...>` and `<embedding:...>` names in the backend's spelling."""

        def swap(kind: str, pool: frozenset[str] | None) -> Any:
            def one(match: re.Match[str]) -> str:
                name = self.name(f"{field}: {kind}", match.group(2).strip(), pool)
                return match.group(1) + name + match.group(3)

            return one

        text = LORA.sub(swap("LoRA", self.lists.loras), text)
        return EMBEDDING.sub(swap("embedding", self.lists.embeddings), text)

    def overrides(self, field: str, stage: Passthrough) -> dict[str, Any]:
        """`sd_model_checkpoint` and `sd_vae` overrides: A1111 silently keeps its own for an
        unknown one."""
        settings = dict(stage.override_settings)
        model, vae = settings.get("sd_model_checkpoint"), settings.get("sd_vae")
        if isinstance(model, str):
            settings["sd_model_checkpoint"] = self.name(
                f"{field}.override_settings.sd_model_checkpoint", model, self.lists.models
            )
        if isinstance(vae, str):
            settings["sd_vae"] = self.name(
                f"{field}.override_settings.sd_vae", vae, self.lists.vaes, VAE_CHOICES
            )
        return settings

    def adetailer(self, field: str, p: ADetailerPass) -> ADetailerPass:
        lists = self.lists
        return p.model_copy(
            update={
                "model": self.name(f"{field}.model", p.model, lists.ad_models),
                "prompt": self.text(f"{field}.prompt", p.prompt),
                "negative_prompt": self.text(f"{field}.negative_prompt", p.negative_prompt),
                "checkpoint": self.optional(
                    f"{field}.checkpoint", p.checkpoint, lists.models, AD_CHECKPOINT
                ),
                "vae": self.optional(f"{field}.vae", p.vae, lists.vaes, AD_VAE),
                "sampler": None
                if p.sampler is None
                else self.sampler(f"{field}.sampler", p.sampler, AD_SAMPLER),
                "scheduler": self.optional(
                    f"{field}.scheduler", p.scheduler, lists.schedulers, AD_SCHEDULER
                ),
            }
        )


def resolve(spec: JobSpec, lists: BackendLists, owner: str = "the backend") -> Resolved:
    """`spec` with every name it gives the backend in the backend's spelling, and one line per
    name the backend does not know (empty: all known, or not checkable); `owner` names whose
    lists they are in those lines."""
    r = _Resolver(lists, owner)
    stages = spec.stages()
    update: dict[str, Any] = {
        "model": r.optional("model", spec.model, lists.models),
        "vae": r.optional("vae", spec.vae, lists.vaes, VAE_CHOICES),
        "sampler": r.sampler("sampler", spec.sampler),
        "scheduler": r.name("scheduler", spec.scheduler, lists.schedulers),
        "prompt": r.text("prompt", spec.prompt),
        "negative_prompt": r.text("negative_prompt", spec.negative_prompt),
    }
    t = spec.txt2img
    txt2img: dict[str, Any] = {
        "refiner_checkpoint": r.optional(
            "txt2img.refiner_checkpoint", t.refiner_checkpoint, lists.models
        )
    }
    if "txt2img" in stages:
        txt2img["override_settings"] = r.overrides("txt2img", t)
        if t.enable_hr:
            hires = lists.hires_upscalers()
            txt2img["hr_upscaler"] = r.name("txt2img.hr_upscaler", t.hr_upscaler, hires)
    update["txt2img"] = t.model_copy(update=txt2img)
    if "img2img" in stages:
        settings = r.overrides("img2img", spec.img2img)
        update["img2img"] = spec.img2img.model_copy(update={"override_settings": settings})
    if "adetailer" in stages:
        ad = spec.adetailer
        passes = {
            tab: r.adetailer(f"adetailer.{tab}", p)
            for tab, p in (("face", ad.face), ("hands", ad.hands))
            if p is not None
        }
        update["adetailer"] = ad.model_copy(update=passes)
    if "upscale" in stages:
        upscaler = r.name("upscale.upscaler", spec.upscale.upscaler, lists.upscalers)
        update["upscale"] = spec.upscale.model_copy(update={"upscaler": upscaler})
    return Resolved(spec.model_copy(update=update), list(dict.fromkeys(r.problems)))


def unknown_names(spec: JobSpec, lists: BackendLists) -> list[str]:
    """One line per name the backend does not know (empty: all known, or not checkable)."""
    return resolve(spec, lists).problems
