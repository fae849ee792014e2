"""Write the example workflows (ComfyUI UI format) from a compact description.

    COMFYUI_PATH=/path/to/ComfyUI python -m dev.make_workflows

Run it after changing a graph or a default; the JSON files in workflows/ are what users load and what the host
tests execute (``tests/host/test_templates.py`` checks they are what this script writes).  Every widget is given by
name: the pack's from the methods' settings (``core/settings.py``), the stock nodes' here; the UI format's positional
``widgets_values`` are ordered by each node's own schema, read from ComfyUI.
"""
import json
import os
from dataclasses import replace
from pathlib import Path

from core.settings import DIFFEDIT, DIFFEDIT_FLUX, DRAGDIFFUSION, FLUX_GUIDANCE, GOODDRAG, INSTANT_DRAG, node_inputs

OUT = Path(__file__).resolve().parents[1] / "workflows"


def widget_values(node_class, widgets: dict) -> list:
    """``widgets`` by name -> the positional ``widgets_values`` of a UI workflow: every widget input in the schema's
    order (a missing one at its default), plus the value a seed's ``control_after_generate`` or an image upload
    serialises after it."""
    from tests.support.workflow_api import widget_inputs

    values, names = [], set()
    for name, _, options in widget_inputs(node_class):
        if name not in widgets and "default" not in options:
            raise ValueError(f"{node_class.__name__} needs a value for {name}")
        values.append(widgets.get(name, options.get("default")))
        names.add(name)
        if options.get("control_after_generate"):
            values.append("fixed")
        if options.get("image_upload"):
            values.append("image")
    unknown = set(widgets) - names
    if unknown:
        raise ValueError(f"{node_class.__name__} has no widget {', '.join(sorted(unknown))}")
    return values


def build(nodes: list[dict], classes: dict) -> dict:
    """nodes: dicts with id, type, pos, widgets {name: value}, inputs {name: (type, source_id, slot)}, outputs
    [(name, type)]; ``classes``: ComfyUI's node classes by type."""
    links, by_id = [], {n["id"]: n for n in nodes}
    out_links = {}
    serialized = []
    for node in nodes:
        inputs = []
        for name, (kind, source, slot) in node.get("inputs", {}).items():
            link = len(links) + 1
            links.append([link, source, slot, node["id"], len(inputs), kind])
            out_links.setdefault((source, slot), []).append(link)
            inputs.append({"name": name, "type": kind, "link": link})
        widgets = widget_values(classes[node["type"]], node.get("widgets", {})) if "widgets" in node else []
        serialized.append({"id": node["id"], "type": node["type"], "pos": node["pos"],
                           "size": node.get("size", [315, 130]), "flags": {}, "order": 0, "mode": 0,
                           "inputs": inputs, "outputs": [],
                           "properties": {"Node name for S&R": node["type"]},
                           "widgets_values": widgets,
                           **({"title": node["title"]} if "title" in node else {})})
    for node, data in zip(nodes, serialized):
        data["outputs"] = [{"name": name, "type": kind, "links": out_links.get((node["id"], slot), []),
                            "slot_index": slot}
                           for slot, (name, kind) in enumerate(node.get("outputs", []))]
    for order, data in enumerate(serialized):
        data["order"] = order
    return {"last_node_id": max(by_id), "last_link_id": len(links), "nodes": serialized, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


CHECKPOINT = {"id": 1, "type": "CheckpointLoaderSimple", "pos": [20, 60],
              "widgets": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
              "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]}
LOAD_IMAGE = {"id": 2, "type": "LoadImage", "pos": [20, 260], "size": [315, 320], "widgets": {"image": "example.png"},
              "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")]}
# The templates open on ComfyUI's stock input/example.png (768x768: a drawn girl in a pink dress, arms stretched
# out, on grass under a blue sky) and work on it at 512x512, SD1.5's size and what a mid-range GPU handles.
SIZE = 512
PICTURE = "a child's drawing of a smiling girl with yellow hair in a pink dress, arms stretched out, standing on " \
          "green grass under a blue sky with white clouds"
