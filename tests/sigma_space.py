"""Helpers shared by the tests that compare our sigma-space core with diffusers' VP-space code."""

TOL = 1e-5


def to_vp(x, sigma):
    return x / (1 + float(sigma) ** 2) ** 0.5


def to_sigma_space(z, sigma):
    return z * (1 + float(sigma) ** 2) ** 0.5


def assert_close(ours, theirs):
    """Max abs difference <= 1e-5, measured in units of the values' magnitude when it exceeds 1.

    A random UNet predicts noise that does not match the input, so DDIM drives
    the latent to |x| ~ 30 where one float32 ulp is already 2e-6; both sides
    round independently.  Realistic latents (|x| < 1) get the plain 1e-5.
    """
    scale = max(1.0, float(theirs.abs().max()))
    error = float((ours - theirs).abs().max())
    assert error <= TOL * scale, f"max abs diff {error:.3g} at magnitude {scale:.3g}"
