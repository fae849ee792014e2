"""Identity LoRA core on the tiny diffusers UNet, against diffusers' own DDPM training arithmetic.

The reference (DragDiffusion ``train_lora``) noises with ``DDPMScheduler.add_noise`` at integer
timesteps and regresses the UNet output on eps (or ``get_velocity``); our loss goes through the
sigma-space denoiser, so agreement checks both the parameterisation algebra and the sigma table.
"""
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from peft.tuners.lora import LoraLayer

from core.backends.diffusers_unet import DiffusersUNetDenoiser
from core.lora import diffusion_loss, inject_lora, kohya_state_dict, train_identity_lora
from core.settings import LoraSettings
from tests.support.tiny_models import scheduler_config, text_embedding, tiny_unet

SHAPE = (1, 4, 16, 16)
TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def seeded(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_diffusion_loss_matches_diffusers_training_loss(prediction):
    unet = tiny_unet(seed=0 if prediction == "epsilon" else 1)
    config = scheduler_config(prediction)
    cond = text_embedding("a photo of a cat")
    timesteps = torch.tensor([0, 10, 250, 600, 999])
    x0, noise = seeded((5, *SHAPE[1:]), 3), seeded((5, *SHAPE[1:]), 4)

    backend = DiffusersUNetDenoiser(unet, config)
    ours = diffusion_loss(backend.denoiser(cond), x0, noise, backend.sigma_table[timesteps], prediction)

    scheduler = DDPMScheduler.from_config(config)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    output = unet(noisy, timesteps, encoder_hidden_states=cond.expand(5, -1, -1)).sample
    target = noise if prediction == "epsilon" else scheduler.get_velocity(x0, noise, timesteps)
    theirs = F.mse_loss(output.float(), target.float())

    assert abs(float(ours) - float(theirs)) <= 1e-5 * float(theirs), (float(ours), float(theirs))


def test_unknown_prediction_type_is_refused():
    with pytest.raises(ValueError, match="unsupported prediction type 'sample'"):
        diffusion_loss(lambda x, s: x, torch.zeros(SHAPE), torch.zeros(SHAPE), torch.ones(1), "sample")


def test_inject_puts_peft_lora_on_every_attention_projection_and_starts_as_identity():
    unet = tiny_unet(seed=0)
    reference = tiny_unet(seed=0)
    expected = {name for name, _ in reference.named_modules() if name.endswith(tuple("." + t for t in TARGETS))}
    assert len(expected) == 4 * len([n for n, _ in reference.named_modules() if n.endswith((".attn1", ".attn2"))])

    params = inject_lora(unet, rank=4)

    wrapped = {name for name, module in unet.named_modules() if isinstance(module, LoraLayer)}
    assert wrapped == expected
    assert len(params) == 2 * len(expected)
    assert {id(p) for p in unet.parameters() if p.requires_grad} == {id(p) for p in params}
    x, t, cond = seeded(SHAPE, 5), torch.tensor([500]), text_embedding("x")
    with torch.no_grad():
        assert torch.equal(unet(x, t, encoder_hidden_states=cond).sample,
                           reference(x, t, encoder_hidden_states=cond).sample)


def test_training_lowers_the_loss_on_a_held_out_batch():
    # lr 1e-2: the tiny UNet's attention barely steers its output, so 1e-3 moves the loss by only 0.1 %.
    unet = tiny_unet(seed=0)
    backend = DiffusersUNetDenoiser(unet, scheduler_config("epsilon"))
    denoise = backend.denoiser(text_embedding("a photo of a cat"))
    params = inject_lora(unet, rank=4)
    x0 = seeded(SHAPE, 6)
    # Held out: noise and timesteps the training generator (seed 0) does not draw.
    held_noise, held_t = seeded((8, *SHAPE[1:]), 7), torch.linspace(50, 950, 8).long()

    def held_out_loss():
        with torch.no_grad():
            return float(diffusion_loss(denoise, x0.repeat(8, 1, 1, 1), held_noise, backend.sigma_table[held_t],
                                        "epsilon"))

    before = held_out_loss()
    steps_seen = []
    losses = train_identity_lora(denoise, params, x0, backend.sigma_table,
                                 LoraSettings(steps=30, learning_rate=1e-2, batch_size=4),
                                 callback=lambda step, loss: steps_seen.append(step))
    after = held_out_loss()

    assert len(losses) == 30 and steps_seen == list(range(30))
    assert after < 0.95 * before, (before, after)


def test_training_is_seeded_and_stops_when_interrupted():
    def run(interrupt_at=None):
        unet = tiny_unet(seed=0)
        backend = DiffusersUNetDenoiser(unet, scheduler_config("epsilon"))
        params = inject_lora(unet, rank=2)
        calls = []

        def check():
            calls.append(1)
            if len(calls) == interrupt_at:
                raise InterruptedError("cancelled")

        losses = train_identity_lora(backend.denoiser(text_embedding("a")), params, seeded(SHAPE, 1),
                                     backend.sigma_table, LoraSettings(steps=3, batch_size=2, training_seed=5),
                                     check_interrupt=check)
        return losses, unet

    first, _ = run()
    second, _ = run()
    assert first == second
    with pytest.raises(InterruptedError):
        run(interrupt_at=3)


class _Attention(torch.nn.Module):
    def __init__(self, dim, context_dim):
        super().__init__()
        self.to_q = torch.nn.Linear(dim, dim, bias=False)
        self.to_k = torch.nn.Linear(context_dim, dim, bias=False)
        self.to_v = torch.nn.Linear(context_dim, dim, bias=False)
        self.to_out = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.Dropout(0.0))


