"""The backbone contract: a stage table, :class:`FeatureInfo` and the stage API.

Absorbed from timm's ``FeatureInfo`` / ``FeatureListNet`` (``timm/models/_features.py``), written
for our backbones: a backbone is a sequence of **stages** (stage 0 = the first stage, e.g. ResNet's
``conv1 + bn1 + relu`` at stride 2), each a run of top-level modules named in a :class:`Stage`
with its output channels, reduction (cumulative stride) and dilation. From that table:

* ``feature_info`` (:class:`FeatureInfo`) describes the levels ``forward_features`` returns (the
  stages in ``out_indices``): ``channels()``, ``reduction()``, ``module_name()``, lookup of a level
  by stride (``index_of_stride``) and of a stage by name, index or stride (``stage_index``); each
  entry also reads as timm's ``dict(num_chs=..., reduction=..., module=...)``;
* :class:`StageBackbone` runs a stage on its own (``forward_stage(i, x)``), lists its blocks
  (``stage_blocks(i)``) and their output channels, and can drop trailing stages
  (``remove_stages``), so architectures that work between stages (cross-stitch, NDDR, MTAN,
  MTL_SPP) never touch ResNet or MobileNet internals. Supported output strides (dilation instead of
  striding) are declared in ``output_strides``.

Residual blocks of every backbone expose ``branch(x)`` (the residual branch) and
``merge(y, x)`` (``y`` + shortcut, then the block's activation), so a block can be re-wired
(e.g. squeeze-and-excitation on the branch, SE-ResNet) without knowing its layers.

Architectures state what they need and :func:`refuse` turns a mismatch into a one-line
:class:`~densemtl.errors.ConfigError` naming the model and the backbone when the model is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, overload

from torch import Tensor, nn

from densemtl.errors import ConfigError

__all__ = ["FeatureInfo", "Stage", "StageBackbone", "backbone_name", "refuse"]


@dataclass(frozen=True)
class Stage:
    """One stage: the top-level ``modules`` run in order, and what comes out of them."""

    name: str
    modules: tuple[str, ...]
    num_chs: int
    reduction: int
    dilation: int = 1

    def info(self) -> dict[str, Any]:
        """timm's per-level dict: channels, reduction and the name of the module tapped."""
        return {"num_chs": self.num_chs, "reduction": self.reduction, "module": self.modules[-1]}


class FeatureInfo(Sequence[dict]):
    """The levels ``forward_features`` returns (``out_indices`` of the stage table).

    Indexing and iteration give timm-style dicts, so ``info[0]["num_chs"]`` works; equality holds
    with another :class:`FeatureInfo` or a list of such dicts.
    """

    def __init__(self, stages: Sequence[Stage], out_indices: Sequence[int]) -> None:
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.out_indices: tuple[int, ...] = tuple(int(i) for i in out_indices)

    @overload
    def __getitem__(self, index: int) -> dict: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict]: ...
    def __getitem__(self, index: int | slice) -> dict | list[dict]:
        if isinstance(index, slice):
            return [self.stages[i].info() for i in self.out_indices[index]]
        return self.stages[self.out_indices[index]].info()

    def __len__(self) -> int:
        return len(self.out_indices)

    def __iter__(self) -> Iterator[dict]:
        return (self.stages[i].info() for i in self.out_indices)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FeatureInfo | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FeatureInfo({list(self)})"

    def channels(self) -> list[int]:
        """Output channels of each returned level."""
        return [self.stages[i].num_chs for i in self.out_indices]

    def reduction(self) -> list[int]:
        """Stride (input size / map size) of each returned level."""
        return [self.stages[i].reduction for i in self.out_indices]

    def module_name(self) -> list[str]:
        """Name of the module whose output each returned level is."""
        return [self.stages[i].modules[-1] for i in self.out_indices]

    def index_of_stride(self, stride: int) -> int:
        """Index (into the returned levels) of the deepest level at ``stride``."""
        hits = [k for k, r in enumerate(self.reduction()) if r == stride]
        if not hits:
            raise ConfigError(f"no feature level at stride {stride}; strides are {self.reduction()}")
        return hits[-1]

    def stage_index(self, key: int | str) -> int:
        """A stage by index (negative from the end), stage name or name of its last module."""
        n = len(self.stages)
        if isinstance(key, int):
            if not -n <= key < n:
                raise ConfigError(f"stage {key} out of range: the backbone has {n} stages")
            return key % n
        for i, stage in enumerate(self.stages):
            if key in (stage.name, stage.modules[-1]):
                return i
        names = ", ".join(s.name for s in self.stages)
        raise ConfigError(f"unknown stage {key!r}; the backbone's stages are {names} (or 0..{n - 1})")


