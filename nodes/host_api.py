"""The one place the pack imports ComfyUI's node API, at a numbered version: 0.0.2, the newest numbered version of
the ComfyUI the tests run on (0.3.64, October 2025).  ``comfy_api.latest`` changes with every ComfyUI release; a
numbered version is the one a pack can name, so a change of version is made here, once."""
from comfy_api.v0_0_2 import ComfyExtension, io

__all__ = ["ComfyExtension", "io"]
