"""The headless DragDiffusion demo (tools/demo_drag.py), run in-process on tiny models."""
import json
import math

import pytest

from tests.test_demo import spy
from tools.demo_drag import main

FAST = ["--size", "32", "--steps", "10", "--lora-steps", "2", "--drag-steps", "5"]
FILES = ("input.png", "drag_points.png", "edited.png", "reference.png", "summary.json")


pytestmark = pytest.mark.usefixtures("one_thread")


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_tiny_run_with_mask_writes_everything(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import core.drag
    import core.masactrl

    drags, denoises = spy(monkeypatch, core.drag, "optimize_drag_latent"), spy(monkeypatch, core.masactrl,
                                                                              "masactrl_denoise")
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 4, 32, 28))  # right part editable, left strip kept
    mask.save(tmp_path / "mask.png")
    out = tmp_path / "demo"
    points = json.dumps([{"handle": [16, 14], "target": [26, 14]}])
    assert main([*FAST, "--points", points, "--mask", str(tmp_path / "mask.png"), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in FILES[:-1]:
        with Image.open(out / name) as picture:
            assert picture.size == (32, 32), name

    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "tiny-random" and summary["input"] == "synthetic"
    assert summary["image_size"] == [32, 32] and summary["supervision_grid_hw"] == [16, 16]
    assert summary["schedule"]["encoded_steps"] == 7
    assert summary["settings"]["lora_steps"] == 2
    assert set(summary["timings_s"]) >= {"load", "vae_encode", "lora", "invert", "drag", "masactrl", "vae_decode",
                                         "total"}
    assert all(finite(v) for v in summary["timings_s"].values())
    assert summary["lora"]["steps"] == 2 and finite(summary["lora"]["first_loss"]) and finite(
        summary["lora"]["last_loss"])
    drag = summary["drag"]
    assert 1 <= drag["steps_run"] <= 5 and finite(drag["first_loss"]) and finite(drag["last_loss"])
    assert drag["handle_distance_px_before"] == [10.0]
    assert len(drag["handle_distance_px_after"]) == 1 and finite(drag["handle_distance_px_after"][0])
    assert 0.0 < summary["mask"]["editable_fraction"] < 1.0
    for change in summary["latent_change"].values():
        assert set(change) == {"inside_mask_mean_abs", "outside_mask_mean_abs"}
        assert all(finite(v) for v in change.values())
    # The drag moved the latent, and mostly where the mask lets it (the mask term holds the rest).
    moved = summary["latent_change"]["drag_vs_inverted"]
    assert moved["inside_mask_mean_abs"] > 2 * moved["outside_mask_mean_abs"] > 0, moved
    edited = summary["latent_change"]["edited_vs_reference"]
    assert edited["inside_mask_mean_abs"] > edited["outside_mask_mean_abs"], edited
    # the summary reports what the core computed
    (result,) = drags
    assert drag["steps_run"] == result.steps_run and len(denoises) == 1
    assert drag["first_loss"] == result.losses[0] and drag["last_loss"] == result.losses[-1]


@pytest.mark.parametrize("args, expected", [
    (["--points", '[{"handle": [10, 10]}]'], "unpaired point"),
    (["--points", '[{"handle": [10, 10], "target": [40, 10]}]'], "outside the 32x32 image"),
    (["--points", "not json"], "not valid JSON"),
    (["--strength", "1.5"], "--strength"),
    (["--lora-steps", "-1"], "--lora-steps"),
    (["--mask", "/nonexistent.png"], "no such file"),
])
def test_bad_input_exits_2_before_writing(tmp_path, capsys, args, expected):
    out = tmp_path / "out"
    assert main([*FAST, *args, "--out", str(out)]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_non_empty_out_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main([*FAST, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
