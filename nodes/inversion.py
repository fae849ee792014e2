"""DDIM Inversion node."""
import torch

from ..core.ddim import ddim_invert
from ..core.schedules import ddim_sigmas
from ..core.settings import DIFFEDIT, DRAGDIFFUSION
from . import backend, checks
from .host_api import io
from .trajectory import InversionTrajectory

Trajectory = io.Custom("INVERSION_TRAJECTORY")
DEFAULTS = DIFFEDIT.inversion  # the node's defaults are DiffEdit's; the drag templates set DragDiffusion's


def inversion_sigmas(model, steps: int, strength: float, sigmas=None):
    """``(ascending levels, steps, strength)``: the last ``strength`` of a ``steps``-step DDIM schedule on the model's
    own noise table, or the given descending SIGMAS (whatever scheduler made them) walked upwards."""
    space = backend.noise_space(model)
    if sigmas is None:
        table = backend.sigma_table(model)
        return ddim_sigmas(table, steps, strength, space.clean_sigma(table)).flip(0), steps, strength
    sigmas = checks.schedule(sigmas, flow=backend.is_flow(model))
    return sigmas.flip(0), len(sigmas) - 1, 1.0


def invert_latent(model, latent: dict, steps: int, strength: float, cfg: float, positive=None, negative=None,
                  sigmas=None):
    """DDIM-encode a LATENT; shared by the DiffEdit and DragDiffusion graphs."""
    samples = checks.latent_samples(latent)
    checks.latent_fits_model(samples, checks.model(model))
    if positive is None:
        positive, cfg = backend.zero_conditioning(model), 1.0
    checks.conditioning_batch_fits(positive, samples.shape[0], "positive")
    if cfg != 1.0:
        negative = checks.conditioning(negative, "negative", required=False) or backend.zero_conditioning(model)
        checks.conditioning_batch_fits(negative, samples.shape[0], "negative")
    levels, steps, strength = inversion_sigmas(model, steps, strength, sigmas)
    latents = [samples.detach().clone().float().cpu()]
    if len(levels) > 1:
        callback, space = backend.progress_callback(model, len(levels) - 1), backend.noise_space(model)

        def body(denoise, x):
            trajectory = ddim_invert(denoise, x, levels, callback, space)
            return trajectory[-1], [backend.to_latent_space(model, t).cpu() for t in trajectory[1:]]

        _, upper = backend.run_guided(model, positive, negative, cfg, samples, levels, body)
        latents += upper
    return InversionTrajectory(latents=tuple(latents), sigmas=levels, steps=steps, strength=strength, cfg=cfg,
                               model_signature=backend.model_signature(model))


def stock_sampler_latent(model, trajectory: InversionTrajectory) -> torch.Tensor:
    """The trajectory's top as the LATENT a stock sampler continues from with no added noise and the trajectory's
    remaining sigmas (a flow model's sampler scales its input by ``1 - sigma``: undone here)."""
    top = backend.to_model_space(model, trajectory.latents[-1])
    scaled = backend.noise_space(model).stock_latent(float(trajectory.sigmas[-1]), top)
    if torch.equal(scaled, top):  # eps/v models: no scaling, and no round trip through the latent format's scale
        return trajectory.latents[-1].clone()
    return backend.to_latent_space(model, scaled).cpu()


class DDIMInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_DDIMInversion",
            display_name="DDIM Inversion",
            category="image editing",
            description="Deterministic DDIM encoding of a latent up to a noise level (eta 0, noise estimated at the "
                        "destination level as in DiffEdit and DragDiffusion).",
            inputs=[
                io.Model.Input("model", tooltip="The model to invert with (a LoRA-tuned clone for drag editing)."),
                io.Latent.Input("latent", tooltip="The encoded image (VAE Encode)."),
                io.Int.Input("steps", default=DEFAULTS.steps, min=1, max=999,
                             tooltip="Length of the full DDIM schedule; inversion walks its last `strength` part."),
                io.Float.Input("strength", default=DEFAULTS.strength, min=0.0, max=1.0, step=0.01,
                               tooltip="Encoding ratio: how far up the schedule to go (DiffEdit "
                                       f"{DIFFEDIT.inversion.strength:g}, DragDiffusion "
                                       f"{DRAGDIFFUSION.inversion.strength:g}). 0 returns the input, 1 goes to the top "
                                       "of the schedule."),
                io.Float.Input("cfg", default=DEFAULTS.cfg, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance while encoding. 1 = no guidance (the papers)."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="Text to encode with. Leave empty for unconditional encoding as in the "
                                              "DiffEdit paper (a zeroed conditioning); an empty-prompt CLIPTextEncode "
                                              "is the model's own unconditional text."),
                io.Conditioning.Input("negative", optional=True, tooltip="Negative text, used only when cfg != 1."),
                io.Sigmas.Input("sigmas", optional=True,
                                tooltip="A schedule to invert along instead of steps and strength (BasicScheduler, "
                                        "SplitSigmas, ...): descending, ending at 0; the inversion walks it upwards."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent",
                                 tooltip="The latent at the start level, for a stock sampler to continue from: "
                                         "SamplerCustom with add_noise off and the sigmas output."),
                Trajectory.Output(display_name="trajectory",
                                  tooltip="Every latent of the inversion, for Masked DDIM Decode and Latent MasaCtrl "
                                          "Denoise."),
                io.Sigmas.Output(display_name="sigmas",
                                 tooltip="The levels from the start level down to the clean one, for SamplerCustom."),
            ],
        )

    @classmethod
    def execute(cls, model, latent, steps, strength, cfg, positive=None, negative=None, sigmas=None) -> io.NodeOutput:
        positive = checks.conditioning(positive, "positive", required=False)
        trajectory = invert_latent(model, latent, steps, strength, cfg, positive, negative, sigmas)
        out = {key: value for key, value in latent.items() if key != "samples"}
        out["samples"] = stock_sampler_latent(model, trajectory)
        return io.NodeOutput(out, trajectory, trajectory.sampling_sigmas().clone())
