"""WebUIClient: a typed httpx client for the AUTOMATIC1111 WebUI HTTP API.

Generation POSTs are never retried here (the recovery layer decides); idempotent GETs are, a
bounded number of times. Every failure is one of the typed backend errors of `stablenew.errors`,
chosen by `classify.error_kind`. Tests hand the client an httpx transport (`transport=`).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from stablenew.errors import (
    BackendAuthRejected,
    BackendBadResponse,
    BackendError,
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnavailable,
)
from stablenew.webui.classify import error_kind, error_message

API = "/sdapi/v1"
REFERENCE_HEADER = "X-StableNew-Reference-Backend"

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
)


def sniff_format(data: bytes) -> str | None:
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def decode_b64_image(value: object, endpoint: str, stage: str | None) -> tuple[bytes, str]:
    """Raw base64 or a data URL into bytes, with the format read from the magic bytes."""
    if not isinstance(value, str):
        raise BackendBadResponse("image is not a string", endpoint=endpoint, stage=stage)
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BackendBadResponse(
            "image is not valid base64", endpoint=endpoint, stage=stage, snippet=value[:80]
        ) from exc
    fmt = sniff_format(data)
    if fmt is None:
        raise BackendBadResponse(
            "image is not PNG, JPEG or WEBP",
            endpoint=endpoint,
            stage=stage,
            snippet=repr(data[:16]),
        )
    return data, fmt


class Health(StrEnum):
    OK = "ok"
    REFUSED = "refused"  # nothing listens there
    AUTH_REJECTED = "auth_rejected"  # it answers, and refuses our credentials
    NOT_READY = "not_ready"  # it answers, but not yet with the API (loading, 5xx, timeout)


class Timeouts(BaseModel):
    """Seconds per call kind (the `[timeouts]` section of config.toml). Generation may
    legitimately run for a long time: the stall watchdog, not this read timeout, catches a hang."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    connect: float = Field(5.0, gt=0)
    probe: float = Field(5.0, gt=0)
    query: float = Field(30.0, gt=0)
    control: float = Field(10.0, gt=0)
    options: float = Field(600.0, gt=0)
    generate: float = Field(3600.0, gt=0)


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    format: str
    infotext: str
    seed: int | None


@dataclass(frozen=True)
class GenerationResult:
    images: list[GeneratedImage]
    info: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtrasResult:
    image: GeneratedImage
    html_info: str


