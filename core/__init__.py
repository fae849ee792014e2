"""Model-agnostic editing algorithms in ComfyUI's sigma space.

Every function here works on a *denoiser*: ``denoise(x, sigma) -> x0`` where
``x = x0 + sigma * eps`` (the k-diffusion convention ComfyUI uses; rectified-flow
models hold ``x = (1 - sigma) * x0 + sigma * eps``, see :mod:`core.noise_space`)
and ``sigma`` is a tensor of shape ``[batch]``.  Backends in :mod:`core.backends` adapt a
ComfyUI MODEL or a diffusers UNet to that protocol; nothing in this package
imports ComfyUI.
"""
