"""Every default of the pack's methods, each with its source: the one place nodes, templates, bench and the DragBench
runner read them.

A method is a chain of stages; each stage's settings are a frozen dataclass whose field names are the inputs of the
node that runs it, so a settings object becomes a node's widgets by name (:func:`node_inputs`) and a node's
inputs become a settings object (``Settings(**inputs)``).  Fields marked ``internal`` are algorithm constants no
node exposes.  Only the standard library is imported here: the DragBench runner reads this module on machines
without torch.
"""
from dataclasses import dataclass, field, fields, replace


def internal(default):
    """A constant of the algorithm that no node exposes (tests and the bench may change it)."""
    return field(default=default, metadata={"internal": True})


def node_inputs(settings) -> dict:
    """The settings as a node's inputs, by name (internal constants left out)."""
    return {f.name: getattr(settings, f.name) for f in fields(settings) if not f.metadata.get("internal")}


# ---------------------------------------------------------------------------------------------------------------------
# Stages shared by the drag methods


@dataclass(frozen=True)
class LoraSettings:
    """LoRA Identity Tune.  DragDiffusion's ``utils/lora_utils.py::train_lora`` as its UI and DragBench run it."""
    steps: int = 80  # UI lora_step
    learning_rate: float = 5e-4  # AdamW lr
    rank: int = 16  # UI lora_rank; alpha = rank (scale 1)
    batch_size: int = 4  # UI lora_batch_size
    training_seed: int = 0  # the reference seeds accelerate with 0


@dataclass(frozen=True)
class InversionSettings:
    """DDIM Inversion.  The node's own defaults are DiffEdit's (see :data:`DIFFEDIT`)."""
    steps: int = 50  # diffusers' DDIM schedule length, used by both papers
    strength: float = 0.7  # DragDiffusion's inversion_strength (t = 681 of 50 steps)
    cfg: float = 1.0  # both papers invert without guidance


@dataclass(frozen=True)
class MasaCtrlSettings:
    """Latent MasaCtrl Denoise.  DragDiffusion's ``run_drag``: MutualSelfAttentionControl(start_step=0,
    start_layer=10) on SD1.5."""
    start_step: int = 0
    start_layer: int = -1  # our choice: -1 maps SD1.5's layer 10 (decoder, 1/2 latent resolution and finer) to any UNet
    cfg: float = 1.0  # real images: no guidance


@dataclass(frozen=True)
class DragNodeSettings:
    """What both drag nodes take besides their method's settings."""
    cfg: float = 1.0  # real images; a generated image's own CFG in DragDiffusion's generated-image mode
    feature_block: int = -1  # our choice: -1 = the decoder block upsampling to latent resolution (SD1.5 up_blocks[2])


# ---------------------------------------------------------------------------------------------------------------------
# The drag methods


@dataclass(frozen=True)
class DragDiffusionSettings:
    """Drag Latent Optimize.  DragDiffusion's ``drag_ui.py`` defaults and ``utils/drag_utils.py``."""
    steps: int = 80  # n_pix_step: optimisation steps at most
    learning_rate: float = 0.01  # latent_lr (Adam)
    mask_weight: float = 0.1  # lam
    motion_radius: int = 1  # r_m: the supervised patch is (2 r_m + 1)^2
    track_radius: int = 3  # r_p: the tracking window is (2 r_p + 1)^2
    reach_threshold: float = internal(2.0)  # check_handle_reach_target: arrived within 2 grid px


@dataclass(frozen=True)
class GoodDragSettings:
    """GoodDrag Latent Optimize.  The official UI's defaults (``gooddrag_ui.py``), what its users run; the
    ``GoodDragger`` class defaults differ (drag_end_step 10, latent_lr 0.01, max_drag_per_track 10, threshold 4)."""
    drag_end_step: int = 7  # denoising steps that get drag updates
    tracks_per_step: int = 10  # track_per_denoise: point trackings per denoising step
    max_updates_per_track: int = 3  # max_drag_per_track: drag updates between two trackings, at most
    step_bound: float = 4.0  # beta: each update pulls the features min(beta, distance) grid px
    learning_rate: float = 0.02  # latent_lr, a fresh Adam each denoising step
    mask_weight: float = 0.2  # lam
    motion_radius: int = 4  # r1
    track_radius: int = 12  # r2
    max_unchanged_tracks: int = 10  # max_track_no_change: trackings in a row that move no handle end the drag
    loss_threshold: float = internal(0.0)  # drag_loss_threshold: track early once the motion loss is this low
    reach_threshold: float = internal(2.0)  # arrived within 2 grid px, as DragDiffusion


@dataclass(frozen=True)
class DragMethod:
    """One drag method as its reference runs it on a real image, stage by stage."""
    name: str
    lora: LoraSettings
    inversion: InversionSettings
    drag: object  # DragDiffusionSettings or GoodDragSettings
    denoise: MasaCtrlSettings = MasaCtrlSettings()
    drag_node_settings: DragNodeSettings = DragNodeSettings()


