"""LoRA Identity Tune inside real ComfyUI: the saved file goes through the stock LoRA loader unchanged."""
import logging
import os
import time
from pathlib import Path

import pytest
import torch

from .pack import pack_module

NODE_ID = "DragEdit_LoRAIdentityTune"
TARGETS = (".to_q", ".to_k", ".to_v", ".to_out.0")
FAST = dict(steps=4, learning_rate=5e-2, rank=4, batch_size=2, training_seed=0)  # big lr: lora_up moves away from 0


def tune(comfy, model, cond, latent, save_name="", overwrite=False, **settings):
    with torch.inference_mode():
        return comfy.NODE_CLASS_MAPPINGS[NODE_ID].execute(model, cond, latent, save_name=save_name, overwrite=overwrite,
                                                          **dict(FAST, **settings)).args


def lora_modules(model) -> list[str]:
    return [name for name, _ in model.model.diffusion_model.named_modules() if name.endswith(TARGETS)]


def denoised(model, cond, latent, sigma=2.0):
    """One denoiser call through ComfyUI's guider (patches applied as when sampling)."""
    backend = pack_module("nodes.backend")
    with torch.inference_mode():
        out, _ = backend.run_guided(model, cond, None, 1.0, latent["samples"], torch.tensor([sigma]),
                                    lambda denoise, x: (denoise(x, torch.tensor([sigma])), None))
    return out


def assert_shared_unet_untouched(model, weights_before):
    from peft.tuners.lora import LoraLayer

    from comfy import model_management

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
    import folder_paths
    from comfy import lora as comfy_lora
    from comfy import utils as comfy_utils

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
    import folder_paths
    from comfy import model_management
    from comfy import utils as comfy_utils

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

    monkeypatch.setattr(pack_module("nodes.backend"), "run_guided", refuse)
    return comfy


@pytest.mark.parametrize("name", ["../x", "/abs", "a\\b", "a//b", "a/./b", "x:y", "a/../../b"])
def test_names_that_escape_the_folder_are_refused(tiny, no_training, name):
    with pytest.raises(ValueError, match="is not a plain relative name"):
        tune(no_training, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8), save_name=name)


def _lora_folder():
    import folder_paths

    return Path(folder_paths.get_folder_paths("loras")[0]) / "comfyui-drag-diffedit"


def _forget_recent_trainings():
    pack_module("nodes.lora_file")._recent.clear()  # as after a restart: only the file remains


def test_a_file_it_did_not_write_is_never_replaced(tiny, no_training):
    path = _lora_folder() / "keep.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a lora")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="keep.safetensors already exists .* not written by LoRA Identity Tune"):
            tune(no_training, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8), save_name="keep",
                 overwrite=overwrite)
    assert path.read_bytes() == b"not a lora"


def test_requeue_loads_the_identical_training_and_refuses_another(comfy, tiny, monkeypatch, caplog):
    """Same model, image, prompt and settings: the saved file is loaded, no training (ComfyUI's cache evicted)."""
    from comfy import utils as comfy_utils

    model, cond, latent = tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8)
    path = _lora_folder() / "requeue" / "same.safetensors"
    started = time.perf_counter()
    first, name = tune(comfy, model, cond, latent, save_name="requeue/same", steps=3)
    trained_s = time.perf_counter() - started
    saved = path.read_bytes()
    _forget_recent_trainings()

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(pack_module("nodes.backend"), "run_guided", refuse)
    started = time.perf_counter()
    with caplog.at_level(logging.INFO):
        again, name_again = tune(comfy, model, cond, latent, save_name="requeue/same", steps=3)
    loaded_s = time.perf_counter() - started
    assert name_again == name and path.read_bytes() == saved
    assert "holds this training's result; loaded, not trained" in caplog.text
    logging.getLogger(__name__).info("trained in %.2f s, loaded in %.2f s", trained_s, loaded_s)
    assert set(again.patches) == set(first.patches)
    for key in first.patches:
        assert torch.equal(again.patches[key][0][1].weights[0], first.patches[key][0][1].weights[0])

    # Another setting (or image, prompt, model) is another training: refused before training, file untouched.
    for changed in (dict(steps=4), dict(training_seed=1)):
        with pytest.raises(ValueError, match="holds a LoRA trained from other inputs"):
            tune(comfy, model, cond, latent, save_name="requeue/same", **dict(dict(steps=3), **changed))
    with pytest.raises(ValueError, match="holds a LoRA trained from other inputs"):
        tune(comfy, model, tiny.conditioning(seed=7), latent, save_name="requeue/same", steps=3)
    assert path.read_bytes() == saved
    assert len(comfy_utils.load_torch_file(str(path), safe_load=True)) == 3 * len(lora_modules(model))


