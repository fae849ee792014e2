"""Adapters from concrete models to the denoiser protocol of :mod:`core`."""
