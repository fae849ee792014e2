"""Turn a UI-format workflow into the API prompt the frontend would queue, and the shipped templates into prompts the
tests and the bench run.

Widget values are positional over each node type's widget inputs (required,
then optional); a seed with ``control_after_generate`` and an image upload
each carry one extra serialized value.
"""
import json
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
TEMPLATE_SIZE = 512  # the templates' working size (their Image Scale node)
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def widget_inputs(node_class) -> list[tuple[str, str, dict]]:
    spec = node_class.INPUT_TYPES()
    found = []
    for section in ("required", "optional"):
        for name, definition in spec.get(section, {}).items():
            kind = definition[0]
            options = definition[1] if len(definition) > 1 and isinstance(definition[1], dict) else {}
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                if not options.get("forceInput"):
                    found.append((name, "COMBO" if isinstance(kind, list) else kind, options))
    return found


def to_api_prompt(workflow: dict, class_mappings: dict, replace_types: dict | None = None) -> dict:
    replace_types = replace_types or {}
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted or bypassed
            continue
        inputs = {}
        linked = set()
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, source, source_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(source), source_slot]
                linked.add(slot["name"])
        values = list(node.get("widgets_values", []))
        for name, kind, options in widget_inputs(class_mappings[node["type"]]):
            if not values:
                break
            value = values.pop(0)
            if name not in linked:
                inputs[name] = value
            if options.get("control_after_generate") or options.get("image_upload"):
                values.pop(0)
        prompt[str(node["id"])] = {"class_type": replace_types.get(node["type"], node["type"]), "inputs": inputs}
    return prompt


def template_prompt(nodes, name: str, kind: str) -> dict:
    """The template ``name`` as the API prompt the frontend queues, each stock loader (checkpoint, or diffusion model,
    text encoders and VAE) replaced by its test stand-in loading ``kind`` (``nodes``: ComfyUI's, see ``comfy_host``)."""
    from tests.support import comfy_host

    stand_ins = comfy_host.test_loader_stand_ins(nodes)
    prompt = to_api_prompt(json.loads((WORKFLOWS / name).read_text()), nodes.NODE_CLASS_MAPPINGS,
                           {stock: stand_in for stock, (stand_in, _) in stand_ins.items()})
    named_by = dict(stand_ins.values())
    for node in prompt.values():
        if node["class_type"] in named_by:
            node["inputs"][named_by[node["class_type"]]] = kind
    return prompt


def resize_template(prompt: dict, px: int) -> None:
    """Work at ``px`` instead of the template's size (its Image Scale's, 512 unless SDXL's or Flux's 1024): its Image
    Scale, points and painted regions (whose strokes would scale themselves, but a region's queue-time check reads
    them at the size they name)."""
    sizes = [node["inputs"]["width"] for node in prompt.values() if node["class_type"] == "ImageScale"]
    factor = px / (sizes[0] if sizes else TEMPLATE_SIZE)
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "ImageScale":
            inputs.update(width=px, height=px)
        if "drag_points" in inputs:
            inputs["drag_points"] = json.dumps([{k: [v * factor for v in p[k]] for k in ("handle", "target")}
                                                for p in json.loads(inputs["drag_points"])])
        if inputs.get("region"):
            region = json.loads(inputs["region"])
            inputs["region"] = json.dumps({"size": [round(v * factor) for v in region["size"]], "strokes": [
                {**s, "radius": s["radius"] * factor, "points": [[v * factor for v in p] for p in s["points"]]}
                for s in region["strokes"]]})