SCALE = {"id": 15, "type": "ImageScale", "pos": [20, 720],
         "widgets": {"upscale_method": "lanczos", "width": SIZE, "height": SIZE, "crop": "disabled"},
         "title": "Work at 512x512", "inputs": {"image": ("IMAGE", 2, 0)}, "outputs": [("IMAGE", "IMAGE")]}


def text(node_id, pos, prompt, title, clip=(1, 1)):
    return {"id": node_id, "type": "CLIPTextEncode", "pos": pos, "widgets": {"text": prompt}, "title": title,
            "inputs": {"clip": ("CLIP", *clip)}, "outputs": [("CONDITIONING", "CONDITIONING")]}


def diffedit() -> list[dict]:
    return [
        CHECKPOINT, LOAD_IMAGE, SCALE,
        {"id": 3, "type": "VAEEncode", "pos": [380, 560], "inputs": {"pixels": ("IMAGE", 15, 0), "vae": ("VAE", 1, 2)},
         "outputs": [("LATENT", "LATENT")]},
        text(4, [380, 40], PICTURE.replace("pink dress", "blue dress"), "Query (the edit)"),
        text(5, [380, 210], PICTURE, "Reference (describes the input)"),
        text(6, [380, 380], "", "Empty prompt (unconditional)"),
        {"id": 7, "type": "DragEdit_DiffEditMaskInfer", "pos": [760, 40], "size": [320, 280],
         "widgets": node_inputs(DIFFEDIT.mask),
         "inputs": {"model": ("MODEL", 1, 0), "query": ("CONDITIONING", 4, 0), "reference": ("CONDITIONING", 5, 0),
                    "latent": ("LATENT", 3, 0)},
         "outputs": [("mask", "MASK"), ("difference_map", "IMAGE")]},
        {"id": 8, "type": "DragEdit_DDIMInversion", "pos": [760, 360], "widgets": node_inputs(DIFFEDIT.inversion),
         "inputs": {"model": ("MODEL", 1, 0), "latent": ("LATENT", 3, 0), "positive": ("CONDITIONING", 6, 0)},
         "outputs": [("latent", "LATENT"), ("trajectory", "INVERSION_TRAJECTORY")]},
        {"id": 9, "type": "DragEdit_MaskedDDIMDecode", "pos": [1140, 200], "widgets": {"cfg": DIFFEDIT.decode_cfg},
         "inputs": {"model": ("MODEL", 1, 0), "positive": ("CONDITIONING", 4, 0), "negative": ("CONDITIONING", 6, 0),
                    "trajectory": ("INVERSION_TRAJECTORY", 8, 1), "mask": ("MASK", 7, 0)},
         "outputs": [("latent", "LATENT")]},
        {"id": 10, "type": "VAEDecode", "pos": [1500, 200],
         "inputs": {"samples": ("LATENT", 9, 0), "vae": ("VAE", 1, 2)},
         "outputs": [("IMAGE", "IMAGE")]},
        {"id": 11, "type": "SaveImage", "pos": [1860, 200], "size": [400, 400],
         "widgets": {"filename_prefix": "diffedit"}, "inputs": {"images": ("IMAGE", 10, 0)}},
        {"id": 12, "type": "MaskToImage", "pos": [1140, 40], "inputs": {"mask": ("MASK", 7, 0)},
         "outputs": [("IMAGE", "IMAGE")]},
        {"id": 13, "type": "PreviewImage", "pos": [1500, -160], "size": [300, 300], "title": "Edit mask",
         "inputs": {"images": ("IMAGE", 12, 0)}},
        {"id": 14, "type": "PreviewImage", "pos": [1140, -300], "size": [300, 300], "title": "Difference map",
         "inputs": {"images": ("IMAGE", 7, 1)}},
    ]


def flux_guided(node_id, pos, source_id, title):
    return {"id": node_id, "type": "FluxGuidance", "pos": pos, "widgets": {"guidance": FLUX_GUIDANCE}, "title": title,
            "inputs": {"conditioning": ("CONDITIONING", source_id, 0)}, "outputs": [("CONDITIONING", "CONDITIONING")]}


