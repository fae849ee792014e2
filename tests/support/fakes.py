"""Stand-ins for a checkpoint's text encoder and VAE (no weights can be downloaded), with SD's shapes.

Used by the test checkpoint node (``tiny_checkpoint_node/``), in-process and inside a real ComfyUI server.
"""
import torch


class FakeCLIP:
    """Stands in for a text encoder: a fixed random embedding per prompt, ``tokens`` long and ``width`` wide (the tiny
    UNets' 32, SD1.5's 768; Flux's T5-XXL: 256 of 4096), and a pooled vector ``pooled_width`` wide (``width`` unless
    given: Flux and SD3 pool to another width)."""

    def __init__(self, width: int = 32, pooled_width: int | None = None, tokens: int = 77):
        self.width = width
        self.pooled_width = pooled_width or width
        self.tokens = tokens

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, text):
        generator = torch.Generator().manual_seed(sum(map(ord, text)) + len(text))
        tokens = torch.randn(1, self.tokens, self.width, generator=generator)
        pooled = torch.randn(1, self.pooled_width, generator=generator)
        return [[tokens, {"pooled_output": pooled}]]


class FakeVAE:
    """An 8x average-pool encoder and nearest-upsampling decoder with SD's latent shapes.

    Four channels are (R, G, B, mean grey) scaled to [-1, 1]; ``channels=16`` (Flux, SD3) repeats them four times and
    decodes the average of the repeats, so that every latent channel shows in the picture."""

    def __init__(self, channels: int = 4):
        if channels % 4:
            raise ValueError(f"FakeVAE makes a multiple of 4 latent channels, not {channels}")
        self.latent_channels = channels

    def encode(self, pixels):
        x = pixels.movedim(-1, 1)
        pooled = torch.nn.functional.avg_pool2d(x, 8)
        return (torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1) * 2 - 1).repeat(1, self.latent_channels // 4,
                                                                                         1, 1)

    def decode(self, samples):
        rgb = samples[:, :3]
        if self.latent_channels > 4:
            rgb = samples.unflatten(1, (-1, 4)).mean(1)[:, :3]
        rgb = ((rgb + 1) / 2).clamp(0, 1)
        return rgb.repeat_interleave(8, 2).repeat_interleave(8, 3).movedim(1, -1)
