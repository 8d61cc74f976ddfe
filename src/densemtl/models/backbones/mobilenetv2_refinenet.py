"""The MobileNet-v2 variant of Multi-Task Light-Weight RefineNet (Nekrasov et al., ICRA 2019).

The authors' encoder (DrSleep/multi-task-refinenet ``src/models.py``) differs from torchvision's
:class:`~densemtl.models.backbones.mobilenetv2.MobileNetV2` in two ways only:

* the first inverted residual (expansion t = 1, 32 -> 16) **keeps its 1x1 expansion conv**
  (32 -> 32, + BN + ReLU6: 1,088 extra parameters), where torchvision drops it;
* there is **no final 1x1 conv to 1280 channels** and no classifier.

Everything else (3x3 stride-2 stem 3 -> 32, the seven ``(t, c, n, s)`` stages, BN eps 1e-5, ReLU6,
linear bottlenecks, residual iff ``stride == 1 and cin == cout``) is torchvision's. Module names
follow torchvision (``features.0`` ... ``features.17``), so ImageNet checkpoints map with one rename:
torchvision's ``features.1.conv.{0,1,2}`` (depthwise ConvBNReLU6, project conv, project BN) become
``features.1.conv.{1,2,3}`` here; see :func:`map_torchvision_state_dict`.

**ImageNet initialisation** (:func:`load_imagenet`): every torchvision tensor is copied; the one
layer torchvision lacks, the t = 1 block's 1x1 expansion conv, is initialised as the **identity**
(weight = I, BN weight 1, bias 0, running mean 0, running var 1 - eps). Its input is the stem's ReLU6
output (already in [0, 6]), so the ReLU6 after it is the identity too and the loaded encoder computes
exactly torchvision's ImageNet features (up to float rounding of ``sqrt(1 - eps + eps)``).

Registered as backbone ``mobilenet_v2_refinenet``. Its six stages (stage API of
:mod:`densemtl.models.backbones.features`) end at the maps the decoder taps, the authors'
``l3 .. l8``, and ``forward_features`` returns all six by default::

    stage  authors  modules            channels  reduction
    0      l3       features.0 .. 3    24        4
    1      l4       features.4 .. 6    32        8
    2      l5       features.7 .. 10   64        16
    3      l6       features.11 .. 13  96        16
    4      l7       features.14 .. 16  160       32
    5      l8       features.17        320       32

No dilation (output stride 32 only): the authors' network has none.

Encoder parameters: 1,812,800 (torchvision's ``features.0..17``: 1,811,712, + 1,088).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from densemtl.errors import ConfigError
from densemtl.models.backbones.features import StageBackbone
from densemtl.models.backbones.mobilenetv2 import INVERTED_RESIDUAL_SETTING, ConvBNReLU6, features_stages

__all__ = [
    "RefineNetInvertedResidual",
    "RefineNetMobileNetV2",
    "identity_expansion_state",
    "load_imagenet",
    "map_torchvision_state_dict",
    "mobilenet_v2_refinenet",
]

#: features index after which each decoder level is tapped (l3 .. l8)
TAPS = (3, 6, 10, 13, 16, 17)
#: torchvision key prefix -> this variant's, for the t = 1 block (the only renamed module)
_T1_RENAMES = {
    "features.1.conv.0.": "features.1.conv.1.",
    "features.1.conv.1.": "features.1.conv.2.",
    "features.1.conv.2.": "features.1.conv.3.",
}
#: state-dict prefix of the module torchvision does not have
EXPANSION_PREFIX = "features.1.conv.0."


class RefineNetInvertedResidual(nn.Module):
    """Inverted residual that always has the 1x1 expansion conv (also for t = 1), as the authors'."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            ConvBNReLU6(inp, hidden, kernel_size=1),
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )
        self.out_channels = oup

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch (expand, depthwise, linear projection)."""
        return self.conv(x)

    def merge(self, out: Tensor, x: Tensor) -> Tensor:
        """``x + out`` where the block is residual, else ``out``."""
        return x + out if self.use_res_connect else out

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(self.branch(x), x)


class RefineNetMobileNetV2(StageBackbone):
    """The authors' MobileNet-v2 encoder (feature extractor only; see the module docstring).

    Random initialisation is torchvision's (Kaiming-normal fan-out convs, BN (1, 0)): the authors'
    N(0, 0.01) makes an eval-mode encoder's features vanish (~1e-29 at l8) and is always overwritten by
    ImageNet weights in their setup anyway. Load ImageNet weights with ``weights=path`` (torchvision
    key layout) or :func:`load_imagenet`. ``out_indices`` picks the returned stages (default all six).
    """

    def __init__(self, weights: str | Path | None = None, out_indices: Sequence[int] = range(6)) -> None:
        super().__init__()
        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(i not in range(len(TAPS)) for i in out_indices):
            raise ConfigError(
                f"mobilenet_v2_refinenet out_indices must be a non-empty subset of 0..5, got {out_indices}"
            )
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(RefineNetInvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*layers)
        channels = [32] + [c for _, c, n, _ in INVERTED_RESIDUAL_SETTING for _ in range(n)]
        reductions, r = [2], 2
        for _, _, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                r *= s if i == 0 else 1
                reductions.append(r)
        self._set_stages(features_stages(TAPS, channels, reductions, [1] * len(channels)), out_indices)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if weights is not None:
            load_imagenet(self, weights)

    def forward(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        return self.forward_features(x)


def mobilenet_v2_refinenet(
    weights: str | Path | None = None,
    features_only: bool = True,
    output_stride: int = 32,
    out_indices: Sequence[int] = range(6),
) -> RefineNetMobileNetV2:
    """The Multi-Task Light-Weight RefineNet encoder (1,812,800 parameters), a feature extractor only.

    ``weights`` is a torchvision-layout ImageNet MobileNet-v2 checkpoint (see :func:`load_imagenet`).
    """
    if not features_only:
        raise ConfigError("mobilenet_v2_refinenet has no classifier: features_only must be true")
    if output_stride not in RefineNetMobileNetV2.output_strides:
        raise ConfigError(f"mobilenet_v2_refinenet supports output_stride 32 only, got {output_stride}")
    return RefineNetMobileNetV2(weights, out_indices)


def map_torchvision_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a torchvision ``mobilenet_v2`` state dict to this variant's keys.

    ``features.1.conv.{0,1,2}.*`` shift to ``features.1.conv.{1,2,3}.*``; ``features.18.*`` (the 1280
    conv) and ``classifier.*`` are dropped; every other key is kept as is. The identity expansion
    conv is *not* added here (see :func:`identity_expansion_state`).
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(("features.18.", "classifier.")):
            continue
        for old, new in _T1_RENAMES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def identity_expansion_state(channels: int = 32, eps: float = 1e-5) -> dict[str, Tensor]:
    """State of the t = 1 block's 1x1 expansion ConvBNReLU6 that makes it the identity map."""
    return {
        EXPANSION_PREFIX + "0.weight": torch.eye(channels).view(channels, channels, 1, 1),
        EXPANSION_PREFIX + "1.weight": torch.ones(channels),
        EXPANSION_PREFIX + "1.bias": torch.zeros(channels),
        EXPANSION_PREFIX + "1.running_mean": torch.zeros(channels),
        EXPANSION_PREFIX + "1.running_var": torch.full((channels,), 1.0 - eps),
        EXPANSION_PREFIX + "1.num_batches_tracked": torch.tensor(0),
    }


