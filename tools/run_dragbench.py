"""Run a drag method over DragBench on ComfyUI servers, through their HTTP API, and summarise the metrics.

    python -m tools.run_dragbench --bench ComfyUI/input/DragBench --checkpoint sd15.safetensors \\
        --method gooddrag --out dragbench-gooddrag-sd15 [--server http://127.0.0.1:8188 --server ...]
    python -m tools.run_dragbench --bench ComfyUI/input/DragBench --checkpoint sd21.safetensors \\
        --method instant_drag --inpaint-checkpoint sd-v1-5-inpainting.safetensors --out dragbench-instant-drag
    python -m tools.run_dragbench --bench ComfyUI/input/DragBench --checkpoint sd21.safetensors \\
        --method instant_drag --inpaint-model flux_fill --inpaint-checkpoint flux1-fill-dev.safetensors \\
        [--inpaint-text-encoders clip_l.safetensors t5xxl_fp16.safetensors --inpaint-vae ae.safetensors] --out ...

Each sample is one prompt: the method's graph (tools/dragbench_graphs.py: for the drag methods LoRA Identity Tune ->
DDIM Inversion -> Drag (or GoodDrag) Latent Optimize -> Latent MasaCtrl Denoise -> VAE Decode; for the instant drag
Drag Region Warp -> inpainting -> paste), Save Image, then DragBench Mean Distance and Image Fidelity on the result.
The samples are shared among the servers (one prompt at a time on each, e.g. one server per GPU); every finished
sample is appended to ``OUT/results.jsonl`` at once, so an interrupted run resumes where it stopped and never
recomputes a finished sample (failed ones are tried again).  ``OUT/summary.md`` and
``OUT/summary.json`` hold the table: Mean Distance over all point pairs (the protocol's mean), 1 - LPIPS, seconds
and peak memory per sample, overall and per category.

The benchmark folder must be inside each server's input folder (``--bench-on-server`` says where, relative to it);
``--bench`` is the same folder as this machine sees it, to list the samples.  Only the standard library is used
here (and the pack's settings module, which needs nothing else), so the runner works from any machine that reaches
the servers.

The instant drag on DragBench differs from Inpaint4Drag's own evaluation: DragBench-D's samples carry an editable
area, not a region to move, so the region is the sample's ``meta_data_i4p.pkl`` mask where it has one (the region
annotations Inpaint4Drag evaluates with) and its editable mask otherwise; a sample whose handles are not all on that
region is refused by Drag Region Warp with its sentence and listed as failed.  Inpaint4Drag evaluates SD1.5
inpainting only (512x512, LCM LoRA, 4 steps), which ``--inpaint-model sd15`` follows; ``sdxl`` follows its UI's SDXL
(LCM LoRA, 8 steps, strength 0.99) at SDXL's 1024x1024 where the UI inpaints at its 512-px canvas; ``flux_fill``
follows ComfyUI's Flux Fill example (FluxGuidance 30, 20 steps) at 1024x1024: the re-measurement that reports Flux
Fill's figures is not followed (its settings were not available to us).  Each family's settings: ``--set inpaint.*``.
"""
import argparse
import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from core.settings import INSTANT_DRAG
from tools.dragbench_graphs import (
    INPAINT_MODELS,
    METHODS,
    MODEL_INPUTS,
    build_prompt,
    inpaint_files,
    method_inputs,
    needed_models,
    needed_nodes,
    stages,
)

IMAGE_FILE, META_FILE = "original_image.png", "meta_data.pkl"
RESULTS, SUMMARY_JSON, SUMMARY_MD, RUN = "results.jsonl", "summary.json", "summary.md", "run.json"
GIB = 2 ** 30

class RunError(Exception):
    """A problem the user has to fix before (or instead of) running; the message says what."""


@dataclass(frozen=True)
class Sample:
    name: str  # "category/folder" (or "folder" for a flat benchmark folder)

    @property
    def category(self) -> str:
        return self.name.split("/")[0] if "/" in self.name else ""


