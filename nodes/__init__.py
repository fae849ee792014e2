"""ComfyUI nodes: they translate ComfyUI types, validate and report progress; the algorithms live in core/."""
from .diffedit import DiffEditMaskInfer, MaskedDDIMDecode
from .drag import DragLatentOptimize
from .dragbench import DragBenchLoadSample, ImageFidelity, MeanDistance
from .gooddrag import GoodDragLatentOptimize
from .host_api import ComfyExtension, io
from .inversion import DDIMInversion
from .lora import LoRAIdentityTune
from .masactrl import LatentMasaCtrlDenoise
from .region_warp import DragRegionWarp

NODES = [DDIMInversion, DiffEditMaskInfer, MaskedDDIMDecode, DragLatentOptimize, GoodDragLatentOptimize,
         LatentMasaCtrlDenoise, LoRAIdentityTune, DragRegionWarp, DragBenchLoadSample, MeanDistance, ImageFidelity]


class DragEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
