"""The drag loop as it was before the drag core was split into state, update and schedule (commit 9871fcd), kept
verbatim as the reference the refactored core must reproduce exactly (tests/test_drag_core.py).

Changed since, and only here: the imports follow the modules the core was split into, and the mask term's reference
takes the VP round trip of the optimised latent (issue 17, defect 0: the official code's first update has a mask
term of exactly zero).  Both are marked."""
from typing import Callable, Optional, Sequence

import torch

from core.ddim import ddim_step
from core.drag import DragResult, Tensor  # changed: imports
from core.drag_model import DragForward
from core.features import feature_sampler
from core.motion import CurrentPatchPull, all_reached, motion_supervision_loss, track_points


def legacy_optimize_drag_latent(forward: DragForward, z: Tensor, sigma, sigma_next, handles: Tensor, targets: Tensor, *,
                         grid_hw: Sequence[int], mask_latent: Optional[Tensor] = None, steps: int = 80,
                         lr: float = 0.01, lam: float = 0.1, r_m: int = 1, r_p: int = 3,
                         reach_threshold: float = 2.0, vp_units: bool = True, loss_scaling: bool = False,
                         truncate: bool = True, dense_features: bool = False,
                         callback: Optional[Callable[[int, Tensor, Tensor], None]] = None,
                         should_stop: Optional[Callable[[], bool]] = None) -> DragResult:
    """DragDiffusion latent optimisation at one noise level.

    ``forward`` (:class:`DragForward`) runs the denoiser at ``sigma``. ``handles``/``targets`` are ``[N,2]`` grid
    ``[row, col]`` points; ``grid_hw`` is the supervision grid size.

    Per the reference: reference features and the next-step latent are computed once without grad; Adam on the latent
    only; each iteration runs forward, tracks handles against the original handle features (from the second
    iteration on), stops early when all handles are within ``reach_threshold`` (checked after tracking, before the
    loss), then steps on motion supervision + mask term.

    ``mask_latent`` (``[h,w]`` or broadcastable to the latent, 1 = editable): ``None`` means everything is editable
    and there is no mask term; an all-zero mask is treated the same way, as the reference does (nothing drawn).
    ``vp_units``: optimise and regularise in the reference's VP latent units (see module docstring); set False for
    models whose latent is not VP-scaled. ``loss_scaling``: ``torch.amp.GradScaler`` as the reference (init scale
    2^16; a step whose gradient overflowed is skipped and the scale halved) — needed for fp16 UNets only.
    ``truncate``: ask for features only (``full=False``) when no mask term needs the denoised latent.
    ``dense_features``: build the whole upsampled map each iteration, as the reference (same values, slower).
    ``callback(step, loss, handles)`` after each step with the loss as a 0-d tensor (reading it syncs the device) and
    the handles on the CPU; ``should_stop()`` is polled before each iteration (it may also raise to abort).
    Safe under an outer ``torch.inference_mode()``.
    """
    with torch.inference_mode(False), torch.enable_grad():
        x_init = z.detach().clone().float()  # a normal tensor even if z is an inference tensor
        sigma, sigma_next = float(sigma), float(sigma_next)  # one noise level for the (single) latent
        scale = (1.0 + sigma ** 2) ** -0.5 if vp_units else 1.0
        scale_next = (1.0 + sigma_next ** 2) ** -0.5 if vp_units else 1.0
        handles = handles.detach().clone().long().to(z.device)
        targets = targets.detach().clone().long().to(z.device)
        targets_host = targets.cpu()
        keep = None
        if mask_latent is not None:
            mask = mask_latent.detach().clone().float().to(z.device)
            if bool(mask.sum() != 0):  # all-zero = nothing drawn = all editable (reference semantics)
                keep = 1.0 - mask
        full = keep is not None or not truncate

        x_source = (x_init * scale) / scale  # changed: defect 0, the round trip z_param / scale takes
        with torch.no_grad():
            denoised, feats = forward(x_source, full)
            next_ref = (ddim_step(x_source, denoised.float(), sigma, sigma_next) * scale_next
                        if keep is not None else None)
            handle_feats = feature_sampler(feats, grid_hw, dense_features)(handles[:, 0], handles[:, 1]).t()  # [N,C]
            del denoised, feats

        # The parameter is the VP latent so Adam's lr/eps act exactly as in the reference.
        z_param = (x_init * scale).requires_grad_(True)
        optimizer = torch.optim.Adam([z_param], lr=lr)
        scaler = torch.amp.GradScaler(z.device.type, init_scale=2.0 ** 16, enabled=loss_scaling)
        losses, steps_run = [], 0
        for step in range(steps):
            if should_stop is not None and should_stop():
                break
            x = z_param / scale
            denoised, feats = forward(x, full)
            if step > 0:
                with torch.no_grad():
                    handles = track_points(handle_feats, feature_sampler(feats.detach(), grid_hw, dense_features),
                                           handles, r_p, grid_hw)
            handles_host = handles.cpu()  # the loop's one host sync: the early-stop check needs the handles
            if bool(all_reached(handles_host, targets_host, reach_threshold)):
                break
            loss = motion_supervision_loss(feats, grid_hw, handles, targets, CurrentPatchPull(r_m, reach_threshold),
                                           dense_features)  # changed: the pull as one object
            if keep is not None:
                x_next = ddim_step(x, denoised.float(), sigma, sigma_next) * scale_next
                loss = loss + lam * ((x_next - next_ref) * keep).abs().sum()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            steps_run += 1
            losses.append(loss.detach())
            del denoised, feats, loss
            if callback is not None:
                callback(step, losses[-1], handles_host)

        latent = (z_param.detach() / scale if steps_run else x_init).to(z.dtype)
        losses = torch.stack(losses).tolist() if losses else []
    return DragResult(latent=latent, handles=handles, steps_run=steps_run, losses=losses)
