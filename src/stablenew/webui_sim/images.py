"""Deterministic pictures, infotexts and upscales for the reference backend.

A picture is a coarse grid of seeded colours (palette from the prompt's hash) smoothed into colour
fields by a bicubic resize: cheap, never blank, byte-identical for the same request, visibly
different for another seed or prompt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

from stablenew.webui_sim.catalog import Upscaler

GRID = 6


def synthesize(prompt: str, negative: str, seed: int, width: int, height: int) -> Image.Image:
    digest = hashlib.sha256(f"{prompt}\x00{negative}".encode()).digest()
    palette = [tuple(digest[i : i + 3]) for i in range(0, 12, 3)]
    rng = random.Random(seed)
    cells = bytearray()
    for _ in range(GRID * GRID):
        base = palette[rng.randrange(len(palette))]
        cells.extend(max(0, min(255, c + rng.randint(-60, 60))) for c in base)
    grid = Image.frombytes("RGB", (GRID, GRID), bytes(cells))
    return grid.resize((width, height), Image.Resampling.BICUBIC)


def partly_sampled(target: Image.Image, noise_seed: int, fraction: float) -> Image.Image:
    """The picture `fraction` of the way from seeded noise to `target`: what an interrupted batch
    returns and what a live preview shows mid-sampling."""
    noise = synthesize("noise", "", noise_seed, *target.size)
    return Image.blend(noise, target, max(0.0, min(1.0, fraction)))


@dataclass(frozen=True)
class Preview:
    """What the live preview of a batch shows: its first picture, as far as sampling has got."""

    target: Image.Image
    noise_seed: int

    def at(self, fraction: float) -> Image.Image:
        return partly_sampled(self.target, self.noise_seed, fraction)


def blend_toward(init: Image.Image, target: Image.Image, strength: float) -> Image.Image:
    if init.size != target.size or init.mode != "RGB":
        init = init.convert("RGB").resize(target.size, Image.Resampling.LANCZOS)
    return Image.blend(init, target, max(0.0, min(1.0, strength)))


def detected_region(seed: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The box a fake face detector 'finds': deterministic from the seed, inside the image."""
    rng = random.Random(seed ^ 0xADE7)
    w, h = max(8, width // 4), max(8, height // 4)
    x = rng.randint(0, max(0, width - w))
    y = rng.randint(0, max(0, height - h))
    return x, y, x + w, y + h


def adetailer_edit(
    image: Image.Image, box: tuple[int, int, int, int], strength: float
) -> Image.Image:
    """A visible local edit: the detected region smoothed and lightened, feathered at the edge."""
    region = image.crop(box).filter(ImageFilter.GaussianBlur(2))
    region = Image.blend(region, Image.new("RGB", region.size, (240, 220, 200)), 0.5 * strength)
    mask = Image.new("L", region.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, region.size[0] - 1, region.size[1] - 1), fill=255)
    out = image.copy()
    out.paste(region, box[:2], mask.filter(ImageFilter.GaussianBlur(2)))
    return out


def _quote(value: object) -> str:
    text = str(value)
    if any(ch in text for ch in ",:\n"):
        return json.dumps(text, ensure_ascii=False)
    return text


def infotext(prompt: str, negative: str, params: dict[str, object]) -> str:
    """A1111's infotext: prompt, optional negative line, then `Key: value` pairs (None dropped)."""
    pairs = ", ".join(f"{k}: {_quote(v)}" for k, v in params.items() if v is not None)
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{pairs}"


def encode_png(image: Image.Image, text_chunks: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text_chunks.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, compress_level=1)
    return buf.getvalue()


def encode_image(image: Image.Image, fmt: str, text_chunks: dict[str, str]) -> str:
    """Raw base64 (no data: prefix) in the `samples_format` the options ask for."""
    if fmt.lower() in ("jpg", "jpeg", "webp"):
        buf = io.BytesIO()
        image.save(buf, format="JPEG" if fmt.lower() != "webp" else "WEBP", quality=90)
        return base64.b64encode(buf.getvalue()).decode()
    return base64.b64encode(encode_png(image, text_chunks)).decode()


class InvalidImage(ValueError):
    pass


def decode_image(data: str) -> Image.Image:
    """Raw base64 or a data URL, like A1111's decode_base64_to_image."""
    if data.startswith("data:image/"):
        data = data.split(";", 1)[1].split(",", 1)[1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=False)))
        image.load()
    except (binascii.Error, OSError, ValueError) as exc:
        raise InvalidImage("Invalid encoded image") from exc
    return image


def tiles(width: int, height: int, tile: int, overlap: int) -> Iterable[tuple[int, int, int, int]]:
    """Tile boxes covering the image; tile 0 means one tile, as ESRGAN_tile=0 does."""
    if tile <= 0 or (width <= tile and height <= tile):
        yield (0, 0, width, height)
        return
    stride = max(1, tile - max(0, overlap))
    for y in range(0, max(1, height - overlap), stride):
        for x in range(0, max(1, width - overlap), stride):
            yield (x, y, min(x + tile, width), min(y + tile, height))


def count_tiles(width: int, height: int, tile: int, overlap: int) -> int:
    return sum(1 for _ in tiles(width, height, tile, overlap))


def model_pass(
    image: Image.Image,
    upscaler: Upscaler,
    tile: int,
    overlap: int,
    on_tile: Callable[[int, int], bool],
) -> Image.Image:
    """One simulated model pass at the upscaler's native scale, tile by tile.

    `on_tile(done, total)` runs after each tile and returns False to stop early (interrupt), as
    A1111's tiled upscalers check the interrupt flag between tiles.
    """
    scale = int(upscaler.scale)
    boxes = list(tiles(image.width, image.height, tile, overlap))
    out = Image.new("RGB", (image.width * scale, image.height * scale))
    for done, box in enumerate(boxes, start=1):
        part = image.crop(box).resize(
            ((box[2] - box[0]) * scale, (box[3] - box[1]) * scale), Image.Resampling.LANCZOS
        )
        if upscaler.sharpen:
            part = part.filter(ImageFilter.SHARPEN)
        out.paste(part, (box[0] * scale, box[1] * scale))
        if not on_tile(done, len(boxes)):
            break
    return out