def list_samples(bench: Path) -> list[Sample]:
    """Every folder under ``bench`` (one or two levels deep) holding a DragBench sample, in name order."""
    if not bench.is_dir():
        raise RunError(f"--bench {bench} is not a folder")
    found = []
    for image in sorted(bench.glob(f"*/{IMAGE_FILE}")) + sorted(bench.glob(f"*/*/{IMAGE_FILE}")):
        if (image.parent / META_FILE).is_file():
            found.append(Sample(image.parent.relative_to(bench).as_posix()))
    if not found:
        raise RunError(f"--bench {bench} holds no DragBench sample (folders with {IMAGE_FILE} and {META_FILE}, as "
                       "DragBench/<category>/<sample>/)")
    return sorted(found, key=lambda sample: sample.name)


def parse_overrides(pairs: list[str], method: str) -> dict:
    """``stage.input=value`` (value as JSON, else a string) into ``{stage: {input: value}}``."""
    overrides, known = {}, stages(method)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        stage, dot, name = key.strip().partition(".")
        if not sep or not dot or stage not in known or not name:
            raise RunError(f"--set {pair!r}: write STAGE.INPUT=VALUE with STAGE one of {', '.join(known)} for "
                           f"--method {method}, e.g. {known[0]}.steps=40")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides.setdefault(stage, {})[name] = value
    return overrides


def parse_loaders(values: list[str]) -> dict:
    """``--loader CLASS`` (the checkpoint loader) or ``--loader STOCK=CLASS`` (any stock loader) into
    ``{stock class: class}``."""
    loaders = {}
    for value in values:
        stock, sep, replacement = value.rpartition("=")
        loaders[stock if sep else "CheckpointLoaderSimple"] = replacement
    return loaders


def _instant_configuration(args) -> dict:
    """The instant drag's inpainting model, its family and files, from the command line ({} for the drag methods)."""
    instant = args.method == INSTANT_DRAG.name
    if instant != bool(args.inpaint_checkpoint):
        raise RunError(f"--inpaint-checkpoint names the inpainting model of --method {INSTANT_DRAG.name} (and only "
                       "of it)")
    separate = args.inpaint_text_encoders or args.inpaint_vae
    if not instant:
        if args.inpaint_model or separate:
            raise RunError(f"--inpaint-model, --inpaint-text-encoders and --inpaint-vae are options of --method "
                           f"{INSTANT_DRAG.name}")
        return {}
    family = args.inpaint_model or "sd15"
    files = inpaint_files(family, args.inpaint_checkpoint, args.inpaint_text_encoders, args.inpaint_vae)
    if separate and "vae" not in files:
        raise RunError(f"--inpaint-model {family} loads its text encoders and VAE from its checkpoint: "
                       "--inpaint-text-encoders and --inpaint-vae are for Flux Fill's separate files")
    return {"inpaint_model": family, "inpaint_files": files}


def configuration(args, overrides: dict) -> dict:
    """Everything that decides a sample's result; a resumed run must have the same."""
    instant = _instant_configuration(args)
    settings = method_inputs(args.method, instant.get("inpaint_model", "sd15"))
    for stage, values in overrides.items():
        settings[stage].update(values)
    return {"method": args.method, "checkpoint": args.checkpoint,
            "metric_checkpoint": args.metric_checkpoint or args.checkpoint, "loaders": parse_loaders(args.loader),
            "image_fidelity": not args.no_fidelity, "settings": settings, **instant}


