"""The multi-task model contract: ``encoder -> multi-task architecture -> task heads``.

Every architecture subclasses :class:`MultiTaskModel` and implements :meth:`forward_tasks`, which
returns raw head outputs (any resolution). :meth:`forward` normalises the [0, 1] RGB input,
calls it, upsamples each output to the input size and applies the task's output activation, so
every model returns ``{task: tensor at H x W}``: semseg logits, depth in metres, unit normals.

In training mode an architecture may also return auxiliary outputs keyed ``"<task>:<name>"``
(deep supervision, cross-task transfers); they get the same upsampling and activation as
``<task>``, and :meth:`extra_losses` turns them into loss terms. Inference outputs hold task keys
only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEPTH_ACTIVATIONS = ("exp", "softplus", "relu", "sigmoid_range", "identity")


class MultiTaskModel(nn.Module):
    """Base class: input normalisation, output upsampling and output activations.

    Args:
        tasks: task name -> output channels (``semseg``: number of classes, ``depth``: 1,
            ``normals``: 3).
        depth_activation: how raw depth outputs become metres. ``exp`` (default) makes the head
            predict log-depth, which suits log-domain and relative metrics; ``softplus`` / ``relu``
            predict metres directly (DenseTorch uses an unconstrained output); ``sigmoid_range``
            maps to (0, max_depth).
        max_depth: upper bound used by ``sigmoid_range`` and to clamp ``exp``.
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        depth_activation: str = "exp",
        max_depth: float = 80.0,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("a model needs at least one task")
        if depth_activation not in DEPTH_ACTIVATIONS:
            raise ValueError(f"depth_activation must be one of {DEPTH_ACTIVATIONS}, got {depth_activation!r}")
        self.tasks = dict(tasks)
        self.depth_activation = depth_activation
        self.max_depth = float(max_depth)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw per-task outputs for a normalised image batch (implemented by each architecture)."""
        raise NotImplementedError

    def extra_losses(
        self,
        outputs: Mapping[str, torch.Tensor],
        batch: Mapping[str, Any],
        task_losses: Mapping[str, nn.Module],
    ) -> dict[str, torch.Tensor]:
        """Loss terms beyond one per task (named, e.g. ``"depth:initial"``); default: deep supervision.

        Every auxiliary output ``"<task>:<name>"`` is scored with ``<task>``'s loss against the
        task's label. Architectures with other auxiliary objectives override this. The weighting
        strategy receives these terms beside the task losses.
        """
        from densemtl.data.sample import valid_mask

        terms = {}
        for key, out in outputs.items():
            task, _, name = key.partition(":")
            if name and task in task_losses:
                terms[key] = task_losses[task](out, batch[task], valid_mask(task, batch[task]))
        return terms

    def postprocess(self, task: str, output: torch.Tensor) -> torch.Tensor:
        task = task.partition(":")[0]
        if task == "depth":
            act = self.depth_activation
            if act == "exp":
                return torch.exp(output.clamp(max=math.log(self.max_depth)))
            if act == "softplus":
                return F.softplus(output)
            if act == "relu":
                return F.relu(output)
            if act == "sigmoid_range":
                return torch.sigmoid(output) * self.max_depth
            return output
        if task == "normals":
            return F.normalize(output, dim=1)
        return output

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (image - self.pixel_mean) / self.pixel_std
        size = image.shape[-2:]
        outputs = {}
        for task, out in self.forward_tasks(x).items():
            if out.shape[-2:] != size:
                out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            outputs[task] = self.postprocess(task, out)
        return outputs


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
