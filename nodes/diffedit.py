"""DiffEdit nodes: mask inference and masked DDIM decoding."""
import torch

import comfy.utils

from ..core.diffedit import mask_from_estimates, masked_ddim_decode, noised_denoise_estimates
from ..core.grids import VAE_SCALE, mask_to_latent
from ..core.schedules import ddim_sigmas
from ..core.settings import DIFFEDIT
from . import backend, checks
from .host_api import io
from .inversion import Trajectory
from .trajectory import InversionTrajectory

DEFAULTS = DIFFEDIT.mask


class DiffEditMaskInfer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_DiffEditMaskInfer",
            display_name="DiffEdit Mask Infer",
            category="image editing",
            description="Find where an image must change to match the query text: the difference between the "
                        "model's denoised estimates under the query and the reference text, over several noise draws.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("query", tooltip="Text describing the edited image."),
                io.Conditioning.Input("reference", tooltip="Text describing the input image (or an empty prompt)."),
                io.Latent.Input("latent", tooltip="The encoded input image."),
                io.Int.Input("samples", default=DEFAULTS.samples, min=1, max=100,
                             tooltip=f"Noise draws averaged (paper: {DEFAULTS.samples})."),
                io.Float.Input("noise_strength", default=DEFAULTS.noise_strength, min=0.01, max=1.0, step=0.01,
                               tooltip="Noise level of the draws as a fraction of the schedule "
                                       f"(paper: {DEFAULTS.noise_strength:g})."),
                io.Float.Input("clamp_ratio", default=DEFAULTS.clamp_ratio, min=0.1, max=100.0, step=0.1,
                               tooltip="Differences above ratio x the image's mean difference are clipped before "
                                       f"rescaling to [0, 1] (diffusers: {DEFAULTS.clamp_ratio:g})."),
                io.Float.Input("threshold", default=DEFAULTS.threshold, min=0.0, max=1.0, step=0.01,
                               tooltip="Rescaled difference above which a pixel is edited "
                                       f"(paper: {DEFAULTS.threshold:g})."),
                io.Int.Input("seed", default=DEFAULTS.seed, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the noise draws."),
                io.Int.Input("steps", default=DEFAULTS.steps, min=1, max=999,
                             tooltip=f"DDIM schedule the noise level is taken from (diffusers: {DEFAULTS.steps})."),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="Binary edit mask at pixel resolution (1 = edit)."),
                io.Image.Output(display_name="difference_map", tooltip="The clamped, rescaled difference map."),
            ],
        )

    @classmethod
    def execute(cls, model, query, reference, latent, samples, noise_strength, clamp_ratio, threshold, seed,
                steps) -> io.NodeOutput:
        checks.model(model)
        latent_samples = checks.latent_samples(latent)
        checks.latent_fits_model(latent_samples, model)
        for cond, what in ((query, "query"), (reference, "reference")):
            checks.conditioning(cond, what)
            checks.conditioning_batch_fits(cond, latent_samples.shape[0], what)
        space = backend.noise_space(model)
        sigma = ddim_sigmas(backend.sigma_table(model), steps, noise_strength)[0]
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((samples, *latent_samples.shape), generator=generator)
        progress = comfy.utils.ProgressBar(2 * samples)

        def estimates_under(cond):
            def body(denoise, x):
                def tick(_):
                    backend.check_interrupt()
                    progress.update(1)
                return x, noised_denoise_estimates(denoise, x, noise.to(x), float(sigma), tick, space).cpu()
            return backend.run_guided(model, cond, None, 1.0, latent_samples, sigma[None], body)[1]

        mask = mask_from_estimates(estimates_under(query), estimates_under(reference), clamp_ratio, threshold)
        scale = VAE_SCALE
        binary = mask.binary.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        soft = mask.soft.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        return io.NodeOutput(binary, soft[..., None].expand(*soft.shape, 3).contiguous())


class MaskedDDIMDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_MaskedDDIMDecode",
            display_name="Masked DDIM Decode",
            category="image editing",
            description="DDIM-decode from the top of an inversion trajectory, regenerating only inside the mask; "
                        "outside it every step takes the encoded latent of the same noise level, and the result "
                        "keeps the input latent exactly there.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive", tooltip="Text of the edited image (the DiffEdit query)."),
                io.Conditioning.Input("negative", tooltip="Negative text for guidance."),
                io.Float.Input("cfg", default=DIFFEDIT.decode_cfg, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip=f"Guidance scale (DiffEdit with SD: {DIFFEDIT.decode_cfg:g}; it needs at "
                                       "least ~3)."),
                Trajectory.Input("trajectory", tooltip="From DDIM Inversion of the input image."),
                io.Mask.Input("mask", tooltip="Where to edit (1), at pixel or latent resolution."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, model, positive, negative, cfg, trajectory, mask) -> io.NodeOutput:
        trajectory = InversionTrajectory.checked(trajectory)
        trajectory.check_model(backend.model_signature(checks.model(model)))
        shape = trajectory.latent_shape
        for cond, what in ((positive, "positive"), (negative, "negative")):
            checks.conditioning(cond, what)
            checks.conditioning_batch_fits(cond, shape[0], what)
        mask_latent = mask_to_latent(mask, shape)
        clean = trajectory.latents[0]
        steps = trajectory.encoded_steps
        if steps > 0:
            sigmas = trajectory.sampling_sigmas()
            callback = backend.progress_callback(model, steps)

            def body(denoise, x):
                encoded = [backend.to_model_space(model, t.to(x.device)) for t in trajectory.latents]
                return masked_ddim_decode(denoise, encoded, sigmas, mask_latent.to(x), callback), None

            decoded, _ = backend.run_guided(model, positive, negative, cfg, trajectory.latents[-1], sigmas, body)
        else:
            decoded = clean
        # The last blend already kept the clean latent outside the mask; redo it in LATENT space so the
        # scale round trip cannot change a bit of it.
        samples = mask_latent * decoded + (1 - mask_latent) * clean
        return io.NodeOutput({"samples": samples})
