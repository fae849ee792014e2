"""DragBench nodes: Load Sample (one sample as the drag nodes' inputs) and Mean Distance."""
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import folder_paths

from ..core.dragbench import (
    IMAGE_FILE,
    META_FILE,
    REGION_META_FILE,
    dift_features,
    drag_points_json,
    image_fidelity,
    match_points,
    mean_distance,
    read_meta,
    read_region_mask,
)
from ..core.points import parse_drag_points, read_drag_points
from ..core.settings import MEAN_DISTANCE
from . import backend, checks
from .host_api import io
from .unet_hooks import ComfyDragModel, FeatureCapture, check_feature_block, diffusion_model, dift_feature_block


def _relative_folder(sample: str) -> Path:
    """A folder under ComfyUI's input directory; ValueError for anything else (checked at queue time too)."""
    if not isinstance(sample, str) or not sample.strip():
        raise ValueError("sample is empty: give a DragBench sample folder under ComfyUI's input folder, e.g. "
                         "DragBench/animals/JH_2023-09-14-1820-16")
    relative = Path(sample.strip().replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"sample {sample[:80]!r} must be a folder inside ComfyUI's input folder (no absolute path, "
                         "no '..')")
    return relative


class DragBenchLoadSample(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_DragBenchLoadSample",
            display_name="DragBench Load Sample",
            category="image editing/DragBench",
            description="Loads one DragBench sample (original_image.png, meta_data.pkl) as the image, its prompt, "
                        "the drag_points of the drag nodes and the editable mask. The pickle is read without running "
                        "anything it names.",
            inputs=[
                io.String.Input("sample", default="",
                                tooltip="The sample folder, relative to ComfyUI's input folder (e.g. "
                                        "DragBench/animals/JH_2023-09-14-1820-16)."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="original_image.png at its own size (VAE Encode "
                                                               "drops the rows past a multiple of 8, and the drag "
                                                               "nodes accept that)."),
                io.String.Output(display_name="prompt", tooltip="The sample's prompt (for CLIP Text Encode)."),
                io.String.Output(display_name="drag_points", tooltip="The sample's pairs as drag_points JSON."),
                io.Mask.Output(display_name="mask", tooltip="1 = editable; empty when the labeler drew none."),
                io.Mask.Output(display_name="region",
                               tooltip="The region to move, for region-based drags (Drag Region Warp): the "
                                       f"sample's {REGION_META_FILE} mask where it has one, else the editable "
                                       "mask."),
            ],
        )

    @classmethod
    def validate_inputs(cls, sample) -> bool | str:
        return checks.at_queue(_relative_folder, sample)

    @classmethod
    def fingerprint_inputs(cls, sample):
        folder = Path(folder_paths.get_input_directory()) / _relative_folder(sample)
        stamps = [(folder / name).stat().st_mtime_ns for name in (IMAGE_FILE, META_FILE, REGION_META_FILE)
                  if (folder / name).exists()]
        return tuple(stamps)  # re-read when a file changes

    @classmethod
    def execute(cls, sample) -> io.NodeOutput:
        root = Path(folder_paths.get_input_directory()).resolve()
        folder = (root / _relative_folder(sample)).resolve()
        if not folder.is_relative_to(root):
            raise ValueError(f"sample {sample[:80]!r} leads outside ComfyUI's input folder")
        for name in (IMAGE_FILE, META_FILE):
            if not (folder / name).is_file():
                raise ValueError(f"{folder} has no {name}: is it a DragBench sample folder?")
        meta = read_meta(folder / META_FILE)
        with Image.open(folder / IMAGE_FILE) as picture:
            pixels = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
        height, width = pixels.shape[:2]
        mask = meta["mask"]
        region = read_region_mask(folder / REGION_META_FILE) if (folder / REGION_META_FILE).is_file() else mask
        for name, plane in ((META_FILE, mask), (REGION_META_FILE, region)):
            if plane.shape != (height, width):
                raise ValueError(f"{name}'s mask is {plane.shape[1]}x{plane.shape[0]} but {IMAGE_FILE} is "
                                 f"{width}x{height}")
        for x, y in meta["points"]:
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(f"{META_FILE} has the point ({x:g}, {y:g}) outside the {width}x{height} image")
        image = torch.from_numpy(pixels)[None]
        return io.NodeOutput(image, meta["prompt"], drag_points_json(meta["points"]), torch.from_numpy(mask)[None],
                             torch.from_numpy(region)[None])


