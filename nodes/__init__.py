"""ComfyUI nodes: they translate ComfyUI types, validate and report progress; the algorithms live in core/."""
from comfy_api.latest import ComfyExtension, io

from .diffedit import DiffEditMaskInfer, MaskedDDIMDecode
from .inversion import DDIMInversion

NODES = [DDIMInversion, DiffEditMaskInfer, MaskedDDIMDecode]


class DragEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