class _TransformerBlock(torch.nn.Module):
    def __init__(self, dim, context_dim):
        super().__init__()
        self.attn1, self.attn2 = _Attention(dim, dim), _Attention(dim, context_dim)
        self.ff = torch.nn.Linear(dim, dim)


class _SpatialTransformer(torch.nn.Module):
    def __init__(self, dim, context_dim):
        super().__init__()
        self.proj_in = torch.nn.Linear(dim, dim)
        self.transformer_blocks = torch.nn.ModuleList([_TransformerBlock(dim, context_dim)])


def comfy_style_unet():
    """ComfyUI's LDM module names (``input_blocks.1.1.transformer_blocks.0.attn1.to_q``) without ComfyUI."""
    unet = torch.nn.Module()
    unet.input_blocks = torch.nn.ModuleList([
        torch.nn.ModuleList([torch.nn.Linear(8, 8)]),
        torch.nn.ModuleList([torch.nn.Linear(8, 8), _SpatialTransformer(8, 6)]),
    ])
    unet.output_blocks = torch.nn.ModuleList([torch.nn.ModuleList([_SpatialTransformer(8, 6)])])
    return unet


def test_kohya_state_dict_names_shapes_and_alpha():
    torch.manual_seed(0)
    unet = comfy_style_unet()
    params = inject_lora(unet, rank=2)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p))  # lora_B starts at zero: make the delta visible
    state = kohya_state_dict(unet)

    modules = [f"{block}_transformer_blocks_0_{attn}_{target}" for block in ("input_blocks_1_1", "output_blocks_0_0")
               for attn in ("attn1", "attn2") for target in ("to_q", "to_k", "to_v", "to_out_0")]
    suffixes = (".lora_down.weight", ".lora_up.weight", ".alpha")
    expected = {f"lora_unet_{m}{suffix}" for m in modules for suffix in suffixes}
    assert set(state) == expected
    down = state["lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight"]
    up = state["lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_up.weight"]
    assert down.shape == (2, 6) and up.shape == (8, 2)
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 and not t.requires_grad and t.is_contiguous()
               for t in state.values())
    assert all(float(state[f"lora_unet_{m}.alpha"]) == 2.0 for m in modules)

    # The exported pair reproduces the adapter: W x + (alpha / rank) up down x.
    layer = unet.input_blocks[1][1].transformer_blocks[0].attn2.to_k
    x = torch.randn(3, 6)
    with torch.no_grad():
        expected_out = layer.base_layer(x) + x @ (up @ down).T * (2.0 / 2)
        assert torch.allclose(layer(x), expected_out, atol=1e-6)
