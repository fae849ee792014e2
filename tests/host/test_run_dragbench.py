"""The DragBench runner drives a real, headless ComfyUI through its HTTP API, on tiny random models: the drag methods,
and the instant drag on SD1.5 inpainting, SDXL inpainting and Flux Fill (each loaded by the test stand-ins of the
stock loaders its graph names)."""
import importlib.util
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.comfy_host import CHECKPOINT_NODE
from tools import run_dragbench as runner

from . import server
from .test_dragbench_nodes import write_sample
from .test_inpaint_models import SDXL_LCM_LORA, write_lora

# Small enough for a CPU: a few LoRA steps, 2 DDIM steps, 2 drag updates, one DIFT draw.
QUICK = ["lora.steps=2", "lora.batch_size=1", "inversion.steps=4", "inversion.strength=0.5", "drag.steps=2",
         "mean_distance.ensemble=1"]


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _random_alexnet(torch_home: Path) -> None:
    """LPIPS's AlexNet backbone, with random weights, where torchvision looks for the ImageNet file."""
    from torchvision.models import AlexNet_Weights, alexnet

    target = torch_home / "hub" / "checkpoints" / Path(AlexNet_Weights.IMAGENET1K_V1.url).name
    target.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(alexnet().state_dict(), target)


FLUX_FILL_LOADERS = ["--loader", "UNETLoader=DragEditTest_DiffusionModel", "--loader",
                     "DualCLIPLoader=DragEditTest_TextEncoders", "--loader", "VAELoader=DragEditTest_VAE"]


def instant_argv(bench, out, url):
    return ["--bench", str(bench), "--out", str(out), "--loader", "DragEditTest_Checkpoint", "--checkpoint", "sd1",
            "--method", "instant_drag", "--set=mean_distance.ensemble=1", "--poll", "0.2", "--no-fidelity",
            "--server", url]


def test_the_runner_drives_a_headless_comfyui_and_resumes(tmp_path, monkeypatch):
    reason = server.missing_requirement()
    if reason:
        pytest.skip(reason)
    base = tmp_path / "comfy"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "drag_edit_test_tiny").symlink_to(CHECKPOINT_NODE, target_is_directory=True)
    bench = base / "input" / "DragBench"
    for seed, name in enumerate(("animals/s1", "art_work/s2")):
        write_sample(bench / name, width=128, height=128)
        pixels = np.random.default_rng(seed + 10).integers(0, 256, (128, 128, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(bench / name / runner.IMAGE_FILE)  # two different pictures
    fidelity = importlib.util.find_spec("lpips") is not None
    if fidelity:
        _random_alexnet(tmp_path / "torch_home")
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    out = tmp_path / "results"
    argv = ["--bench", str(bench), "--out", str(out), "--loader", "DragEditTest_Checkpoint",
            "--checkpoint", "sd1", "--poll", "0.2", "--timeout", "600", *[f"--set={item}" for item in QUICK],
            *([] if fidelity else ["--no-fidelity"])]

    with server.comfy_server(base) as started:
        url = started["url"]
        assert runner.main([*argv, "--server", url]) == 0, server.tail(started["log"])
        rows = [json.loads(line) for line in (out / runner.RESULTS).read_text().splitlines()]
        assert [row["sample"] for row in rows] == ["animals/s1", "art_work/s2"]
        for row in rows:
            assert "error" not in row, row
            assert row["pairs"] == 1 and row["mean_distance"] == pytest.approx(row["distances"][0], abs=1e-3)
            assert row["seconds"] > 0 and row["peak_bytes"] > 2 ** 20 and row["device"] == "cpu"
            assert (base / "output" / row["image"]).is_file()  # the edited image, saved by the server
            if fidelity:
                assert 0.0 <= row["image_fidelity"] <= 1.0
        assert len(_get(url + "history")) == 2

        # Resume: a finished sample is not queued again; a lost row is recomputed.
        assert runner.main([*argv, "--server", url]) == 0
        assert len(_get(url + "history")) == 2
        (out / runner.RESULTS).write_text(json.dumps(rows[0]) + "\n")
        assert runner.main([*argv, "--server", url]) == 0
        assert len(_get(url + "history")) == 3

        # The instant drag: the sample's mask as the region, a tiny inpainting checkpoint, no LCM LoRA here.
        instant = tmp_path / "instant"
        assert runner.main([*instant_argv(bench, instant, url), "--inpaint-checkpoint", "sd1-inpaint",
                            "--set=inpaint.lora="]) == 0, server.tail(started["log"])
        rows_instant = [json.loads(line) for line in (instant / runner.RESULTS).read_text().splitlines()]
        assert [row.get("error") for row in rows_instant] == [None, None]
        assert all((base / "output" / row["image"]).is_file() and row["pairs"] == 1 for row in rows_instant)

        # On SDXL inpainting (detected as such by ComfyUI) with its LCM LoRA, and on Flux Fill through the stand-ins of
        # Load Diffusion Model, DualCLIPLoader and Load VAE; one sample each, inpainted at 128 px for the CPU.
        write_lora(base / "models" / "loras" / SDXL_LCM_LORA)
        for family, files in (("sdxl", ["--inpaint-checkpoint", "sdxl-inpaint"]),
                              ("flux_fill", ["--inpaint-checkpoint", "flux-fill", "--inpaint-text-encoders",
                                             "flux-fill", "flux-fill", "--inpaint-vae", "flux-fill"])):
            out_family = tmp_path / family
            assert runner.main([*instant_argv(bench, out_family, url), "--inpaint-model", family, *files, "--limit",
                                "1", "--set=inpaint.size=128", *FLUX_FILL_LOADERS]) == 0, server.tail(started["log"])
            row, = [json.loads(line) for line in (out_family / runner.RESULTS).read_text().splitlines()]
            assert "error" not in row and row["pairs"] == 1 and (base / "output" / row["image"]).is_file(), row
            assert f"{family}: {files[1]}" in (out_family / runner.SUMMARY_MD).read_text()

    summary = json.loads((out / runner.SUMMARY_JSON).read_text())
    rows = [json.loads(line) for line in (out / runner.RESULTS).read_text().splitlines()]
    assert summary["all"]["samples"] == 2 and summary["devices"] == ["cpu"]
    assert summary["all"]["mean_distance"] == pytest.approx(sum(row["distances"][0] for row in rows) / 2)