def diffedit_flux() -> list[dict]:
    """DiffEdit on Flux dev: the SD graph with Flux's checkpoint, its 1024 px size, the guidance in the conditioning
    (FluxGuidance) and no CFG; the inversion's latent and sigmas also feed a stock SamplerCustom (the recipe for
    continuing an inversion with any sampler), whose result is previewed."""
    method, flux = DIFFEDIT_FLUX, 1024
    nodes = {node["id"]: node for node in diffedit()}
    nodes[1] = {**CHECKPOINT, "widgets": {"ckpt_name": "flux1-dev-fp8.safetensors"}}
    nodes[15] = {**SCALE, "widgets": {**SCALE["widgets"], "width": flux, "height": flux}, "title": "Work at 1024x1024"}
    guided = {"query": ("CONDITIONING", 16, 0), "reference": ("CONDITIONING", 17, 0)}
    nodes[7] = {**nodes[7], "widgets": node_inputs(method.mask), "inputs": {**nodes[7]["inputs"], **guided}}
    nodes[8] = {**nodes[8], "widgets": node_inputs(method.inversion),
                "inputs": {**nodes[8]["inputs"], "positive": ("CONDITIONING", 18, 0)},
                "outputs": nodes[8]["outputs"] + [("sigmas", "SIGMAS")]}
    guided = {"positive": ("CONDITIONING", 16, 0), "negative": ("CONDITIONING", 18, 0)}
    nodes[9] = {**nodes[9], "widgets": {"cfg": method.decode_cfg}, "inputs": {**nodes[9]["inputs"], **guided}}
    nodes[11] = {**nodes[11], "widgets": {"filename_prefix": "diffedit_flux"}}
    for node_id, source, y, title in ((16, 4, 40, "Query, guided"), (17, 5, 210, "Reference, guided"),
                                      (18, 6, 380, "Empty prompt, guided")):
        nodes[node_id] = flux_guided(node_id, [570, y], source, title)
    for node_id in (4, 5, 6):
        nodes[node_id] = {**nodes[node_id], "pos": [380, nodes[node_id]["pos"][1]], "size": [180, 130]}
    nodes.update(stock_continuation(first_id=19, latent=(8, 0), sigmas=(8, 2), positive=18))
    return list(nodes.values())


def stock_continuation(first_id, latent, sigmas, positive) -> dict:
    """SamplerCustom (Euler, add_noise off) continuing the inversion's latent down its sigmas: with the prompt it
    was inverted with, it reconstructs the picture."""
    sampler, custom, decode, preview = range(first_id, first_id + 4)
    return {
        sampler: {"id": sampler, "type": "KSamplerSelect", "pos": [1140, 460], "widgets": {"sampler_name": "euler"},
                  "outputs": [("SAMPLER", "SAMPLER")]},
        custom: {"id": custom, "type": "SamplerCustom", "pos": [1500, 460], "size": [315, 230],
                 "title": "Stock sampler from the inversion (reconstruction)",
                 "widgets": {"add_noise": False, "noise_seed": 0, "cfg": 1.0},
                 "inputs": {"model": ("MODEL", 1, 0), "positive": ("CONDITIONING", positive, 0),
                            "negative": ("CONDITIONING", positive, 0), "sampler": ("SAMPLER", sampler, 0),
                            "sigmas": ("SIGMAS", *sigmas), "latent_image": ("LATENT", *latent)},
                 "outputs": [("output", "LATENT"), ("denoised_output", "LATENT")]},
        decode: {"id": decode, "type": "VAEDecode", "pos": [1860, 660],
                 "inputs": {"samples": ("LATENT", custom, 0), "vae": ("VAE", 1, 2)}, "outputs": [("IMAGE", "IMAGE")]},
        preview: {"id": preview, "type": "PreviewImage", "pos": [2220, 660], "size": [300, 300],
                  "title": "Reconstruction", "inputs": {"images": ("IMAGE", decode, 0)}},
    }


# [{"handle": [x, y], "target": [x, y]}] in pixels of the 512x512 picture the drag sees.
# Real image: raise the girl's arm on the right (hand and forearm lifted), inside the editable area below.
RAISE_ARM_POINTS = '[{"handle":[397,238],"target":[380,150]},{"handle":[345,240],"target":[335,195]}]'


