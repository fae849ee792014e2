"""The DragBench runner against stand-in ComfyUI servers (the HTTP API it uses, answered from a table).

The host test ``tests/host/test_run_dragbench.py`` drives a real ComfyUI; here the runner's own behaviour is pinned:
resume without recomputing, the summary as the mean of the rows, failures retried, servers sharing the work.
"""
import json
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from tools import run_dragbench as runner

NODES = ["CheckpointLoaderSimple", "DragEdit_DragBenchLoadSample", "DragEdit_MeanDistance", "DragEdit_ImageFidelity",
         "DragEdit_LoRAIdentityTune", "DragEdit_DDIMInversion", "DragEdit_DragLatentOptimize",
         "DragEdit_GoodDragLatentOptimize", "DragEdit_LatentMasaCtrlDenoise", "DragEdit_RegionWarp",
         "CLIPTextEncode", "VAEEncode", "VAEDecode", "SaveImage", "ImageScale", "InpaintModelConditioning",
         "KSampler", "ImageCompositeMasked", "LoraLoaderModelOnly", "UNETLoader", "DualCLIPLoader", "VAELoader",
         "FluxGuidance"]
SAMPLES = ["animals/a1", "animals/a2", "art_work/w1", "human_head/h1", "human_head/h2"]


def figures(sample: str) -> dict:
    """What the stand-in server answers for a sample: 1 to 3 pairs, distinct numbers."""
    k = SAMPLES.index(sample)
    distances = [round(3.0 * k + 1.5 * j, 3) for j in range(1 + k % 3)]
    return {"distances": distances, "image_fidelity": 0.8 + 0.02 * k, "seconds": 10.0 + k,
            "peak_bytes": (2 + k) * 2 ** 30}


class FakeComfy:
    """A stand-in ComfyUI: records prompts, finishes each at once, can fail chosen samples."""

    def __init__(self, bench_on_server="DragBench", fail=(), refuse=(), no_metrics=(), peak_route=True):
        self.prompts, self.resets, self.fail, self.refuse = [], 0, set(fail), set(refuse)
        self.no_metrics, self.peak_route = set(no_metrics), peak_route
        self.bench_on_server = bench_on_server
        self.history = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/object_info":
                    info = {name: {"input": {"required": {}}} for name in NODES}
                    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"] = [[
                        "sd15.safetensors", "sd21.safetensors", "inpainting.safetensors"]]
                    info["LoraLoaderModelOnly"]["input"]["required"]["lora_name"] = [[
                        "lcm-lora-sdv1-5.safetensors", "lcm_lora_sdxl.safetensors"]]
                    info["UNETLoader"]["input"]["required"]["unet_name"] = [["flux1-fill-dev.safetensors"]]
                    for name in ("clip_name1", "clip_name2"):
                        info["DualCLIPLoader"]["input"]["required"][name] = [["clip_l.safetensors",
                                                                              "t5xxl_fp16.safetensors"]]
                    info["VAELoader"]["input"]["required"]["vae_name"] = [["ae.safetensors"]]
                    return self._answer(200, info)
                if self.path.startswith("/history/"):
                    prompt_id = self.path.rsplit("/", 1)[1]
                    return self._answer(200, {prompt_id: fake.history[prompt_id]} if prompt_id in fake.history
                                        else {})
                if self.path == "/drag_edit/peak_memory" and fake.peak_route:
                    return self._answer(200, {"device": "cpu", "peak_bytes": fake.peak, "measures": "stand-in"})
                return self._answer(404, {})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/prompt":
                    return self._answer(*fake.queue(body["prompt"]))
                if self.path == "/drag_edit/peak_memory/reset":
                    if not fake.peak_route:  # an older pack, or a server without it
                        return self._answer(404, {})
                    fake.resets += 1
                    return self._answer(200, {"device": "cpu", "peak_bytes": 0, "measures": "stand-in"})
                return self._answer(200, {})

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/"
        self.peak = 0
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def queue(self, prompt):
        sample = prompt["sample"]["inputs"]["sample"].removeprefix(self.bench_on_server + "/")
        self.prompts.append((sample, prompt))
        if sample in self.refuse:
            return 400, {"error": {"message": "Prompt outputs failed validation"},
                         "node_errors": {"drag": {"class_type": "DragEdit_DragLatentOptimize",
                                                  "errors": [{"message": "steps too large", "details": ""}]}}}
        prompt_id = f"p{len(self.prompts)}-{id(self)}"
        got = figures(sample)
        self.peak = got["peak_bytes"]
        start = 1_000_000
        if sample in self.fail:
            messages = [["execution_start", {"timestamp": start}],
                        ["execution_error", {"timestamp": start + 5, "node_type": "DragEdit_DragLatentOptimize",
                                             "exception_message": "out of memory"}]]
            self.history[prompt_id] = {"status": {"status_str": "error", "completed": False, "messages": messages},
                                       "outputs": {}}
        else:
            messages = [["execution_start", {"timestamp": start}],
                        ["execution_success", {"timestamp": start + int(got["seconds"] * 1000)}]]
            outputs = {"mean_distance": {"mean_distance": [sum(got["distances"]) / len(got["distances"])],
                                         "distances": [json.dumps(got["distances"])]},
                       "image_fidelity": {"image_fidelity": [got["image_fidelity"]]},
                       "save": {"images": [{"filename": "x_00001_.png", "subfolder": "dragbench/run",
                                            "type": "output"}]}}
            if sample in self.no_metrics:  # e.g. a graph edited on the server side
                outputs = {"save": outputs["save"]}
            self.history[prompt_id] = {"status": {"status_str": "success", "completed": True, "messages": messages},
                                       "outputs": outputs}
        return 200, {"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": {}}

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def bench(tmp_path):
    root = tmp_path / "DragBench"
    for name in SAMPLES:
        folder = root / name
        folder.mkdir(parents=True)
        Image.new("RGB", (16, 8)).save(folder / runner.IMAGE_FILE)
        with open(folder / runner.META_FILE, "wb") as f:
            pickle.dump({"prompt": "a photo", "points": [[1, 1], [5, 5]], "mask": np.zeros((8, 16), np.uint8)}, f)
    (root / "animals" / "not_a_sample").mkdir()  # no files: not listed
    return root