DRAGDIFFUSION = DragMethod(name="dragdiffusion", lora=LoraSettings(), inversion=InversionSettings(),
                           drag=DragDiffusionSettings())
GOODDRAG = DragMethod(name="gooddrag", lora=LoraSettings(steps=70),  # the official UI's lora_step
                      inversion=InversionSettings(strength=0.75),  # the official UI's inversion_strength
                      drag=GoodDragSettings())
# GoodDrag's DragBench script (bench_gooddrag.py) departs from its UI in two settings.
GOODDRAG_DRAGBENCH = replace(GOODDRAG, drag=replace(GOODDRAG.drag, mask_weight=0.1, max_unchanged_tracks=5))


# ---------------------------------------------------------------------------------------------------------------------
# The instant drag (Inpaint4Drag: Lu & Han, ICCV 2025; official code Visual-AI/Inpaint4Drag)


@dataclass(frozen=True)
class InstantDragSettings:
    """Drag Region Warp: the bidirectional warp (``utils/drag.py: bi_warp``)."""
    kernel: int = 5  # inpaint-mask dilation and outline band, px: the official UI slider's value (bi_warp's too)
    max_kernel: int = internal(64)  # ours: the node's slider and the preview route go up to this
    neighbours: int = internal(4)  # k nearest handles/references in the weighting: bi_warp's interpolation default
    max_references: int = internal(100)  # references kept, subsampled evenly by index: bi_warp's default
    eps: float = internal(1e-6)  # weights 1 / (distance + eps): bi_warp's interpolation default
    match_distance: float = internal(1e-6)  # a handle belongs to a region within this distance of a pixel: bi_warp
    target_reach: float = internal(1.0)  # ours: targets at most this many image widths/heights beyond the border
    threads: int = internal(1)  # ours: the planning thread's torch threads (0: as torch is set); see region_warp
    preview_grid: int = internal(10)  # the official UI draws the inpaint area as a white grid, a black line every 10 px


@dataclass(frozen=True)
class InpaintSettings:
    """The instant drag's inpainting half, run by stock nodes (inpaint conditioning, KSampler, a composite).  The
    official code inpaints with an empty prompt and no guidance; ``evaluation.py`` also pastes the result back
    inside the region mask where its UI pastes it inside the inpaint mask."""
    steps: int = 20  # our choice for a plain inpainting checkpoint (the LCM variant below: the official 4)
    cfg: float = 1.0  # the official guidance_scale 1.0: no classifier-free guidance
    sampler_name: str = "euler"  # our choice for a plain inpainting checkpoint
    scheduler: str = "normal"
    denoise: float = 1.0  # the official strength 1.0 (its UI uses 0.99 with SDXL)
    lora: str = ""  # a LoRA the sampler's model loads first ("": none)
    composite_inside: str = "inpaint"  # the official UI: the inpaint mask; evaluation.py: the region ("region")
    # Inpaint Model Conditioning's noise_mask: True samples inside the mask only (the node's default, our SD1.5
    # templates); False leaves the whole latent to the model, as diffusers' pipelines do for a 9-channel inpainting
    # UNet (Inpaint4Drag's) and ComfyUI's own Flux Fill example; the composite keeps the outside either way.
    noise_mask: bool = True
    guidance: float | None = None  # FluxGuidance's value for a guidance-distilled model (None: no FluxGuidance node)
    size: int = 512  # the square the picture is inpainted at: SD1.5's 512, as evaluation.py resizes to 512x512


@dataclass(frozen=True)
class InpaintModelFiles:
    """The files ComfyUI's stock loaders open for an inpainting model: one checkpoint (Load Checkpoint), or a
    diffusion model with its text encoders and VAE (Load Diffusion Model, DualCLIPLoader, Load VAE)."""
    checkpoint: str = ""
    diffusion_model: str = ""
    text_encoders: tuple = ()  # DualCLIPLoader's clip_name1, clip_name2
    text_encoder_type: str = ""  # DualCLIPLoader's type
    vae: str = ""


@dataclass(frozen=True)
class InpaintModel:
    """An inpainting model as ComfyUI users load it, sampled as its sources run it."""
    family: str  # sd15, sdxl, flux_fill: the DragBench runner's --inpaint-model
    files: InpaintModelFiles
    inpaint: InpaintSettings


# Stable Diffusion 1.5 inpainting (runwayml/stable-diffusion-inpainting, 9 input channels), Inpaint4Drag's model.
SD15_INPAINTING = InpaintModelFiles(checkpoint="sd-v1-5-inpainting.safetensors")
# SDXL inpainting 0.1 (diffusers/stable-diffusion-xl-1.0-inpainting-0.1, 9 input channels) as a single-file
# checkpoint under the name it is shared as; any SDXL inpainting checkpoint loads the same way.
SDXL_INPAINTING = InpaintModelFiles(checkpoint="sd_xl_base_1.0_inpainting_0.1.safetensors")
# FLUX.1 Fill [dev] as ComfyUI's own Flux Fill example loads it (ComfyUI_examples, flux/flux_fill_inpaint_example.png):
# the diffusion model, CLIP-L and T5-XXL through DualCLIPLoader (type flux), the Flux VAE.
FLUX_FILL = InpaintModelFiles(diffusion_model="flux1-fill-dev.safetensors",
                              text_encoders=("clip_l.safetensors", "t5xxl_fp16.safetensors"), text_encoder_type="flux",
                              vae="ae.safetensors")


