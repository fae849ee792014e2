"""DDIM sampling and inversion against diffusers' schedulers on the same tiny UNet."""
import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

from core.backends.diffusers_unet import DiffusersUNetDenoiser
from core.ddim import ddim_invert, ddim_sample
from core.schedules import ddim_sigmas, ddim_timesteps, encoded_steps
from tests.sigma_space import assert_close, to_sigma_space, to_vp
from tests.support.tiny_models import scheduler_config, text_embedding


@pytest.fixture
def cond():
    return text_embedding("a photo of a cat")


def test_leading_timesteps_match_diffusers():
    scheduler = DDIMScheduler(**scheduler_config())
    for steps in (1, 7, 50, 999):
        scheduler.set_timesteps(steps)
        assert ddim_timesteps(steps) == scheduler.timesteps.tolist()
    with pytest.raises(ValueError, match="steps must be between"):
        ddim_timesteps(1000)


def test_sigma_table_matches_alphas_cumprod(eps_unet):
    backend = DiffusersUNetDenoiser(eps_unet, scheduler_config())
    alphas = DDIMScheduler(**scheduler_config()).alphas_cumprod
    assert torch.allclose(1 / (1 + backend.sigma_table.double() ** 2), alphas.double(), rtol=1e-6)
    assert backend.sigma_table[0] == pytest.approx(0.0292, abs=1e-4)
    assert backend.sigma_table[-1] == pytest.approx(14.61, abs=1e-2)


@pytest.mark.parametrize("steps,strength", [(10, 1.0), (20, 0.5), (50, 0.8)])
def test_ddim_sampling_matches_ddim_scheduler(model_and_config, cond, steps, strength):
    unet, config = model_and_config
    backend = DiffusersUNetDenoiser(unet, config)
    scheduler = DDIMScheduler(**config)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps[steps - encoded_steps(steps, strength):]

    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    sigmas = ddim_sigmas(backend.sigma_table, steps, strength)
    ours = ddim_sample(backend.denoiser(cond), to_sigma_space(z, sigmas[0]), sigmas)

    with torch.no_grad():
        for t in timesteps:
            out = unet(z, t, encoder_hidden_states=cond.expand(2, -1, -1)).sample
            z = scheduler.step(out, t, z, eta=0.0).prev_sample
    assert_close(to_vp(ours, sigmas[-1]), z)