@pytest.fixture
def servers():
    started = []

    def start(**kw):
        started.append(FakeComfy(**kw))
        return started[-1]

    yield start
    for server in started:
        server.close()


def run(bench, out, *servers, extra=()):
    argv = ["--bench", str(bench), "--out", str(out), "--checkpoint", "sd15.safetensors", "--poll", "0.01"]
    for server in servers:
        argv += ["--server", server.url]
    return runner.main([*argv, *extra])


def test_resume_runs_only_the_unfinished_samples_and_the_summary_is_the_mean_of_the_rows(bench, tmp_path, servers):
    out = tmp_path / "out"
    first = servers()
    assert run(bench, out, first, extra=["--limit", "2"]) == 0
    assert [sample for sample, _ in first.prompts] == SAMPLES[:2]
    second = servers()
    assert run(bench, out, second) == 0
    assert [sample for sample, _ in second.prompts] == SAMPLES[2:]  # nothing finished is queued again
    third = servers()
    assert run(bench, out, third) == 0 and third.prompts == []

    rows = [json.loads(line) for line in (out / runner.RESULTS).read_text().splitlines()]
    assert [row["sample"] for row in rows] == SAMPLES
    for row in rows:
        got = figures(row["sample"])
        assert row["distances"] == got["distances"] and row["image_fidelity"] == got["image_fidelity"]
        assert row["seconds"] == got["seconds"] and row["peak_bytes"] == got["peak_bytes"]
    summary = json.loads((out / runner.SUMMARY_JSON).read_text())
    every_pair = [d for row in rows for d in row["distances"]]
    assert summary["all"]["pairs"] == len(every_pair) == 9
    assert summary["all"]["mean_distance"] == pytest.approx(sum(every_pair) / len(every_pair))
    assert summary["all"]["image_fidelity"] == pytest.approx(sum(r["image_fidelity"] for r in rows) / len(rows))
    assert summary["all"]["seconds"] == pytest.approx(sum(r["seconds"] for r in rows) / len(rows))
    assert summary["all"]["peak_gib_max"] == pytest.approx(max(r["peak_bytes"] for r in rows) / 2 ** 30)
    heads = [row for row in rows if row["category"] == "human_head"]
    head_pairs = [d for row in heads for d in row["distances"]]
    assert summary["categories"]["human_head"]["mean_distance"] == pytest.approx(sum(head_pairs) / len(head_pairs))
    table = (out / runner.SUMMARY_MD).read_text()
    assert f"| **all** | 5 | 9 | {summary['all']['mean_distance']:.2f} |" in table


