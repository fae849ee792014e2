"""Turn a UI-format workflow into the API prompt the frontend would queue.

Widget values are positional over each node type's widget inputs (required,
then optional); a seed with ``control_after_generate`` and an image upload
each carry one extra serialized value.
"""
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
