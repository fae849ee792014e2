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


WORKFLOWS = {"diffedit.json": diffedit}

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, make in WORKFLOWS.items():
        (OUT / name).write_text(json.dumps(make(), indent=1) + "\n")
        print("wrote", OUT / name)
