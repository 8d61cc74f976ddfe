"""Segmentation losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.data.sample import IGNORE_INDEX
from densemtl.errors import ConfigError
from densemtl.losses import LOSSES


@LOSSES.register("cross_entropy")
class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy averaged over labelled pixels (ignore index 255).

    Args:
        class_weights: per-class weights, or a rule computed from the training split's pixel
            counts before training: ``"median_frequency"`` (w_c = median(f) / f_c, Eigen & Fergus,
            ICCV 2015) or ``"sqrt_inverse"`` (w_c = sqrt(median(f) / f_c), a milder version).
            The mean is then weighted as in ``F.cross_entropy``.
        label_smoothing: as in ``F.cross_entropy``.
    """

    RULES = ("median_frequency", "sqrt_inverse")

    def __init__(
        self, class_weights: Sequence[float] | str | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.rule = class_weights if isinstance(class_weights, str) else None
        if self.rule is not None and self.rule not in self.RULES:
            raise ConfigError(f"class_weights must be a list or one of {self.RULES}, got {class_weights!r}")
        weight = (
            None if class_weights is None or self.rule else torch.tensor(class_weights, dtype=torch.float32)
        )
        self.register_buffer("class_weights", weight)
        self.label_smoothing = label_smoothing

    @property
    def needs_class_counts(self) -> bool:
        return self.rule is not None and self.class_weights is None

    def set_class_counts(self, counts: torch.Tensor) -> None:
        """Turn training-split pixel counts per class into weights (classes never seen get weight 0)."""
        freq = counts.double() / counts.sum().clamp_min(1)
        present = freq > 0
        median = freq[present].median()
        weight = torch.zeros_like(freq)
        weight[present] = median / freq[present]
        if self.rule == "sqrt_inverse":
            weight = weight.sqrt()
        self.class_weights = weight.float()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # weights fitted from class counts exist only after training: make room to load them
        key = prefix + "class_weights"
        if key in state_dict and self.class_weights is None:
            self.class_weights = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        target = target.masked_fill(~valid, IGNORE_INDEX)
        if not valid.any():
            return logits.sum() * 0.0
        return F.cross_entropy(
            logits,
            target,
            weight=self.class_weights,
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.label_smoothing,
        )
