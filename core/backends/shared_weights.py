"""Autograd through a model's weights without copying them.

ComfyUI loads weights, and runs graphs, under ``torch.inference_mode()``.
Backward refuses to save inference tensors, and a module's weights are saved
by every layer that a gradient flows through, even when only the input needs a
gradient.  A ``Tensor`` that merely *aliases* an inference tensor's storage is
an ordinary tensor, so a copy of the module *tree* whose parameters are such
aliases supports autograd at the cost of the module objects alone: no weight
is copied, and the original modules are never touched.
"""
import copy

import torch


def _alias(tensor: torch.Tensor) -> torch.Tensor:
    """An ordinary tensor viewing ``tensor``'s storage (made outside inference mode)."""
    with torch.inference_mode(False):
        view = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
        view.set_(tensor.untyped_storage(), tensor.storage_offset(), tensor.size(), tensor.stride())
    return view


def autograd_view(module: torch.nn.Module) -> torch.nn.Module:
    """A structural copy of ``module`` whose parameters and buffers share storage with the original's.

    Every submodule is a shallow copy with its own containers (parameters, buffers, submodules, hooks, ComfyUI's
    weight-function lists), so frozen parameters (``requires_grad=False``), replaced submodules (peft adapters),
    hooks and new attributes stay private to the copy; the values in them (ComfyUI's cast settings and weight
    patches) are shared.  Writing *into* a weight in place would still reach the original: nothing here does.
    """
    copies: dict[int, torch.nn.Module] = {}

    def view(node: torch.nn.Module) -> torch.nn.Module:
        if id(node) in copies:  # a submodule reachable twice stays one module
            return copies[id(node)]
        clone = copy.copy(node)
        copies[id(node)] = clone
        for name, value in vars(node).items():
            if isinstance(value, (dict, list, set)):
                vars(clone)[name] = copy.copy(value)
        clone._parameters = {name: None if p is None else torch.nn.Parameter(_alias(p), requires_grad=False)
                             for name, p in node._parameters.items()}
        clone._buffers = {name: None if b is None else _alias(b) for name, b in node._buffers.items()}
        clone._modules = {name: None if m is None else view(m) for name, m in node._modules.items()}
        return clone

    return view(module)
