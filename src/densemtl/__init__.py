"""densemtl: multi-task dense prediction (semantic segmentation + monocular depth [+ surface normals]).

A model is ``encoder (backbone) -> multi-task architecture -> task heads``; each part is a plain
``nn.Module`` built by name from a registry (:mod:`densemtl.registry`). Training, DDP, mixed
precision and checkpointing live in :mod:`densemtl.training.module` (Lightning).
"""

__version__ = "0.1.0"