class ComfyServer:
    """The parts of ComfyUI's HTTP API the runner uses."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/") + "/"
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def _call(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str):
        return self._call(path)

    def post(self, path: str, body: dict):
        return self._call(path, body)

    def queue_prompt(self, prompt: dict) -> str:
        try:
            return self.post("prompt", {"prompt": prompt, "client_id": self.client_id})["prompt_id"]
        except urllib.error.HTTPError as error:
            raise RunError(_refusal(error)) from None

    def finished(self, prompt_id: str):
        """The prompt's history entry once it finished (success, error or interrupt), else None."""
        entry = (self.get(f"history/{prompt_id}") or {}).get(prompt_id)
        status = (entry or {}).get("status") or {}
        return entry if status.get("completed") or status.get("status_str") == "error" else None

    def peak_memory(self, reset: bool = False):
        """The pack's peak-memory route (None when the server has no such route or it failed: the figure is left
        out, the sample is not)."""
        try:
            return self.post("drag_edit/peak_memory/reset", {}) if reset else self.get("drag_edit/peak_memory")
        except urllib.error.HTTPError:
            return None

    def cancel(self, prompt_id: str) -> None:
        """Take the prompt off the queue, and stop it if it is running."""
        for path, body in (("queue", {"delete": [prompt_id]}), ("interrupt", {"prompt_id": prompt_id})):
            try:
                self.post(path, body)
            except OSError:
                pass


