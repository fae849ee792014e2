"""core/backends/shared_weights.py: autograd through weights loaded under inference mode, without copying them."""
import pytest
import torch

from core.backends.shared_weights import autograd_view
from core.lora import inject_lora
from tests.support.tiny_models import text_embedding, tiny_unet


@pytest.fixture()
def loaded_unet():
    """A UNet whose weights are inference tensors, as ComfyUI's are after loading a checkpoint in a node."""
    unet = tiny_unet(seed=1)
    with torch.inference_mode():
        for module in unet.modules():
            for name, param in list(module._parameters.items()):
                if param is not None:
                    module._parameters[name] = torch.nn.Parameter(param.detach().clone(), requires_grad=False)
    assert all(p.is_inference() for p in unet.parameters())
    return unet


def _call(unet, x):
    return unet(x, torch.tensor([500]), encoder_hidden_states=text_embedding("a")).sample


def test_view_shares_storage_and_backpropagates_where_the_original_cannot(loaded_unet):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="Inference tensors"):
        _call(loaded_unet, x.clone().requires_grad_(True)).sum().backward()

    view = autograd_view(loaded_unet)
    originals, aliases = list(loaded_unet.parameters()), list(view.parameters())
    assert len(originals) == len(aliases)
    assert all(a.data_ptr() == o.data_ptr() and a.shape == o.shape for a, o in zip(aliases, originals))
    assert not any(a.is_inference() for a in aliases)

    x_grad = x.clone().requires_grad_(True)
    out = _call(view, x_grad)
    out.square().mean().backward()
    assert x_grad.grad is not None and x_grad.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(out, _call(loaded_unet, x), rtol=0, atol=0)


def test_changes_to_the_view_stay_private(loaded_unet):
    before_types = [type(m) for m in loaded_unet.modules()]
    before_hooks = sum(len(m._forward_hooks) for m in loaded_unet.modules())
    view = autograd_view(loaded_unet)
    view.up_blocks[0].register_forward_hook(lambda *args: None)
    params = inject_lora(view, rank=2)  # peft replaces the attention projections in the view only
    assert params and all(p.requires_grad for p in params)
    assert [type(m) for m in loaded_unet.modules()] == before_types
    assert sum(len(m._forward_hooks) for m in loaded_unet.modules()) == before_hooks
    assert not any(p.requires_grad for p in loaded_unet.parameters())