@dataclass(frozen=True)
class InstantDragMethod:
    name: str = "instant_drag"
    warp: InstantDragSettings = InstantDragSettings()
    # SD1.5 inpainting as a plain checkpoint: our sampler choice above
    sd15: InpaintModel = InpaintModel("sd15", SD15_INPAINTING, InpaintSettings())
    # evaluation.py: SD1.5 inpainting with the LCM-LoRA fused, LCM scheduler, 4 steps (its UI's inpaint() uses 8)
    sd15_lcm: InpaintModel = InpaintModel("sd15", SD15_INPAINTING, InpaintSettings(
        steps=4, sampler_name="lcm", scheduler="sgm_uniform", lora="lcm-lora-sdv1-5.safetensors"))
    # The official UI's SDXL (utils/ui_utils.py: setup_pipeline('xl'), inpaint()): SDXL inpainting 0.1 with the SDXL
    # LCM-LoRA fused, LCM scheduler, 8 steps, strength 0.99, no guidance.  The LoRA under the name ComfyUI's LCM
    # example gives it (ComfyUI_examples lcm/README.md); lcm sampler and sgm_uniform as that example advises.  At
    # 1024x1024, SDXL's size (the UI inpaints at its 512-px canvas); with the checkpoint's VAE (the UI swaps in
    # TAESDXL for speed: Load VAE "taesdxl" does the same in ComfyUI).
    sdxl_lcm: InpaintModel = InpaintModel("sdxl", SDXL_INPAINTING, InpaintSettings(
        steps=8, sampler_name="lcm", scheduler="sgm_uniform", denoise=0.99, lora="lcm_lora_sdxl.safetensors",
        noise_mask=False, size=1024))
    # FLUX.1 Fill [dev] as ComfyUI's own Flux Fill example samples it: FluxGuidance 30 (also the model card's and
    # diffusers' FluxFillPipeline guidance_scale), KSampler 20 steps, euler, normal, cfg 1, denoise 1, inpaint
    # conditioning with noise_mask off (the model card's diffusers example runs 50 steps; the example's
    # DifferentialDiffusion node only acts on a noise mask, so it is left out).  At 1024x1024, Flux's size.
    flux_fill: InpaintModel = InpaintModel("flux_fill", FLUX_FILL, InpaintSettings(
        steps=20, cfg=1.0, sampler_name="euler", scheduler="normal", denoise=1.0, noise_mask=False, guidance=30.0,
        size=1024))


INSTANT_DRAG = InstantDragMethod()


# ---------------------------------------------------------------------------------------------------------------------
# DiffEdit and DragBench's metric


@dataclass(frozen=True)
class DiffEditMaskSettings:
    """DiffEdit Mask Infer.  The paper's settings (Couairon et al. 2023, section 4), and diffusers'
    ``StableDiffusionDiffEditPipeline`` where the paper names none."""
    samples: int = 10  # noise draws averaged (paper)
    noise_strength: float = 0.5  # the draws' noise level as a fraction of the schedule (paper)
    clamp_ratio: float = 3.0  # diffusers' mask_thresholding_ratio
    threshold: float = 0.5  # binarisation (paper)
    seed: int = 0  # our choice
    steps: int = 50  # diffusers' num_inference_steps, the schedule the noise level is read from


@dataclass(frozen=True)
class DiffEditMethod:
    mask: DiffEditMaskSettings = DiffEditMaskSettings()
    inversion: InversionSettings = InversionSettings(strength=0.8)  # the paper's encoding ratio
    decode_cfg: float = 7.5  # Stable Diffusion's usual guidance, as the paper's SD experiments


DIFFEDIT = DiffEditMethod()
# DiffEdit on Flux dev (a guidance-distilled rectified flow): the paper's mask and encoding ratio on a 28-step
# schedule (diffusers' FluxPipeline default), no CFG (the model is distilled: cfg 1 skips the negative), the
# guidance in the conditioning instead at FluxGuidance's default.
DIFFEDIT_FLUX = DiffEditMethod(mask=DiffEditMaskSettings(steps=28), inversion=InversionSettings(steps=28, strength=0.8),
                               decode_cfg=1.0)
FLUX_GUIDANCE = 3.5  # the stock FluxGuidance node's default


@dataclass(frozen=True)
class MeanDistanceSettings:
    """DragBench Mean Distance.  DragBench's ``run_eval_point_matching.py`` with its ``SDFeaturizer``
    (``dift_sd.py``) on SD2.1."""
    timestep: int = 261  # t
    ensemble: int = 8  # ensemble_size: noise draws averaged
    seed: int = 42  # our choice, fixed so an unchanged image keeps its features
    feature_block: int = -1  # up_ft_index=1: -1 = the decoder block upsampling to half the latent resolution


MEAN_DISTANCE = MeanDistanceSettings()