def _refusal(error: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(error.read())
    except (ValueError, OSError):
        return f"the server refused the prompt (HTTP {error.code})"
    parts = [answer.get("error", {}).get("message", "")]
    for node, found in (answer.get("node_errors") or {}).items():
        for item in found.get("errors", []):
            parts.append(f"{found.get('class_type', node)}: {item.get('message', '')} {item.get('details', '')}")
    return "the server refused the prompt: " + "; ".join(part.strip() for part in parts if part.strip())


def check_server(server: ComfyServer, config: dict) -> None:
    """Before any sample: the server answers, has the nodes of the method's graph and knows its models."""
    try:
        info = server.get("object_info")
    except OSError as error:
        raise RunError(f"cannot reach the ComfyUI server at {server.url}: {error}") from None
    missing = sorted(needed_nodes(config) - set(info))
    if missing:
        raise RunError(f"the server at {server.url} has no {', '.join(missing)}: install this pack there (and "
                       "restart it)")
    for loader, inputs in needed_models(config).items():
        for input_name, names in inputs.items():
            choices = info[loader]["input"]["required"].get(input_name, [None])[0]
            for name in sorted(names - set(choices)) if isinstance(choices, list) else ():
                raise RunError(f"the server at {server.url} has no {MODEL_INPUTS[input_name]} {name!r} (it lists "
                               f"{', '.join(choices[:8]) or 'none'}{', ...' if len(choices) > 8 else ''})")


def _seconds(entry: dict):
    stamps = {event: data.get("timestamp") for event, data in entry.get("status", {}).get("messages", [])}
    if stamps.get("execution_start") is not None and stamps.get("execution_success") is not None:
        return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0
    return None


def _error(entry: dict) -> str:
    for event, data in entry.get("status", {}).get("messages", []):
        if event == "execution_error":
            return f"{data.get('node_type', '?')}: {data.get('exception_message', '').strip()}"
        if event == "execution_interrupted":
            return "interrupted"
    return "the prompt did not finish"


def run_sample(server: ComfyServer, sample: Sample, config: dict, bench_on_server: str, run_name: str,
               poll: float, timeout: float, stop: threading.Event) -> dict:
    """One sample on one server: the row of results.jsonl."""
    row = {"sample": sample.name, "category": sample.category, "server": server.url}
    prompt = build_prompt(f"{bench_on_server.rstrip('/')}/{sample.name}", config,
                          f"dragbench/{run_name}/{sample.name.replace('/', '_')}")
    server.peak_memory(reset=True)
    started = time.monotonic()
    prompt_id = server.queue_prompt(prompt)
    while (entry := server.finished(prompt_id)) is None:
        if stop.is_set() or time.monotonic() - started > timeout:
            server.cancel(prompt_id)
            raise RunError("stopped" if stop.is_set() else f"{sample.name} ran over --timeout {timeout:g} s")
        time.sleep(poll)
    wall = time.monotonic() - started
    if entry["status"].get("status_str") != "success":
        return {**row, "error": _error(entry)}
    outputs = entry.get("outputs", {})
    expected = ["mean_distance", *(["image_fidelity"] if config["image_fidelity"] else [])]
    lacking = [node for node in expected if node not in outputs]
    if lacking:
        raise RunError(f"the prompt finished without the values of {', '.join(lacking)}")
    distances = json.loads(outputs["mean_distance"]["distances"][0])
    row.update(pairs=len(distances), distances=distances, mean_distance=outputs["mean_distance"]["mean_distance"][0])
    if config["image_fidelity"]:
        row["image_fidelity"] = outputs["image_fidelity"]["image_fidelity"][0]
    seconds = _seconds(entry)
    row["seconds"] = round(wall if seconds is None else seconds, 3)
    peak = server.peak_memory()
    if peak is not None and peak.get("peak_bytes") is not None:
        row.update(peak_bytes=peak["peak_bytes"], device=peak["device"], peak_measures=peak["measures"])
    saved = outputs.get("save", {}).get("images", [])
    if saved:
        row["image"] = "/".join(part for part in (saved[0].get("subfolder"), saved[0].get("filename")) if part)
    return row


def load_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise RunError(f"{path} line {number} is not JSON: fix or remove that line") from None
    return rows


def latest_rows(rows: list[dict]) -> dict[str, dict]:
    """The last row of each sample (a retried sample's new row replaces its failure)."""
    return {row["sample"]: row for row in rows}


def _mean(values):
    values = [value for value in values if value is not None]
    return sum(values) / len(values) if values else None


def _figures(rows: list[dict]) -> dict:
    distances = [d for row in rows for d in row["distances"]]
    peaks = [row["peak_bytes"] for row in rows if row.get("peak_bytes") is not None]
    return {"samples": len(rows), "pairs": len(distances),
            "mean_distance": _mean(distances),
            "image_fidelity": _mean([row.get("image_fidelity") for row in rows]),
            "seconds": _mean([row.get("seconds") for row in rows]),
            "peak_gib_mean": _mean(peaks) / GIB if peaks else None,
            "peak_gib_max": max(peaks) / GIB if peaks else None}


def _edited_with(config: dict) -> str:
    """The model the edits were made with, as the summary names it."""
    if "inpaint_files" not in config:
        return config["checkpoint"]
    files = config["inpaint_files"]
    return f"{config['inpaint_model']}: {files.get('checkpoint') or files['diffusion_model']}"


def summarize(rows: list[dict], config: dict) -> dict:
    """Overall and per-category figures of the finished samples (Mean Distance over all their pairs)."""
    latest = latest_rows(rows)
    done = [row for row in latest.values() if "error" not in row]
    categories = sorted({row["category"] for row in done})
    return {"method": config["method"], "checkpoint": _edited_with(config),
            "metric_checkpoint": config["metric_checkpoint"], "all": _figures(done),
            "categories": {name: _figures([row for row in done if row["category"] == name]) for name in categories},
            "failed": sorted(name for name, row in latest.items() if "error" in row),
            "devices": sorted({row["device"] for row in done if row.get("device")})}


def _cell(value, digits: int) -> str:
    """A figure as the table shows it: ``-`` where there is none (0 is a figure)."""
    return "-" if value is None else f"{value:.{digits}f}"


def summary_markdown(summary: dict) -> str:
    lines = [f"# DragBench: {summary['method']} on {summary['checkpoint']}", "",
             f"Mean Distance with {summary['metric_checkpoint']} (pixels, lower is better; over all point pairs), "
             "1 - LPIPS (AlexNet; higher keeps more of the original), seconds and peak memory per sample"
             + (f" on {', '.join(summary['devices'])}" if summary["devices"] else "") + ".", "",
             "| category | samples | pairs | MD | 1 - LPIPS | s / sample | peak GiB (mean) | peak GiB (max) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, figures in [*summary["categories"].items(), ("**all**", summary["all"])]:
        lines.append(f"| {name or '-'} | {figures['samples']} | {figures['pairs']} | "
                     f"{_cell(figures['mean_distance'], 2)} | {_cell(figures['image_fidelity'], 3)} | "
                     f"{_cell(figures['seconds'], 1)} | {_cell(figures['peak_gib_mean'], 2)} | "
                     f"{_cell(figures['peak_gib_max'], 2)} |")
    if summary["failed"]:
        lines += ["", f"Failed (tried again on the next run): {', '.join(summary['failed'])}"]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, rows: list[dict], config: dict) -> dict:
    summary = summarize(rows, config)
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=1) + "\n")
    (out / SUMMARY_MD).write_text(summary_markdown(summary))
    return summary


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _progress_line(done: int, total: int, row: dict, eta) -> str:
    if "error" in row:
        figures = f"FAILED: {row['error'][:200]}"
    else:
        figures = f"MD {row['mean_distance']:.2f} px"
        if row.get("image_fidelity") is not None:
            figures += f"  1-LPIPS {row['image_fidelity']:.3f}"
        figures += f"  {row['seconds']:.1f} s"
        if row.get("peak_bytes") is not None:
            figures += f"  {row['peak_bytes'] / GIB:.2f} GiB"
    tail = f"  (ETA {_duration(eta)})" if eta > 0 else ""
    return f"[{done:>{len(str(total))}}/{total}] {row['sample']}  {figures}  @{row['server']}{tail}"


