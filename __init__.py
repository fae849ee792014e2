"""Drag & DiffEdit nodes for ComfyUI: DragDiffusion and DiffEdit on any SD1.x, SD2.x or SDXL checkpoint."""

WEB_DIRECTORY = "./web/js"


async def comfy_entrypoint():
    # Imported here so the algorithms in core/ stay importable without ComfyUI.
    from .nodes import DragEditExtension, routes

    routes.register()
    return DragEditExtension()
