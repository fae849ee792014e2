"""The pack's modules as ComfyUI imported them (under the custom-node folder's name): the one import path of the
host tests, so a class or a monkeypatch is always the one the nodes use."""
import sys

import torch


def pack_module(suffix: str):
    return next(m for name, m in sys.modules.items() if name.endswith(suffix) and "drag-diffedit" in name)


def hand_made_trajectory(model, latent_hw=(16, 16)):
    """A trajectory with ``model``'s signature: building one needs no model call."""
    trajectory_module, backend = pack_module("nodes.trajectory"), pack_module("nodes.backend")
    latents = tuple(torch.randn(1, 4, *latent_hw) for _ in range(3))
    return trajectory_module.InversionTrajectory(latents=latents, sigmas=torch.tensor([0.03, 0.5, 1.0]), steps=4,
                                                strength=0.5, cfg=1.0, model_signature=backend.model_signature(model))
