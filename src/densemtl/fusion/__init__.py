"""Dense semantic 3D mapping: TSDF fusion of predicted (or ground-truth) depth and semantics.

``sequences`` reads RGB-D trajectories (folder format with poses, TUM RGB-D, ScanNet, video + poses),
``odometry`` estimates missing poses by point-to-plane ICP, ``tsdf`` fuses frames into a voxel grid
with per-voxel class evidence (SemanticFusion's Bayesian update or label counts), ``mesh`` runs
marching cubes and writes a semantic PLY, ``metrics`` scores the map, ``pipeline.fuse`` ties them
together and ``report`` draws the result. See docs/fusion.md.
"""

from densemtl.fusion.pipeline import FusionResult, fuse
from densemtl.fusion.sequences import Frame, FrameSequence, open_sequence
from densemtl.fusion.tsdf import TSDFVolume

__all__ = ["Frame", "FrameSequence", "FusionResult", "TSDFVolume", "fuse", "open_sequence"]
