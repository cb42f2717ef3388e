"""Ready adapters for frameworks with automatic differentiation: wrap your functions and the
framework's autodiff supplies the VJP and JVP that reflip's suite checks.

    from reflip.adapters import TorchAdapter
    adapter = TorchAdapter(group_sort=my_group_sort, conventions={...})
    reflip.audit.check_implementation(adapter)

Each module imports its framework lazily, so ``reflip.adapters`` imports without them.
"""
from .jax_adapter import JaxAdapter
from .torch_adapter import TorchAdapter

__all__ = ["TorchAdapter", "JaxAdapter"]