def painted(*strokes, size=SIZE) -> str:
    """A region as the point editor stores it (core/regions.py), on the size x size picture: (radius, points)
    strokes."""
    return json.dumps({"size": [size, size], "strokes": [{"radius": radius, "points": [list(p) for p in points]}
                                                         for radius, points in strokes]}, separators=(",", ":"))


# The drag's editable area: the arm on the right and the sky above it, where the raised arm goes.
ARM_AREA = painted((55.0, [(365.0, 140.0), (365.0, 230.0)]))
# The instant drag's region to move: that forearm and hand.
ARM = painted((16.0, [(312.0, 240.0), (350.0, 240.0), (402.0, 237.0)]))
# Generated image: its content depends on the checkpoint; move these onto it in the point editor after a first run.
EXAMPLE_POINTS = '[{"handle":[200,260],"target":[260,240]},{"handle":[330,180],"target":[350,140]}]'
DRAG_NODES = {"dragdiffusion": "DragEdit_DragLatentOptimize", "gooddrag": "DragEdit_GoodDragLatentOptimize"}


def drag_tail(first_id, model, positive, negative, trajectory, image, region, points, method=DRAGDIFFUSION, x=760):
    """Drag (``method``'s node and settings; ``region`` painted) -> Latent MasaCtrl Denoise -> VAEDecode ->
    SaveImage."""
    guidance = {"negative": ("CONDITIONING", *negative)} if negative else {}
    drag_inputs = {"model": ("MODEL", *model), "positive": ("CONDITIONING", *positive), **guidance,
                   "trajectory": ("INVERSION_TRAJECTORY", *trajectory), "image": ("IMAGE", *image)}
    drag_id, denoise_id, decode_id = first_id, first_id + 1, first_id + 2
    return [
        {"id": drag_id, "type": DRAG_NODES[method.name], "pos": [x, 300], "size": [420, 620],
         "widgets": {"drag_points": points, **node_inputs(method.drag), **node_inputs(method.drag_node_settings),
                     "region": region},
         "inputs": drag_inputs, "outputs": [("latent", "LATENT"), ("tracked_points", "STRING")]},
        {"id": denoise_id, "type": "DragEdit_LatentMasaCtrlDenoise", "pos": [x + 460, 300], "size": [320, 200],
         "widgets": node_inputs(method.denoise),
         "inputs": {"model": ("MODEL", *model), "positive": ("CONDITIONING", *positive), **guidance,
                    "trajectory": ("INVERSION_TRAJECTORY", *trajectory), "latent": ("LATENT", drag_id, 0)},
         "outputs": [("latent", "LATENT")]},
        {"id": decode_id, "type": "VAEDecode", "pos": [x + 460, 560],
         "inputs": {"samples": ("LATENT", denoise_id, 0), "vae": ("VAE", 1, 2)}, "outputs": [("IMAGE", "IMAGE")]},
        {"id": first_id + 3, "type": "SaveImage", "pos": [x + 820, 300], "size": [400, 420],
         "widgets": {"filename_prefix": "drag"}, "inputs": {"images": ("IMAGE", decode_id, 0)}},
    ]


def drag_real_image(method=DRAGDIFFUSION) -> list[dict]:
    """LoadImage -> 512x512 -> LoRA Identity Tune -> DDIM Inversion -> drag (with a painted editable area) ->
    MasaCtrl -> save, at ``method``'s settings."""
    return [
        CHECKPOINT, LOAD_IMAGE, SCALE,
        {"id": 3, "type": "VAEEncode", "pos": [20, 920], "inputs": {"pixels": ("IMAGE", 15, 0), "vae": ("VAE", 1, 2)},
         "outputs": [("LATENT", "LATENT")]},
        text(4, [380, 40], PICTURE, "Prompt (describes the image)"),
        {"id": 5, "type": "DragEdit_LoRAIdentityTune", "pos": [380, 260], "size": [320, 280],
         "widgets": {**node_inputs(method.lora), "save_name": "", "overwrite": False},
         "inputs": {"model": ("MODEL", 1, 0), "positive": ("CONDITIONING", 4, 0), "latent": ("LATENT", 3, 0)},
         "outputs": [("MODEL", "MODEL"), ("lora_name", "STRING")]},
        {"id": 6, "type": "DragEdit_DDIMInversion", "pos": [380, 680], "widgets": node_inputs(method.inversion),
         "inputs": {"model": ("MODEL", 5, 0), "latent": ("LATENT", 3, 0), "positive": ("CONDITIONING", 4, 0)},
         "outputs": [("latent", "LATENT"), ("trajectory", "INVERSION_TRAJECTORY")]},
        *drag_tail(7, model=(5, 0), positive=(4, 0), negative=None, trajectory=(6, 1), image=(15, 0),
                   region=ARM_AREA, points=RAISE_ARM_POINTS, method=method),
    ]