class WebUIClient:
    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeouts: Timeouts | None = None,
        get_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.get_retries = get_retries
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=httpx.Timeout(self.timeouts.query, connect=self.timeouts.connect),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WebUIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        read_timeout: float,
        stage: str | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        attempts = 1 + (self.get_retries if method == "GET" else 0)
        timeout = httpx.Timeout(read_timeout, connect=self.timeouts.connect)
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(
                    method, path, json=json_body, params=params, timeout=timeout
                )
            except httpx.TimeoutException as exc:
                error: BackendError = BackendTimeout(
                    f"no answer within {read_timeout:g}s ({type(exc).__name__})",
                    endpoint=path,
                    stage=stage,
                )
            except httpx.TransportError as exc:
                error = BackendUnavailable(
                    f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                    endpoint=path,
                    stage=stage,
                )
            else:
                return self._parse(response, path, stage)
            if attempt == attempts:
                raise error
            time.sleep(0.2 * attempt)  # backoff between bounded GET retries
        raise AssertionError("unreachable")

    @staticmethod
    def _parse(response: httpx.Response, path: str, stage: str | None) -> Any:
        status = response.status_code
        text = response.text
        if status >= 400:
            body: Any
            try:
                body = response.json()
            except (ValueError, RecursionError):
                body = None
            kind = error_kind(status, body, text)
            message = error_message(body) or text[:200] or response.reason_phrase
            if kind is BackendAuthRejected:
                message = f"the backend rejected the credentials ({message})"
            raise kind(message, endpoint=path, stage=stage, status=status, snippet=text)
        try:
            return response.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
            raise BackendBadResponse(
                "body is not JSON", endpoint=path, stage=stage, status=status, snippet=text
            ) from exc

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", API + path, read_timeout=self.timeouts.query, params=params)

    def _object(self, path: str) -> dict[str, Any]:
        body = self._get(path)
        if not isinstance(body, dict):
            raise BackendBadResponse("expected a JSON object", endpoint=API + path)
        return body

    def _list(self, path: str) -> list[dict[str, Any]]:
        """A list of records, as A1111's GET lists are; anything else is a typed error."""
        body = self._get(path)
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise BackendBadResponse("expected a JSON list of objects", endpoint=API + path)
        return body

    # -- generation (never retried here) -----------------------------------------------------

    def txt2img(self, payload: dict[str, Any], stage: str = "txt2img") -> GenerationResult:
        return self._generate("/txt2img", payload, stage)

    def img2img(self, payload: dict[str, Any], stage: str = "img2img") -> GenerationResult:
        return self._generate("/img2img", payload, stage)

    def _generate(self, path: str, payload: dict[str, Any], stage: str) -> GenerationResult:
        endpoint = API + path
        body = self._request(
            "POST", endpoint, read_timeout=self.timeouts.generate, stage=stage, json_body=payload
        )
        if not isinstance(body, dict) or not isinstance(body.get("images"), list):
            raise BackendBadResponse("response has no images list", endpoint=endpoint, stage=stage)
        info = _parse_info(body.get("info"), endpoint, stage)
        first = info.get("index_of_first_image", 0)
        first = first if isinstance(first, int) and first >= 0 else 0
        infotexts = info.get("infotexts") or []
        seeds = info.get("all_seeds") or []
        images = []
        for i, raw in enumerate(body["images"][first:]):
            data, fmt = decode_b64_image(raw, endpoint, stage)
            infotext = infotexts[first + i] if first + i < len(infotexts) else ""
            seed = seeds[i] if i < len(seeds) and isinstance(seeds[i], int) else None
            images.append(GeneratedImage(data, fmt, str(infotext), seed))
        parameters = body.get("parameters")
        return GenerationResult(images, info, parameters if isinstance(parameters, dict) else {})

    def extra_single_image(self, payload: dict[str, Any], stage: str = "upscale") -> ExtrasResult:
        endpoint = API + "/extra-single-image"
        body = self._request(
            "POST", endpoint, read_timeout=self.timeouts.generate, stage=stage, json_body=payload
        )
        if not isinstance(body, dict) or "image" not in body:
            raise BackendBadResponse("response has no image", endpoint=endpoint, stage=stage)
        data, fmt = decode_b64_image(body["image"], endpoint, stage)
        html = body.get("html_info")
        return ExtrasResult(
            GeneratedImage(data, fmt, "", None), html if isinstance(html, str) else ""
        )

    # -- control -------------------------------------------------------------------------------

    def progress(self, skip_current_image: bool = True) -> dict[str, Any]:
        body = self._request(
            "GET",
            API + "/progress",
            read_timeout=self.timeouts.control,
            params={"skip_current_image": str(skip_current_image).lower()},
        )
        if not isinstance(body, dict) or not isinstance(body.get("state"), dict):
            raise BackendBadResponse("progress has no state", endpoint=API + "/progress")
        return body

    def interrupt(self) -> None:
        self._request("POST", API + "/interrupt", read_timeout=self.timeouts.control)

    def skip(self) -> None:
        self._request("POST", API + "/skip", read_timeout=self.timeouts.control)

    # -- options and models ------------------------------------------------------------------

    def get_options(self) -> dict[str, Any]:
        return self._object("/options")

    def set_options(self, values: dict[str, Any]) -> None:
        self._request(
            "POST", API + "/options", read_timeout=self.timeouts.options, json_body=values
        )

    def set_model(self, name: str) -> str:
        """Switch checkpoints and read the switch back; a switch that did not happen raises."""
        models = self.sd_models()
        match = next(
            (m for m in models if name in (m.get("title"), m.get("model_name"), m.get("hash"))),
            None,
        )
        if match is None:
            known = ", ".join(str(m.get("model_name")) for m in models)
            raise BackendRejected(
                f"unknown model {name!r} (known: {known})", endpoint=API + "/sd-models"
            )
        title = str(match["title"])
        if self.get_options().get("sd_model_checkpoint") != title:
            self.set_options({"sd_model_checkpoint": title})
            current = self.get_options().get("sd_model_checkpoint")
            if current != title:
                raise BackendServerError(
                    f"model switch to {title!r} did not take (backend reports {current!r})",
                    endpoint=API + "/options",
                )
        return title

    def set_vae(self, name: str) -> str:
        if self.get_options().get("sd_vae") != name:
            self.set_options({"sd_vae": name})
            current = self.get_options().get("sd_vae")
            if current != name:
                raise BackendServerError(
                    f"VAE switch to {name!r} did not take (backend reports {current!r})",
                    endpoint=API + "/options",
                )
        return name

    def sd_models(self) -> list[dict[str, Any]]:
        return self._list("/sd-models")

    def sd_vae(self) -> list[dict[str, Any]]:
        return self._list("/sd-vae")

    def samplers(self) -> list[dict[str, Any]]:
        return self._list("/samplers")

    def schedulers(self) -> list[dict[str, Any]]:
        return self._list("/schedulers")

    def upscalers(self) -> list[dict[str, Any]]:
        return self._list("/upscalers")

    def latent_upscale_modes(self) -> list[dict[str, Any]]:
        return self._list("/latent-upscale-modes")

    def loras(self) -> list[dict[str, Any]]:
        return self._list("/loras")

    def embeddings(self) -> dict[str, Any]:
        return self._object("/embeddings")

    def scripts(self) -> dict[str, Any]:
        return self._object("/scripts")

    def memory(self) -> dict[str, Any]:
        return self._object("/memory")

    def adetailer_models(self) -> list[str]:
        """The ADetailer extension's detection models (its own route, outside /sdapi/v1);
        a typed error when the extension is not installed."""
        body = self._request("GET", "/adetailer/v1/ad_model", read_timeout=self.timeouts.query)
        raw = body.get("ad_model") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise BackendBadResponse(
                "expected {'ad_model': [...]}", endpoint="/adetailer/v1/ad_model"
            )
        return [str(m) for m in raw if m and str(m) != "None"]

    def health(self) -> Health:
        """The readiness probe: `/sd-models` answers in API-only mode, `/internal/ping` does not."""
        try:
            response = self._http.get(
                API + "/sd-models",
                timeout=httpx.Timeout(self.timeouts.probe, connect=self.timeouts.connect),
            )
        except httpx.ConnectError:
            return Health.REFUSED
        except httpx.HTTPError:
            return Health.NOT_READY
        if response.status_code in (401, 403):
            return Health.AUTH_REJECTED
        return Health.OK if response.is_success else Health.NOT_READY

    def reference_version(self) -> str | None:
        """The version of StableNew's own reference backend when that is what answers (it says
        so in a header); None for a real A1111, Forge or SD.Next."""
        try:
            response = self._http.get(
                API + "/sd-models",
                timeout=httpx.Timeout(self.timeouts.probe, connect=self.timeouts.connect),
            )
        except httpx.HTTPError:
            return None
        version = response.headers.get(REFERENCE_HEADER)
        return str(version) if version is not None else None

    def is_healthy(self) -> bool:
        return self.health() is Health.OK


def _parse_info(raw: Any, endpoint: str, stage: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return {}
    try:
        info = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BackendBadResponse(
            "info is not JSON", endpoint=endpoint, stage=stage, snippet=raw
        ) from exc
    return info if isinstance(info, dict) else {}
