"""Latent-MasaCtrl on a real (tiny, random) diffusers UNet: exactness of the reference branch, gating, and
agreement with the reference's batched formulation."""
import pytest
import torch
import torch.nn.functional as F

from core.backends.diffusers_unet import (
    DiffusersUNetDenoiser,
    default_feature_block,
    layer_parts,
    reference_attention,
    self_attention_layers,
)
from core.ddim import ddim_sample
from core.masactrl import ReferenceRecording, SelfAttentionReference, default_start_layer, masactrl_denoise
from core.schedules import ddim_sigmas
from tests.support.tiny_models import scheduler_config, text_embedding, tiny_unet

STEPS, STRENGTH = 10, 0.7


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    unet = tiny_unet(seed=3, attention_everywhere=True)
    backend = DiffusersUNetDenoiser(unet, scheduler_config())
    sigmas = ddim_sigmas(backend.sigma_table, STEPS, STRENGTH)
    generator = torch.Generator().manual_seed(7)
    x_ref = torch.randn(1, 4, 16, 16, generator=generator) * float(sigmas[0])
    x_edit = x_ref + 0.3 * torch.randn(1, 4, 16, 16, generator=generator) * float(sigmas[0])
    return unet, backend, sigmas, x_ref, x_edit


def layer_names(unet):
    return [name for name, _ in self_attention_layers(unet)]


def run(setup, layers, start_step=0, x_edit=None, cfg=1.0):
    unet, backend, sigmas, x_ref, default_edit = setup
    cond, uncond = text_embedding("a photo"), text_embedding("")
    denoise = backend.denoiser(cond, uncond, cfg)
    control = SelfAttentionReference(layers, start_step)
    with reference_attention(unet, control):
        return masactrl_denoise(denoise, x_ref, default_edit if x_edit is None else x_edit, sigmas, control)


def plain_ddim(setup, x, cfg=1.0):
    unet, backend, sigmas, *_ = setup
    return ddim_sample(backend.denoiser(text_embedding("a photo"), text_embedding(""), cfg), x, sigmas)


@pytest.mark.parametrize("cfg", [1.0, 5.0])
def test_reference_branch_is_plain_ddim_exactly(setup, cfg):
    unet = setup[0]
    reference, edited = run(setup, layer_names(unet), cfg=cfg)
    assert torch.equal(reference, plain_ddim(setup, setup[3], cfg))
    assert not torch.equal(edited, plain_ddim(setup, setup[4], cfg)), "control had no effect on the edited branch"


def test_identical_latents_give_the_reference_output(setup):
    unet, _, _, x_ref, _ = setup
    reference, edited = run(setup, layer_names(unet), x_edit=x_ref.clone())
    assert torch.equal(edited, reference)


def test_no_controlled_layer_is_plain_ddim_of_the_edit(setup):
    _, edited = run(setup, [])
    assert torch.equal(edited, plain_ddim(setup, setup[4]))


def test_layer_and_step_gating(setup):
    """Only the chosen layers, and only from start_step on, attend to the reference."""
    unet = setup[0]
    names = layer_names(unet)
    chosen, start_step = names[-2:], 4
    seen = []
    original = SelfAttentionReference.context

    def spy(self, layer, hidden):
        result = original(self, layer, hidden)
        if self.mode == "replay":
            seen.append((self.step, layer, result is not None))
        return result

    SelfAttentionReference.context = spy
    try:
        _, edited = run(setup, chosen, start_step=start_step)
    finally:
        SelfAttentionReference.context = original
    steps = len(setup[2]) - 1
    expected = {(step, layer) for step in range(start_step, steps) for layer in chosen}
    assert {(step, layer) for step, layer, replaced in seen if replaced} == expected
    assert len(seen) == steps * len(names), "every self-attention layer consults the control once per step"
    # Gating changes the result: fewer layers or later steps differ from full control.
    _, full = run(setup, names)
    assert not torch.equal(edited, full)


class BatchedMasaCtrlProcessor:
    """The reference's formulation, written independently: one batch [reference, edited]; every row's queries
    attend to the reference row's keys/values (per CFG half)."""

    def __init__(self, active):
        self.active = active  # callable() -> bool

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        is_self = encoder_hidden_states is None
        context = hidden_states if is_self else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        heads = attn.heads

        def split(t):
            return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)

        q, k, v = split(q), split(k), split(v)
        if is_self and self.active():
            groups = q.shape[0] // 2  # [ref, edit] per CFG half
            k = torch.cat([k[g * 2:g * 2 + 1].expand(2, -1, -1, -1) for g in range(groups)])
            v = torch.cat([v[g * 2:g * 2 + 1].expand(2, -1, -1, -1) for g in range(groups)])
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(hidden_states.shape[0], -1,
                                                                                heads * q.shape[-1])
        return attn.to_out[1](attn.to_out[0](out))