def test_a_finished_run_resumed_with_a_smaller_limit_sums_up_those_samples_and_succeeds(bench, tmp_path, servers,
                                                                                       capsys):
    """Issue 17, defect 3: the exit code and the summary cover the samples this run selected."""
    out = tmp_path / "out"
    assert run(bench, out, servers()) == 0
    again = servers()
    assert run(bench, out, again, extra=["--limit", "2"]) == 0 and again.prompts == []
    summary = json.loads((out / runner.SUMMARY_JSON).read_text())
    assert summary["all"]["samples"] == 2 and summary["all"]["pairs"] == 1 + 2
    assert "2 samples, 3 pairs" in capsys.readouterr().out


def test_a_perfect_mean_distance_is_reported_as_zero(bench, tmp_path, servers, capsys, monkeypatch):
    """Issue 17, defect 3: MD 0 (every handle's content on its target) is a figure, not a missing one."""
    monkeypatch.setitem(globals(), "figures", lambda sample: {
        "distances": [0.0], "image_fidelity": 1.0, "seconds": 1.0, "peak_bytes": 2 ** 30})
    out = tmp_path / "out"
    assert run(bench, out, servers(), extra=["--limit", "1"]) == 0
    assert "MD 0.00, 1-LPIPS 1.000" in capsys.readouterr().out
    assert "| **all** | 1 | 1 | 0.00 | 1.000 |" in (out / runner.SUMMARY_MD).read_text()


def test_the_prompt_is_the_method_graph_with_the_settings_and_overrides(bench, tmp_path, servers):
    server = servers()
    assert run(bench, tmp_path / "out", server, extra=["--limit", "1", "--method", "gooddrag", "--metric-checkpoint",
                                                        "sd21.safetensors", "--set", "drag.drag_end_step=3"]) == 0
    (_, prompt), = server.prompts
    assert prompt["drag"]["class_type"] == "DragEdit_GoodDragLatentOptimize"
    assert prompt["drag"]["inputs"]["drag_end_step"] == 3 and prompt["drag"]["inputs"]["mask_weight"] == 0.1
    drag = prompt["drag"]["inputs"]
    assert drag["drag_points"] == ["sample", 2] and drag["mask"] == ["sample", 3]
    assert prompt["inversion"]["inputs"]["strength"] == 0.75 and prompt["lora"]["inputs"]["steps"] == 70
    # DIFT features come from the metric checkpoint, with its own text encoder
    assert prompt["mean_distance"]["inputs"]["model"] == ["metric_ckpt", 0]
    assert prompt["metric_ckpt"]["inputs"]["ckpt_name"] == "sd21.safetensors"
    assert prompt["metric_text"]["inputs"]["clip"] == ["metric_ckpt", 1]
    assert server.resets == 1  # the peak is reset before each sample


INSTANT = ["--limit", "1", "--method", "instant_drag"]


def test_the_instant_method_warps_the_samples_region_and_inpaints_it(bench, tmp_path, servers):
    """As Inpaint4Drag's evaluation: the region (the sample's region annotation, else its mask) warped, an LCM LoRA on
    the inpainting checkpoint, 4 steps, no guidance, at 512x512, pasted back inside the region."""
    server = servers()
    assert run(bench, tmp_path / "out", server, extra=[*INSTANT, "--inpaint-checkpoint", "inpainting.safetensors",
                                                        "--set", "warp.kernel=7"]) == 0
    (_, prompt), = server.prompts
    warp = prompt["warp"]["inputs"]
    assert warp["mask"] == ["sample", 4] and warp["drag_points"] == ["sample", 2] and warp["kernel"] == 7
    assert prompt["ckpt"]["inputs"]["ckpt_name"] == "inpainting.safetensors"
    assert prompt["lcm"]["inputs"]["lora_name"] == "lcm-lora-sdv1-5.safetensors"
    sampler = prompt["inpaint"]["inputs"]
    assert (sampler["steps"], sampler["cfg"], sampler["sampler_name"], sampler["model"]) == (4, 1.0, "lcm", ["lcm", 0])
    assert sampler["denoise"] == 1.0 and prompt["condition"]["inputs"]["noise_mask"] is True
    assert prompt["scaled"]["inputs"]["width"] == prompt["scaled"]["inputs"]["height"] == 512
    assert prompt["paste"]["inputs"]["mask"] == ["warp", 3] and prompt["paste"]["inputs"]["resize_source"] is True
    assert prompt["mean_distance"]["inputs"]["edited"] == ["paste", 0]
    assert prompt["metric_ckpt"]["inputs"]["ckpt_name"] == "sd15.safetensors"  # DIFT on --checkpoint
    assert "lora" not in prompt and "drag" not in prompt and "guidance" not in prompt