def test_guided_sampling_matches_the_pipelines_guidance(model_and_config, cond):
    # diffusers' pipelines guide the model output: out_uncond + g * (out_text - out_uncond), uncond rows first.
    # The denoised estimate is affine in the output with the same x, so guiding it is the same for eps and v.
    unet, config = model_and_config
    backend = DiffusersUNetDenoiser(unet, config)
    uncond, guidance, steps = text_embedding(""), 5.0, 8
    scheduler = DDIMScheduler(**config)
    scheduler.set_timesteps(steps)
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    sigmas = ddim_sigmas(backend.sigma_table, steps, 1.0)
    ours = ddim_sample(backend.denoiser(cond, uncond, guidance), to_sigma_space(z, sigmas[0]), sigmas)
    with torch.no_grad():
        for t in scheduler.timesteps:
            both = unet(torch.cat([z, z]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
            out_uncond, out_text = both.chunk(2)
            z = scheduler.step(out_uncond + guidance * (out_text - out_uncond), t, z, eta=0.0).prev_sample
    assert_close(to_vp(ours, sigmas[-1]), z)


@pytest.mark.parametrize("steps,strength", [(10, 1.0), (50, 0.8)])
def test_inversion_matches_ddim_inverse_scheduler(eps_unet, cond, steps, strength):
    config = scheduler_config("epsilon")
    backend = DiffusersUNetDenoiser(eps_unet, config)
    inverse = DDIMInverseScheduler.from_config(config)
    inverse.set_timesteps(steps)
    used = encoded_steps(steps, strength)

    clean = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    sigmas = ddim_sigmas(backend.sigma_table, steps, strength).flip(0)
    trajectory = ddim_invert(backend.denoiser(cond), to_sigma_space(clean, sigmas[0]), sigmas)

    z, expected = clean, [clean]
    with torch.no_grad():
        for t in inverse.timesteps[:used]:
            out = eps_unet(z, t, encoder_hidden_states=cond).sample
            z = inverse.step(out, t, z).prev_sample
            expected.append(z)
    assert len(trajectory) == len(expected) == used + 1
    for ours, theirs, sigma in zip(trajectory, expected, sigmas):
        assert_close(to_vp(ours, sigma), theirs)


def inversion_reference_vp(unet, config, z, steps, cond):
    """The destination-level inversion written directly in VP terms for any parameterisation.

    ``out = unet(z_t, t_next)`` is read at the level the model was told (t_next):
    eps = sqrt(a) * v + sqrt(1 - a) * z for a v-model, then
    z_next = sqrt(a_next) * x0 + sqrt(1 - a_next) * eps with x0 from the current level.
    """
    alphas = DDIMScheduler(**config).alphas_cumprod.double()
    levels = [0] + list(reversed(ddim_timesteps(steps)))
    trajectory = [z]
    z = z.double()
    with torch.no_grad():
        for current, target in zip(levels[:-1], levels[1:]):
            out = unet(z.float(), torch.tensor([target]), encoder_hidden_states=cond).sample.double()
            a_cur, a_next = alphas[current], alphas[target]
            eps = out if config["prediction_type"] == "epsilon" else a_next.sqrt() * out + (1 - a_next).sqrt() * z
            x0 = (z - (1 - a_cur).sqrt() * eps) / a_cur.sqrt()
            z = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
            trajectory.append(z.float())
    return trajectory


def test_inversion_matches_closed_form_for_eps_and_v(model_and_config, cond):
    unet, config = model_and_config
    backend = DiffusersUNetDenoiser(unet, config)
    clean = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    sigmas = ddim_sigmas(backend.sigma_table, 12).flip(0)
    ours = ddim_invert(backend.denoiser(cond), to_sigma_space(clean, sigmas[0]), sigmas)
    expected = inversion_reference_vp(unet, config, clean, 12, cond)
    for x, z, sigma in zip(ours, expected, sigmas):
        assert_close(to_vp(x, sigma), z)


def test_v_inversion_round_trips_better_than_diffusers_level_mixing(v_unet, cond):
    """diffusers' inverse scheduler converts a v output with the *source* level's alpha.

    We read it at the level the model was told, which keeps inversion consistent
    with the forward step: inverting then sampling returns closer to the start.
    """
    config = scheduler_config("v_prediction")
    backend = DiffusersUNetDenoiser(v_unet, config)
    steps = 10
    clean = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(9))
    sigmas = ddim_sigmas(backend.sigma_table, steps)
    denoise = backend.denoiser(cond)

    ours_top = ddim_invert(denoise, to_sigma_space(clean, sigmas[-1]), sigmas.flip(0))[-1]
    ours_error = (to_vp(ddim_sample(denoise, ours_top, sigmas), sigmas[-1]) - clean).abs().mean()

    inverse = DDIMInverseScheduler.from_config(config)
    inverse.set_timesteps(steps)
    z = clean
    with torch.no_grad():
        for t in inverse.timesteps:
            z = inverse.step(v_unet(z, t, encoder_hidden_states=cond).sample, t, z).prev_sample
    theirs_error = (to_vp(ddim_sample(denoise, to_sigma_space(z, sigmas[0]), sigmas), sigmas[-1]) - clean).abs().mean()
    assert ours_error < theirs_error, (float(ours_error), float(theirs_error))


def test_strength_edges(eps_unet):
    table = DiffusersUNetDenoiser(eps_unet, scheduler_config()).sigma_table
    assert ddim_sigmas(table, 50, 0.0).tolist() == [table[0].item()]
    full = ddim_sigmas(table, 50, 1.0)
    assert len(full) == 51 and full[0] == table[981]
    assert encoded_steps(100, 0.29) == 29  # int(100 * 0.29) would give 28
    with pytest.raises(ValueError, match="strength"):
        ddim_sigmas(table, 50, 1.5)
