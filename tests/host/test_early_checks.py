"""What the drag nodes can check without a model is checked before the model work upstream runs (issue 17, defect 5).

The shipped templates run through ComfyUI's own executor on a tiny checkpoint with one input broken: the drag node's
``check_lazy_status`` sees the picture and the points before its lazy ``model`` and ``trajectory`` are computed, and
ComfyUI runs the drag node (an output node) and what feeds its picture ahead of the rest, so no LoRA step and no
inversion runs.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.workflow_api import template_prompt

from .pack import pack_module
from .test_workflows import FakeServer


@pytest.fixture
def model_work(comfy, monkeypatch):
    """The LoRA trainings and inversions that started."""
    started = []
    lora, inversion = pack_module("nodes.lora"), pack_module("nodes.inversion")
    monkeypatch.setattr(lora.LoRAIdentityTune, "_train", staticmethod(lambda *a, **k: started.append("lora")))
    original = inversion.invert_latent
    monkeypatch.setattr(inversion, "invert_latent",
                        lambda *a, **k: (started.append("inversion"), original(*a, **k))[1])
    return started


def execute(comfy, prompt):
    import asyncio

    import execution

    valid = asyncio.run(execution.validate_prompt("p", prompt, None))
    assert valid[0], f"prompt rejected at queue time: {valid[1]} {valid[3]}"
    executor = execution.PromptExecutor(FakeServer(), cache_type=execution.CacheType.CLASSIC)
    executor.execute(prompt, "p", {}, valid[2])
    return executor


def error_of(executor) -> dict:
    return next(data for event, data in executor.status_messages if event == "execution_error")


@pytest.mark.parametrize("template", ["drag_real_image.json", "gooddrag_real_image.json"])
@pytest.mark.parametrize("broken, message", [
    ({"drag_points": json.dumps([{"handle": [600, 100], "target": [500, 90]}])},
     "pair 1 handle \\(600, 100\\) is outside the 512x512 image"),
    ({"mask_size": 400}, "mask \\(1, 400, 400\\) must be the image's size 512x512"),
])
def test_a_drag_the_picture_refuses_fails_before_any_model_work(comfy, model_work, template, broken, message):
    import re

    Image.fromarray((np.random.default_rng(0).random((96, 96, 3)) * 255).astype(np.uint8)).save(
        Path(comfy.HOST_BASE_DIR) / "input" / "example.png")
    prompt = template_prompt(comfy, template, "sd1")
    drag_id = next(key for key, node in prompt.items() if "LatentOptimize" in node["class_type"])
    if "drag_points" in broken:
        prompt[drag_id]["inputs"]["drag_points"] = broken["drag_points"]
    else:  # a MASK of another size than the picture, two nodes upstream (as Solid Mask + Mask Composite make one)
        size = broken["mask_size"]
        prompt["90"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": size, "height": size}}
        prompt["91"] = {"class_type": "MaskComposite", "inputs": {"destination": ["90", 0], "source": ["90", 0],
                                                                  "x": 0, "y": 0, "operation": "add"}}
        prompt[drag_id]["inputs"]["mask"] = ["91", 0]
    executor = execute(comfy, prompt)
    assert not executor.success
    error = error_of(executor)
    assert error["node_id"] == drag_id and re.search(message, error["exception_message"]), error
    assert model_work == [], "the LoRA training or the inversion ran before the drag node checked its picture"


def test_a_gooddrag_end_step_past_the_inversion_fails_before_any_model_work(comfy, model_work):
    """drag_end_step against the DDIM Inversion the trajectory comes from (its steps and strength on the graph)."""
    Image.new("RGB", (96, 96), (120, 160, 220)).save(Path(comfy.HOST_BASE_DIR) / "input" / "example.png")
    prompt = template_prompt(comfy, "gooddrag_real_image.json", "sd1")
    drag_id = next(key for key, node in prompt.items() if node["class_type"] == "DragEdit_GoodDragLatentOptimize")
    prompt[drag_id]["inputs"]["drag_end_step"] = 38  # 50 steps x strength 0.75 = 38: none left to denoise
    executor = execute(comfy, prompt)
    error = error_of(executor)
    assert error["node_id"] == drag_id, error
    assert "drag_end_step 38 leaves none of the trajectory's 38 denoising steps" in error["exception_message"]
    assert model_work == []