def test_the_instant_method_on_sdxl_inpainting_runs_its_lcm_lora_at_1024(bench, tmp_path, servers):
    """Inpaint4Drag's UI's SDXL: its LCM LoRA, 8 steps, strength 0.99, no noise mask; at SDXL's 1024x1024."""
    server = servers()
    assert run(bench, tmp_path / "out", server, extra=[*INSTANT, "--inpaint-model", "sdxl", "--inpaint-checkpoint",
                                                        "inpainting.safetensors"]) == 0
    (_, prompt), = server.prompts
    sampler = prompt["inpaint"]["inputs"]
    assert (sampler["steps"], sampler["cfg"], sampler["sampler_name"], sampler["denoise"]) == (8, 1.0, "lcm", 0.99)
    assert prompt["lcm"]["inputs"]["lora_name"] == "lcm_lora_sdxl.safetensors"
    assert prompt["condition"]["inputs"]["noise_mask"] is False
    assert prompt["scaled"]["inputs"]["width"] == prompt["scaled"]["inputs"]["height"] == 1024
    assert prompt["paste"]["inputs"]["mask"] == ["warp", 3]


def test_the_instant_method_on_flux_fill_loads_its_separate_files_and_guides_at_30(bench, tmp_path, servers):
    """Flux Fill as ComfyUI users load it (diffusion model, CLIP-L + T5-XXL, the Flux VAE) and as ComfyUI's example
    samples it: FluxGuidance 30 on the empty prompt, 20 euler steps, cfg 1, no noise mask; Mean Distance on
    --checkpoint."""
    server = servers()
    out = tmp_path / "out"
    assert run(bench, out, server, extra=[*INSTANT, "--inpaint-model", "flux_fill", "--inpaint-checkpoint",
                                          "flux1-fill-dev.safetensors"]) == 0
    (_, prompt), = server.prompts
    assert prompt["unet"] == {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-fill-dev.safetensors",
                                                                     "weight_dtype": "default"}}
    assert prompt["text_encoders"]["inputs"] == {"clip_name1": "clip_l.safetensors",
                                                 "clip_name2": "t5xxl_fp16.safetensors", "type": "flux"}
    assert prompt["vae"]["inputs"] == {"vae_name": "ae.safetensors"}
    assert prompt["guidance"]["inputs"] == {"conditioning": ["empty", 0], "guidance": 30.0}
    condition = prompt["condition"]["inputs"]
    assert condition["positive"] == ["guidance", 0] and condition["negative"] == ["empty", 0]
    assert condition["vae"] == ["vae", 0] and condition["noise_mask"] is False
    sampler = prompt["inpaint"]["inputs"]
    assert (sampler["steps"], sampler["cfg"], sampler["sampler_name"], sampler["scheduler"], sampler["model"]) == \
        (20, 1.0, "euler", "normal", ["unet", 0])
    assert prompt["scaled"]["inputs"]["width"] == 1024 and prompt["decode"]["inputs"]["vae"] == ["vae", 0]
    assert "ckpt" not in prompt and "lcm" not in prompt
    assert prompt["metric_ckpt"]["inputs"]["ckpt_name"] == "sd15.safetensors"
    assert "flux_fill: flux1-fill-dev.safetensors" in (out / runner.SUMMARY_MD).read_text()