def test_changing_only_save_name_does_not_train_again(comfy, tiny, monkeypatch):
    model, cond, latent = tiny.make_model("sd1"), tiny.conditioning(seed=11), tiny.latent(size=8)
    tune(comfy, model, cond, latent, save_name="renamed/a", steps=2)

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(pack_module("nodes.backend"), "run_guided", refuse)
    _, name = tune(comfy, model, cond, latent, save_name="renamed/b", steps=2)
    assert name == "comfyui-drag-diffedit/renamed/b.safetensors"
    folder = _lora_folder() / "renamed"
    from safetensors.torch import load_file

    a, b = load_file(str(folder / "a.safetensors")), load_file(str(folder / "b.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_overwrite_replaces_its_own_file_and_clears_stale_temp_files(comfy, tiny):
    model, cond, latent = tiny.make_model("sd1"), tiny.conditioning(seed=12), tiny.latent(size=8)
    folder = _lora_folder() / "overwrite"
    tune(comfy, model, cond, latent, save_name="overwrite/mine", steps=1)
    before = (folder / "mine.safetensors").read_bytes()
    stale, fresh = folder / ".killed.safetensors.tmp", folder / ".saving-now.safetensors.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    tune(comfy, model, cond, latent, save_name="overwrite/mine", steps=2, overwrite=True)
    assert (folder / "mine.safetensors").read_bytes() != before
    assert not stale.exists() and fresh.exists(), "only temp files of saves killed long ago are removed"


@pytest.mark.parametrize("case, message", [("long", "is too long"), ("deep", "is too long"),
                                           ("folder", "is a folder"), ("file-in-the-way", "a-file is a file")])
def test_bad_save_names_are_refused_before_training(tiny, no_training, case, message):
    folder = _lora_folder()
    folder.mkdir(parents=True, exist_ok=True)
    if case == "long":
        name = "new-folder/" + "x" * 300
    elif case == "deep":
        name = "/".join(["d"] * 1000)
    elif case == "folder":
        (folder / "a-folder.safetensors").mkdir(exist_ok=True)
        name = "a-folder"
    else:
        (folder / "a-file").write_bytes(b"")
        name = "a-file/lora"
    with pytest.raises(ValueError, match=message):
        tune(no_training, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8), save_name=name)
    assert not (folder / "new-folder").exists() and not (folder / "d").exists()


def test_saved_metadata_states_the_patched_prediction(comfy, tiny):
    """ModelSamplingDiscrete turns the eps checkpoint into a v-prediction model: the LoRA is trained and saved as v."""
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    patched = ModelSamplingDiscrete().patch(tiny.make_model("sd1"), "v_prediction", False)[0]
    tune(comfy, patched, tiny.conditioning(), tiny.latent(size=8), save_name="patched-v", steps=1)
    metadata = pack_module("nodes.lora_file").read_metadata(_lora_folder() / "patched-v.safetensors")
    assert metadata["prediction"] == "v_prediction" and metadata["trained_by"].startswith("comfyui-drag-diffedit")


def test_batch_of_two_and_unsupported_prediction_are_refused(tiny, no_training):
    with pytest.raises(ValueError, match="learns one image: the latent has a batch of 2"):
        tune(no_training, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(batch=2, size=8))
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    model = ModelSamplingDiscrete().patch(tiny.make_model("sd1"), "x0", False)[0]
    with pytest.raises(ValueError, match="supports eps- and v-prediction models; this one is X0"):
        tune(no_training, model, tiny.conditioning(), tiny.latent(size=8))


def test_without_save_name_nothing_is_written(comfy, tiny):
    import folder_paths

    before = set(folder_paths.get_filename_list("loras"))
    _, name = tune(comfy, tiny.make_model("sd1"), tiny.conditioning(), tiny.latent(size=8), steps=1)
    assert name == "" and set(folder_paths.get_filename_list("loras")) == before
