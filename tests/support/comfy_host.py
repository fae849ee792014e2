"""ComfyUI imported into this process (``COMFYUI_PATH``), with throw-away folders and this pack loaded as a custom
node: the one bootstrap of the host tests, the bench and the workflow generator.  No server is started (the tests
that need one use ``tests/host/server.py``)."""
import asyncio
import importlib.util
import sys
import tempfile
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-drag-diffedit"
CHECKPOINT_NODE = Path(__file__).resolve().parent / "tiny_checkpoint_node"
_started = {}


def start(comfy_path: str, cpu: bool = True):
    """ComfyUI's ``nodes`` module with its extra nodes and this pack loaded (once per process); ``nodes.HOST_BASE_DIR``
    is the base folder (input, output, temp, models/loras, custom_nodes)."""
    if "nodes" in _started:
        return _started["nodes"]
    sys.path.insert(0, comfy_path)
    from comfy.cli_args import args

    args.cpu = cpu  # before comfy.model_management is imported
    # ComfyUI's own `utils` package before any node, as main.py imports it: otherwise a later `import utils`
    # finds another module of that name and comfy_extras/nodes_images.py fails ("'utils' is not a package").
    import utils.extra_config  # noqa: F401

    import folder_paths

    base = Path(tempfile.mkdtemp(prefix="comfy-host-"))
    for sub in ("output", "temp", "input", "models/loras", "custom_nodes"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    folder_paths.set_output_directory(str(base / "output"))
    folder_paths.set_temp_directory(str(base / "temp"))
    folder_paths.set_input_directory(str(base / "input"))
    folder_paths.add_model_folder_path("loras", str(base / "models" / "loras"), is_default=True)
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    link = base / "custom_nodes" / PACK_NAME
    link.symlink_to(PACK_ROOT, target_is_directory=True)
    if not asyncio.run(nodes.load_custom_node(str(link))):
        raise RuntimeError("ComfyUI failed to import the pack (see the log above)")
    nodes.HOST_BASE_DIR = base
    _started["nodes"] = nodes
    return nodes


def _test_loader_module():
    if "loaders" not in _started:
        spec = importlib.util.spec_from_file_location("drag_edit_test_checkpoint", CHECKPOINT_NODE / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _started["loaders"] = module
    return _started["loaders"]


def register_test_checkpoint(nodes) -> str:
    """Add the test-only loader nodes (``tiny_checkpoint_node/``, the ones a test server loads) to this process's
    ComfyUI; returns the checkpoint loader's class name."""
    module = _test_loader_module()
    nodes.NODE_CLASS_MAPPINGS.update(module.NODE_CLASS_MAPPINGS)
    return next(iter(module.NODE_CLASS_MAPPINGS))


def test_models(nodes):
    """The test loaders' own copy of ``comfy_models`` (its shared, once-built models are the ones they return)."""
    register_test_checkpoint(nodes)
    return _test_loader_module()._models


def test_loader_stand_ins(nodes) -> dict:
    """``{stock loader: (stand-in class, the input naming its architecture)}``, registered in ``nodes``."""
    register_test_checkpoint(nodes)
    return dict(_test_loader_module().STAND_INS)
