"""Stand-ins for a checkpoint's text encoder and VAE (no weights can be downloaded), with SD's shapes.

Used by the test checkpoint node (``tiny_checkpoint_node/``), in-process and inside a real ComfyUI server.
"""
import torch


class FakeCLIP:
    """Stands in for a text encoder: a fixed random embedding per prompt, ``width`` wide (the tiny UNets' 32, SD1.5's
    768)."""

    def __init__(self, width: int = 32):
        self.width = width

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, text):
        generator = torch.Generator().manual_seed(sum(map(ord, text)) + len(text))
        tokens = torch.randn(1, 77, self.width, generator=generator)
        pooled = torch.randn(1, self.width, generator=generator)
        return [[tokens, {"pooled_output": pooled}]]


class FakeVAE:
    """An 8x average-pool encoder and nearest-upsampling decoder with SD's latent shapes."""

    def encode(self, pixels):
        x = pixels.movedim(-1, 1)
        pooled = torch.nn.functional.avg_pool2d(x, 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1) * 2 - 1

    def decode(self, samples):
        rgb = ((samples[:, :3] + 1) / 2).clamp(0, 1)
        return rgb.repeat_interleave(8, 2).repeat_interleave(8, 3).movedim(1, -1)
