"""Multi-Task Light-Weight RefineNet (Nekrasov, Dharmasiri, Spek, Drummond, Shen, Reid, ICRA 2019).

"Real-Time Joint Semantic Segmentation and Depth Estimation Using Asymmetric Annotations"
(arXiv 1809.04766); module for module the authors' ``src/models.py`` (DrSleep/multi-task-refinenet):

* encoder: the authors' MobileNet-v2 variant (backbone ``mobilenet_v2_refinenet``,
  :class:`~densemtl.models.backbones.mobilenetv2_refinenet.RefineNetMobileNetV2`: the t = 1 block
  keeps its 1x1 expansion conv, no 1280 conv, ReLU6), tapped at l3 .. l8; other backbones are
  refused (the decoder needs six levels at strides 4, 8, 16, 16, 32, 32);
* Light-Weight RefineNet decoder, 256 channels, bias-free 1x1 convs, no BN::

      x = relu6(conv8(l8) + conv7(l7)); x = CRP4(x); x = adapt4(x); x = up(x -> l6)
      x = relu6(conv5(l5) + conv6(l6) + x); x = CRP3(x); x = adapt3(x); x = up(x -> l4)
      x = relu6(conv4(l4) + x); x = CRP2(x); x = adapt2(x); x = up(x -> l3)
      x = relu6(conv3(l3) + x); x = CRP1(x)                       # 1/4 resolution

  CRP (chained residual pooling, 4 stages): ``top = conv_i(maxpool5x5(top)); x = x + top``; CRP1's
  1x1 convs are depthwise (groups = 256), CRP2-4's full;
* one head per task at 1/4 resolution: 1x1 depthwise conv (no bias) -> ReLU6 -> 3x3 conv (bias).

Parameters: 3,070,057 (NYUD-40 + depth), 3,077,228 (+ normals), 2,991,687 (KITTI-6 + depth),
3,083,887 (46-class NYUD+KITTI joint + depth). Conv multiply-adds at 480x640 (NYUD 2-task): 5.94 G.

Decoder and heads are initialised N(0, 0.01), zero bias, as the authors' (``init="authors"``;
``init="kaiming"`` trains much faster from scratch: see the class docstring); the encoder
gets torchvision's init (see the encoder's docstring); ``encoder_weights`` loads
torchvision-layout ImageNet MobileNet-v2 weights into the encoder (the extra t = 1 expansion conv
becomes the identity). Outputs go through :class:`~densemtl.models.base.MultiTaskModel` (bilinear
upsampling to the input size, ``depth_activation``; the authors take ``|output|`` as depth).

Example (``mobilenet_v2-b0353104.pth``: torchvision's ImageNet MobileNet-v2 file)::

    model = build_model("mt_refinenet", tasks={"semseg": 40, "depth": 1},
                        encoder_weights="mobilenet_v2-b0353104.pth")
    out = model(torch.rand(1, 3, 480, 640))  # {"semseg": [1,40,480,640], "depth": [1,1,480,640]}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.errors import ConfigError
from densemtl.models import MODELS, build_encoder
from densemtl.models.backbones.features import refuse
from densemtl.models.base import MultiTaskModel

__all__ = ["CRPBlock", "MTLWRefineNet", "TaskHead"]

#: strides of the encoder levels l3 .. l8 the decoder taps
TAP_STRIDES = (4, 8, 16, 16, 32, 32)


def conv1x1(cin: int, cout: int, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, 1, 0, groups=groups, bias=bias)


class CRPBlock(nn.Module):
    """Chained residual pooling: ``stages`` x (5x5 stride-1 max-pool -> 1x1 conv), each summed in."""

    def __init__(self, channels: int, stages: int = 4, groups: int = 1) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv1x1(channels, channels, groups=groups) for _ in range(stages))
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = x
        for conv in self.convs:
            top = conv(self.pool(top))
            x = x + top
        return x


class TaskHead(nn.Module):
    """1x1 depthwise conv (no bias) -> ReLU6 -> 3x3 conv (bias), the authors' ``pre_<task>`` + ``<task>``."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.pre = conv1x1(channels, channels, groups=channels)
        self.act = nn.ReLU6(inplace=False)
        self.predict = nn.Conv2d(channels, out_channels, 3, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(self.act(self.pre(x)))


class IdentityConvReLU6(nn.Module):
    """``relu6(x)`` computed as ``relu6(depthwise_1x1(x))`` with unit weights: the same numbers.

    Only for ONNX export (:meth:`MTLWRefineNet.for_onnx`). ONNX Runtime's NCHWc layout fuses a clip
    into a preceding convolution but has no standalone ``Clip``; after each ``relu6(a + b)`` of the
    decoder it converted the map back to NCHW, ran every chained-residual-pooling ``Add`` in NCHW and
    converted back (30 layout reorders per image, ~20 % of the 480x640 latency). A 1x1 depthwise
    convolution by 1.0 gives the clip a convolution to fuse into and keeps the decoder in NCHWc.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.identity = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        nn.init.ones_(self.identity.weight)
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.identity(x))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class MTLWRefineNet(MultiTaskModel):
    """Multi-Task Light-Weight RefineNet with the authors' MobileNet-v2 encoder.

    Args:
        tasks: task -> output channels (``semseg``: classes, e.g. 40 NYUD / 6 KITTI / 46 joint;
            ``depth``: 1; ``normals``: 3).
        encoder_weights: path of torchvision-layout ImageNet MobileNet-v2 weights (e.g.
            torchvision's ``mobilenet_v2-b0353104.pth``), or None (random init).
        channels: decoder width (256 in the paper).
        crp_stages: max-pool/conv stages per CRP block (4 in the paper).
        depthwise_crp1: CRP1's 1x1 convs depthwise (True, the paper's) or full.
        init: ``"authors"`` (decoder/head convs N(0, 0.01), the paper's code) or ``"kaiming"``
            (for training from scratch: Kaiming-normal fan-out decoder convs, identity CRP blocks
            and head depthwise convs, N(0, 0.01) prediction convs).
        backbone: encoder name or spec; only ``mobilenet_v2_refinenet`` (the default) has the six
            levels the decoder taps, others raise :class:`~densemtl.errors.ConfigError`.
        **kwargs: :class:`MultiTaskModel` options (``depth_activation``, ``max_depth``).
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        encoder_weights: str | Path | None = None,
        channels: int = 256,
        crp_stages: int = 4,
        depthwise_crp1: bool = True,
        init: str = "authors",
        backbone: str | Mapping[str, Any] = "mobilenet_v2_refinenet",
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, **kwargs)
        if init not in ("authors", "kaiming"):
            raise ConfigError(f"mt_refinenet init must be 'authors' or 'kaiming', got {init!r}")
        self.encoder = build_encoder(backbone)
        if self.encoder.feature_info.reduction() != list(TAP_STRIDES):
            raise refuse(
                "mt_refinenet",
                self.encoder,
                f"the Light-Weight RefineNet decoder needs six levels at strides {TAP_STRIDES} "
                f"(backbone mobilenet_v2_refinenet), it has {self.encoder.feature_info.reduction()}",
            )
        c3, c4, c5, c6, c7, c8 = self.encoder.feature_info.channels()
        self.conv8 = conv1x1(c8, channels)
        self.conv7 = conv1x1(c7, channels)
        self.conv6 = conv1x1(c6, channels)
        self.conv5 = conv1x1(c5, channels)
        self.conv4 = conv1x1(c4, channels)
        self.conv3 = conv1x1(c3, channels)
        self.crp4 = CRPBlock(channels, crp_stages)
        self.crp3 = CRPBlock(channels, crp_stages)
        self.crp2 = CRPBlock(channels, crp_stages)
        self.crp1 = CRPBlock(channels, crp_stages, groups=channels if depthwise_crp1 else 1)
        self.adapt4 = conv1x1(channels, channels)
        self.adapt3 = conv1x1(channels, channels)
        self.adapt2 = conv1x1(channels, channels)
        self.relu = nn.ReLU6(inplace=False)
        self.heads = nn.ModuleDict({t: TaskHead(channels, c) for t, c in self.tasks.items()})
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith("encoder."):
                if init == "authors":
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if init == "kaiming":
            # From scratch the authors' N(0, 0.01) decoder passes ~1e-3 of the signal to the heads
            # (gradients below Adam's eps reach the encoder), and a plain Kaiming decoder saturates
            # ReLU6 in 40 % of units (CRP sums four branches). So: every CRP starts as the identity
            # (zero branch convs), each head's depthwise 1x1 as the identity, its last conv small.
            for crp in (self.crp1, self.crp2, self.crp3, self.crp4):
                for conv in crp.convs:
                    nn.init.zeros_(conv.weight)
            for head in self.heads.values():
                nn.init.ones_(head.pre.weight)
                nn.init.normal_(head.predict.weight, 0.0, 0.01)
        if encoder_weights is not None:
            from densemtl.models.backbones.mobilenetv2_refinenet import load_imagenet

            load_imagenet(self.encoder, encoder_weights)

    def for_onnx(self) -> MTLWRefineNet:
        """A copy whose decoder ReLU6 is :class:`IdentityConvReLU6` (same outputs, faster in ORT)."""
        import copy

        model = copy.deepcopy(self)
        model.relu = IdentityConvReLU6(self.conv3.out_channels)
        return model.to(self.conv3.weight.device)

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoder and the decoder: one map at 1/4 feeds every task head."""
        return [p for name, p in self.named_parameters() if not name.startswith("heads.") and p.requires_grad]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The last convolution before the heads (CRP1's last 1x1 conv)."""
        return [self.crp1.convs[-1].weight]

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """The Light-Weight RefineNet decoder: six encoder maps -> one 256-channel map at 1/4."""
        l3, l4, l5, l6, l7, l8 = feats
        x = self.relu(self.conv8(l8) + self.conv7(l7))
        x = _up(self.adapt4(self.crp4(x)), l6)
        x = self.relu(self.conv5(l5) + self.conv6(l6) + x)
        x = _up(self.adapt3(self.crp3(x)), l4)
        x = self.relu(self.conv4(l4) + x)
        x = _up(self.adapt2(self.crp2(x)), l3)
        x = self.relu(self.conv3(l3) + x)
        return self.crp1(x)

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.decode(self.encoder.forward_features(x))
        return {t: head(shared) for t, head in self.heads.items()}


MODELS.register("mt_refinenet")(MTLWRefineNet)
