"""The headless DiffEdit demo (tools/demo.py), run in-process on tiny models."""
import json

import numpy as np
import pytest

from tests.support.tiny_models import CONTEXT_DIM, scheduler_config, tiny_unet, tiny_vae
from tools.demo import main

FAST = ["--size", "32", "--steps", "10", "--mask-samples", "2"]
FILES = ("input.png", "mask.png", "difference_map.png", "edited.png", "summary.json")


pytestmark = pytest.mark.usefixtures("one_thread")


def check_outputs(out, model):
    from PIL import Image

    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == model
    assert summary["image_size"] == [32, 32]
    assert summary["settings"]["steps"] == 10 and summary["schedule"]["encoded_steps"] == 8
    assert set(summary["timings_s"]) >= {"load", "vae_encode", "mask", "invert", "decode", "vae_decode", "total"}
    assert 0.0 <= summary["mask_coverage"] <= 1.0
    assert summary["latent_change"]["outside_mask_mean_abs"] == 0.0
    with Image.open(out / "mask.png") as mask:
        assert mask.size == (32, 32) and set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
    with Image.open(out / "edited.png") as edited:
        assert edited.size == (32, 32)
    return summary


def spy(monkeypatch, module, name):
    """Record every call of ``module.name`` (the demos import the core's functions when they run)."""
    calls, original = [], getattr(module, name)

    def recording(*args, **kwargs):
        calls.append(original(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(module, name, recording)
    return calls


def test_tiny_run_writes_everything_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    import core.diffedit

    masks, decodes = spy(monkeypatch, core.diffedit, "diffedit_mask"), spy(monkeypatch, core.diffedit,
                                                                         "masked_ddim_decode")
    out = tmp_path / "demo"
    assert main([*FAST, "--out", str(out)]) == 0
    summary = check_outputs(out, "tiny-random")
    # the core's mask is the one written and measured
    assert len(masks) == len(decodes) == 1
    assert summary["mask_coverage"] == pytest.approx(float(masks[0].binary.mean()))
    assert "noise-like" in summary["note"]
    assert summary["input"] == "synthetic"
    assert "wrote" in capsys.readouterr().out

    before = {name: (out / name).read_bytes() for name in FILES}
    assert main([*FAST, "--out", str(out), "--seed", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in FILES} == before

    # --overwrite replaces the files; the same settings give the same pictures (tiny models included).
    stamp = (out / "summary.json").stat().st_mtime_ns
    assert main([*FAST, "--out", str(out), "--overwrite"]) == 0
    assert (out / "summary.json").stat().st_mtime_ns > stamp
    for name in ("input.png", "mask.png", "difference_map.png", "edited.png"):
        assert (out / name).read_bytes() == before[name], name


def test_image_input_is_resized_to_multiples_of_8(tmp_path):
    from PIL import Image

    Image.new("RGB", (50, 30), (200, 40, 40)).save(tmp_path / "in.png")
    out = tmp_path / "demo"
    assert main(["--image", str(tmp_path / "in.png"), "--size", "40", "--steps", "4", "--mask-samples", "1",
                 "--reconstruct", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "reconstruction.png").is_file() and summary["reconstruction_latent_mean_abs_error"] >= 0.0
    assert summary["image_size"] == [40, 24]
    assert summary["latent_change"]["outside_mask_mean_abs"] in (0.0, None)


def bad_model(root, kind):
    if kind == "missing":
        return root / "missing"
    if kind == "incomplete":
        (root / "half").mkdir()
        (root / "half" / "model_index.json").write_text("{}")
        return root / "half"
    (root / f"model.{kind}").write_bytes(b"not loaded")
    return root / f"model.{kind}"


@pytest.mark.parametrize("kind, expected", [
    ("missing", "no such folder"),
    ("safetensors", "use ComfyUI"),
    ("ckpt", "convert it to a diffusers folder"),
    ("incomplete", "missing unet/config.json"),
])
def test_bad_model_paths_exit_2_before_loading(tmp_path, capsys, kind, expected):
    out = tmp_path / "out"
    assert main(["--model", str(bad_model(tmp_path, kind)), "--out", str(out)]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("args, expected", [
    (["--strength", "1.5"], "--strength"),
    (["--steps", "10", "--mask-noise", "0.01"], "--mask-noise"),
    (["--image", "/nonexistent.png"], "no such file"),
])
def test_bad_settings_exit_2(tmp_path, capsys, args, expected):
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert expected in capsys.readouterr().err


def tiny_diffusers_folder(root):
    """A diffusers-format SD folder with tiny random components and a byte-level CLIP tokenizer."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tiny_unet().save_pretrained(root / "unet")
    tiny_vae().save_pretrained(root / "vae")
    symbols = sorted(ByteLevel.alphabet())  # no merges: every byte is a token
    vocab = {token: i for i, token in enumerate([*symbols, *(s + "</w>" for s in symbols),
                                                 "<|startoftext|>", "<|endoftext|>"])}
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16).save_pretrained(root / "tokenizer")
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=CONTEXT_DIM, intermediate_size=64,
                            num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=16,
                            bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"])
    CLIPTextModel(config).save_pretrained(root / "text_encoder")
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "DDIMScheduler", **scheduler_config()}))
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return root


def test_model_folder_loads_through_from_pretrained(tmp_path):
    model = tiny_diffusers_folder(tmp_path / "sd")
    out = tmp_path / "demo"
    assert main(["--model", str(model), *FAST, "--out", str(out)]) == 0
    summary = check_outputs(out, str(model.resolve()))
    assert summary["note"] is None
