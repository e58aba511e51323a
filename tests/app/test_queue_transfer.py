"""A queue exported from one home and imported into another: every input image goes with it
(or the import names what is missing and queues nothing), and the jobs write under the
importing home's output root unless the user chose one."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from stablenew.app.intents import Overrides
from stablenew.app.queue_export import QueueExport
from stablenew.app.services import Services
from stablenew.errors import InputError
from stablenew.jobs.spec import JobSpec
from tests.pipeline.conftest import service_config


def test_an_export_carries_its_input_images_and_lands_in_the_importing_home(
    tmp_path: Path,
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.new("RGB", (64, 48), (60 * i, 80, 160)).save(photos / f"p{i}.png")
    here = Services(service_config(tmp_path / "here"))
    there = Services(service_config(tmp_path / "there"))
    try:
        specs = here.intents.images([str(photos)], Overrides(stages=["upscale"]))
        custom = str(tmp_path / "chosen")
        chosen = JobSpec.model_validate({"prompt": "a kite", "output": {"root": custom}})
        here.jobs.submit_many([*specs, chosen])
        text = here.jobs.export_queue().model_dump_json(by_alias=True)

        bare = QueueExport.model_validate_json(text).model_copy(update={"inputs": {}})
        with pytest.raises(InputError, match=r"p0\.png \([0-9a-f]{12}\), p1\.png"):
            there.jobs.import_queue(bare)
        assert there.jobs.store.pending() == []

        there.jobs.import_queue(QueueExport.model_validate_json(text))
        pending = there.jobs.store.pending()
        assert [j.spec.output.root for j in pending] == [
            str((tmp_path / "there" / "out").absolute()),
            str((tmp_path / "there" / "out").absolute()),
            custom,
        ]
        assert there.intents.inputs is not None
        assert all(there.intents.inputs.has(j.spec.inputs[0].sha256) for j in pending[:2])
    finally:
        here.close()
        there.close()