def gooddrag_real_image() -> list[dict]:
    """The real-image template with GoodDrag: its LoRA steps, inversion strength, the alternation, then MasaCtrl."""
    return drag_real_image(GOODDRAG)


GENERATION_CFG = 7.5  # the generation's guidance, which the drag and the denoise of a generated image reuse


def drag_generated_image() -> list[dict]:
    """Generate with DDIM and CFG, invert the result, drag and denoise with the same CFG (no LoRA, as the paper)."""
    generated = replace(DRAGDIFFUSION, drag_node_settings=replace(DRAGDIFFUSION.drag_node_settings,
                                                                  cfg=GENERATION_CFG),
                        denoise=replace(DRAGDIFFUSION.denoise, cfg=GENERATION_CFG))
    return [
        CHECKPOINT,
        text(4, [380, 40], "a photo of a cat sitting on a sofa", "Prompt"),
        text(5, [380, 220], "blurry, low quality", "Negative prompt"),
        {"id": 2, "type": "EmptyLatentImage", "pos": [20, 260],
         "widgets": {"width": SIZE, "height": SIZE, "batch_size": 1}, "outputs": [("LATENT", "LATENT")]},
        {"id": 3, "type": "KSampler", "pos": [20, 420], "size": [315, 262],
         "widgets": {"seed": 65536, "steps": DRAGDIFFUSION.inversion.steps, "cfg": GENERATION_CFG,
                     "sampler_name": "ddim", "scheduler": "ddim_uniform", "denoise": 1.0},
         "inputs": {"model": ("MODEL", 1, 0), "positive": ("CONDITIONING", 4, 0), "negative": ("CONDITIONING", 5, 0),
                    "latent_image": ("LATENT", 2, 0)},
         "outputs": [("LATENT", "LATENT")]},
        {"id": 11, "type": "VAEDecode", "pos": [380, 420],
         "inputs": {"samples": ("LATENT", 3, 0), "vae": ("VAE", 1, 2)},
         "outputs": [("IMAGE", "IMAGE")]},
        {"id": 6, "type": "DragEdit_DDIMInversion", "pos": [380, 560], "widgets": node_inputs(generated.inversion),
         "inputs": {"model": ("MODEL", 1, 0), "latent": ("LATENT", 3, 0), "positive": ("CONDITIONING", 4, 0)},
         "outputs": [("latent", "LATENT"), ("trajectory", "INVERSION_TRAJECTORY")]},
        *drag_tail(7, model=(1, 0), positive=(4, 0), negative=(5, 0), trajectory=(6, 1), image=(11, 0), region="",
                   points=EXAMPLE_POINTS, method=generated),
    ]


def scaled_points(points: str, factor: float) -> str:
    """Pairs in pixels of a picture ``factor`` times the templates' 512x512."""
    return json.dumps([{key: [round(v * factor) for v in pair[key]] for key in ("handle", "target")}
                       for pair in json.loads(points)], separators=(",", ":"))


def scaled_region(region: str, factor: float) -> str:
    """A painted region on a picture ``factor`` times the templates' 512x512 (strokes and radii scaled)."""
    strokes = json.loads(region)["strokes"]
    return painted(*[(s["radius"] * factor, [(x * factor, y * factor) for x, y in s["points"]]) for s in strokes],
                   size=round(SIZE * factor))


