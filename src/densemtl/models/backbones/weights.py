"""Pretrained weights from local files: one loader used by every backbone and model.

* :func:`load_state_dict_file` reads ``.pth`` / ``.pt`` (any name torch.save writes) with
  ``torch.load(..., weights_only=True, map_location="cpu")`` -- never unpickling arbitrary objects
  -- or ``.safetensors``; unwraps checkpoints nested under ``state_dict`` / ``model`` (Lightning,
  DeiT, detectron-style) and strips DDP's ``module.`` prefixes.
* :func:`load_pretrained` copies it into a model and fails with a one-line
  :class:`~densemtl.errors.DataError` naming the missing / unexpected / mis-shaped keys.

Nothing is ever downloaded: torchvision's weight files (e.g. ``resnet50-0676ba61.pth``,
``mobilenet_v2-b0353104.pth``) load as-is once they are on disk.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from densemtl.errors import DataError

__all__ = ["LoadResult", "load_pretrained", "load_state_dict_file"]

#: keys under which training checkpoints nest the state dict (tried in this order, repeatedly)
NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")
_MAX_LISTED = 5


def _first_line(text: str) -> str:
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def _torch_load_error(exc: BaseException) -> str:
    """Turn torch.load's (often multi-paragraph) exception into a short reason."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        m = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        what = f" (found {m.group(1)})" if m else ""
        m2 = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:\n\s*\n|Check the documentation|$)", text, re.S)
        if not m and m2 and m2.group(1):
            what = f" ({' '.join(m2.group(1).split())[:120]})"
        return (
            "refused by torch.load(weights_only=True): not a plain tensor checkpoint, or corrupt"
            f"{what}; only state dicts of tensors are accepted -- re-save it with "
            "torch.save(model.state_dict(), path)"
        )
    if "central directory" in text or "zip archive" in text or isinstance(exc, zipfile.BadZipFile):
        return "truncated or corrupt checkpoint (not a complete zip archive written by torch.save)"
    if isinstance(exc, EOFError):
        return "file is empty or truncated"
    reason = _first_line(text)
    return f"cannot be read by torch.load ({type(exc).__name__}{': ' + reason[:160] if reason else ''})"


