"""LoRA Identity Tune node: DragDiffusion's per-image LoRA, returned as a patched MODEL and optionally saved."""
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Optional

from comfy_api.latest import io

import comfy.model_base
import comfy.sd
import comfy.utils
import folder_paths

from ..core.backends import comfy as backend
from ..core.backends.comfy_unet import PrivateUNet
from ..core.lora import inject_lora, kohya_state_dict, train_identity_lora
from . import checks
from .preview import loss_curve_image

PACK_FOLDER = "comfyui-drag-diffedit"
SUFFIX = ".safetensors"
_NAME = re.compile(r"[A-Za-z0-9 _.\-/]+")
_PREDICTION = {comfy.model_base.ModelType.EPS: "epsilon", comfy.model_base.ModelType.V_PREDICTION: "v_prediction"}


def prediction_type(model) -> str:
    model_type = model.model.model_type
    if model_type not in _PREDICTION:
        raise ValueError(f"LoRA Identity Tune supports eps- and v-prediction models; this one is "
                         f"{getattr(model_type, 'name', model_type)}")
    return _PREDICTION[model_type]


def save_target(save_name: str, overwrite: bool) -> Optional[tuple[Path, str]]:
    """``(file path, name as LoraLoader lists it)`` inside ``loras/comfyui-drag-diffedit``; None for no save."""
    name = save_name.strip()
    if name.endswith(SUFFIX):
        name = name[:-len(SUFFIX)]
    if not name:
        return None
    parts = name.split("/")
    if (not _NAME.fullmatch(name) or name.startswith("/")
            or any(part.strip() in ("", ".", "..") for part in parts)):
        raise ValueError(f"save_name {save_name!r} is not a plain relative name: use letters, digits, spaces, "
                         "'_', '-', '.' and '/' for subfolders (no '..', no absolute paths, no backslashes)")
    root = (Path(folder_paths.get_folder_paths("loras")[0]) / PACK_FOLDER).resolve()
    path = (root / (name + SUFFIX)).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"save_name {save_name!r} leads outside the loras/{PACK_FOLDER} folder")
    if path.exists() and not overwrite:
        raise ValueError(f"loras/{PACK_FOLDER}/{name}{SUFFIX} already exists: choose another save_name, or "
                         "enable overwrite to replace it")
    return path, f"{PACK_FOLDER}/{name}{SUFFIX}"


def save_lora(state: dict, path: Path, overwrite: bool, metadata: dict) -> None:
    """Write through a temp file in the same folder, so the target is either untouched or complete."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=SUFFIX + ".tmp")
    os.close(handle)
    try:
        save_file(state, temp, metadata=metadata)
        if path.exists() and not overwrite:  # appeared while we trained
            raise ValueError(f"{path} appeared during training: enable overwrite to replace it")
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


class LoRAIdentityTune(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_LoRAIdentityTune",
            display_name="LoRA Identity Tune",
            category="image editing",
            description="DragDiffusion's identity-preserving LoRA: fine-tune LoRA on every attention projection of "
                        "the UNet so the model reconstructs this one image, before inverting and dragging it.",
            inputs=[
                io.Model.Input("model", tooltip="The model to tune (SD1.x, SD2.x or SDXL; eps or v prediction)."),
                io.Conditioning.Input("positive", tooltip="The prompt describing the image (the same one the drag "
                                                          "uses)."),
                io.Latent.Input("latent", tooltip="The image to preserve, VAE-encoded at the size the drag runs at "
                                                  "(one image)."),
                io.Int.Input("steps", default=80, min=1, max=10000,
                             tooltip="Training steps (DragDiffusion: 80)."),
                io.Float.Input("learning_rate", default=5e-4, min=1e-6, max=1.0, step=1e-5,
                               tooltip="AdamW learning rate (DragDiffusion: 0.0005)."),
                io.Int.Input("rank", default=16, min=1, max=256,
                             tooltip="LoRA rank; alpha = rank, so the LoRA applies at scale 1 (DragDiffusion: 16)."),
                io.Int.Input("batch_size", default=4, min=1, max=64,
                             tooltip="Copies of the image per step, each at its own random noise level "
                                     "(DragDiffusion: 4)."),
                io.Int.Input("training_seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the LoRA initialisation, the noise and the noise levels."),
                io.String.Input("save_name", default="",
                                tooltip=f"Save the LoRA as loras/{PACK_FOLDER}/<save_name>.safetensors (subfolders "
                                        "with '/'); leave empty to not save."),
                io.Boolean.Input("overwrite", default=False,
                                 tooltip="Replace an existing file of that name; otherwise an existing file stops "
                                         "the node before training."),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL",
                                tooltip="A copy of the model with the LoRA applied as ordinary LoRA patches."),
                io.String.Output(display_name="lora_name",
                                 tooltip="The saved file as LoraLoader lists it; empty when not saved."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, latent, steps, learning_rate, rank, batch_size, training_seed, save_name,
                overwrite) -> io.NodeOutput:
        # Every check before any work: a wrong name must not cost a training run.
        samples = checks.latent_samples(latent)
        if samples.shape[0] != 1:
            raise ValueError(f"LoRA Identity Tune learns one image: the latent has a batch of {samples.shape[0]}; "
                             "pick one image (e.g. with Latent From Batch)")
        channels = int(model.model.latent_format.latent_channels)
        if samples.shape[1] != channels:
            raise ValueError(f"the latent has {samples.shape[1]} channels but this model expects {channels}: encode "
                             "the image with this model's VAE")
        positive = checks.conditioning(positive, "positive")
        checks.conditioning_batch_fits(positive, 1, "positive")
        prediction = prediction_type(model)
        target = save_target(save_name, overwrite)

        table = backend.sigma_table(model)
        private = PrivateUNet()
        tuned = private.attach(model)
        progress = comfy.utils.ProgressBar(steps)
        seen: list[float] = []

        def report(step: int, loss: float) -> None:
            seen.append(loss)
            progress.update_absolute(step + 1, steps, ("JPEG", loss_curve_image(seen, steps), 512))

        def body(denoise, x):
            unet = private.materialize(tuned)
            params = inject_lora(unet, rank, seed=training_seed)
            losses = train_identity_lora(denoise, params, x, table, steps=steps, lr=learning_rate, batch=batch_size,
                                         seed=training_seed, prediction=prediction,
                                         loss_scaling=backend.needs_loss_scaling(model), callback=report,
                                         check_interrupt=backend.check_interrupt)
            return x, (kohya_state_dict(unet), losses)

        try:
            _, (state, losses) = backend.run_guided(tuned, positive, None, 1.0, samples, table.flip(0), body,
                                                    seed=training_seed, autograd=True)
        finally:
            private.release()
        logging.info("LoRA Identity Tune: %d steps, loss %.4f -> %.4f (rank %d, %d modules)", steps, losses[0],
                     losses[-1], rank, len(state) // 3)

        out_model, _ = comfy.sd.load_lora_for_models(model, None, state, 1.0, 0.0)
        lora_name = ""
        if target is not None:
            path, lora_name = target
            save_lora(state, path, overwrite, {
                "rank": str(rank), "alpha": str(rank), "steps": str(steps), "learning_rate": str(learning_rate),
                "batch_size": str(batch_size), "seed": str(training_seed), "base_model": type(model.model).__name__,
                "prediction": prediction, "trained_by": "comfyui-drag-diffedit LoRA Identity Tune"})
            logging.info("LoRA Identity Tune: saved %s", path)
        return io.NodeOutput(out_model, lora_name)