def inpaint_loaders(files) -> tuple[list[dict], dict]:
    """The stock loaders of an inpainting model's files, and where its MODEL, CLIP and VAE come from: one checkpoint,
    or (Flux Fill) a diffusion model, two text encoders and a VAE."""
    if files.checkpoint:
        return [{**CHECKPOINT, "widgets": {"ckpt_name": files.checkpoint}}], {"model": (1, 0), "clip": (1, 1),
                                                                              "vae": (1, 2)}
    clip_name1, clip_name2 = files.text_encoders
    return [
        {"id": 1, "type": "UNETLoader", "pos": [20, 60], "title": "Load Diffusion Model",
         "widgets": {"unet_name": files.diffusion_model, "weight_dtype": "default"}, "outputs": [("MODEL", "MODEL")]},
        {"id": 17, "type": "DualCLIPLoader", "pos": [20, 920], "title": "Text encoders (CLIP-L, T5-XXL)",
         "widgets": {"clip_name1": clip_name1, "clip_name2": clip_name2, "type": files.text_encoder_type,
                     "device": "default"},
         "outputs": [("CLIP", "CLIP")]},
        {"id": 18, "type": "VAELoader", "pos": [20, 1120], "widgets": {"vae_name": files.vae},
         "outputs": [("VAE", "VAE")]},
    ], {"model": (1, 0), "clip": (17, 0), "vae": (18, 0)}


