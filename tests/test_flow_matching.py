"""The core on rectified-flow models (SD3, Flux: ``x = (1 - sigma) * x0 + sigma * eps``), against diffusers'
``FlowMatchEulerDiscreteScheduler`` and closed forms.  No network: a fixed analytic velocity field and the exact
denoiser of Gaussian data stand in for the model; the ComfyUI host tests run the real tiny Flux and SD3 models.
Float64 throughout, so that float32 rounding stays out of the closed-form comparisons."""
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from core.ddim import ddim_invert, ddim_sample
from core.diffedit import diffedit_mask, masked_ddim_decode, noised_denoise_estimates
from core.noise_space import RECTIFIED_FLOW, VARIANCE_EXPLODING
from core.schedules import ddim_sigmas


def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear velocity field: what the network would predict (CONST models predict the velocity)."""
    sigma = sigma.reshape(-1, 1, 1, 1)
    return torch.tanh(x.roll(1, dims=-1)) * (1 + sigma) - 0.3 * x + 0.2 * sigma


def flow_denoiser(x, sigma):
    """ComfyUI's CONST ``calculate_denoised``: ``x0 = x - sigma * v``."""
    return x - sigma.reshape(-1, 1, 1, 1) * velocity(x, sigma)


def flow_table(shift: float = 3.0, timesteps: int = 1000) -> torch.Tensor:
    """SD3's noise table in ComfyUI (ModelSamplingDiscreteFlow): the shifted sigma of t = 1/T ... 1."""
    t = torch.arange(1, timesteps + 1, dtype=torch.float64) / timesteps
    return shift * t / (1 + (shift - 1) * t)


def gaussian_denoiser(mean: torch.Tensor, spread: float):
    """The exact x0 estimate of data ``x0 ~ N(mean, spread^2)`` under ``x = (1 - s) x0 + s eps``."""
    def denoise(x, sigma):
        s = sigma.reshape(-1, 1, 1, 1)
        gain = (1 - s) * spread ** 2 / ((1 - s) ** 2 * spread ** 2 + s ** 2)
        return mean + gain * (x - (1 - s) * mean)
    return denoise


def test_inversion_is_flow_match_euler_run_backwards():
    """Our inversion (velocity estimated at the destination level) equals diffusers' FlowMatchEulerDiscreteScheduler
    stepping up the same sigmas with the velocity field read at each step's destination."""
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(12)
    ascending = scheduler.sigmas.double().flip(0)  # 0, ..., sigma_max
    scheduler.sigmas, scheduler.timesteps = ascending, ascending[:-1] * 1000
    scheduler.set_begin_index(0)
    x0 = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = ddim_invert(flow_denoiser, x0, ascending, space=RECTIFIED_FLOW)
    z = x0
    for i, t in enumerate(scheduler.timesteps):  # the scheduler steps in float32: agreement to its rounding
        z = scheduler.step(velocity(z, ascending[i + 1:i + 2]), t, z).prev_sample.double()
        torch.testing.assert_close(ours[i + 1], z, rtol=1e-6, atol=1e-6)
    source_rule = x0  # the velocity read at the step's start instead ends far from it: the comparison can fail
    for i in range(len(ascending) - 1):
        source_rule = source_rule + (ascending[i + 1] - ascending[i]) * velocity(source_rule, ascending[i:i + 1])
    assert (source_rule - ours[-1]).abs().max() > 1e-2
    # ... and decoding is the scheduler run forwards: the Euler step is the same in both conventions
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(12)
    decoded, z = ddim_sample(flow_denoiser, ours[-1], scheduler.sigmas.double()), ours[-1]
    for i, t in enumerate(scheduler.timesteps):
        z = scheduler.step(velocity(z, scheduler.sigmas[i:i + 1].double()), t, z).prev_sample.double()
    torch.testing.assert_close(decoded, z, rtol=1e-6, atol=1e-6)


def test_the_variance_exploding_rescaling_would_break_it():
    """The flow network sees ``x`` unscaled; VE's ``sqrt(1 + sigma^2)`` ratio would change every step."""
    sigmas = ddim_sigmas(flow_table(), 8, 0.9, RECTIFIED_FLOW.clean_sigma(flow_table())).flip(0).double()
    x0 = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    flow = ddim_invert(flow_denoiser, x0, sigmas, space=RECTIFIED_FLOW)[-1]
    wrong = ddim_invert(flow_denoiser, x0, sigmas, space=VARIANCE_EXPLODING)[-1]
    assert (flow - wrong).abs().max() > 1e-2


@pytest.mark.parametrize("strength", [0.6, 1.0])
def test_invert_then_decode_converges_at_first_order(strength):
    """Inversion then decoding with the same (exact) denoiser: the reconstruction error halves as steps double."""
    mean = torch.linspace(-1, 1, 36, dtype=torch.float64).reshape(1, 1, 6, 6).expand(1, 4, 6, 6)
    denoise = gaussian_denoiser(mean, 0.7)
    x0 = mean + 0.7 * torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    table = flow_table()
    errors = []
    for steps in (10, 20, 40, 80):
        sigmas = ddim_sigmas(table, steps, strength, RECTIFIED_FLOW.clean_sigma(table)).double()
        assert sigmas[-1] == 0.0 and sigmas[0] < 1.0
        top = ddim_invert(denoise, x0, sigmas.flip(0), space=RECTIFIED_FLOW)[-1]
        errors.append(float((ddim_sample(denoise, top, sigmas) - x0).abs().max()))
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert errors[-1] < errors[0] / 6 and all(1.6 < r < 2.4 for r in ratios[1:]), (errors, ratios)


def test_masked_decode_keeps_the_encoded_latent_outside_the_mask():
    mean = torch.zeros(1, 4, 6, 6, dtype=torch.float64)
    x0 = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    table = flow_table()
    sigmas = ddim_sigmas(table, 10, 0.8, RECTIFIED_FLOW.clean_sigma(table)).double()
    trajectory = ddim_invert(gaussian_denoiser(mean, 1.0), x0, sigmas.flip(0), space=RECTIFIED_FLOW)
    mask = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    mask[..., :3] = 1
    edited = masked_ddim_decode(gaussian_denoiser(mean + 2.0, 1.0), trajectory, sigmas, mask)
    assert torch.equal(edited[..., 3:], x0[..., 3:])
    assert (edited[..., :3] - x0[..., :3]).abs().mean() > 0.5


def test_noising_is_the_flow_interpolation():
    seen = []
    latent = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    noise = torch.randn(2, 1, 4, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    noised_denoise_estimates(lambda x, sigma: seen.append(x) or x, latent, noise, 0.4, space=RECTIFIED_FLOW)
    for draw, x in zip(noise, seen):
        torch.testing.assert_close(x, 0.6 * latent + 0.4 * draw)


def test_diffedit_mask_on_a_flow_model_lies_in_the_region_the_texts_disagree_on():
    """Query and reference texts give the same data except in one region: the mask is that region."""
    reference_mean = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(1, 1, 8, 8).expand(1, 4, 8, 8)
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[2:5, 3:7] = True
    query_mean = reference_mean + 1.5 * region
    latent = reference_mean + 0.5 * torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(6),
                                                dtype=torch.float64)
    noise = torch.randn(6, 1, 4, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    mask = diffedit_mask(gaussian_denoiser(query_mean, 0.5), gaussian_denoiser(reference_mean, 0.5), latent, noise,
                         0.5, space=RECTIFIED_FLOW)
    assert torch.equal(mask.binary[0].bool(), region)
