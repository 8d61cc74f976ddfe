"""The multi-task model contract: ``encoder -> multi-task architecture -> task heads``.

Every architecture subclasses :class:`MultiTaskModel` and implements :meth:`forward_tasks`, which
returns raw head outputs (any resolution). :meth:`forward` normalises the [0, 1] RGB input,
calls it, upsamples each output to the input size and applies the task's output activation, so
every model returns ``{task: tensor at H x W}``: semseg logits, depth in metres, unit normals.

An architecture may also return auxiliary outputs keyed ``"<task>:<name>"`` (deep supervision,
cross-task transfers) when :attr:`MultiTaskModel.returns_auxiliary` is true (in training, or inside
``with model.auxiliary_outputs():``); they get the same upsampling and activation as ``<task>``.
It declares how each is scored in :meth:`MultiTaskModel.auxiliary_terms`, and
:class:`densemtl.losses.compose.LossComposer` computes the terms. Inference outputs hold task keys
only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.losses.compose import AuxiliaryTerm
from densemtl.tasks import TASKS, get_task
from densemtl.tasks.depth import DEPTH_ACTIVATIONS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: :meth:`MultiTaskModel.forward`'s output resize modes.
UPSAMPLE_MODES = ("bilinear", "bicubic")


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
        upsample: how outputs below the input size are resized to it: ``bilinear`` (default) or
            ``bicubic`` (Keys' kernel, a = -0.75, half-pixel centres: OpenCV's ``INTER_CUBIC``, which
            the Light-Weight RefineNet authors use at inference). Applied before the activation.
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        depth_activation: str = "exp",
        max_depth: float = 80.0,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        upsample: str = "bilinear",
    ) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("a model needs at least one task")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.upsample = upsample
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

    def auxiliary_terms(self) -> dict[str, AuxiliaryTerm]:
        """The auxiliary outputs this architecture returns and how each is scored (default: none).

        Keys are output names (``"depth:initial"``); see :class:`~densemtl.losses.compose.AuxiliaryTerm`.
        """
        return {}

    @property
    def returns_auxiliary(self) -> bool:
        """Whether :meth:`forward_tasks` should add its auxiliary outputs (training, or when asked)."""
        override = getattr(self, "_auxiliary_override", None)
        return self.training if override is None else override

    @contextlib.contextmanager
    def auxiliary_outputs(self, enabled: bool = True) -> Iterator[None]:
        """Return (or suppress) the auxiliary outputs whatever the mode, e.g. for a validation loss
        that includes the architecture's training-time terms."""
        previous = getattr(self, "_auxiliary_override", None)
        self._auxiliary_override = enabled
        try:
            yield
        finally:
            self._auxiliary_override = previous

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters that receive gradients from more than one task's loss.

        Gradient-based weightings (PCGrad, GradNorm) work on these. Default: those of
        ``self.encoder``; an architecture whose shared part is something else overrides this (an
        empty list where nothing is shared, e.g. ``single_task``). "Task loss" means the loss of a
        task's main output; auxiliary outputs are not counted.
        """
        encoder = getattr(self, "encoder", None)
        if encoder is None:
            raise NotImplementedError(f"{type(self).__name__} has no encoder: override shared_parameters()")
        return trainable(encoder)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The weight of the last convolution of the shared part (GradNorm's ``W``, Chen et al. 2018).

        Default: the last ``Conv2d`` / ``Linear`` registered in ``self.encoder``, which every task's
        output depends on; empty when :meth:`shared_parameters` is.
        """
        if not self.shared_parameters():
            return []
        return [last_conv(self.encoder).weight]

    def postprocess(self, task: str, output: torch.Tensor) -> torch.Tensor:
        """The output activation of ``task`` (or of an auxiliary ``"<task>:<name>"``), by
        :meth:`densemtl.tasks.base.Task.activate`; outputs of unregistered tasks (e.g. PAD-Net's
        auxiliary ``boundaries``) stay raw."""
        name = task.partition(":")[0]
        if name not in TASKS:
            return output
        return get_task(name).activate(
            output, depth_activation=self.depth_activation, max_depth=self.max_depth
        )

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (image - self.pixel_mean) / self.pixel_std
        size = image.shape[-2:]
        outputs = {}
        for task, out in self.forward_tasks(x).items():
            if out.shape[-2:] != size:
                out = F.interpolate(out, size=size, mode=self.upsample, align_corners=False)
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


def last_conv(module: nn.Module) -> nn.Conv2d | nn.Linear:
    """The last ``Conv2d`` / ``Linear`` registered in ``module`` (registration order)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    if not convs:
        raise ValueError(f"{type(module).__name__} has no convolution")
    return convs[-1]


def trainable(*sources: nn.Module | Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """The trainable parameters of ``sources`` (modules or parameter lists), in order, each once."""
    seen: set[int] = set()
    out = []
    for source in sources:
        for p in source.parameters() if isinstance(source, nn.Module) else source:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out