def test_matches_the_batched_reference_formulation(setup):
    unet, backend, sigmas, x_ref, x_edit = setup
    names = layer_names(unet)
    start = default_start_layer(layer_parts(self_attention_layers(unet)))
    ours_ref, ours_edit = run(setup, names[start:])

    modules = dict(unet.named_modules())
    saved = {name: modules[name].processor for name in names}
    cond = text_embedding("a photo")
    try:
        for index, name in enumerate(names):
            modules[name].set_processor(BatchedMasaCtrlProcessor(lambda index=index: index >= start))
        theirs = ddim_sample(backend.denoiser(cond), torch.cat([x_ref, x_edit]), sigmas)
    finally:
        for name, processor in saved.items():
            modules[name].set_processor(processor)
    scale = theirs.abs().max()
    assert (ours_ref - theirs[:1]).abs().max() <= 1e-5 * scale
    assert (ours_edit - theirs[1:]).abs().max() <= 1e-5 * scale


def test_default_layers_and_feature_block_for_sd15_and_sdxl_layouts():
    """The architecture mapping on full-depth UNet layouts (narrow channels, real block structure)."""
    from diffusers import UNet2DConditionModel

    common = dict(sample_size=8, cross_attention_dim=8, attention_head_dim=2, norm_num_groups=4)
    sd15 = UNet2DConditionModel(block_out_channels=(4, 4, 8, 8), layers_per_block=2, **common)
    layers = self_attention_layers(sd15)
    assert len(layers) == 16
    assert default_start_layer(layer_parts(layers)) == 10  # DragDiffusion's start_layer for SD1.5
    assert layers[10][0].startswith("up_blocks.2.")
    assert default_feature_block(sd15) == 2  # DragDiffusion's unet_feature_idx 3 = up_blocks[2]

    sdxl = UNet2DConditionModel(
        block_out_channels=(4, 8, 8), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), **common)
    layers = self_attention_layers(sdxl)
    assert len(layers) == 70
    start = default_start_layer(layer_parts(layers))
    assert start == 64 and layers[start][0].startswith("up_blocks.1.")
    assert default_feature_block(sdxl) == 1  # the 640-channel level, upsampled to latent resolution


# ---------------------------------------------------------------------------------------------------------------------
# The recorded reference branch (re-drag): replaying it must give the fresh run's output exactly

def run_recorded(setup, recording, x_edit, cfg=1.0):
    unet, backend, sigmas, x_ref, _ = setup
    calls = []
    inner = backend.denoiser(text_embedding("a photo"), text_embedding(""), cfg)

    def denoise(x, sigma):
        calls.append(x.shape[0])
        return inner(x, sigma)

    control = SelfAttentionReference(layer_names(unet)[2:], start_step=1)
    with reference_attention(unet, control):
        reference, edited = masactrl_denoise(denoise, x_ref, x_edit, sigmas, control, recording=recording)
    return reference, edited, len(calls)


@pytest.mark.parametrize("cfg", [1.0, 5.0])
def test_replaying_the_recording_equals_a_fresh_run(setup, cfg):
    unet, backend, sigmas, x_ref, x_edit = setup
    n_steps = len(sigmas) - 1
    other_edit = x_edit.flip(-1)  # a re-drag: another edited latent, the same source
    recording = ReferenceRecording(max_bytes=2 ** 30)
    first_ref, first, first_calls = run_recorded(setup, recording, x_edit, cfg)
    assert recording.complete(n_steps) and first_calls == 2 * n_steps
    replay_ref, replay, replay_calls = run_recorded(setup, recording, other_edit, cfg)
    assert replay_calls == n_steps, "a complete recording must skip the reference branch"
    fresh_ref, fresh, _ = run_recorded(setup, None, other_edit, cfg)
    assert torch.equal(replay, fresh), (replay - fresh).abs().max()
    assert torch.equal(replay_ref, fresh_ref) and torch.equal(first_ref, fresh_ref)
    assert not torch.equal(first, replay)


def test_a_recording_over_its_limit_or_cut_short_is_never_replayed(setup):
    unet, backend, sigmas, x_ref, x_edit = setup
    n_steps = len(sigmas) - 1
    small = ReferenceRecording(max_bytes=1024)  # one step of inputs is larger than this
    run_recorded(setup, small, x_edit)
    assert small.overflowed and not small.complete(n_steps) and small.steps == []
    _, _, calls = run_recorded(setup, small, x_edit)
    assert calls == 2 * n_steps

    cut = ReferenceRecording(max_bytes=2 ** 30)
    control = SelfAttentionReference(layer_names(unet))
    stops = iter(range(100))

    def cancel_at_step_3():
        if next(stops) == 3:
            raise InterruptedError

    with reference_attention(unet, control), pytest.raises(InterruptedError):
        masactrl_denoise(backend.denoiser(text_embedding("a photo")), x_ref, x_edit, sigmas, control,
                         check_interrupt=cancel_at_step_3, recording=cut)
    assert len(cut.steps) == 3 and not cut.complete(n_steps)
