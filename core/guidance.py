"""Classifier-free guidance on denoised estimates.

CFG is linear, so mixing x0 estimates equals mixing eps (or v) estimates.
"""
import torch


def classifier_free_guidance(denoised_cond: torch.Tensor, denoised_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    return denoised_uncond + scale * (denoised_cond - denoised_uncond)
