"""LoRA Identity Tune inside real ComfyUI: the saved file goes through the stock LoRA loader unchanged."""
import logging
import sys

import pytest
import torch

NODE_ID = "DragEdit_LoRAIdentityTune"
TARGETS = (".to_q", ".to_k", ".to_v", ".to_out.0")
FAST = dict(steps=4, learning_rate=5e-2, rank=4, batch_size=2, training_seed=0)  # big lr: lora_up moves away from 0


def pack_module(suffix):
    return next(m for name, m in sys.modules.items() if name.endswith(suffix) and "drag-diffedit" in name)


def tune(comfy, model, cond, latent, save_name="", overwrite=False, **settings):
    with torch.inference_mode():
        return comfy.NODE_CLASS_MAPPINGS[NODE_ID].execute(model, cond, latent, save_name=save_name, overwrite=overwrite,
                                                          **dict(FAST, **settings)).args


def lora_modules(model) -> list[str]:
    return [name for name, _ in model.model.diffusion_model.named_modules() if name.endswith(TARGETS)]


def denoised(model, cond, latent, sigma=2.0):
    """One denoiser call through ComfyUI's guider (patches applied as when sampling)."""
    backend = pack_module("core.backends.comfy")
    with torch.inference_mode():
        out, _ = backend.run_guided(model, cond, None, 1.0, latent["samples"], torch.tensor([sigma]),
                                    lambda denoise, x: (denoise(x, torch.tensor([sigma])), None))
    return out


def assert_shared_unet_untouched(model, weights_before):
    from comfy import model_management
    from peft.tuners.lora import LoraLayer

    model_management.unload_all_models()  # take back weight patches baked in by loading
    unet = model.model.diffusion_model
    assert not any(isinstance(m, LoraLayer) for m in unet.modules())
    state = unet.state_dict()
    assert state.keys() == weights_before.keys()
    assert all(torch.equal(state[k], weights_before[k]) for k in state)


def test_node_is_registered_with_tooltips(comfy):
    schema = comfy.NODE_CLASS_MAPPINGS[NODE_ID].GET_SCHEMA()
    assert schema.display_name == "LoRA Identity Tune" and schema.category == "image editing"
    assert all(i.tooltip for i in schema.inputs) and all(o.tooltip for o in schema.outputs)


@pytest.mark.parametrize("kind", ["sd1", "sd1-v", "sdxl"])
def test_tuned_model_equals_the_saved_file_through_the_stock_loader(comfy, tiny, kind, caplog):
    from comfy import lora as comfy_lora, utils as comfy_utils
    import folder_paths

    model, cond, latent = tiny.make_model(kind), tiny.conditioning(kind), tiny.latent(size=8)
    inputs_before = tiny.snapshot((latent, cond))
    weights_before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    patches_before = dict(model.patches)

    with caplog.at_level(logging.INFO):
        tuned, lora_name = tune(comfy, model, cond, latent, save_name=f"host/{kind}.safetensors", overwrite=True)
    assert lora_name == f"comfyui-drag-diffedit/host/{kind}.safetensors"
    assert lora_name in folder_paths.get_filename_list("loras")
    assert "LoRA Identity Tune: 4 steps, loss" in caplog.text
    assert tiny.same(inputs_before, (latent, cond)) and dict(model.patches) == patches_before
    assert_shared_unet_untouched(model, weights_before)

    # Every module of the file maps onto the model: one patch per LoRA'd projection, nothing left over.
    modules = lora_modules(model)
    state = comfy_utils.load_torch_file(folder_paths.get_full_path_or_raise("loras", lora_name), safe_load=True)
    assert len(state) == 3 * len(modules)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        patches = comfy_lora.load_lora(state, comfy_lora.model_lora_keys_unet(model.model, {}))
        (stock,) = comfy.NODE_CLASS_MAPPINGS["LoraLoaderModelOnly"]().load_lora_model_only(model, lora_name, 1.0)
    assert len(patches) == len(modules) and "not loaded" not in caplog.text.lower()
    assert set(tuned.patches) == {f"diffusion_model.{m}.weight" for m in modules}

    base_out, tuned_out, stock_out = (denoised(m, cond, latent) for m in (model, tuned, stock))
    assert float((tuned_out - base_out).abs().max()) > 1e-4, "the LoRA should change the model's output"
    assert torch.equal(tuned_out, stock_out)
    assert_shared_unet_untouched(model, weights_before)


def test_cancel_mid_training_leaves_everything_untouched(comfy, tiny, monkeypatch):
    from comfy import model_management, utils as comfy_utils
    import folder_paths

    model, cond, latent = tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8)
    weights_before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    calls, updates = [], []

    def interrupt():
        calls.append(1)
        if len(calls) == 3:
            raise model_management.InterruptProcessingException()

    monkeypatch.setattr(model_management, "throw_exception_if_processing_interrupted", interrupt)
    monkeypatch.setattr(comfy_utils.ProgressBar, "update_absolute",
                        lambda self, value, total=None, preview=None: updates.append(value))
    with pytest.raises(model_management.InterruptProcessingException):
        tune(comfy, model, cond, latent, save_name="cancelled", steps=10)
    assert updates == [1, 2], "cancelled at the third step"
    assert "comfyui-drag-diffedit/cancelled.safetensors" not in folder_paths.get_filename_list("loras")
    assert_shared_unet_untouched(model, weights_before)


@pytest.fixture
def no_training(comfy, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the input was checked")

    monkeypatch.setattr(pack_module("core.backends.comfy"), "run_guided", refuse)
    return comfy


@pytest.mark.parametrize("name", ["../x", "/abs", "a\\b", "a//b", "a/./b", "x:y", "a/../../b"])
def test_names_that_escape_the_folder_are_refused(tiny, no_training, name):
    with pytest.raises(ValueError, match="is not a plain relative name"):
        tune(no_training, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8), save_name=name)


def test_existing_file_is_kept_unless_overwrite(tiny, no_training, monkeypatch):
    import folder_paths

    path = folder_paths.get_folder_paths("loras")[0] + "/comfyui-drag-diffedit/keep.safetensors"
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"not a lora")
    with pytest.raises(ValueError, match="keep.safetensors already exists: choose another save_name, or enable "
                                         "overwrite"):
        tune(no_training, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8), save_name="keep")
    with open(path, "rb") as f:
        assert f.read() == b"not a lora"

    monkeypatch.undo()  # now let it train
    from comfy import utils as comfy_utils

    _, name = tune(no_training, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8), save_name="keep",
                   overwrite=True, steps=1)
    assert name == "comfyui-drag-diffedit/keep.safetensors"
    assert len(comfy_utils.load_torch_file(path, safe_load=True)) == 3 * len(lora_modules(tiny.make_model("sd1")))
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]


def test_batch_of_two_and_unsupported_prediction_are_refused(tiny, no_training):
    from comfy.model_base import ModelType

    with pytest.raises(ValueError, match="learns one image: the latent has a batch of 2"):
        tune(no_training, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(batch=2, size=8))
    model = tiny.make_model("sd1")
    model.model.model_type = ModelType.EDM
    with pytest.raises(ValueError, match="supports eps- and v-prediction models; this one is EDM"):
        tune(no_training, model, tiny.conditioning(), tiny.latent(size=8))


def test_without_save_name_nothing_is_written(comfy, tiny):
    import folder_paths

    before = set(folder_paths.get_filename_list("loras"))
    _, name = tune(comfy, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8), steps=1)
    assert name == "" and set(folder_paths.get_filename_list("loras")) == before
