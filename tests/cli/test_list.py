"""``densemtl list KIND``: one line per registered entry with its docstring's first line."""

from __future__ import annotations

import pytest

from densemtl.analysis.registries import KINDS, NO_DOCSTRING, describe, registry_rows
from densemtl.cli import main
from densemtl.errors import ConfigError


def _registered(kind: str) -> list[str]:
    registry, names = KINDS[kind]()
    assert sorted(names) == registry.names()  # every entry, nothing else
    return names


@pytest.mark.parametrize("kind", list(KINDS))
def test_list_prints_one_line_per_entry(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", kind]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = _registered(kind)
    assert len(names) >= 3
    assert [line.split()[0] for line in lines] == names
    for line, (_name, summary) in zip(lines, registry_rows(kind)):
        assert line.split(maxsplit=1)[1] == summary


def test_list_shows_the_paper_format_and_task_order(capsys: pytest.CaptureFixture[str]) -> None:
    main(["list", "backbones"])
    backbones = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert "He et al. 2016" in backbones["resnet18"] and "Sandler et al. 2018" in backbones["mobilenet_v2"]
    main(["list", "datasets"])
    datasets = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert "nyu_depth_v2_labeled.mat" in datasets["nyuv2"]
    main(["list", "tasks"])
    tasks = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert tasks[:3] == ["semseg", "depth", "normals"]  # the canonical order, not sorted


def test_describe_uses_only_the_constructors_own_docstring() -> None:
    class Base:
        """Base (Someone et al. 2020)."""

    class Child(Base):
        pass

    def builder() -> None:
        """Builder (Other et al. 2021): more.

        Details.
        """

    assert describe(Base) == "Base (Someone et al. 2020)."
    assert describe(Child) == NO_DOCSTRING  # not the inherited docstring
    assert describe(builder) == "Builder (Other et al. 2021): more."


def test_unknown_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["list", "losses_and_more"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown registry"):
        registry_rows("losses_and_more")