def run(args) -> int:
    out = Path(args.out)
    bench = Path(args.bench)
    samples = list_samples(bench)
    if args.limit:
        samples = samples[:args.limit]
    config = configuration(args, parse_overrides(args.set or [], args.method))
    recorded = out / RUN
    if recorded.is_file() and json.loads(recorded.read_text()) != config:
        raise RunError(f"{out} holds a run with other settings ({recorded}); give a new --out, or the same "
                       "--method, --checkpoint, --metric-checkpoint, --inpaint-*, --loader, --no-fidelity and "
                       "--set")
    servers = [ComfyServer(url) for url in args.server]
    for server in servers:
        check_server(server, config)
    out.mkdir(parents=True, exist_ok=True)
    recorded.write_text(json.dumps(config, indent=1) + "\n")
    rows = load_rows(out / RESULTS)
    finished = {name for name, row in latest_rows(rows).items() if "error" not in row}
    pending = [sample for sample in samples if sample.name not in finished]
    total = len(samples)
    print(f"{total} samples, {total - len(pending)} already done in {out / RESULTS}, {len(pending)} to run on "
          f"{len(servers)} server(s)", flush=True)

    work: queue.Queue = queue.Queue()
    for sample in pending:
        work.put(sample)
    results: queue.Queue = queue.Queue()
    stop = threading.Event()
    bench_on_server = args.bench_on_server or bench.name

    def worker(server: ComfyServer):
        try:
            while not stop.is_set():
                try:
                    sample = work.get_nowait()
                except queue.Empty:
                    break
                try:
                    results.put(run_sample(server, sample, config, bench_on_server, out.name, args.poll,
                                           args.timeout, stop))
                except OSError as error:  # the server went away: leave its sample to the others
                    work.put(sample)
                    print(f"{server.url} stopped answering ({error}); its samples go to the other servers",
                          flush=True)
                    break
                except Exception as error:  # recorded, and tried again on the next run
                    if stop.is_set():
                        break
                    message = str(error) if isinstance(error, RunError) else f"{type(error).__name__}: {error}"
                    results.put({"sample": sample.name, "category": sample.category, "server": server.url,
                                 "error": message})
        finally:
            results.put(None)  # this worker is done

    threads = [threading.Thread(target=worker, args=(server,), daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    started, running, done_now = time.monotonic(), len(threads), 0
    with open(out / RESULTS, "a") as log:
        try:
            while running:
                row = results.get()
                if row is None:
                    running -= 1
                    continue
                log.write(json.dumps(row) + "\n")
                log.flush()
                rows.append(row)
                done_now += 1
                eta = (time.monotonic() - started) / done_now * (len(pending) - done_now)  # all servers together
                print(_progress_line(total - len(pending) + done_now, total, row, eta), flush=True)
        except KeyboardInterrupt:
            stop.set()
            print("stopping: the running prompts are cancelled; run the same command again to resume", flush=True)
            for thread in threads:
                thread.join(timeout=30)
            while not results.empty():  # samples that finished while stopping are kept
                row = results.get()
                if row is not None:
                    log.write(json.dumps(row) + "\n")
                    rows.append(row)
    selected = {sample.name for sample in samples}  # a run with --limit sums up its own samples only
    summary = write_summary(out, [row for row in rows if row["sample"] in selected], config)
    figures = summary["all"]
    print(f"{figures['samples']} samples, {figures['pairs']} pairs: MD {_cell(figures['mean_distance'], 2)}, "
          f"1-LPIPS {_cell(figures['image_fidelity'], 3)}; {len(summary['failed'])} failed -> "
          f"{out / SUMMARY_MD}", flush=True)
    return 1 if stop.is_set() or figures["samples"] < len(selected) else 0


STAGE_LIST = "; ".join(f"{method}: {', '.join(stages(method))}" for method in METHODS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--bench", required=True, help="the DragBench folder (<category>/<sample>/...) as seen here")
    parser.add_argument("--bench-on-server", help="the same folder relative to the servers' input folder "
                                                  "(default: its name, i.e. directly in input/)")
    parser.add_argument("--out", required=True, help="results folder; run again with the same one to resume")
    parser.add_argument("--method", choices=sorted(METHODS), default="dragdiffusion")
    parser.add_argument("--checkpoint", required=True, help="the checkpoint the drag runs on, as the server lists it "
                                                            "(--method instant_drag: Mean Distance's, see below)")
    parser.add_argument("--inpaint-model", choices=sorted(INPAINT_MODELS),
                        help="--method instant_drag: the inpainting model's family, which decides its loaders and "
                             "sampling (default sd15)")
    parser.add_argument("--inpaint-checkpoint", help="--method instant_drag: the inpainting checkpoint (e.g. SD1.5 "
                                                     "inpainting; its LCM LoRA: inpaint.lora), or Flux Fill's "
                                                     "diffusion model (in models/diffusion_models)")
    parser.add_argument("--inpaint-text-encoders", nargs=2, metavar=("CLIP_L", "T5XXL"),
                        help="--inpaint-model flux_fill: its text encoders (default clip_l.safetensors "
                             "t5xxl_fp16.safetensors)")
    parser.add_argument("--inpaint-vae", help="--inpaint-model flux_fill: its VAE (default ae.safetensors)")
    parser.add_argument("--metric-checkpoint", help="the checkpoint of Mean Distance's DIFT features (the protocol: "
                                                    "SD2.1); default: --checkpoint")
    parser.add_argument("--loader", action="append", default=[], metavar="[STOCK=]CLASS",
                        help="node class to load with instead of a stock loader: CLASS replaces the checkpoint loader "
                             "(ckpt_name -> MODEL, CLIP, VAE), STOCK=CLASS any (UNETLoader, DualCLIPLoader, VAELoader: "
                             "Flux Fill's); repeat for several")
    parser.add_argument("--server", action="append", help="a ComfyUI server URL; repeat to share the samples "
                                                          "(default http://127.0.0.1:8188)")
    parser.add_argument("--set", action="append", metavar="STAGE.INPUT=VALUE",
                        help=f"override a node input, STAGE one of the method's ({STAGE_LIST}; e.g. drag.steps=40)")
    parser.add_argument("--no-fidelity", action="store_true", help="skip Image Fidelity (needs lpips on the server)")
    parser.add_argument("--limit", type=int, help="only the first N samples (in name order)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between status polls")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one sample may take")
    args = parser.parse_args(argv)
    args.server = args.server or ["http://127.0.0.1:8188"]
    try:
        return run(args)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
