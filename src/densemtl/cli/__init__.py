"""The ``densemtl`` command: ``densemtl.cli:main`` (``[project.scripts]``) and ``python -m densemtl.cli``.

The dispatcher and the tool table (:data:`~densemtl.cli.main.TOOLS`: add a command there) are in
:mod:`densemtl.cli.main`, the LightningCLI in :mod:`densemtl.cli.lightning`, the shared argument
helpers in :mod:`densemtl.cli.args`, and each tool command in its own module
(``add_arguments(parser)`` + ``run(args) -> int``) calling the library.
"""

from densemtl.cli.lightning import build_cli
from densemtl.cli.main import DATA_TOOLS, TOOLS, build_parser, main

__all__ = ["DATA_TOOLS", "TOOLS", "build_cli", "build_parser", "main"]
