"""XTasC-Net: cross-task consistency learning (Nakano, Chen & Demachi, arXiv 2111.14122).

Exact re-implementation of the authors' ``model/xtask_ts.py`` + ``model/transfer_net.py``
(github.com/akarimoon/xtask_mt; spec in methods.md §3.1):

* ResNet encoder (18/34/50/101, default 34) split as ``layer0 = conv1+bn1+relu`` (1/2),
  ``layer1`` (with the max-pool, 1/4) .. ``layer4`` (1/32);
* two task decoders (not shared), each five :class:`ConvBlock` (three 3x3 conv(bias)-BN-ReLU at
  128 channels, then bilinear x2 with ``align_corners=True``) with U-Net skips to the encoder
  levels, and a 1x1 bias-free head; depth output unconstrained (``depth_activation="identity"``);
* two task-transfer networks (training only): ``s2d`` maps ``LogSoftmax(seg logits)`` to depth,
  ``d2s`` maps the depth prediction to segmentation logits.

The depth-like task is ``depth`` (metres, or the legacy disparity-under-``depth`` target) or
``disparity`` (:mod:`densemtl.tasks.disparity`); its decoder keeps the module key ``"depth"`` either
way, so state dicts do not depend on the task name.

In training mode (and unless ``direct_only``) :meth:`forward` also returns ``"depth:transfer"``
(= s2d(seg)) and ``"semseg:transfer"`` (= d2s(depth)) (``"disparity:transfer"`` for the
``disparity`` task); with ``return_transfer`` also in eval mode, where the transfer networks run
with their BatchNorm in eval mode, as in the authors' validation. :meth:`auxiliary_terms` scores them in the
``xtsc`` (against the detached direct predictions) or ``xtc`` (against ground truth) mode. The
L_label / L_image grouping and the uncertainty weighting over the two groups live in the
``xtasc_groups`` weighting (``densemtl/weighting/xtasc_groups.py``).

Parameter counts (all parameters, transfer nets included, no weighting scalars): R34 Cityscapes-7
31,553,344; R34 NYU-13 31,557,952; R18 CS-7 21,445,184; R50 CS-7 40,412,224.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from densemtl.losses.compose import AuxiliaryTerm
from densemtl.losses.xtasc import VARIANTS
from densemtl.models import MODELS, build_encoder
from densemtl.models.backbones.features import refuse
from densemtl.models.base import MultiTaskModel
from densemtl.tasks import get_task

TRANSFER_MODES = ("xtsc", "xtc")
#: The depth-like tasks XTasC-Net pairs with ``semseg``.
DEPTH_TASKS = ("depth", "disparity")


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class ConvBlock(nn.Module):
    """[3x3 conv cin->mid, BN, ReLU] -> [3x3 mid->mid, BN, ReLU] -> [3x3 mid->cout, BN, ReLU] -> x2 up."""

    def __init__(self, in_channels: int, out_channels: int, mid: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in ((in_channels, mid), (mid, mid), (mid, out_channels)):
            layers += [nn.Conv2d(a, b, 3, padding=1, bias=True), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _up2(self.block(x))


class XTaskDecoder(nn.Module):
    """The authors' ``DecoderSequential``: five ConvBlocks with skips, then a 1x1 head without bias.

    ``enc_channels`` are the channels of ``layer0`` .. ``layer4``.
    """

    def __init__(self, enc_channels: list[int], out_channels: int, mid: int = 128) -> None:
        super().__init__()
        c0, c1, c2, c3, c4 = enc_channels
        self.d4 = ConvBlock(c4, mid, mid)
        self.d3 = ConvBlock(mid + c3, mid, mid)
        self.d2 = ConvBlock(mid + c2, mid, mid)
        self.d1 = ConvBlock(mid + c1, mid, mid)
        self.d0 = ConvBlock(mid + c0, mid, mid)
        self.head = nn.Conv2d(mid, out_channels, 1, bias=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        e0, e1, e2, e3, e4 = feats
        x = self.d4(e4)
        x = self.d3(torch.cat([x, e3], 1))
        x = self.d2(torch.cat([x, e2], 1))
        x = self.d1(torch.cat([x, e1], 1))
        x = self.d0(torch.cat([x, e0], 1))
        return self.head(x)


def _tt_convs(a: int, b: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for cin in (a, b):
        layers.append(nn.Conv2d(cin, b, 3, padding=1, bias=True))
        if batch_norm:
            layers.append(nn.BatchNorm2d(b))
        layers.append(nn.ReLU(inplace=True))
    return layers


class TTDown(nn.Sequential):
    def __init__(self, a: int, b: int, batch_norm: bool = False) -> None:
        super().__init__(*_tt_convs(a, b, batch_norm), nn.MaxPool2d(2))


class TTUp(nn.Module):
    """Bilinear x2 (align_corners=True) then two 3x3 conv-(BN)-ReLU.

    BN only with ``--batch_norm``: the authors' count with it (31,558,976 for R34 CS-7) implies BN
    in the up blocks too.
    """

    def __init__(self, a: int, b: int, batch_norm: bool = False) -> None:
        super().__init__()
        self.convs = nn.Sequential(*_tt_convs(a, b, batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(_up2(x))


class TaskTransferNet(nn.Module):
    """The authors' ``TaskTransferNetWithSkipCN``: 3 downs (64, 128, 256), 3 ups with skips, 1x1 out.

    With ``out_channels == 1`` (seg -> depth) the input logits go through ``LogSoftmax`` first.
    Input height and width must be multiples of 8.
    """

    def __init__(
        self, in_channels: int, out_channels: int, batch_norm: bool = False, wider: bool = False
    ) -> None:
        super().__init__()
        f1, f2, f3 = (128, 256, 512) if wider else (64, 128, 256)
        self.log_softmax_input = out_channels == 1
        self.down1 = TTDown(in_channels, f1, batch_norm)
        self.down2 = TTDown(f1, f2, batch_norm)
        self.down3 = TTDown(f2, f3, batch_norm)
        self.up3 = TTUp(f3, f2, batch_norm)
        self.up2 = TTUp(f2 + f2, f1, batch_norm)
        self.up1 = TTUp(f1 + f1, f1, batch_norm)
        self.out = nn.Conv2d(f1, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.log_softmax_input:
            x = F.log_softmax(x, dim=1)
        e1 = self.down1(x)
        e2 = self.down2(e1)
        e3 = self.down3(e2)
        o = self.up3(e3)
        o = self.up2(torch.cat([o, e2], 1))
        o = self.up1(torch.cat([o, e1], 1))
        return self.out(o)


def _init_xavier(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class XTasCNet(MultiTaskModel):
    """XTasC-Net for ``semseg`` + ``depth`` (or ``disparity``).

    Args:
        tasks: exactly ``{"semseg": C, "depth": 1}`` or ``{"semseg": C, "disparity": 1}``.
        backbone: ResNet name or spec (``resnet34`` default; ``{"name": ..., "weights": path}``
            for ImageNet weights, the authors' ``--use_pretrain``).
        decoder_channels: decoder width (128).
        batch_norm_ttnet / wider_ttnet: the authors' ``--batch_norm`` / ``--wider_ttnet``.
        direct_only: never run the transfer nets (in eval mode they run only with ``return_transfer``).
        transfer_loss: ``xtsc`` (cross-task consistency vs. the detached direct prediction,
            default) or ``xtc`` (transferred prediction vs. ground truth).
        label_smoothing: epsilon of the ``xtsc`` pseudo-label CE (true class 1-eps, others eps/(C-1)).
        seg_consistency: ``ce`` (default) or ``kl`` (KLDiv batchmean to the smoothed one-hot).
        depth_consistency: ``l1`` (default) or ``ssim`` for the ``xtsc`` depth term.
        ssim_variant / kl_variant: ``corrected`` (default) or ``authors`` (the authors' SSIM /
            KL reductions, quirks included; :mod:`densemtl.losses.xtasc`).
        consistency_mask: ``gt`` (Cityscapes: valid GT pixels) or ``none`` (the authors' NYU, all ones).
        depth_activation: ``identity`` (the authors' unconstrained output) by default.
        disparity_activation: the same for the ``disparity`` task (``identity`` by default).
        return_transfer: also return the transfer outputs in eval mode (the authors' plots).
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str | Mapping[str, Any] = "resnet34",
        decoder_channels: int = 128,
        batch_norm_ttnet: bool = False,
        wider_ttnet: bool = False,
        direct_only: bool = False,
        transfer_loss: str = "xtsc",
        label_smoothing: float = 0.0,
        seg_consistency: str = "ce",
        depth_consistency: str = "l1",
        consistency_mask: str = "gt",
        depth_activation: str = "identity",
        ssim_variant: str = "corrected",
        kl_variant: str = "corrected",
        disparity_activation: str = "identity",
        return_transfer: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, depth_activation=depth_activation, **kwargs)
        depth_task = next((t for t in self.tasks if t in DEPTH_TASKS), None)
        if depth_task is None or set(self.tasks) != {"semseg", depth_task} or self.tasks[depth_task] != 1:
            raise ValueError(
                f"xtasc_net needs tasks semseg and depth or disparity (1 channel), got {self.tasks}"
            )
        if ssim_variant not in VARIANTS or kl_variant not in VARIANTS:
            raise ValueError(f"ssim_variant and kl_variant must be one of {VARIANTS}")
        if transfer_loss not in TRANSFER_MODES:
            raise ValueError(f"transfer_loss must be one of {TRANSFER_MODES}, got {transfer_loss!r}")
        if seg_consistency not in ("ce", "kl") or depth_consistency not in ("l1", "ssim"):
            raise ValueError("seg_consistency must be ce|kl and depth_consistency l1|ssim")
        if consistency_mask not in ("gt", "none"):
            raise ValueError(f"consistency_mask must be gt or none, got {consistency_mask!r}")
        spec = {"name": backbone} if isinstance(backbone, str) else dict(backbone)
        spec["out_indices"] = (0, 1, 2, 3, 4)
        self.encoder = build_encoder(spec)
        if self.encoder.feature_info.reduction() != [2, 4, 8, 16, 32]:
            raise refuse(
                "xtasc_net",
                self.encoder,
                "its decoders need five levels at strides 2, 4, 8, 16, 32 (out_indices 0..4), "
                f"it has {self.encoder.feature_info.reduction()}",
            )
        enc = self.encoder.feature_info.channels()
        classes = self.tasks["semseg"]
        self.decoders = nn.ModuleDict(
            {
                "semseg": XTaskDecoder(enc, classes, decoder_channels),
                "depth": XTaskDecoder(enc, 1, decoder_channels),
            }
        )
        self.transfer = nn.ModuleDict(
            {
                "s2d": TaskTransferNet(classes, 1, batch_norm_ttnet, wider_ttnet),
                "d2s": TaskTransferNet(1, classes, batch_norm_ttnet, wider_ttnet),
            }
        )
        _init_xavier(self.decoders)
        _init_xavier(self.transfer)
        self.direct_only = direct_only
        self.transfer_loss = transfer_loss
        self.label_smoothing = float(label_smoothing)
        self.seg_consistency = seg_consistency
        self.depth_consistency = depth_consistency
        self.consistency_mask = consistency_mask
        self.ssim_variant, self.kl_variant = ssim_variant, kl_variant
        self.depth_task = depth_task
        self.disparity_activation = disparity_activation
        self.return_transfer = return_transfer

    def inference_parameters(self) -> int:
        """Parameters used at inference (encoder + decoders; transfer nets excluded)."""
        transfer = sum(p.numel() for p in self.transfer.parameters())
        return sum(p.numel() for p in self.parameters()) - transfer

    def postprocess(self, task: str, output: torch.Tensor) -> torch.Tensor:
        if task.partition(":")[0] == "disparity":
            return get_task("disparity").activate(output, disparity_activation=self.disparity_activation)
        return super().postprocess(task, output)

    def forward_tasks(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder.forward_features(x)
        seg = self.decoders["semseg"](feats)
        depth = self.decoders["depth"](feats)
        d = self.depth_task
        out = {"semseg": seg, d: depth}
        if (self.returns_auxiliary or self.return_transfer) and not self.direct_only:
            out[f"{d}:transfer"] = self.transfer["s2d"](seg)
            out["semseg:transfer"] = self.transfer["d2s"](self.postprocess(d, depth))
        return out

    def auxiliary_terms(self) -> dict[str, AuxiliaryTerm]:
        """``depth:transfer`` (L_tdep) and ``semseg:transfer`` (L_tseg), methods.md §3.2.

        ``xtc``: the task losses against ground truth. ``xtsc``: consistency with the detached
        direct predictions (L1 or SSIM for depth; hard pseudo-label CE or KL for segmentation),
        masked by the valid ground-truth pixels unless ``consistency_mask="none"``.
        """
        if self.direct_only:
            return {}
        d = self.depth_task
        if self.transfer_loss == "xtc":
            return {f"{d}:transfer": AuxiliaryTerm(d), "semseg:transfer": AuxiliaryTerm("semseg")}
        masked = self.consistency_mask != "none"
        depth_loss = {
            "name": "xtasc_depth_consistency",
            "kind": self.depth_consistency,
            "variant": self.ssim_variant,
        }
        seg_loss = {
            "name": "xtasc_seg_consistency",
            "kind": self.seg_consistency,
            "label_smoothing": self.label_smoothing,
            "variant": self.kl_variant,
        }
        return {
            f"{d}:transfer": AuxiliaryTerm(d, depth_loss, target="prediction", masked=masked),
            "semseg:transfer": AuxiliaryTerm("semseg", seg_loss, target="prediction", masked=masked),
        }


MODELS.register("xtasc_net")(XTasCNet)
