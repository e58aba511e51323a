"""What a backend has: its models, VAEs, samplers, schedulers, upscalers, LoRAs, embeddings.

A1111 silently falls back when a request names a sampler or scheduler it does not have, and
silently keeps the current model for an unknown `sd_model_checkpoint` override (reference §9),
so names are checked against these lists before a job is queued and again before its first
call. A list the backend does not serve (an older Forge has no /loras) is unknown, not empty:
nothing is refused because of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from stablenew.errors import BackendError
from stablenew.webui.client import WebUIClient

# A1111's latent upscale modes (v1.10.1), fixed in its code, for a backend that does not list them.
A1111_LATENT_MODE_NAMES = (  # in A1111's order
    "Latent",
    "Latent (antialiased)",
    "Latent (bicubic)",
    "Latent (bicubic antialiased)",
    "Latent (nearest)",
    "Latent (nearest-exact)",
)
A1111_LATENT_MODES = frozenset(A1111_LATENT_MODE_NAMES)


@dataclass(frozen=True)
class BackendLists:
    models: frozenset[str] | None = None  # titles, model names and hashes
    titles: dict[str, str] | None = None  # any of those spellings -> the model's title
    vaes: frozenset[str] | None = None
    samplers: frozenset[str] | None = None  # names and aliases
    schedulers: frozenset[str] | None = None  # names and labels
    upscalers: frozenset[str] | None = None
    latent_modes: frozenset[str] | None = None  # hires fix upscales in latent space too
    loras: frozenset[str] | None = None  # names and aliases
    embeddings: frozenset[str] | None = None
    ad_models: frozenset[str] | None = None  # ADetailer's detection models (the extension's)

    def title(self, model: str | None) -> str | None:
        """A model as the backend names it when loaded (its title), from any spelling."""
        if model is None or self.titles is None:
            return model
        return self.titles.get(model, self.titles.get(model.casefold(), model))

    def hires_upscalers(self) -> frozenset[str] | None:
        """What `hr_upscaler` may name: the latent upscale modes and the upscalers (A1111's
        hires list is both)."""
        if self.upscalers is None or self.latent_modes is None:
            return None
        return self.latent_modes | self.upscalers

    def shown(self, field: str) -> list[str]:
        """The names a user would type, for messages and pickers."""
        values = getattr(self, field)
        return sorted(values) if values is not None else []


def merged(each: Sequence[BackendLists]) -> BackendLists:
    """What a pool has between its backends: each list the union of theirs (unknown where one
    backend's is unknown)."""

    def union(field: str) -> frozenset[str] | None:
        lists = [getattr(b, field) for b in each]
        return None if any(x is None for x in lists) else frozenset().union(*lists)

    titles: dict[str, str] | None = {}
    for b in reversed(each):  # the first backend's spelling wins
        titles = None if titles is None or b.titles is None else {**titles, **b.titles}
    names = {f.name: union(f.name) for f in fields(BackendLists) if f.name != "titles"}
    return BackendLists(**names, titles=titles)


def _names(records: list[dict[str, object]], *keys: str) -> frozenset[str]:
    out: set[str] = set()
    for record in records:
        for key in keys:
            value = record.get(key)
            if isinstance(value, str) and value:
                out.add(value)
            elif isinstance(value, list):
                out.update(str(v) for v in value if v)
    return frozenset(out)


def fetch_lists(client: WebUIClient) -> BackendLists:
    """Every list the backend serves; the ones it does not serve stay unknown (None)."""

    def attempt(fn: Callable[[], frozenset[str]]) -> frozenset[str] | None:
        try:
            return fn()
        except BackendError:
            return None

    try:
        records = client.sd_models()
    except BackendError:
        records = None
    titles = None
    if records is not None:
        titles = {}
        for record in records:
            title = str(record.get("title") or record.get("model_name") or "")
            for key in ("title", "model_name", "hash"):
                value = record.get(key)
                if isinstance(value, str) and value:
                    titles[value] = title
                    titles[value.casefold()] = title
    return BackendLists(
        models=_names(records, "title", "model_name", "hash") if records is not None else None,
        titles=titles,
        vaes=attempt(lambda: _names(client.sd_vae(), "model_name")),
        samplers=attempt(lambda: _names(client.samplers(), "name", "aliases")),
        schedulers=attempt(lambda: _names(client.schedulers(), "name", "label")),
        upscalers=attempt(lambda: _names(client.upscalers(), "name")),
        # Forge has no /latent-upscale-modes but the same fixed modes as A1111.
        latent_modes=attempt(lambda: _names(client.latent_upscale_modes(), "name"))
        or A1111_LATENT_MODES,
        loras=attempt(lambda: _names(client.loras(), "name", "alias")),
        embeddings=attempt(
            lambda: frozenset(str(k) for k in client.embeddings().get("loaded", {}))
        ),
        ad_models=attempt(lambda: frozenset(client.adetailer_models())),
    )
