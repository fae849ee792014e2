import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.tiny_models import scheduler_config, tiny_unet  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def eps_unet():
    return tiny_unet(seed=0)


@pytest.fixture(scope="session")
def v_unet():
    return tiny_unet(seed=1)


@pytest.fixture(params=["epsilon", "v_prediction"])
def model_and_config(request, eps_unet, v_unet):
    unet = eps_unet if request.param == "epsilon" else v_unet
    return unet, scheduler_config(request.param)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, above all on a shared, busy machine (the demo tests use it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter):
    """One line for the host tests (tests/host: the pack inside a real ComfyUI), so a log shows they ran."""
    counts = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        reports = terminalreporter.stats.get(outcome, [])
        counts[outcome] = len({r.nodeid for r in reports if r.nodeid.replace("\\", "/").startswith("tests/host/")})
    if any(counts.values()):
        ran = counts["passed"] + counts["failed"] + counts["error"]
        terminalreporter.write_line(f"host tests in ComfyUI: {ran} run ({counts['passed']} passed, {counts['failed']} "
                                    f"failed, {counts['error']} errors), {counts['skipped']} skipped")
