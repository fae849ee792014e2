"""The example workflows execute end to end through ComfyUI's executor on tiny models."""
import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.workflow_api import resize_template, template_prompt


class FakeServer:
    client_id = None
    last_node_id = None
    last_prompt_id = None

    def send_sync(self, event, data, sid=None):
        pass

    def queue_updated(self):
        pass


def run_prompt(comfy, prompt):
    import execution

    valid = asyncio.run(execution.validate_prompt("p", prompt, None))
    assert valid[0], f"prompt rejected: {valid[1]} {valid[3]}"
    executor = execution.PromptExecutor(FakeServer(), cache_type=execution.CacheType.CLASSIC)
    executor.execute(prompt, "p", {}, valid[2])
    assert executor.success, executor.status_messages
    return executor


@pytest.mark.parametrize("kind", ["sd1", "sdxl"])
def test_diffedit_workflow_executes(comfy, kind):
    import folder_paths

    image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(Path(folder_paths.get_input_directory()) / "example.png")
    prompt = template_prompt(comfy, "diffedit.json", kind)
    resize_template(prompt, 128)  # keep CPU time small
    for node in prompt.values():
        if node["class_type"] == "DragEdit_DiffEditMaskInfer":
            node["inputs"].update(samples=2, steps=10)
        if node["class_type"] == "DragEdit_DDIMInversion":
            node["inputs"].update(steps=10)
    executor = run_prompt(comfy, prompt)
    outputs = executor.history_result["outputs"]
    saved = [node_id for node_id, node in prompt.items() if node["class_type"] == "SaveImage"]
    assert outputs[saved[0]]["images"], "SaveImage wrote nothing"
    previews = [node_id for node_id, node in prompt.items() if node["class_type"] == "PreviewImage"]
    assert all(outputs[p]["images"] for p in previews)


@pytest.mark.parametrize("kind", ["flux", "sd3"])
def test_diffedit_flux_workflow_executes(comfy, kind):
    """The Flux template on the tiny Flux (and, FluxGuidance being ignored there, SD3): mask, inversion, masked
    decode and the stock SamplerCustom continuing the inversion's latent down its sigmas."""
    import folder_paths

    image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(Path(folder_paths.get_input_directory()) / "example.png")
    prompt = template_prompt(comfy, "diffedit_flux.json", kind)
    resize_template(prompt, 128)
    for node in prompt.values():
        if node["class_type"] == "DragEdit_DiffEditMaskInfer":
            node["inputs"].update(samples=2, steps=10, threshold=0.3)  # random weights: near-uniform differences
        if node["class_type"] == "DragEdit_DDIMInversion":
            node["inputs"].update(steps=10)
    executor = run_prompt(comfy, prompt)
    outputs = executor.history_result["outputs"]
    images = [node_id for node_id, node in prompt.items() if node["class_type"] in ("SaveImage", "PreviewImage")]
    assert len(images) == 4 and all(outputs[node_id]["images"] for node_id in images)


@pytest.mark.parametrize("name, kind", [("drag_real_image.json", "sd1"), ("drag_real_image.json", "sdxl"),
                                        ("drag_generated_image.json", "sd1"), ("gooddrag_real_image.json", "sd1")])
def test_drag_workflows_execute(comfy, name, kind):
    import folder_paths

    picture = (np.random.default_rng(1).random((128, 128, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(Path(folder_paths.get_input_directory()) / "example.png")
    prompt = template_prompt(comfy, name, kind)
    resize_template(prompt, 128)  # keep CPU time small: 128 px instead of 512
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "EmptyLatentImage":
            inputs.update(width=128, height=128)
        if node["class_type"] in ("DragEdit_DDIMInversion", "KSampler"):
            inputs.update(steps=10)
        if node["class_type"] == "DragEdit_LoRAIdentityTune":
            inputs.update(steps=3, rank=2, batch_size=2)
        if node["class_type"] == "DragEdit_DragLatentOptimize":
            inputs["steps"] = 3
        if node["class_type"] == "DragEdit_GoodDragLatentOptimize":
            inputs.update(drag_end_step=2, tracks_per_step=1, max_updates_per_track=1, motion_radius=2,
                          track_radius=4)
    executor = run_prompt(comfy, prompt)
    outputs = executor.history_result["outputs"]
    saved = [node_id for node_id, node in prompt.items() if node["class_type"] == "SaveImage"]
    assert outputs[saved[0]]["images"], "SaveImage wrote nothing"
    drag_id = next(node_id for node_id, node in prompt.items()
                   if node["class_type"] in ("DragEdit_DragLatentOptimize", "DragEdit_GoodDragLatentOptimize"))
    assert outputs[drag_id]["drag_preview"] and len(json.loads(outputs[drag_id]["tracked_points"][0])) == 2


@pytest.mark.parametrize("name", ["instant_drag.json", "instant_drag_lcm.json"])
def test_instant_drag_workflows_execute(comfy, name):
    """On a tiny random inpainting checkpoint (9 input channels, as ComfyUI detects one): the warp, the stock
    inpaint conditioning and sampler, the paste; the LCM variant loads its LoRA (an empty one here)."""
    from safetensors.torch import save_file

    import folder_paths

    picture = (np.random.default_rng(2).random((128, 128, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(Path(folder_paths.get_input_directory()) / "example.png")
    loras = Path(folder_paths.get_folder_paths("loras")[0])
    save_file({}, str(loras / "lcm-lora-sdv1-5.safetensors"))
    prompt = template_prompt(comfy, name, "sd1-inpaint")
    resize_template(prompt, 128)
    executor = run_prompt(comfy, prompt)
    outputs = executor.history_result["outputs"]
    saved = next(node_id for node_id, node in prompt.items() if node["class_type"] == "SaveImage")
    assert outputs[saved]["images"], "SaveImage wrote nothing"
    warp = next(node_id for node_id, node in prompt.items() if node["class_type"] == "DragEdit_RegionWarp")
    assert outputs[warp]["drag_preview"], "the point editor gets its picture"
