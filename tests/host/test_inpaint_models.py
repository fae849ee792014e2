"""The instant drag on SDXL inpainting and Flux Fill in real ComfyUI: the shipped templates through the executor, on
random-weight models that ComfyUI's own detection names SDXL inpainting and Flux Fill, read off their weights."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support import comfy_host
from tests.support.workflow_api import resize_template, template_prompt

from .test_workflows import run_prompt

PX = 128  # the templates' 1024 scaled down for the CPU (the detectable SDXL is 134 M parameters)
TEMPLATES = {"sdxl-inpaint": "instant_drag_sdxl.json", "flux-fill": "instant_drag_flux_fill.json"}
SDXL_LCM_LORA = "lcm_lora_sdxl.safetensors"
LORA_TARGET = "input_blocks.4.1.transformer_blocks.0.attn1.to_q"  # a layer the LoRA file below changes


class Keep:
    """An output node that keeps what reaches it, so a test reads the graph's tensors themselves."""
    kept = {}
    RETURN_TYPES = ()
    FUNCTION = "keep"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": ""})},
                "optional": {"image": ("IMAGE",), "mask": ("MASK",), "model": ("MODEL",)}}

    def keep(self, name, image=None, mask=None, model=None):
        """Pictures and masks as they are; of a model, the weights its patches (a LoRA's) change."""
        Keep.kept[name] = set(model.patches) if model is not None else (image if image is not None else mask).clone()
        return {}


@pytest.fixture
def kept(comfy):
    comfy.NODE_CLASS_MAPPINGS["DragEditTest_Keep"] = Keep
    Keep.kept = {}
    yield Keep.kept
    comfy.NODE_CLASS_MAPPINGS.pop("DragEditTest_Keep")


def test_comfyui_detects_the_test_models_as_sdxl_inpainting_and_flux_fill(comfy):
    """ComfyUI's model detection, run on each model's own weights, names its family; the SDXL one went through
    ComfyUI's diffusion-model loader, Flux Fill's 384-wide input is its detection key."""
    from comfy import model_detection, supported_models

    models = comfy_host.test_models(comfy)
    sdxl = models.make_detected_model("sdxl-inpaint")
    detected = model_detection.model_config_from_unet(sdxl.model.diffusion_model.state_dict(), "")
    assert type(detected) is supported_models.SDXL and detected.inpaint_model()
    assert type(sdxl.model.model_config) is supported_models.SDXL and sdxl.model.model_config.inpaint_model()
    assert sdxl.model.diffusion_model.input_blocks[0][0].weight.shape[1] == 9
    flux = models.make_detected_model("flux-fill")
    weights = flux.model.diffusion_model.state_dict()
    assert weights["img_in.weight"].shape[1] == 384
    assert type(model_detection.model_config_from_unet(weights, "")) is supported_models.FluxInpaint
    assert type(flux.model.model_config) is supported_models.FluxInpaint


def write_lora(path: Path) -> None:
    """A LoRA of rank 4 on one layer of the detectable SDXL (tests/support/comfy_models.py), in kohya's key format."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(4)
    key = "lora_unet_" + LORA_TARGET.replace(".", "_")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"{key}.lora_up.weight": torch.randn(320, 4, generator=generator),
               f"{key}.lora_down.weight": torch.randn(4, 320, generator=generator), f"{key}.alpha": torch.tensor(4.0)},
              str(path))


def _inputs():
    """The stock picture's stand-in, and the SDXL template's LCM LoRA: a real one, on one layer of the model."""
    import folder_paths

    picture = (np.random.default_rng(3).random((160, 160, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(Path(folder_paths.get_input_directory()) / "example.png")
    write_lora(Path(folder_paths.get_folder_paths("loras")[0]) / SDXL_LCM_LORA)


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_the_template_keeps_the_warped_picture_outside_the_area_to_inpaint(comfy, kept, kind):
    """Warp, inpaint conditioning (Flux Fill's through FluxGuidance), the model's sampler, the composite: outside the
    area to inpaint the saved picture is the warped one bit for bit, inside it is the decoded inpainting bit for bit,
    though the model (noise mask off, as its sources run it) changed the outside too.  The shared model is unchanged
    once ComfyUI lets it go (the SDXL template's LoRA patches its weights while it samples)."""
    from comfy import model_management

    _inputs()
    prompt = template_prompt(comfy, TEMPLATES[kind], kind)
    resize_template(prompt, PX)
    warp = next(key for key, node in prompt.items() if node["class_type"] == "DragEdit_RegionWarp")
    by_type = {node["class_type"]: key for key, node in prompt.items()}
    for name, (source, slot, kind_of) in {"warped": (warp, 0, "image"), "inpaint_mask": (warp, 1, "mask"),
                                          "decoded": (by_type["VAEDecode"], 0, "image"),
                                          "saved": (by_type["ImageCompositeMasked"], 0, "image")}.items():
        prompt[f"keep_{name}"] = {"class_type": "DragEditTest_Keep", "inputs": {"name": name, kind_of: [source, slot]}}
    prompt["keep_sampled"] = {"class_type": "DragEditTest_Keep",
                              "inputs": {"name": "sampled", "model": prompt[by_type["KSampler"]]["inputs"]["model"]}}
    model = comfy_host.test_models(comfy).make_detected_model(kind)
    before = {key: value.clone() for key, value in model.model.diffusion_model.state_dict().items()}

    run_prompt(comfy, prompt)
    warped, saved, decoded = kept["warped"][0], kept["saved"][0], kept["decoded"][0]
    outside = kept["inpaint_mask"][0] == 0
    assert warped.shape == saved.shape == decoded.shape == (PX, PX, 3) and 0 < (~outside).sum() < outside.sum()
    assert torch.equal(saved[outside], warped[outside])
    assert torch.equal(saved[~outside], decoded[~outside])
    assert (decoded[outside] - warped[outside]).abs().max() > 0.01, "the composite's exactness was not tested"
    assert kept["sampled"] == ({f"diffusion_model.{LORA_TARGET}.weight"} if kind == "sdxl-inpaint" else set())
    model_management.unload_all_models()
    after = model.model.diffusion_model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[key], before[key]) for key in before)