def _block_channels(module: nn.Module, previous: int) -> int:
    """Output channels of a block: its ``out_channels`` / ``num_features``, else its input's."""
    for attr in ("out_channels", "num_features"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return previous


class StageBackbone(nn.Module):
    """Stage API shared by the backbones; a subclass calls :meth:`_set_stages` in ``__init__``.

    Nothing here is a submodule, so state-dict keys stay torchvision's.
    """

    #: output strides the backbone can be built with (the others are refused)
    output_strides: ClassVar[tuple[int, ...]] = (32,)
    #: registry name, set by :func:`densemtl.models.backbones.build_backbone`
    backbone_name: str = ""

    def _set_stages(self, stages: Sequence[Stage], out_indices: Sequence[int]) -> None:
        self._stages = tuple(stages)
        self._num_stages = len(self._stages)
        #: the levels returned by forward_features (see FeatureInfo)
        self.feature_info = FeatureInfo(self._stages, out_indices)

    @property
    def num_stages(self) -> int:
        """Stages that can be run (all, unless :meth:`remove_stages` dropped trailing ones)."""
        return self._num_stages

    @property
    def output_stride(self) -> int:
        return self._stages[-1].reduction

    def _check_stage(self, index: int) -> int:
        if not 0 <= index < self._num_stages:
            raise IndexError(f"stage {index} is not available (stages 0..{self._num_stages - 1})")
        return index

    def stage_blocks(self, index: int) -> list[nn.Module]:
        """The modules of stage ``index`` in order, plain ``nn.Sequential`` containers unrolled."""
        blocks: list[nn.Module] = []
        for name in self._stages[self._check_stage(index)].modules:
            module = self.get_submodule(name)
            blocks.extend(module if type(module) is nn.Sequential else [module])
        return blocks

    def stage_block_channels(self, index: int) -> list[int]:
        """Output channels after each block of :meth:`stage_blocks` (``index``)."""
        channels = self._stages[index - 1].num_chs if index > 0 else 3
        out = []
        for block in self.stage_blocks(index):
            channels = _block_channels(block, channels)
            out.append(channels)
        return out

    def stage_parameters(self, index: int) -> list[nn.Parameter]:
        return [p for block in self.stage_blocks(index) for p in block.parameters()]

    def forward_stage(self, index: int, x: Tensor) -> Tensor:
        """Run stage ``index`` alone on the output of stage ``index - 1`` (the image for 0)."""
        for name in self._stages[self._check_stage(index)].modules:
            x = self.get_submodule(name)(x)
        return x

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Feature maps at the levels of ``feature_info`` (the stages in ``out_indices``)."""
        wanted = self.feature_info.out_indices
        feats: list[Tensor] = []
        for i in range(max(wanted) + 1):
            x = self.forward_stage(i, x)
            if i in wanted:
                feats.append(x)
        return feats

    def remove_stages(self, start: int) -> None:
        """Replace the modules of stages ``start..`` with ``nn.Identity`` (their parameters go).

        For architectures that copy trailing stages per task; the shared copies are never run.
        """
        for stage in self._stages[start:]:
            for name in stage.modules:
                parent, _, child = name.rpartition(".")
                setattr(self.get_submodule(parent) if parent else self, child, nn.Identity())
        self._num_stages = min(self._num_stages, start)


def backbone_name(encoder: nn.Module) -> str:
    return getattr(encoder, "backbone_name", "") or type(encoder).__name__


def refuse(model: str, encoder: nn.Module, why: str) -> ConfigError:
    """The one-line error for an architecture that cannot use ``encoder``."""
    return ConfigError(f"{model} cannot use backbone {backbone_name(encoder)}: {why}")