def _unwrap(obj: object, path: Path) -> dict[str, Tensor]:
    depth = 0
    while isinstance(obj, Mapping) and depth < 4:
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj, depth = inner, depth + 1
    if not isinstance(obj, Mapping):
        raise DataError(path, f"holds a {type(obj).__name__}, not a state dict (a dict of name -> tensor)")
    if not obj:
        raise DataError(path, "holds an empty state dict")
    bad = [(k, v) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        k, v = bad[0]
        nested = ", ".join(repr(k) for k in obj if isinstance(obj[k], Mapping))
        hint = f"; nested dicts under {nested}" if nested else ""
        raise DataError(
            path,
            f"holds a dict that is not a state dict: {len(bad)} of {len(obj)} entries are not "
            f"name -> tensor (e.g. {k!r}: {type(v).__name__}){hint}",
        )
    out: dict[str, Tensor] = {}
    for k, v in obj.items():
        while k.startswith("module."):
            k = k[len("module.") :]
        out[k] = v
    return out


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict (name -> tensor, on CPU) from a ``.pth`` / ``.pt`` / ``.safetensors`` file.

    Checkpoints nesting it under ``state_dict`` / ``model`` / ``model_state_dict`` / ``module`` are
    unwrapped and leading ``module.`` prefixes (DDP / DataParallel) stripped. torch files are read
    with ``weights_only=True``: a file holding pickled objects other than tensors and containers is
    refused, never executed. Every problem raises a one-line :class:`DataError`.
    """
    path = Path(path)
    if not path.is_file():
        hint = ""
        if re.search(r"IMAGENET|DEFAULT|_Weights\b", str(path)):
            hint = " (densemtl never downloads: pass the path of a local checkpoint file, not a weights enum)"
        raise DataError(path, f"weights file not found{hint}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:  # pragma: no cover - safetensors is a dependency
            raise DataError(path, "reading .safetensors needs the safetensors package") from e
        try:
            obj: object = load_file(str(path), device="cpu")
        except Exception as e:
            raise DataError(path, f"not a valid safetensors file ({_first_line(str(e))[:160]})") from None
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                obj = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as e:
            raise DataError(path, _torch_load_error(e)) from None
    return _unwrap(obj, path)


@dataclass
class LoadResult:
    """What :func:`load_pretrained` did: keys copied, and keys tolerated but not copied."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f", ... (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return shown + more


def _apply_key_map(
    sd: dict[str, Tensor], key_map: Mapping[str, str] | Callable[[str], str | None]
) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for k, v in sd.items():
        if callable(key_map):
            new = key_map(k)
        else:
            new = k
            for old_prefix, new_prefix in key_map.items():
                if k.startswith(old_prefix):
                    new = new_prefix + k[len(old_prefix) :]
                    break
        if new is not None:
            out[new] = v
    return out


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key.startswith(p) for p in prefixes)


def load_pretrained(
    model: nn.Module,
    path: str | Path,
    strict: bool = True,
    ignore_prefixes: Iterable[str] = ("fc.", "classifier."),
    key_map: Mapping[str, str] | Callable[[str], str | None] | None = None,
) -> LoadResult:
    """Copy the weights in ``path`` into ``model`` (in place) and say what was loaded.

    Args:
        model: the network; its ``state_dict()`` names are the reference.
        path: ``.pth`` / ``.pt`` / ``.safetensors`` file, see :func:`load_state_dict_file`.
        strict: if True (default) any missing, unexpected or mis-shaped key outside
            ``ignore_prefixes`` raises :class:`DataError`; if False those keys are skipped (but a file
            sharing no key with the model still raises).
        ignore_prefixes: keys under these prefixes (the ImageNet classifier by default) are copied
            when they match, and tolerated when missing on either side or shaped differently (e.g. a
            head with another number of classes). Pass ``()`` to check them too.
        key_map: renames checkpoint keys before matching: a dict ``{old_prefix: new_prefix}`` (first
            match wins) or a function ``key -> new key`` (``None`` drops the key).

    ``*.num_batches_tracked`` buffers may be missing (old torchvision files lack them), and keys under
    the model's ``dropped_prefixes`` (parts a ``features_only`` backbone does not build) may be
    unexpected.
    """
    sd = load_state_dict_file(path)
    if key_map is not None:
        sd = _apply_key_map(sd, key_map)
    ignore = tuple(ignore_prefixes)
    dropped = tuple(getattr(model, "dropped_prefixes", ()))
    own = model.state_dict()

    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    bad_missing = [k for k in missing if not _under(k, ignore) and not k.endswith("num_batches_tracked")]
    bad_unexpected = [k for k in unexpected if not _under(k, ignore + dropped)]
    bad_mismatched = [k for k in mismatched if not _under(k, ignore)]
    to_load = {k: sd[k] for k in own if k in sd and k not in mismatched}
    name = type(model).__name__

    if not to_load:
        raise DataError(
            path,
            f"shares no parameter name with {name} (file keys: {_listing(list(sd))}; model keys: "
            f"{_listing(list(own))}); is it a checkpoint of another network? key_map can rename keys",
        )
    if strict and (bad_missing or bad_unexpected or bad_mismatched):
        parts = []
        if bad_missing:
            parts.append(f"{len(bad_missing)} missing keys: {_listing(bad_missing)}")
        if bad_unexpected:
            parts.append(f"{len(bad_unexpected)} unexpected keys: {_listing(bad_unexpected)}")
        if bad_mismatched:
            shapes = [f"{k} (file {list(sd[k].shape)} vs model {list(own[k].shape)})" for k in bad_mismatched]
            parts.append(f"{len(bad_mismatched)} mis-shaped keys: {_listing(shapes)}")
        raise DataError(path, f"does not fit {name}: " + "; ".join(parts))

    # strict=False: the keys left out were checked above (tolerated, or strict is off)
    model.load_state_dict(to_load, strict=False)
    return LoadResult(loaded=list(to_load), missing=missing, unexpected=unexpected, mismatched=mismatched)
