"""Helpers for gradient-based weightings (GradNorm, PCGrad): which parameters are shared.

A gradient-based strategy needs the model; :meth:`attach` is called with it (the module does
``if hasattr(self.weighting, "attach"): self.weighting.attach(self.net)``). Shared parameters are
those of ``model.encoder`` (every densemtl architecture has one) unless given explicitly.
"""

from __future__ import annotations

from torch import nn


def shared_parameters(model: nn.Module) -> list[nn.Parameter]:
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ValueError("gradient-based weighting needs a model with an `encoder` (the shared part)")
    return [p for p in encoder.parameters() if p.requires_grad]


def last_shared_layer(model: nn.Module) -> list[nn.Parameter]:
    """The weight of the encoder's last convolution (GradNorm's W; XTasC: last conv of layer4)."""
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ValueError("gradient-based weighting needs a model with an `encoder` (the shared part)")
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return [convs[-1].weight]
