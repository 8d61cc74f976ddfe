"""Per-frame depth + semantics for fusion: a Lightning checkpoint or an exported ONNX file.

A predictor is any callable ``predict(images uint8 [B, H, W, 3]) -> (depth [B, H, W] metres,
probabilities [B, C, H, W] or labels [B, H, W])``, optionally with ``class_names`` and
``class_colors``. Images go to the network as float RGB in [0, 1] at the network's size (bilinear,
antialiased when shrinking, as ``densemtl predict``) and outputs come back bilinearly to the frame
size, semantic logits turned into softmax probabilities (what SemanticFusion's update multiplies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from densemtl.errors import DataError, DenseMTLError


class Predictor(Protocol):
    def __call__(self, images: np.ndarray) -> tuple[Any, Any]: ...


def _to_network(images: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=x.shape[-2] > size[0])
    return x


def _to_frame(
    outputs: dict[str, torch.Tensor], size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if "depth" not in outputs:
        raise DenseMTLError(f"the model predicts {sorted(outputs)}, fusion needs depth")
    depth = F.interpolate(outputs["depth"].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    probs = None
    if "semseg" in outputs:
        logits = F.interpolate(outputs["semseg"].float(), size=size, mode="bilinear", align_corners=False)
        probs = logits.softmax(1)
    return depth, probs


class CheckpointPredictor:
    """A ``densemtl fit`` checkpoint (``load_module``) run through the module's ``predict_tasks``.

    Args:
        path: checkpoint file.
        device: ``cpu`` / ``cuda``.
        size: network input size (default: the training ``image_size`` stored in the checkpoint).
    """

    def __init__(self, path: str | Path, device: str = "cpu", size: tuple[int, int] | None = None) -> None:
        from densemtl.data.datasets.folder import default_palette
        from densemtl.training.checkpoint import load_module, read_checkpoint

        self.module = load_module(path).to(device).eval()
        self.device = device
        if size is None:
            stored = read_checkpoint(path).get("datamodule_hyper_parameters", {}).get("image_size")
            size = (int(stored[0]), int(stored[1])) if stored else None
        self.size = size
        hparams = self.module.hparams
        self.class_names = list(hparams.class_names or [f"class_{i}" for i in range(hparams.num_classes)])
        self.class_colors = [list(c) for c in (hparams.class_colors or default_palette(hparams.num_classes))]

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = _to_network(images, self.size).to(self.device)
        return _to_frame(self.module.predict_tasks(x), tuple(images.shape[1:3]))


class OnnxPredictor:
    """An ONNX file written by ``densemtl export`` (input ``image``, outputs named by task), on
    ONNX Runtime's CPU provider; a fixed input size or batch size in the file is respected."""

    def __init__(
        self, path: str | Path, size: tuple[int, int] | None = None, threads: int | None = None
    ) -> None:
        from densemtl.inference.predictor import OnnxTasks

        onnx = OnnxTasks(path, threads)  # loads the file, with its one-line errors
        self.path, self.session = onnx.path, onnx.session
        self.names = onnx.outputs
        if "depth" not in self.names:
            raise DataError(self.path, f"outputs {self.names} lack 'depth'")
        self.size = onnx.fixed_size or size
        batch = self.session.get_inputs()[0].shape[0]
        self.batch = batch if isinstance(batch, int) else None
        self.class_names: list[str] | None = None
        self.class_colors: list[list[int]] | None = None

    def __call__(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = _to_network(images, self.size).numpy()
        step = self.batch or len(x)
        runs = [self.session.run(None, {"image": x[i : i + step]}) for i in range(0, len(x), step)]
        outputs = {
            n: torch.from_numpy(np.concatenate([r[j] for r in runs])) for j, n in enumerate(self.names)
        }
        return _to_frame(outputs, tuple(images.shape[1:3]))
