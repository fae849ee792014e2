"""DragBench samples are read with a restricted unpickler: the format round-trips, nothing else is ever run."""
import json
import os
import pickle

import numpy as np
import pytest

from core.dragbench import drag_points_json, read_meta


def write_meta(folder, meta):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta_data.pkl").write_bytes(pickle.dumps(meta))
    return folder / "meta_data.pkl"


def test_the_format_round_trips(tmp_path):
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:50] = 1
    points = [[12, 20], [30, 22], [40, 10], [44, 30]]  # handle, target, handle, target
    path = write_meta(tmp_path / "JH_2023-09-14-1820-16", {"prompt": "a cat", "points": points, "mask": mask})
    meta = read_meta(path)
    assert meta["prompt"] == "a cat" and meta["points"] == [[12.0, 20.0], [30.0, 22.0], [40.0, 10.0], [44.0, 30.0]]
    assert meta["mask"].dtype == np.float32 and np.array_equal(meta["mask"], mask.astype(np.float32))
    pairs = json.loads(drag_points_json(meta["points"]))
    assert pairs == [{"handle": [12.0, 20.0], "target": [30.0, 22.0]}, {"handle": [40.0, 10.0], "target": [44.0, 30.0]}]
    # numpy points and an all-zero float mask (nothing drawn), as the labeling tool writes them
    path = write_meta(tmp_path / "b", {"prompt": "", "points": [np.array([1, 2]), np.array([3, 4])],
                                       "mask": np.zeros((8, 8), np.float64)})
    assert read_meta(path)["points"] == [[1.0, 2.0], [3.0, 4.0]] and not read_meta(path)["mask"].any()


class Payload:
    """Unpickling this would create a file: it must never happen."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    created = tmp_path / "pwned.txt"
    for evil in (Payload(str(created)), {"prompt": "x", "points": [], "mask": Payload(str(created))}):
        path = tmp_path / "meta_data.pkl"
        path.write_bytes(pickle.dumps(evil))
        with pytest.raises(ValueError, match="refers to (io|builtins).open, which a DragBench sample never contains"):
            read_meta(path)
        assert not created.exists()
    path.write_bytes(pickle.dumps({"prompt": "x", "points": [], "mask": os.system}))  # a callable, not a call
    with pytest.raises(ValueError, match="refers to posix.system|refers to nt.system"):
        read_meta(path)


@pytest.mark.parametrize("meta, message", [
    ({"prompt": "x", "points": [[1, 2]], "mask": np.zeros((4, 4))}, "alternate handle and target"),
    ({"prompt": 3, "points": [[1, 2], [3, 4]], "mask": np.zeros((4, 4))}, "'prompt' must be text"),
    ({"prompt": "x", "points": [[1, 2], [3, 4]], "mask": np.zeros(4)}, "'mask' must be HxW"),
    (["not", "a", "dict"], "must hold a dict"),
])
def test_malformed_samples_say_what_is_wrong(tmp_path, meta, message):
    with pytest.raises(ValueError, match=message):
        read_meta(write_meta(tmp_path, meta))
    (tmp_path / "meta_data.pkl").write_bytes(b"\x80\x04truncated")
    with pytest.raises(ValueError, match="is not a readable meta_data.pkl"):
        read_meta(tmp_path / "meta_data.pkl")


def _feature_image(seed=0, channels=16, hw=(40, 56)):
    """A feature map with a distinct vector at every pixel (random, smooth enough to survive upsampling)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(channels, *hw, generator=g)


def test_mean_distance_is_zero_for_an_identity_edit():
    from core.dragbench import match_points, mean_distance

    features = _feature_image()
    handles, targets = [[10, 12], [40, 30]], [[20, 12], [35, 20]]
    matched = match_points(features, features, handles, (40, 56))
    assert matched == handles
    distances, mean = mean_distance(matched, handles)
    assert distances == [0.0, 0.0] and mean == 0.0
    distances, mean = mean_distance(matched, targets)  # nothing moved: the distance to the targets remains
    diagonal = float(np.hypot(5, 10))
    assert distances == [10.0, pytest.approx(diagonal)] and mean == pytest.approx((10 + diagonal) / 2)


def test_a_handle_on_the_far_edges_is_read_at_the_last_pixel():
    """Issue 17, defect 2: drag_points accepts the continuous extent [0, W] x [0, H]; a handle at x = W or y = H is
    read at the last column or row (it raised IndexError)."""
    from core.dragbench import match_points

    features = _feature_image()  # 56 wide, 40 high
    matched = match_points(features, features, [[56, 12], [20, 40], [56, 40], [55.6, 39.7]], (40, 56))
    assert matched == [[55, 12], [20, 39], [55, 39], [55, 39]]


def test_mean_distance_equals_a_known_translation():
    import torch

    from core.dragbench import match_points, mean_distance

    source = _feature_image(seed=1)
    shift = (3, 7)  # rows down, columns right: the edit moved everything by this
    edited = torch.roll(source, shifts=shift, dims=(1, 2))
    handles = [[12, 10], [30, 25], [44, 18]]  # away from the wrapped border
    targets = [[x + 7, y + 3] for x, y in handles]  # the edit did exactly what was asked
    matched = match_points(source, edited, handles, (40, 56))
    assert matched == targets
    assert mean_distance(matched, targets)[1] == 0.0
    asked_more = [[x + 10, y + 3] for x, y in handles]  # targets 3 px further right than the content went
    assert mean_distance(matched, asked_more)[1] == pytest.approx(3.0)


def test_image_fidelity_prepares_images_as_the_protocol():
    """Both to [-1, 1] at 224x224 (the edited one first resized to the original's size); 1 - distance."""
    import torch

    from core.dragbench import image_fidelity

    seen = []

    def distance(a, b):
        seen.append((a, b))
        return (a - b).abs().mean().reshape(1, 1, 1, 1)

    original = torch.rand(1, 48, 80, 3, generator=torch.Generator().manual_seed(0))
    assert image_fidelity(distance, original, original.clone()) == 1.0
    a, b = seen[-1]
    assert a.shape == b.shape == (1, 3, 224, 224) and a.min() >= -1 and a.max() <= 1
    white = torch.ones(1, 96, 160, 3)  # another size: resized, then compared
    assert image_fidelity(distance, torch.zeros(1, 48, 80, 3), white) == pytest.approx(1.0 - 2.0)
