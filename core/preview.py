"""Progress previews drawn with PIL: the drag's current handles, LoRA training's loss curve."""
from typing import Sequence

import torch
from PIL import Image, ImageDraw

HANDLE = (230, 57, 70)
TARGET = (69, 123, 157)


def image_to_pil(image: torch.Tensor) -> Image.Image:
    """An IMAGE row ``[H, W, C]`` in 0..1 as an RGB picture."""
    pixels = (image[..., :3].detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB")


def drag_preview_image(image, handles_xy, targets_xy) -> Image.Image:
    """The picture (an IMAGE row or a PIL image, left unchanged) with an arrow from each handle to its target."""
    picture = image.copy() if isinstance(image, Image.Image) else image_to_pil(image)
    draw = ImageDraw.Draw(picture)
    radius = max(2, round(min(picture.size) / 100))
    for (hx, hy), (tx, ty) in zip(torch.as_tensor(handles_xy).tolist(), torch.as_tensor(targets_xy).tolist()):
        draw.line([(hx, hy), (tx, ty)], fill=(255, 255, 255), width=max(1, radius // 2))
        draw.ellipse([hx - radius, hy - radius, hx + radius, hy + radius], fill=HANDLE)
        draw.ellipse([tx - radius, ty - radius, tx + radius, ty + radius], fill=TARGET)
    return picture


def loss_curve_image(losses: Sequence[float], total_steps: int) -> Image.Image:
    """A small plot of the training loss so far, with the current value written on it."""
    width, height, pad = 256, 128, 8
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    low, high = min(losses), max(losses)
    span = (high - low) or 1.0
    points = [(pad + (width - 2 * pad) * i / max(total_steps - 1, 1),
               height - pad - (height - 3 * pad) * (loss - low) / span) for i, loss in enumerate(losses)]
    if len(points) > 1:
        draw.line(points, fill=(30, 90, 200), width=2)
    draw.text((pad, 2), f"step {len(losses)}/{total_steps}  loss {losses[-1]:.4f}", fill="black")
    return image