def load_imagenet(encoder: RefineNetMobileNetV2, source: str | Path | Mapping[str, Tensor]) -> list[str]:
    """Load torchvision-layout ImageNet MobileNet-v2 weights (a file path or a state dict).

    Every encoder tensor must come from ``source`` except the t = 1 expansion conv, which is set to
    the identity (see the module docstring). Missing / unexpected / mis-shaped keys raise
    :class:`~densemtl.errors.DataError` (through :func:`densemtl.models.backbones.weights.load_pretrained` for
    files). Returns the keys loaded from ``source``.
    """
    from densemtl.errors import DataError

    if isinstance(source, Mapping):
        sd = map_torchvision_state_dict(source)
        where: str | Path = "state dict"
    else:
        from densemtl.models.backbones.weights import load_state_dict_file

        sd = map_torchvision_state_dict(load_state_dict_file(source))
        where = source
    bn = encoder.features[1].conv[0][1]
    sd.update(identity_expansion_state(encoder.features[1].conv[0][0].in_channels, bn.eps))
    own = encoder.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    mismatched = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = [
            f"{name}: {', '.join(keys[:5])}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched))
            if keys
        ]
        raise DataError(
            Path(str(where)), "is not a torchvision MobileNet-v2 state dict (" + "; ".join(parts) + ")"
        )
    encoder.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    return [k for k in sd if not k.startswith(EXPANSION_PREFIX)]
