"""ResNet-18/34/50/101 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Pure PyTorch, written to be a drop-in for torchvision's ``torchvision.models.resnet``: the module
tree, the state-dict keys and shapes (``conv1``, ``bn1``, ``layer1.0.conv1`` ... ``fc``), the weight
initialisation and ``forward`` (ImageNet logits) are identical, so any torchvision ResNet checkpoint
file loads as-is. On top of that each network exposes the stage API of
:mod:`densemtl.models.backbones.features` (``docs/backbones.md``), five stages::

    stage  name                 modules              channels     reduction (output stride 32)
    0      conv                 conv1, bn1, relu     64           2
    1      layer1_without_conv  maxpool, layer1      64 x e       4
    2      layer2               layer2               128 x e      8
    3      layer3               layer3               256 x e      16
    4      layer4               layer4               512 x e      32

(``e`` = 1 for ResNet-18/34, 4 for 50/101; the stage names are those of Vandenhende et al.'s ResNet
wrappers, which the cross-stitch / NDDR state-dict keys use);

* ``feature_info``: the returned levels, by default stages 1..4 (strides 4, 8, 16, 32; with dilation
  the later strides stay at the output stride, e.g. output stride 8 gives 4, 8, 8, 8);
* ``forward_features(x)``: the list of feature maps at those levels.

``replace_stride_with_dilation`` (torchvision's argument) or the shorter ``output_stride`` turns the
stride-2 of ``layer2`` / ``layer3`` / ``layer4`` into dilation, as in DeepLab (Chen et al. 2017) and
the dilated ResNet-50 encoders of the Luo & Ye (2023) NYUD-v2 table's models. Unlike torchvision, ``BasicBlock`` (ResNet-18
/ 34) supports dilation too; dilation adds no parameter so checkpoints still load.

``features_only=True`` builds the network without ``avgpool`` / ``fc`` (no unused parameters for
DDP); ``forward`` then returns ``forward_features(x)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from densemtl.errors import ConfigError
from densemtl.models.backbones.features import Stage, StageBackbone

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding (keeps the size at stride 1 for any dilation)."""
    return nn.Conv2d(
        in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (ResNet-18 / 34).

    ``first_dilation`` is the dilation of ``conv1`` (the possibly strided conv) and ``dilation`` that
    of ``conv2``; when a stage's stride is replaced with dilation its first block keeps the previous
    dilation in ``conv1`` (where the stride used to be) and uses the new one after it.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        first_dilation: int | None = None,
    ) -> None:
        super().__init__()
        first_dilation = first_dilation or dilation
        self.conv1 = conv3x3(inplanes, planes, stride, first_dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.out_channels = planes

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch (before the addition)."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def merge(self, out: Tensor, x: Tensor) -> Tensor:
        """``relu(out + shortcut(x))``."""
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(self.branch(x), x)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck with the stride on the 3x3 conv (ResNet-50 / 101, "ResNet v1.5").

    ``first_dilation`` is the dilation of ``conv2`` in the first block of a dilated stage (see
    :class:`BasicBlock`); the 1x1 convs are unaffected by dilation.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
        first_dilation: int | None = None,
    ) -> None:
        super().__init__()
        first_dilation = first_dilation or dilation
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, first_dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.out_channels = planes * self.expansion

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch (before the addition)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def merge(self, out: Tensor, x: Tensor) -> Tensor:
        """``relu(out + shortcut(x))``."""
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(self.branch(x), x)


def _dilation_flags(
    replace_stride_with_dilation: Sequence[bool] | None, output_stride: int | None
) -> list[bool]:
    if output_stride is not None:
        table = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}
        if output_stride not in table:
            raise ConfigError(f"resnet output_stride must be 8, 16 or 32, got {output_stride}")
        flags = table[output_stride]
        if replace_stride_with_dilation is not None and list(replace_stride_with_dilation) != flags:
            raise ConfigError(
                f"resnet: output_stride={output_stride} contradicts "
                f"replace_stride_with_dilation={list(replace_stride_with_dilation)}; give one of them"
            )
        return flags
    if replace_stride_with_dilation is None:
        return [False, False, False]
    flags = [bool(f) for f in replace_stride_with_dilation]
    if len(flags) != 3:
        raise ConfigError(
            f"replace_stride_with_dilation must have 3 entries (layer2, layer3, layer4), got {flags}"
        )
    return flags


