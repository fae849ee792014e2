"""Write the example workflows (ComfyUI UI format) from a compact description.

Run ``python -m tools.make_workflows`` after changing a graph; the JSON files in
workflows/ are what users load and what the host tests execute.
"""
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "workflows"


def build(nodes: list[dict]) -> dict:
    """nodes: dicts with id, type, pos, widgets, inputs {name: (type, source_id, slot)}, outputs [(name, type)]."""
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
        serialized.append({"id": node["id"], "type": node["type"], "pos": node["pos"], "size": node.get("size", [315, 130]),
                           "flags": {}, "order": 0, "mode": 0, "inputs": inputs, "outputs": [],
                           "properties": {"Node name for S&R": node["type"]},
                           "widgets_values": node.get("widgets", []),
                           **({"title": node["title"]} if "title" in node else {})})
    for node, data in zip(nodes, serialized):
        data["outputs"] = [{"name": name, "type": kind, "links": out_links.get((node["id"], slot), []), "slot_index": slot}
                           for slot, (name, kind) in enumerate(node.get("outputs", []))]
    for order, data in enumerate(serialized):
        data["order"] = order
    return {"last_node_id": max(by_id), "last_link_id": len(links), "nodes": serialized, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


CHECKPOINT = {"id": 1, "type": "CheckpointLoaderSimple", "pos": [20, 60], "widgets": ["v1-5-pruned-emaonly.safetensors"],
              "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]}
LOAD_IMAGE = {"id": 2, "type": "LoadImage", "pos": [20, 260], "size": [315, 320], "widgets": ["example.png", "image"],
              "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")]}


def text(node_id, pos, prompt, title):
    return {"id": node_id, "type": "CLIPTextEncode", "pos": pos, "widgets": [prompt], "title": title,
            "inputs": {"clip": ("CLIP", 1, 1)}, "outputs": [("CONDITIONING", "CONDITIONING")]}


def diffedit() -> dict:
    return build([
        CHECKPOINT, LOAD_IMAGE,
        {"id": 3, "type": "VAEEncode", "pos": [380, 560], "inputs": {"pixels": ("IMAGE", 2, 0), "vae": ("VAE", 1, 2)},
         "outputs": [("LATENT", "LATENT")]},
        text(4, [380, 40], "a bowl of pears", "Query (the edit)"),
        text(5, [380, 210], "a bowl of fruits", "Reference (describes the input)"),
        text(6, [380, 380], "", "Empty prompt (unconditional)"),
        {"id": 7, "type": "DragEdit_DiffEditMaskInfer", "pos": [760, 40], "size": [320, 280],
         "widgets": [10, 0.5, 3.0, 0.5, 0, "fixed", 50],
         "inputs": {"model": ("MODEL", 1, 0), "query": ("CONDITIONING", 4, 0), "reference": ("CONDITIONING", 5, 0),
                    "latent": ("LATENT", 3, 0)},
         "outputs": [("mask", "MASK"), ("difference_map", "IMAGE")]},
        {"id": 8, "type": "DragEdit_DDIMInversion", "pos": [760, 360], "widgets": [50, 0.8, 1.0],
         "inputs": {"model": ("MODEL", 1, 0), "latent": ("LATENT", 3, 0), "positive": ("CONDITIONING", 6, 0)},
         "outputs": [("latent", "LATENT"), ("trajectory", "INVERSION_TRAJECTORY")]},
        {"id": 9, "type": "DragEdit_MaskedDDIMDecode", "pos": [1140, 200], "widgets": [7.5],
         "inputs": {"model": ("MODEL", 1, 0), "positive": ("CONDITIONING", 4, 0), "negative": ("CONDITIONING", 6, 0),
                    "trajectory": ("INVERSION_TRAJECTORY", 8, 1), "mask": ("MASK", 7, 0)},
         "outputs": [("latent", "LATENT")]},
        {"id": 10, "type": "VAEDecode", "pos": [1500, 200], "inputs": {"samples": ("LATENT", 9, 0), "vae": ("VAE", 1, 2)},
         "outputs": [("IMAGE", "IMAGE")]},
        {"id": 11, "type": "SaveImage", "pos": [1860, 200], "size": [400, 400], "widgets": ["diffedit"],
         "inputs": {"images": ("IMAGE", 10, 0)}},
        {"id": 12, "type": "MaskToImage", "pos": [1140, 40], "inputs": {"mask": ("MASK", 7, 0)},
         "outputs": [("IMAGE", "IMAGE")]},
        {"id": 13, "type": "PreviewImage", "pos": [1500, -160], "size": [300, 300], "title": "Edit mask",
         "inputs": {"images": ("IMAGE", 12, 0)}},
        {"id": 14, "type": "PreviewImage", "pos": [1140, -300], "size": [300, 300], "title": "Difference map",
         "inputs": {"images": ("IMAGE", 7, 1)}},
    ])


# Example pairs for a 512x512 picture: [{"handle": [x, y], "target": [x, y]}] in image pixels.
EXAMPLE_POINTS = '[{"handle":[200,260],"target":[260,240]},{"handle":[330,180],"target":[350,140]}]'
DRAG_DEFAULTS = [80, 0.01, 0.1]  # steps, learning_rate, mask_weight (DragDiffusion's)
DRAG_ADVANCED = [-1, 1, 3]  # feature_block (auto), motion_radius r_m, track_radius r_p


