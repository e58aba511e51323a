"""Files from the browser, as base64 inside JSON: input images by the file chooser or by
drag-and-drop, a prompt pack with its wildcards, a preset, the settings of a PNG; the LoRA and
embedding pickers from the backend's lists."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from tests.web.conftest import PHONE, Page, spec, submit


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def drop_files(ui: Page, target_id: str, files: list[tuple[str, bytes, str]]) -> None:
    """What dropping files from the desktop delivers: a drop event whose DataTransfer holds
    them (a WebDriver cannot drag from outside the browser)."""
    encoded = [(name, base64.b64encode(data).decode(), kind) for name, data, kind in files]
    ui.js(
        """
        const [id, files] = arguments;
        const transfer = new DataTransfer();
        for (const [name, b64, kind] of files) {
          const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
          transfer.items.add(new File([bytes], name, {type: kind}));
        }
        const target = document.getElementById(id);
        for (const type of ['dragenter', 'dragover', 'drop']) {
          target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true,
                                                    dataTransfer: transfer}));
        }
        """,
        target_id,
        encoded,
    )


def test_input_images_by_chooser_and_by_drop(page: Callable[..., Page], tmp_path: Path) -> None:
    ui = page()
    first = tmp_path / "first.png"
    first.write_bytes(png_bytes((200, 30, 30)))
    ui.by_id("c-files").send_keys(str(first))
    drop_files(ui, "c-drop", [("second.png", png_bytes((30, 200, 30), (96, 64)), "image/png")])
    ui.wait_for(lambda: ui.texts("#c-inputs .name") == ["first.png", "second.png"], "both")
    assert ui.texts("#c-inputs .muted") == ["64\u00d764", "96\u00d764"]
    thumbs = ui.els("#c-inputs img")
    ui.wait_for(lambda: all(ui.js("return arguments[0].naturalWidth", t) for t in thumbs), "shown")
    assert "skipped" in ui.text("#s-txt2img-note")
    assert ui.by_id("c-images").get_attribute("value") == "2"
    # From images: the API says a stage is needed (txt2img does not run)
    ui.wait_for(lambda: any("needs img2img" in m for m in ui.texts("#c-messages li")), "why")
    ui.click("#s-upscale > summary input")
    ui.click("#c-per-image")  # one job per image
    ui.wait_for(lambda: ui.text("#c-summary") == "2 jobs, 2 images", "two jobs")
    ui.click("#c-queue")
    ui.wait_for(lambda: "Queued 2 jobs" in ui.toast(), "queued")
    ui.wait_for(lambda: len(ui.els("#q-recent li[data-status='COMPLETED']")) == 2, "done")
    jobs = [ui.server.job(i) for i in ui.job_ids("#q-recent li")]
    starts = sorted((j["spec"]["inputs"][0]["name"], j["spec"]["inputs"][0]["size"]) for j in jobs)
    assert starts == [("first.png", [64, 64]), ("second.png", [96, 64])]
    assert all(j["spec"]["images"] == 1 and j["result"]["images"] for j in jobs)
    # A file that is not an image is refused, by name
    drop_files(ui, "c-drop", [("notes.png", b"not a picture", "image/png")])
    ui.wait_for(lambda: "notes.png: not an image" in ui.toast(), "refused")


def test_a_pack_with_wildcards_then_a_preset_then_a_png(
    page: Callable[..., Page], tmp_path: Path
) -> None:
    ui = page()
    files = {
        "portraits.txt": "a __animal__ portrait\n\na quiet harbour\n",
        "animal.txt": "fox\nowl\n",
        "portraits.json": json.dumps(
            {"preset_data": {"txt2img": {"steps": 2, "width": 64, "height": 64}}}
        ),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    ui.by_id("c-upload").send_keys("\n".join(str(tmp_path / n) for n in files))
    ui.wait_for(lambda: ui.text("#c-pack-text") == "Pack portraits: 2 jobs, 2 images", "checked")
    ui.click("#c-queue")
    ui.wait_for(lambda: "Queued 2 jobs" in ui.toast(), "queued")
    ui.wait_for(lambda: len(ui.els("#q-recent li[data-status='COMPLETED']")) == 2, "done")
    prompts = set(ui.texts("#q-recent li .prompt-text"))
    assert prompts in ({"a quiet harbour", "a fox portrait"}, {"a quiet harbour", "a owl portrait"})
    ui.click("#c-pack-clear")
    ui.wait_for(lambda: ui.by_id("c-pack").get_attribute("hidden") is not None, "no pack")

    # A preset: its settings into the form, the prompt kept
    ui.set_value("c-prompt", "my own prompt")
    preset = tmp_path / "fast.json"
    preset.write_text(
        json.dumps({"txt2img": {"steps": 7, "cfg_scale": 4.5, "sampler_name": "DDIM"}})
    )
    ui.by_id("c-upload").send_keys(str(preset))
    ui.wait_for(lambda: "Preset fast applied" in ui.toast(), "applied")
    assert ui.by_id("c-steps").get_attribute("value") == "7"
    assert ui.by_id("c-cfg").get_attribute("value") == "4.5"
    assert ui.by_id("c-sampler").get_attribute("value") == "DDIM"
    assert ui.by_id("c-prompt").get_attribute("value") == "my own prompt"

    # A PNG StableNew made: its job's settings, exactly
    made = submit(ui.server, {"spec": spec("from a png", seed=1234, steps=3, cfg_scale=5.5)})[0]
    done = ui.server.wait_status(made, "COMPLETED")
    image = Path(done["result"]["images"][0])
    ui.by_id("c-upload").send_keys(str(image))
    ui.wait_for(lambda: ui.by_id("c-prompt").get_attribute("value") == "from a png", "loaded")
    assert ui.by_id("c-seed").get_attribute("value") == "1234"
    assert ui.by_id("c-steps").get_attribute("value") == "3"
    assert ui.by_id("c-cfg").get_attribute("value") == "5.5"


def test_lora_and_embedding_pickers(page: Callable[..., Page]) -> None:
    ui = page()
    loras = [o for o in ui.texts("#c-lora option")][1:]
    embeddings = [o for o in ui.texts("#c-embedding option")][1:]
    assert "add_detail" in loras and embeddings, (loras, embeddings)
    ui.set_value("c-prompt", "a castle")
    ui.choose("c-lora", "add_detail")
    ui.wait_for(
        lambda: ui.by_id("c-prompt").get_attribute("value") == "a castle, <lora:add_detail:1>",
        "inserted",
    )
    ui.choose("c-embedding", embeddings[0])
    expected = f"a castle, <lora:add_detail:1>, <embedding:{embeddings[0]}>"
    ui.wait_for(lambda: ui.by_id("c-prompt").get_attribute("value") == expected, "inserted")
    for field, value in (("c-steps", "2"), ("c-width", "64"), ("c-height", "64")):
        ui.set_value(field, value)
    ui.wait_for(lambda: ui.text("#c-summary") == "1 job, 1 image", "the backend has both")


def test_a_pack_that_is_not_utf8_is_refused_by_name_and_byte(
    page: Callable[..., Page], tmp_path: Path
) -> None:
    ui = page()
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    ui.by_id("c-upload").send_keys(str(latin1))
    refusal = "latin1.txt: not UTF-8 text (byte 3 is not UTF-8); save it as UTF-8"
    ui.wait_for(lambda: refusal in ui.toast(), "refused as the CLI refuses it")
    assert ui.texts("#c-messages li") == [refusal]
    assert ui.js("return window.stablenew.compose.pack") is None, "nothing to queue"
    assert ui.by_id("c-pack").get_attribute("hidden") is not None

    # UTF-8 with a Windows editor's BOM: read, the BOM dropped
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffcaf\u00e9 au lait\n".encode())
    ui.by_id("c-upload").send_keys(str(bom))
    ui.wait_for(lambda: ui.text("#c-pack-text") == "Pack bom: 1 job, 1 image", "read")
    assert ui.js("return window.stablenew.compose.pack.text") == "caf\u00e9 au lait\n"


def test_pickers_insert_into_the_prompt_box_last_used(page: Callable[..., Page]) -> None:
    ui = page()
    embeddings = [o for o in ui.texts("#c-embedding option")][1:]
    ui.set_value("c-prompt", "a castle")
    ui.set_value("c-negative", "blurry")  # the cursor is now in the negative prompt
    ui.choose("c-embedding", embeddings[0])
    expected = f"blurry, <embedding:{embeddings[0]}>"
    ui.wait_for(lambda: ui.by_id("c-negative").get_attribute("value") == expected, "negative")
    ui.choose("c-lora", "add_detail")
    expected += ", <lora:add_detail:1>"
    ui.wait_for(lambda: ui.by_id("c-negative").get_attribute("value") == expected, "still there")
    assert ui.by_id("c-prompt").get_attribute("value") == "a castle"
    ui.by_id("c-prompt").click()  # back in the prompt: the next one goes there
    ui.choose("c-lora", "add_detail")
    ui.wait_for(
        lambda: ui.by_id("c-prompt").get_attribute("value") == "a castle, <lora:add_detail:1>",
        "positive",
    )
    assert ui.by_id("c-negative").get_attribute("value") == expected


def test_a_big_pack_on_a_phone_is_queued_with_a_short_toast(
    page: Callable[..., Page], tmp_path: Path
) -> None:
    ui = page(size=PHONE)
    assert ui.server.post("/api/v1/queue/pause", {"reason": "only queueing"}).status_code == 200
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"prompt number {n}" for n in range(60)) + "\n")
    ui.by_id("c-upload").send_keys(str(big))
    ui.wait_for(lambda: ui.text("#c-pack-text") == "Pack big: 60 jobs, 60 images", "checked")
    ui.click("#c-queue")
    ui.wait_for(lambda: "Queued 60 jobs" in ui.toast(), "queued")
    first = ui.server.get("/api/v1/jobs?status=QUEUED&limit=1").json()["jobs"][0]["id"]
    assert ui.toast() == f"Queued 60 jobs ({first[:8]}\u2026).", "the ids capped"


def test_a_file_that_is_not_json_is_named(page: Callable[..., Page], tmp_path: Path) -> None:
    ui = page()
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    ui.by_id("c-upload").send_keys(str(garbage))
    ui.wait_for(lambda: "garbage.json: not JSON (" in ui.toast(), "named")
    assert ui.texts("#c-messages li") == [ui.toast()]


def test_an_empty_pack_says_what_the_check_found(page: Callable[..., Page], tmp_path: Path) -> None:
    ui = page()
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    ui.by_id("c-upload").send_keys(str(empty))
    ui.wait_for(lambda: "empty.txt" in " ".join(ui.texts("#c-messages li")), "the check's words")
    found = "; ".join(ui.texts("#c-messages li"))
    ui.wait_for(lambda: ui.text("#c-pack-text") == f"Pack empty: {found}", "what it found")
