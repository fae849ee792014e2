"""LoRA Identity Tune node: DragDiffusion's per-image LoRA, returned as a patched MODEL and optionally saved."""
import logging
import time
from pathlib import Path

import comfy.sd
import comfy.utils
import folder_paths

from ..core.lora import inject_lora, kohya_state_dict, train_identity_lora
from ..core.preview import loss_curve_image
from ..core.settings import DRAGDIFFUSION, LoraSettings
from . import backend, checks, lora_file
from .host_api import io
from .unet_hooks import PrivateUNet

DEFAULTS = DRAGDIFFUSION.lora
_PREDICTION = {"EPS": "epsilon", "V_PREDICTION": "v_prediction"}  # backend.prediction_kind -> training loss


def prediction_type(model) -> str:
    kind = backend.prediction_kind(model)  # the patched model_sampling's, e.g. after ModelSamplingDiscrete
    if kind not in _PREDICTION:
        raise ValueError(f"LoRA Identity Tune supports eps- and v-prediction models; this one is {kind}")
    return _PREDICTION[kind]


def lora_root() -> Path:
    return Path(folder_paths.get_folder_paths("loras")[0]) / lora_file.PACK_FOLDER


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
                io.Int.Input("steps", default=DEFAULTS.steps, min=1, max=10000,
                             tooltip=f"Training steps (DragDiffusion: {DEFAULTS.steps})."),
                io.Float.Input("learning_rate", default=DEFAULTS.learning_rate, min=1e-6, max=1.0, step=1e-5,
                               tooltip=f"AdamW learning rate (DragDiffusion: {DEFAULTS.learning_rate:g})."),
                io.Int.Input("rank", default=DEFAULTS.rank, min=1, max=256,
                             tooltip="LoRA rank; alpha = rank, so the LoRA applies at scale 1 "
                                     f"(DragDiffusion: {DEFAULTS.rank})."),
                io.Int.Input("batch_size", default=DEFAULTS.batch_size, min=1, max=64,
                             tooltip="Copies of the image per step, each at its own random noise level "
                                     f"(DragDiffusion: {DEFAULTS.batch_size})."),
                io.Int.Input("training_seed", default=DEFAULTS.training_seed, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the LoRA initialisation, the noise and the noise levels."),
                io.String.Input("save_name", default="",
                                tooltip=f"Save the LoRA as loras/{lora_file.PACK_FOLDER}/<save_name>.safetensors "
                                        "(subfolders with '/'); leave empty to not save. If that file holds this "
                                        "very training's result (same model, image, prompt and settings), it is "
                                        "loaded instead of training again."),
                io.Boolean.Input("overwrite", default=False,
                                 tooltip="Replace an existing LoRA of that name that this node wrote from other "
                                         "inputs; otherwise such a file stops the node before training. Files "
                                         "this node did not write are never replaced."),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL",
                                tooltip="A copy of the model with the LoRA applied as ordinary LoRA patches."),
                io.String.Output(display_name="lora_name",
                                 tooltip="The saved file as LoraLoader lists it; empty when not saved."),
            ],
        )

    @classmethod
    def validate_inputs(cls, save_name) -> bool | str:
        """At queue time: a save_name no folder may hold fails before the graph runs (linked text is None)."""
        return checks.at_queue(lora_file.checked_save_name, save_name)

    @classmethod
    def execute(cls, model, positive, latent, steps, learning_rate, rank, batch_size, training_seed, save_name,
                overwrite) -> io.NodeOutput:
        # Every check before any work: a wrong name must not cost a training run.
        samples = checks.latent_samples(latent)
        if samples.shape[0] != 1:
            raise ValueError(f"LoRA Identity Tune learns one image: the latent has a batch of {samples.shape[0]}; "
                             "pick one image (e.g. with Latent From Batch)")
        backend.require_unet(checks.model(model), "LoRA Identity Tune")
        checks.latent_fits_model(samples, model)
        positive = checks.conditioning(positive, "positive")
        checks.conditioning_batch_fits(positive, 1, "positive")
        prediction = prediction_type(model)
        target = lora_file.save_target(lora_root(), save_name)
        settings = {"rank": rank, "alpha": rank, "steps": steps, "learning_rate": learning_rate,
                    "batch_size": batch_size, "seed": training_seed}
        digest = lora_file.training_digest(model, backend.model_signature(model), positive, samples, settings)
        path, lora_name = target or (None, "")
        state = lora_file.recalled(digest)  # the same training just ran (e.g. only save_name changed)
        saved = lora_file.existing_result(path, digest, overwrite) if path is not None else None
        if saved is not None:
            logging.info("LoRA Identity Tune: %s holds this training's result; loaded, not trained", lora_name)
            state = saved
        if state is None:
            started = time.perf_counter()
            state = cls._train(model, positive, samples, prediction,
                               LoraSettings(steps=steps, learning_rate=learning_rate, rank=rank,
                                            batch_size=batch_size, training_seed=training_seed))
            logging.info("LoRA Identity Tune: trained in %.1f s", time.perf_counter() - started)
        lora_file.remember(digest, state)

        out_model, _ = comfy.sd.load_lora_for_models(model, None, state, 1.0, 0.0)
        if path is not None and saved is None:
            metadata = {key: str(value) for key, value in settings.items()}
            lora_file.save_lora(state, path, overwrite, dict(metadata, base_model=type(model.model).__name__,
                                                             prediction=prediction, training_inputs=digest))
            logging.info("LoRA Identity Tune: saved %s", path)
        return io.NodeOutput(out_model, lora_name)

    @staticmethod
    def _train(model, positive, samples, prediction, settings: LoraSettings) -> dict:
        table, steps = backend.sigma_table(model), settings.steps
        private = PrivateUNet()
        tuned = private.attach(model)
        progress = comfy.utils.ProgressBar(steps)
        seen: list[float] = []

        def report(step: int, loss: float) -> None:
            seen.append(loss)
            progress.update_absolute(step + 1, steps, ("JPEG", loss_curve_image(seen, steps), 512))

        def body(denoise, x):
            unet = private.materialize(tuned)
            params = inject_lora(unet, settings.rank, seed=settings.training_seed)
            losses = train_identity_lora(denoise, params, x, table, settings, prediction=prediction,
                                         loss_scaling=backend.needs_loss_scaling(model), callback=report,
                                         check_interrupt=backend.check_interrupt)
            return x, (kohya_state_dict(unet), losses)

        try:
            _, (state, losses) = backend.run_guided(tuned, positive, None, 1.0, samples, table.flip(0), body,
                                                    seed=settings.training_seed, autograd=True)
        finally:
            private.release()
        logging.info("LoRA Identity Tune: %d steps, loss %.4f -> %.4f (rank %d, %d modules)", steps, losses[0],
                     losses[-1], settings.rank, len(state) // 3)
        return state
