"""Models and inputs without real weights: fake tensors with constant inputs, and a memory tracker.

* :class:`OracleFakeMode` is PyTorch's ``FakeTensorMode`` (shapes, dtypes and devices, no
  storage) with constant propagation widened: the model's inputs (token ids, masks, lengths)
  are fake tensors that carry their real values, and any op whose tensor inputs are all such
  constants (or that has none: ``arange``, ``full``) is computed for real when its output is
  small. Phi-4-multimodal's audio merge and the answer-only loss look at the data
  (``nonzero``, ``.item()``, boolean masks); they see the true token layout, while every
  tensor derived from the weights stays fake.
* :func:`fakeify` swaps a module's meta-device parameters and buffers for fake ones (same
  shape, dtype and ``requires_grad``).
* :class:`AllocationTracker` counts the bytes of every live tensor storage (a dispatch mode:
  each op's outputs, freed when Python frees the storage). It runs the same way over fake and
  real tensors, which is what the CPU validation compares.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

import torch
import torch._subclasses.fake_tensor as fake_tensor
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

# Constants (the inputs and what is computed from them alone) are real tensors up to this size.
CONSTANT_LIMIT = 1 << 22
_FACTORIES_WITHOUT_DATA = (torch.ops.aten.empty.memory_format, torch.ops.aten.empty_strided.default)


@contextmanager
def wide_constants():
    """Let fake tensors carry constants of up to :data:`CONSTANT_LIMIT` elements (default: 1)."""
    previous = fake_tensor.CONSTANT_NUMEL_LIMIT
    fake_tensor.CONSTANT_NUMEL_LIMIT = CONSTANT_LIMIT
    try:
        yield
    finally:
        fake_tensor.CONSTANT_NUMEL_LIMIT = previous


class OracleFakeMode(fake_tensor.FakeTensorMode):
    """FakeTensorMode that also constant-folds data-free factories (see the module docstring)."""

    def dispatch(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (
            isinstance(func, torch._ops.OpOverload)
            and torch.Tag.nondeterministic_seeded not in func.tags
            and func not in _FACTORIES_WITHOUT_DATA
            and not any(isinstance(a, torch.Tensor) for a in pytree.tree_leaves((args, kwargs)))
        ):
            with _disable_current_modes():
                out = func(*args, **kwargs)
            leaves = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
            if leaves and all(t.numel() <= CONSTANT_LIMIT and t.device.type == "cpu" for t in leaves):
                return pytree.tree_map_only(torch.Tensor, self.constant, out)
        return super().dispatch(func, types, args, kwargs)

    def constant(self, tensor: torch.Tensor) -> torch.Tensor:
        """A fake tensor carrying ``tensor``'s values (for inputs the model reads)."""
        return self.fake_tensor_converter.from_real_tensor(self, tensor, make_constant=True)


def fakeify(module: torch.nn.Module, mode: OracleFakeMode) -> None:
    """Replace every parameter, buffer and tensor attribute of ``module`` by a fake one in place;
    tensors shared between modules (tied embeddings) stay shared."""
    made: dict[int, torch.Tensor] = {}

    def fake_of(t: torch.Tensor, parameter: bool) -> torch.Tensor:
        if id(t) not in made:
            fake = torch.empty(t.shape, dtype=t.dtype)
            made[id(t)] = torch.nn.Parameter(fake, requires_grad=t.requires_grad) if parameter else fake
        return made[id(t)]

    with mode:
        for sub in module.modules():
            for name, p in list(sub._parameters.items()):
                if p is not None:
                    sub._parameters[name] = fake_of(p, True)
            for name, b in list(sub._buffers.items()):
                if b is not None:
                    sub._buffers[name] = fake_of(b, False)
            for name, value in list(vars(sub).items()):
                if isinstance(value, torch.Tensor) and value.device.type == "meta":
                    setattr(sub, name, fake_of(value, False))


class AllocationTracker(TorchDispatchMode):
    """Live and peak bytes of tensor storages created while active (plus those :meth:`add` is given)."""

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self._seen: dict[int, weakref.ref] = {}

    def add(self, tensors) -> None:
        for t in tensors:
            if isinstance(t, torch.Tensor):
                self._track(t)

    def reset_peak(self) -> None:
        self.peak = self.current

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = id(storage)
        ref = self._seen.get(key)
        if ref is not None and ref() is storage:
            return
        nbytes = storage.nbytes()
        self._seen[key] = weakref.ref(storage, lambda _r, k=key, n=nbytes: self._free(k, n))
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def _free(self, key: int, nbytes: int) -> None:
        self.current -= nbytes
        ref = self._seen.get(key)
        if ref is not None and ref() is None:
            del self._seen[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t.is_sparse:
                self._track(t)
        return out