@pytest.mark.parametrize("extra, message", [
    (["--method", "instant_drag"], "--inpaint-checkpoint names the inpainting model"),
    (["--inpaint-checkpoint", "inpainting.safetensors"], "--inpaint-checkpoint names the inpainting model"),
    (["--method", "instant_drag", "--inpaint-checkpoint", "missing.safetensors"],
     "has no checkpoint 'missing.safetensors'"),
    (["--method", "instant_drag", "--inpaint-checkpoint", "inpainting.safetensors", "--set",
      "inpaint.lora=other.safetensors"], "has no LoRA 'other.safetensors'"),
    (["--method", "instant_drag", "--inpaint-checkpoint", "inpainting.safetensors", "--set", "drag.steps=3"],
     "STAGE one of warp, inpaint, mean_distance for --method instant_drag"),
    (["--method", "instant_drag", "--inpaint-model", "flux_fill", "--inpaint-checkpoint", "flux1-fill-dev.safetensors",
      "--inpaint-vae", "other_vae.safetensors"], "has no VAE 'other_vae.safetensors'"),
    (["--method", "instant_drag", "--inpaint-model", "flux_fill", "--inpaint-checkpoint", "flux1-fill-dev.safetensors",
      "--inpaint-text-encoders", "clip_l.safetensors", "t5xxl_fp8.safetensors"],
     "has no text encoder 't5xxl_fp8.safetensors'"),
    (["--method", "instant_drag", "--inpaint-model", "flux_fill", "--inpaint-checkpoint", "inpainting.safetensors"],
     "has no diffusion model 'inpainting.safetensors'"),
    (["--method", "instant_drag", "--inpaint-checkpoint", "inpainting.safetensors", "--inpaint-vae", "ae.safetensors"],
     "--inpaint-model sd15 loads its text encoders and VAE from its checkpoint"),
    (["--inpaint-model", "sdxl"], "are options of --method instant_drag"),
])
def test_the_instant_methods_settings_are_checked_before_any_sample(bench, tmp_path, servers, capsys, extra, message):
    server = servers()
    assert run(bench, tmp_path / "out", server, extra=extra) == 2
    assert message in capsys.readouterr().err and server.prompts == []


def test_failures_are_recorded_counted_and_retried(bench, tmp_path, servers):
    out = tmp_path / "out"
    server = servers(fail={"art_work/w1"}, refuse={"animals/a2"}, no_metrics={"human_head/h2"})
    assert run(bench, out, server) == 1  # not every sample finished
    rows = {row["sample"]: row for row in map(json.loads, (out / runner.RESULTS).read_text().splitlines())}
    assert rows["art_work/w1"]["error"] == "DragEdit_DragLatentOptimize: out of memory"
    assert "DragEdit_DragLatentOptimize: steps too large" in rows["animals/a2"]["error"]
    assert rows["human_head/h2"]["error"] == "the prompt finished without the values of mean_distance, image_fidelity"
    summary = json.loads((out / runner.SUMMARY_JSON).read_text())
    assert summary["failed"] == ["animals/a2", "art_work/w1", "human_head/h2"] and summary["all"]["samples"] == 2
    retry = servers()
    assert run(bench, out, retry) == 0
    assert sorted(sample for sample, _ in retry.prompts) == ["animals/a2", "art_work/w1", "human_head/h2"]
    summary = json.loads((out / runner.SUMMARY_JSON).read_text())
    assert summary["failed"] == [] and summary["all"]["samples"] == 5


def test_a_server_without_the_peak_memory_route_gives_rows_without_that_figure(bench, tmp_path, servers):
    out = tmp_path / "out"
    assert run(bench, out, servers(peak_route=False), extra=["--limit", "2"]) == 0
    rows = [json.loads(line) for line in (out / runner.RESULTS).read_text().splitlines()]
    assert len(rows) == 2 and all("peak_bytes" not in row and row["seconds"] > 0 for row in rows)
    summary = json.loads((out / runner.SUMMARY_JSON).read_text())
    assert summary["all"]["peak_gib_max"] is None and summary["all"]["seconds"] == pytest.approx(10.5)
    assert "| - | - |" in (out / runner.SUMMARY_MD).read_text()


def test_servers_share_the_samples(bench, tmp_path, servers):
    one, two = servers(), servers()
    assert run(bench, tmp_path / "out", one, two) == 0
    ran = [sample for sample, _ in one.prompts] + [sample for sample, _ in two.prompts]
    assert sorted(ran) == SAMPLES  # each sample once, on one of them
    rows = [json.loads(line) for line in (tmp_path / "out" / runner.RESULTS).read_text().splitlines()]
    assert {row["server"] for row in rows} <= {one.url, two.url}


def test_bad_settings_are_refused_before_any_sample(bench, tmp_path, servers, capsys):
    server = servers()
    out = tmp_path / "out"
    assert run(bench, out, server, extra=["--checkpoint", "missing.safetensors"]) == 2
    assert "has no checkpoint 'missing.safetensors'" in capsys.readouterr().err
    assert run(bench, tmp_path / "other", server, extra=["--set", "steps=3"]) == 2
    assert "STAGE.INPUT=VALUE" in capsys.readouterr().err
    assert run(bench, out, server, extra=["--limit", "1"]) == 0
    assert run(bench, out, server, extra=["--method", "gooddrag"]) == 2  # another run's results folder
    assert "holds a run with other settings" in capsys.readouterr().err
    assert run(tmp_path / "nothing", out, server) == 2
    assert len(server.prompts) == 1