class ResNet(StageBackbone):
    """ResNet (He et al. 2016) with torchvision's module names, init and ``forward``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in ``layer1`` .. ``layer4``.
        num_classes: size of the ``fc`` classifier.
        replace_stride_with_dilation: three flags (layer2, layer3, layer4), as in torchvision.
        output_stride: 32, 16 or 8, a shorthand for the flags above.
        zero_init_residual: zero the last BN of each block (torchvision's option; off by default).
        features_only: build without ``avgpool`` / ``fc``; ``forward`` returns ``forward_features``.
        out_indices: levels returned by ``forward_features``: 0 = stem (after ``relu``, stride 2,
            64 channels), 1..4 = ``layer1`` .. ``layer4`` (timm's numbering). Default (1, 2, 3, 4).
    """

    output_strides = (8, 16, 32)

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        replace_stride_with_dilation: Sequence[bool] | None = None,
        output_stride: int | None = None,
        zero_init_residual: bool = False,
        features_only: bool = False,
        out_indices: Sequence[int] = (1, 2, 3, 4),
    ) -> None:
        super().__init__()
        flags = _dilation_flags(replace_stride_with_dilation, output_stride)
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i not in range(5) for i in out_indices):
            raise ConfigError(f"resnet out_indices must be a non-empty subset of 0..4, got {out_indices}")
        self.out_indices = out_indices
        self.features_only = features_only
        self.inplanes = 64
        self.dilation = 1

        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=flags[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=flags[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=flags[2])
        #: state-dict prefixes of the torchvision network this instance does not build
        self.dropped_prefixes: tuple[str, ...] = ()
        if features_only:
            self.dropped_prefixes = ("fc.",)
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

        e = block.expansion
        reductions, dilations = [2, 4], [1, 1]
        for dilate in flags:
            reductions.append(reductions[-1] if dilate else reductions[-1] * 2)
            dilations.append(dilations[-1] * 2 if dilate else dilations[-1])
        self._set_stages(
            [
                Stage("conv", ("conv1", "bn1", "relu"), 64, 2),
                Stage("layer1_without_conv", ("maxpool", "layer1"), 64 * e, 4),
            ]
            + [
                Stage(f"layer{i}", (f"layer{i}",), c * e, reductions[i], dilations[i])
                for i, c in ((2, 128), (3, 256), (4, 512))
            ],
            out_indices,
        )
        self.num_features = 512 * e

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: list[nn.Module] = [
            block(
                self.inplanes,
                planes,
                stride,
                downsample,
                dilation=self.dilation,
                first_dilation=previous_dilation,
            )
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dilation=self.dilation))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:  # type: ignore[override]
        """ImageNet logits ``[B, num_classes]`` as torchvision; the feature list if ``features_only``."""
        if self.features_only:
            return self.forward_features(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _resnet(
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    weights: str | Path | None,
    num_classes: int,
    replace_stride_with_dilation: Sequence[bool] | None,
    **kwargs: object,
) -> ResNet:
    model = ResNet(
        block,
        layers,
        num_classes=num_classes,
        replace_stride_with_dilation=replace_stride_with_dilation,
        **kwargs,  # type: ignore[arg-type]
    )
    if weights is not None:
        from densemtl.models.backbones.weights import load_pretrained

        load_pretrained(model, weights)
    return model


def resnet18(
    weights: str | Path | None = None,
    num_classes: int = 1000,
    replace_stride_with_dilation: Sequence[bool] | None = None,
    **kwargs: object,
) -> ResNet:
    """ResNet-18 (He et al. 2016): 11,689,512 parameters with the 1000-class head.

    ``weights`` is the path of a local checkpoint (``.pth`` / ``.pt`` / ``.safetensors``, e.g.
    torchvision's ``resnet18-f37072fd.pth``); nothing is ever downloaded. Other keyword arguments
    (``output_stride``, ``features_only``, ``out_indices``, ``zero_init_residual``) go to :class:`ResNet`.
    """
    return _resnet(BasicBlock, [2, 2, 2, 2], weights, num_classes, replace_stride_with_dilation, **kwargs)


def resnet34(
    weights: str | Path | None = None,
    num_classes: int = 1000,
    replace_stride_with_dilation: Sequence[bool] | None = None,
    **kwargs: object,
) -> ResNet:
    """ResNet-34 (He et al. 2016): 21,797,672 parameters with the 1000-class head. See :func:`resnet18`."""
    return _resnet(BasicBlock, [3, 4, 6, 3], weights, num_classes, replace_stride_with_dilation, **kwargs)


def resnet50(
    weights: str | Path | None = None,
    num_classes: int = 1000,
    replace_stride_with_dilation: Sequence[bool] | None = None,
    **kwargs: object,
) -> ResNet:
    """ResNet-50 (He et al. 2016; stride on the 3x3 conv, "v1.5", as torchvision): 25,557,032 parameters.

    See :func:`resnet18`.
    """
    return _resnet(Bottleneck, [3, 4, 6, 3], weights, num_classes, replace_stride_with_dilation, **kwargs)


def resnet101(
    weights: str | Path | None = None,
    num_classes: int = 1000,
    replace_stride_with_dilation: Sequence[bool] | None = None,
    **kwargs: object,
) -> ResNet:
    """ResNet-101 (He et al. 2016; "v1.5", as torchvision): 44,549,160 parameters. See :func:`resnet18`."""
    return _resnet(Bottleneck, [3, 4, 23, 3], weights, num_classes, replace_stride_with_dilation, **kwargs)
