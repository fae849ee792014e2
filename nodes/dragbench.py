"""DragBench Load Sample node: one DragBench sample as the drag nodes' inputs."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import folder_paths
from comfy_api.latest import io

from ..core.dragbench import IMAGE_FILE, META_FILE, drag_points_json, read_meta


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
            ],
        )

    @classmethod
    def validate_inputs(cls, sample) -> bool | str:
        if sample is not None:
            try:
                _relative_folder(sample)
            except ValueError as error:
                return str(error)
        return True

    @classmethod
    def fingerprint_inputs(cls, sample):
        folder = Path(folder_paths.get_input_directory()) / _relative_folder(sample)
        stamps = [(folder / name).stat().st_mtime_ns for name in (IMAGE_FILE, META_FILE) if (folder / name).exists()]
        return tuple(stamps)  # re-read when either file changes

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
        if mask.shape != (height, width):
            raise ValueError(f"{META_FILE}'s mask is {mask.shape[1]}x{mask.shape[0]} but {IMAGE_FILE} is "
                             f"{width}x{height}")
        for x, y in meta["points"]:
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(f"{META_FILE} has the point ({x:g}, {y:g}) outside the {width}x{height} image")
        image = torch.from_numpy(pixels)[None]
        return io.NodeOutput(image, meta["prompt"], drag_points_json(meta["points"]), torch.from_numpy(mask)[None])