def drag_tail(first_id, model, positive, negative, trajectory, image, mask, cfg, x=760):
    """Drag Latent Optimize -> Latent MasaCtrl Denoise -> VAEDecode -> SaveImage."""
    guidance = {"negative": ("CONDITIONING", *negative)} if negative else {}
    drag_inputs = {"model": ("MODEL", *model), "positive": ("CONDITIONING", *positive), **guidance,
                   "trajectory": ("INVERSION_TRAJECTORY", *trajectory), "image": ("IMAGE", *image)}
    if mask:
        drag_inputs["mask"] = ("MASK", *mask)
    drag_id, denoise_id, decode_id = first_id, first_id + 1, first_id + 2
    return [
        {"id": drag_id, "type": "DragEdit_DragLatentOptimize", "pos": [x, 300], "size": [420, 620],
         "widgets": [EXAMPLE_POINTS, *DRAG_DEFAULTS, cfg, *DRAG_ADVANCED], "inputs": drag_inputs,
         "outputs": [("latent", "LATENT"), ("tracked_points", "STRING")]},
        {"id": denoise_id, "type": "DragEdit_LatentMasaCtrlDenoise", "pos": [x + 460, 300], "size": [320, 200],
         "widgets": [0, -1, cfg],
         "inputs": {"model": ("MODEL", *model), "positive": ("CONDITIONING", *positive), **guidance,
                    "trajectory": ("INVERSION_TRAJECTORY", *trajectory), "latent": ("LATENT", drag_id, 0)},
         "outputs": [("latent", "LATENT")]},
        {"id": decode_id, "type": "VAEDecode", "pos": [x + 460, 560],
         "inputs": {"samples": ("LATENT", denoise_id, 0), "vae": ("VAE", 1, 2)}, "outputs": [("IMAGE", "IMAGE")]},
        {"id": first_id + 3, "type": "SaveImage", "pos": [x + 820, 300], "size": [400, 420], "widgets": ["drag"],
         "inputs": {"images": ("IMAGE", decode_id, 0)}},
    ]


def drag_real_image() -> dict:
    """LoadImage (+ its mask-editor mask) -> LoRA Identity Tune -> DDIM Inversion -> drag -> MasaCtrl -> save."""
    return build([
        CHECKPOINT, dict(LOAD_IMAGE, widgets=["example.png", "image"]),
        {"id": 3, "type": "VAEEncode", "pos": [20, 640], "inputs": {"pixels": ("IMAGE", 2, 0), "vae": ("VAE", 1, 2)},
         "outputs": [("LATENT", "LATENT")]},
        text(4, [380, 40], "a photo of a cat sitting on a sofa", "Prompt (describes the image)"),
        {"id": 5, "type": "DragEdit_LoRAIdentityTune", "pos": [380, 260], "size": [320, 280],
         "widgets": [80, 0.0005, 16, 4, 0, "", False],
         "inputs": {"model": ("MODEL", 1, 0), "positive": ("CONDITIONING", 4, 0), "latent": ("LATENT", 3, 0)},
         "outputs": [("MODEL", "MODEL"), ("lora_name", "STRING")]},
        {"id": 6, "type": "DragEdit_DDIMInversion", "pos": [380, 580], "widgets": [50, 0.7, 1.0],
         "inputs": {"model": ("MODEL", 5, 0), "latent": ("LATENT", 3, 0), "positive": ("CONDITIONING", 4, 0)},
         "outputs": [("latent", "LATENT"), ("trajectory", "INVERSION_TRAJECTORY")]},
        *drag_tail(7, model=(5, 0), positive=(4, 0), negative=None, trajectory=(6, 1), image=(2, 0), mask=(2, 1),
                   cfg=1.0),
    ])


def drag_generated_image() -> dict:
    """Generate with DDIM and CFG, invert the result, drag and denoise with the same CFG (no LoRA, as the paper)."""
    return build([
        CHECKPOINT,
        text(4, [380, 40], "a photo of a cat sitting on a sofa", "Prompt"),
        text(5, [380, 220], "blurry, low quality", "Negative prompt"),
        {"id": 2, "type": "EmptyLatentImage", "pos": [20, 260], "widgets": [512, 512, 1],
         "outputs": [("LATENT", "LATENT")]},
        {"id": 3, "type": "KSampler", "pos": [20, 420], "size": [315, 262],
         "widgets": [65536, "fixed", 50, 7.5, "ddim", "ddim_uniform", 1.0],
         "inputs": {"model": ("MODEL", 1, 0), "positive": ("CONDITIONING", 4, 0), "negative": ("CONDITIONING", 5, 0),
                    "latent_image": ("LATENT", 2, 0)},
         "outputs": [("LATENT", "LATENT")]},
        {"id": 11, "type": "VAEDecode", "pos": [380, 420], "inputs": {"samples": ("LATENT", 3, 0), "vae": ("VAE", 1, 2)},
         "outputs": [("IMAGE", "IMAGE")]},
        {"id": 6, "type": "DragEdit_DDIMInversion", "pos": [380, 560], "widgets": [50, 0.7, 1.0],
         "inputs": {"model": ("MODEL", 1, 0), "latent": ("LATENT", 3, 0), "positive": ("CONDITIONING", 4, 0)},
         "outputs": [("latent", "LATENT"), ("trajectory", "INVERSION_TRAJECTORY")]},
        *drag_tail(7, model=(1, 0), positive=(4, 0), negative=(5, 0), trajectory=(6, 1), image=(11, 0), mask=None,
                   cfg=7.5),
    ])


WORKFLOWS = {"diffedit.json": diffedit, "drag_real_image.json": drag_real_image,
             "drag_generated_image.json": drag_generated_image}

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, make in WORKFLOWS.items():
        (OUT / name).write_text(json.dumps(make(), indent=1) + "\n")
        print("wrote", OUT / name)
