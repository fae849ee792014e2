"""DragBench Load Sample inside real ComfyUI: a sample in the DragBench layout round-trips into the drag inputs."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def write_sample(folder: Path, width=64, height=45, meta=None):
    folder.mkdir(parents=True, exist_ok=True)
    pixels = (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(folder / "original_image.png")
    mask = np.zeros((height, width), np.uint8)
    mask[5:30, 10:50] = 1
    meta = meta if meta is not None else {"prompt": "a tiny test", "points": [[12, 20], [30, 22]], "mask": mask}
    (folder / "meta_data.pkl").write_bytes(pickle.dumps(meta))
    return pixels, mask


def load(comfy, sample):
    return comfy.NODE_CLASS_MAPPINGS["DragEdit_DragBenchLoadSample"].execute(sample).args


def test_a_sample_round_trips_into_the_drag_inputs(comfy):
    import folder_paths

    pixels, mask = write_sample(Path(folder_paths.get_input_directory()) / "DragBench" / "animals" / "JH_1")
    image, prompt, points, out_mask, region = load(comfy, "DragBench/animals/JH_1")
    assert image.shape == (1, 45, 64, 3) and torch.allclose(image[0], torch.from_numpy(pixels / 255.0).float())
    assert prompt == "a tiny test"
    assert json.loads(points) == [{"handle": [12.0, 20.0], "target": [30.0, 22.0]}]
    assert torch.equal(out_mask[0], torch.from_numpy(mask.astype(np.float32)))
    assert torch.equal(region, out_mask)  # no region annotation: the editable mask is the region to move
    # 45 rows is not a multiple of 8: the drag nodes take the image as VAE Encode crops it (5 latent rows)
    assert image.shape[1] // 8 == 5


def test_a_region_annotation_beside_the_sample_is_its_region(comfy):
    """Inpaint4Drag's meta_data_i4p.pkl (RegionDrag's region masks) gives the region to move."""
    import folder_paths

    folder = Path(folder_paths.get_input_directory()) / "DragBench" / "animals" / "JH_2"
    _, mask = write_sample(folder)
    region = np.zeros_like(mask)
    region[10:20, 8:16] = 255
    (folder / "meta_data_i4p.pkl").write_bytes(pickle.dumps({"points": [[12, 20], [30, 22]], "mask": region}))
    *_, out_mask, out_region = load(comfy, "DragBench/animals/JH_2")
    assert torch.equal(out_region[0], torch.from_numpy((region > 0).astype(np.float32)))
    assert torch.equal(out_mask[0], torch.from_numpy(mask.astype(np.float32)))


def test_a_payload_pickle_is_refused_and_runs_nothing(comfy, tmp_path):
    import folder_paths

    created = tmp_path / "pwned.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(created), "w"))

    write_sample(Path(folder_paths.get_input_directory()) / "DragBench" / "evil", meta=Payload())
    with pytest.raises(ValueError, match="refers to (io|builtins).open, which a DragBench sample never contains"):
        load(comfy, "DragBench/evil")
    assert not created.exists()


@pytest.mark.parametrize("sample, message", [("", "sample is empty"), ("../outside", "no '..'"),
                                             ("/etc", "no absolute path")])
def test_bad_sample_paths_are_refused_at_queue_time(comfy, sample, message):
    validate = comfy.NODE_CLASS_MAPPINGS["DragEdit_DragBenchLoadSample"].validate_inputs
    assert message in validate(sample=sample)
    with pytest.raises(ValueError, match=message.replace("'", ".")):
        load(comfy, sample)


def test_mean_distance_node_on_a_tiny_model(comfy, tiny):
    """An unchanged image: every handle is found where it was, so with targets on the handles the distance is 0,
    and with targets 10 px away it is 10."""
    from tests.support.fakes import FakeVAE

    model, cond = tiny.make_model("sd1"), tiny.conditioning()
    picture = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(3))
    node = comfy.NODE_CLASS_MAPPINGS["DragEdit_MeanDistance"]
    here = json.dumps([{"handle": [40, 50], "target": [40, 50]}, {"handle": [90, 70], "target": [90, 70]}])
    away = json.dumps([{"handle": [40, 50], "target": [50, 50]}, {"handle": [90, 70], "target": [90, 80]}])
    with torch.inference_mode():
        mean, distances = node.execute(model, FakeVAE(), cond, picture, picture.clone(), here, 261, 2, 42, -1).args
        assert mean == 0.0 and json.loads(distances) == [0.0, 0.0]
        mean, distances = node.execute(model, FakeVAE(), cond, picture, picture.clone(), away, 261, 2, 42, -1).args
        assert mean == pytest.approx(10.0) and json.loads(distances) == [10.0, 10.0]


def test_image_fidelity_names_the_missing_weights_and_computes_one_minus_lpips(comfy, monkeypatch, tmp_path):
    lpips = pytest.importorskip("lpips", reason="Image Fidelity's host test needs `pip install lpips`")
    from .pack import pack_module

    dragbench = pack_module("nodes.dragbench")
    node = comfy.NODE_CLASS_MAPPINGS["DragEdit_ImageFidelity"]
    picture = torch.rand(1, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    dragbench._LPIPS.clear()
    with pytest.raises(ValueError, match=f"download .*alexnet-.*\\.pth and put it at {tmp_path}/hub/checkpoints/"):
        node.execute(picture, picture)
    # with a (randomly initialised) AlexNet in place, the protocol's arithmetic: an unchanged image scores 1
    dragbench._LPIPS["alex"] = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    try:
        assert node.execute(picture, picture.clone()).args[0] == pytest.approx(1.0, abs=1e-6)
        noisy = (picture + 0.3 * torch.randn(picture.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
        assert node.execute(picture, noisy).args[0] < 1.0
        # the edited image is resized to the original's size first
        bigger = torch.nn.functional.interpolate(picture.movedim(-1, 1), size=(128, 192), mode="bilinear",
                                                 align_corners=False).movedim(1, -1)
        assert node.execute(picture, bigger).args[0] > node.execute(picture, noisy).args[0]
    finally:
        dragbench._LPIPS.clear()