def instant_drag(model=INSTANT_DRAG.sd15) -> list[dict]:
    """LoadImage -> the model's size -> Drag Region Warp -> inpaint conditioning (through FluxGuidance for a
    guidance-distilled model) -> KSampler -> VAEDecode -> the inpainted area pasted into the warped picture -> save;
    ``inpaint.lora`` (the LCM variants) loads between the loader and the sampler."""
    inpaint, factor = model.inpaint, model.inpaint.size / SIZE
    loaders, source = inpaint_loaders(model.files)
    sampled = source["model"]
    lora = []
    if inpaint.lora:  # the LCM LoRA acts on the UNet only
        lora = [{"id": 16, "type": "LoraLoaderModelOnly", "pos": [20, 1120], "title": "LCM LoRA",
                 "widgets": {"lora_name": inpaint.lora, "strength_model": 1.0},
                 "inputs": {"model": ("MODEL", *sampled)}, "outputs": [("MODEL", "MODEL")]}]
        sampled = (16, 0)
    empty = text(4, [380, 40], "", "Empty prompt (as Inpaint4Drag)", clip=source["clip"])
    positive, guided = (4, 0), []
    if inpaint.guidance is not None:
        guided = [{**flux_guided(19, [840, -120], 4, "Flux guidance"), "widgets": {"guidance": inpaint.guidance}}]
        positive = (19, 0)
    scale = SCALE
    if factor != 1:
        scale = {**SCALE, "widgets": {**SCALE["widgets"], "width": inpaint.size, "height": inpaint.size},
                 "title": f"Work at {inpaint.size}x{inpaint.size}"}
    points, region = RAISE_ARM_POINTS, ARM
    if factor != 1:
        points, region = scaled_points(points, factor), scaled_region(region, factor)
    paste = {"inpaint": ("MASK", 20, 1), "region": ("MASK", 20, 3)}[inpaint.composite_inside]
    vae = ("VAE", *source["vae"])
    return [
        *loaders[:1], LOAD_IMAGE, scale, *loaders[1:], *lora, empty, *guided,
        {"id": 20, "type": "DragEdit_RegionWarp", "pos": [380, 260], "size": [420, 620],
         "widgets": {"drag_points": points, **node_inputs(INSTANT_DRAG.warp), "region": region},
         "inputs": {"image": ("IMAGE", 15, 0)},
         "outputs": [("warped", "IMAGE"), ("inpaint_mask", "MASK"), ("moved_region", "MASK"), ("region", "MASK")]},
        {"id": 21, "type": "InpaintModelConditioning", "pos": [840, 60],
         "widgets": {"noise_mask": inpaint.noise_mask},
         "inputs": {"positive": ("CONDITIONING", *positive), "negative": ("CONDITIONING", 4, 0), "vae": vae,
                    "pixels": ("IMAGE", 20, 0), "mask": ("MASK", 20, 1)},
         "outputs": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")]},
        {"id": 22, "type": "KSampler", "pos": [840, 260], "size": [315, 262],
         "widgets": {"seed": 0, "steps": inpaint.steps, "cfg": inpaint.cfg, "sampler_name": inpaint.sampler_name,
                     "scheduler": inpaint.scheduler, "denoise": inpaint.denoise},
         "inputs": {"model": ("MODEL", *sampled), "positive": ("CONDITIONING", 21, 0),
                    "negative": ("CONDITIONING", 21, 1), "latent_image": ("LATENT", 21, 2)},
         "outputs": [("LATENT", "LATENT")]},
        {"id": 23, "type": "VAEDecode", "pos": [1200, 260], "inputs": {"samples": ("LATENT", 22, 0), "vae": vae},
         "outputs": [("IMAGE", "IMAGE")]},
        {"id": 24, "type": "ImageCompositeMasked", "pos": [1200, 400], "title": "Paste the inpainted area",
         "widgets": {"x": 0, "y": 0, "resize_source": False},
         "inputs": {"destination": ("IMAGE", 20, 0), "source": ("IMAGE", 23, 0), "mask": paste},
         "outputs": [("IMAGE", "IMAGE")]},
        {"id": 25, "type": "SaveImage", "pos": [1560, 260], "size": [400, 420],
         "widgets": {"filename_prefix": "instant_drag"}, "inputs": {"images": ("IMAGE", 24, 0)}},
    ]


def instant_drag_lcm() -> list[dict]:
    """The instant drag as Inpaint4Drag evaluates it: an LCM LoRA on the inpainting checkpoint, 4 steps."""
    return instant_drag(INSTANT_DRAG.sd15_lcm)


def instant_drag_sdxl() -> list[dict]:
    """SDXL inpainting 0.1 at 1024x1024 with the SDXL LCM LoRA, 8 steps, as Inpaint4Drag's UI runs its SDXL."""
    return instant_drag(INSTANT_DRAG.sdxl_lcm)


def instant_drag_flux_fill() -> list[dict]:
    """FLUX.1 Fill [dev] at 1024x1024, loaded and sampled as ComfyUI's own Flux Fill example (FluxGuidance 30)."""
    return instant_drag(INSTANT_DRAG.flux_fill)


WORKFLOWS = {"diffedit.json": diffedit, "diffedit_flux.json": diffedit_flux, "drag_real_image.json": drag_real_image,
             "drag_generated_image.json": drag_generated_image, "gooddrag_real_image.json": gooddrag_real_image,
             "instant_drag.json": instant_drag, "instant_drag_lcm.json": instant_drag_lcm,
             "instant_drag_sdxl.json": instant_drag_sdxl, "instant_drag_flux_fill.json": instant_drag_flux_fill}


def workflows(classes: dict) -> dict:
    """Every template as its JSON text, by file name."""
    return {name: json.dumps(build(make(), classes), indent=1) + "\n" for name, make in WORKFLOWS.items()}


# Thumbnails for the template browser (same name, .jpg): drawn here, a sketch of what each template does.
THUMB = (400, 300)
SKY, GRASS, SKIN, PINK, BLUE, ARROW = (96, 150, 250), (100, 250, 100), (250, 240, 232), (250, 168, 212), \
    (70, 110, 230), (230, 57, 70)


def _scene(dress=PINK):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", THUMB, SKY)
    draw = ImageDraw.Draw(image)
    draw.ellipse((-100, 170, 500, 460), fill=GRASS)
    draw.ellipse((175, 60, 225, 110), fill=SKIN)  # head
    draw.ellipse((150, 30, 250, 80), fill=(250, 235, 120))  # hair
    draw.polygon([(180, 115), (220, 115), (245, 235), (155, 235)], fill=dress)
    draw.line([(185, 125), (110, 130)], fill=SKIN, width=12)  # arm on the left
    draw.line([(155, 235), (150, 280)], fill=SKIN, width=12)
    draw.line([(245, 235), (250, 280)], fill=SKIN, width=12)
    return image, draw


def _arrow(draw, start, end):
    draw.line([start, end], fill=ARROW, width=4)
    draw.ellipse((end[0] - 7, end[1] - 7, end[0] + 7, end[1] + 7), fill=ARROW)


def thumbnail_drag_real_image():
    image, draw = _scene()
    draw.line([(215, 125), (290, 130)], fill=(235, 225, 218), width=12)  # the arm before (faded)
    draw.line([(215, 125), (275, 65)], fill=SKIN, width=12)  # ... and raised
    _arrow(draw, (290, 130), (278, 70))
    draw.rounded_rectangle((210, 40, 310, 150), radius=45, outline=(255, 230, 0), width=3)  # the painted area
    draw.text((10, 10), "Drag: raise the arm (real image)", fill="white")
    return image


def thumbnail_drag_generated_image():
    image, draw = _scene()
    draw.line([(215, 125), (290, 130)], fill=SKIN, width=12)
    _arrow(draw, (120, 250), (200, 250))
    draw.text((10, 10), "Generate, then drag (CFG 7.5)", fill="white")
    return image


def thumbnail_diffedit(title="DiffEdit: pink dress -> blue dress"):
    image, draw = _scene(dress=BLUE)
    draw.line([(215, 125), (290, 130)], fill=SKIN, width=12)
    draw.polygon([(180, 115), (200, 115), (200, 235), (155, 235)], fill=PINK)  # half before, half after
    draw.text((10, 10), title, fill="white")
    return image


def thumbnail_gooddrag_real_image():
    image = thumbnail_drag_real_image()
    image.paste((96, 150, 250), (0, 0, 400, 28))
    from PIL import ImageDraw

    ImageDraw.Draw(image).text((10, 10), "GoodDrag: raise the arm, drag and denoise in turn", fill="white")
    return image


def thumbnail_instant_drag(title="Instant drag: warp the arm, inpaint the gap"):
    from PIL import Image, ImageDraw

    image, draw = _scene()
    for x in range(230, 296, 6):  # the uncovered area, drawn as Inpaint4Drag's preview: a grid to inpaint
        draw.line([(x, 118), (x, 142)], fill=(255, 255, 255), width=2)
    draw.line([(215, 125), (275, 65)], fill=SKIN, width=12)  # the arm warped up
    overlay = Image.new("RGBA", THUMB, (0, 0, 0, 0))
    ImageDraw.Draw(overlay).line([(262, 78), (282, 58)], fill=(255, 80, 80, 110), width=18)  # the moved region
    image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(image)
    _arrow(draw, (290, 130), (278, 70))
    draw.text((10, 10), title, fill="white")
    return image


THUMBNAILS = {"diffedit.jpg": thumbnail_diffedit,
              "diffedit_flux.jpg": lambda: thumbnail_diffedit("DiffEdit on Flux: pink dress -> blue dress"),
              "drag_real_image.jpg": thumbnail_drag_real_image,
              "drag_generated_image.jpg": thumbnail_drag_generated_image,
              "gooddrag_real_image.jpg": thumbnail_gooddrag_real_image,
              "instant_drag.jpg": thumbnail_instant_drag,
              "instant_drag_lcm.jpg": lambda: thumbnail_instant_drag("Instant drag, 4 LCM steps"),
              "instant_drag_sdxl.jpg": lambda: thumbnail_instant_drag("Instant drag, SDXL inpainting, 8 LCM steps"),
              "instant_drag_flux_fill.jpg": lambda: thumbnail_instant_drag("Instant drag, Flux Fill (guidance 30)")}

if __name__ == "__main__":
    from tests.support import comfy_host

    if not os.environ.get("COMFYUI_PATH"):
        raise SystemExit("set COMFYUI_PATH to a ComfyUI checkout: the widgets' order is read from the node schemas")
    classes = comfy_host.start(os.environ["COMFYUI_PATH"]).NODE_CLASS_MAPPINGS
    OUT.mkdir(exist_ok=True)
    for name, content in workflows(classes).items():
        (OUT / name).write_text(content)
        print("wrote", OUT / name)
    for name, draw_thumbnail in THUMBNAILS.items():
        draw_thumbnail().save(OUT / name, quality=85)
        print("wrote", OUT / name)