class MeanDistance(io.ComfyNode):
    """DragBench's Mean Distance: where the handles' content went, by DIFT feature matching."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_MeanDistance",
            display_name="DragBench Mean Distance",
            category="image editing/DragBench",
            is_output_node=True,
            description="DragBench's Mean Distance: for each pair, finds the handle's content in the edited image "
                        "by DIFT features (noised latent, decoder features, an ensemble of noise draws, cosine "
                        "matching over the whole image) and measures its distance to the target, in pixels.",
            inputs=[
                io.Model.Input("model", tooltip="The protocol uses SD2.1; any checkpoint works (name it in your "
                                                "results)."),
                io.Vae.Input("vae", tooltip="The model's VAE."),
                io.Conditioning.Input("prompt", tooltip="The sample's prompt (no CFG, as the protocol)."),
                io.Image.Input("original", tooltip="The sample's original image."),
                io.Image.Input("edited", tooltip="The edited image (resized to the original's size if needed)."),
                io.String.Input("drag_points", multiline=True, default="[]",
                                tooltip="The sample's pairs, as DragBench Load Sample gives them."),
                io.Int.Input("timestep", default=MEAN_DISTANCE.timestep, min=0, max=999,
                             tooltip="Noise level of the DIFT features (the protocol's "
                                     f"t = {MEAN_DISTANCE.timestep})."),
                io.Int.Input("ensemble", default=MEAN_DISTANCE.ensemble, min=1, max=64,
                             tooltip=f"Noise draws averaged (protocol: {MEAN_DISTANCE.ensemble})."),
                io.Int.Input("seed", default=MEAN_DISTANCE.seed, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the noise draws."),
                io.Int.Input("feature_block", default=MEAN_DISTANCE.feature_block, min=-1, max=64,
                             tooltip="Decoder block of the features; -1 = the protocol's (the block upsampling to "
                                     "half the latent resolution: SD2.1's up_blocks[1])."),
            ],
            outputs=[
                io.Float.Output(display_name="mean_distance", tooltip="Mean over the pairs, in pixels."),
                io.String.Output(display_name="distances", tooltip="JSON: the distance of each pair, in pixels."),
            ],
        )

    @classmethod
    def validate_inputs(cls, drag_points) -> bool | str:
        return checks.at_queue(read_drag_points, drag_points)

    @classmethod
    def execute(cls, model, vae, prompt, original, edited, drag_points, timestep, ensemble, seed,
                feature_block) -> io.NodeOutput:
        checks.model(model)
        prompt = checks.conditioning(prompt, "prompt")
        image_hw = tuple(original.shape[1:3])
        handles, targets = parse_drag_points(drag_points, image_hw)
        if tuple(edited.shape[1:3]) != image_hw:  # as the protocol: the result resized to the source's size
            edited = torch.nn.functional.interpolate(edited.movedim(-1, 1), size=image_hw, mode="bilinear",
                                                     align_corners=False).movedim(1, -1)
        unet = diffusion_model(model)
        block = dift_feature_block(unet) if feature_block < 0 else check_feature_block(unet, feature_block)
        table = backend.sigma_table(model)
        sigma = float(table[min(max(timestep, 0), len(table) - 1)])
        latents = [vae.encode(image[:1, ..., :3]) for image in (original, edited)]
        capture = FeatureCapture(block)
        patched = capture.attach(model)

        def body(denoise, x):
            drag_model = ComfyDragModel(denoise, capture, 1.0)
            maps = [dift_features(drag_model.features, row[None], sigma, ensemble, seed) for row in x]
            return x, maps

        _, (source_map, edited_map) = backend.run_guided(patched, prompt, None, 1.0, torch.cat(latents),
                                                         torch.tensor([sigma]), body)
        matched = match_points(source_map, edited_map, handles.tolist(), image_hw)
        distances, mean = mean_distance(matched, targets.tolist())
        per_pair = json.dumps([round(d, 3) for d in distances])
        # Shown on the node and kept in the prompt's history, where a headless runner reads it.
        return io.NodeOutput(mean, per_pair, ui={"mean_distance": [mean], "distances": [per_pair]})


_LPIPS = {}


def lpips_alex():
    """The maintained LPIPS (``pip install lpips``) with AlexNet; its backbone weights come through torchvision's
    hub cache, which this machine may not be able to download: then say exactly which file goes where."""
    if "alex" in _LPIPS:
        return _LPIPS["alex"]
    try:
        import lpips
        from torchvision.models import AlexNet_Weights
    except ImportError as error:
        raise ValueError(f"Image Fidelity needs the lpips package ({error.name} is missing): "
                         "pip install lpips") from None
    url = AlexNet_Weights.IMAGENET1K_V1.url
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not target.is_file():
        raise ValueError(f"Image Fidelity (LPIPS, AlexNet) needs the AlexNet ImageNet weights: download {url} and "
                         f"put it at {target}")
    _LPIPS["alex"] = lpips.LPIPS(net="alex", verbose=False).eval()
    return _LPIPS["alex"]


class ImageFidelity(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragEdit_ImageFidelity",
            display_name="DragBench Image Fidelity",
            category="image editing/DragBench",
            is_output_node=True,
            description="DragBench's Image Fidelity: 1 - LPIPS (AlexNet) between the original and the edited image, "
                        "both resized to 224x224 as the protocol does. Higher is closer to the original.",
            inputs=[
                io.Image.Input("original", tooltip="The sample's original image."),
                io.Image.Input("edited", tooltip="The edited image (resized to the original's size first)."),
            ],
            outputs=[io.Float.Output(display_name="image_fidelity", tooltip="1 - LPIPS, in [0, 1] for typical "
                                                                              "images.")],
        )

    @classmethod
    def execute(cls, original, edited) -> io.NodeOutput:
        for image, what in ((original, "original"), (edited, "edited")):
            if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] < 3:
                raise ValueError(f"{what} must be an IMAGE [batch, height, width, channels]")
        fidelity = image_fidelity(lpips_alex(), original, edited)
        return io.NodeOutput(fidelity, ui={"image_fidelity": [fidelity]})
