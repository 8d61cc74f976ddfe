"""Which part of the semi-supervised method adds what: an ablation over seeds at one label fraction.

Every row trains on the same labelled subset of the synthetic scenes (per seed: the split, the
initial weights and the batches follow the seed) for the same number of steps and is tested on
the test split. Rows (``ROWS``): supervised-only with and without CCAM, the mean-teacher reference
(Tarvainen & Valpola 2017) with ClassMix (Olsson et al. 2021) pseudo-labels and the teacher's depth
as the mixed depth target, then the parts of Bansal et al. (arXiv 2206.10562): AffineMix instead of
ClassMix, + ColorAug, + CCAM. Each semi-supervised run also records :class:`SemiDiagnostics` (the
teacher's and the student's accuracy on the hidden labels of unlabelled images).

Resumable: a (row, seed) whose ``result.json`` exists is not retrained. Writes ``results.json`` and
``results.md`` (mean ± std over seeds and each seed's value) to ``--out``::

    python scripts/semi_ablation.py --out runs/semi_ablation --seeds 0,1 --max-steps 800
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from semi_label_fraction import train_and_test

#: No CCAM coupling: the same two decoders and heads, uncoupled (``ccam_stages: []``).
NO_CCAM = {"ccam_stages": []}
#: The plain mean teacher: ClassMix on the pseudo-labels, the teacher's depth mixed alike, each
#: unlabelled loss a mean over the pixels kept (threshold 0.9).
KEPT_MEAN = {"mix": "classmix", "use_coloraug": False}
#: The reference: the same with the pseudo-label loss over all pixels, i.e. weighted by the
#: confident share (French et al. 2020, Olsson et al. 2021), at threshold 0.95.
REFERENCE = {**KEPT_MEAN, "unsup_normalise": "all", "confidence": 0.95}
AFFINEMIX = {**REFERENCE, "mix": "affinemix"}
COLORAUG = {**AFFINEMIX, "use_coloraug": True}

#: name -> (semi-supervised, model options beyond the backbone's, semi options); no commas
ROWS: dict[str, tuple[bool, dict[str, Any], dict[str, Any]]] = {
    "supervised only": (False, NO_CCAM, {}),
    "supervised only + CCAM": (False, {}, {}),
    "mean teacher + ClassMix (kept-pixel mean)": (True, NO_CCAM, KEPT_MEAN),
    "mean teacher + ClassMix (reference)": (True, NO_CCAM, REFERENCE),
    "reference without depth pseudo-targets": (True, NO_CCAM, {**REFERENCE, "unsup_depth_weight": 0.0}),
    "+ AffineMix instead of ClassMix": (True, NO_CCAM, AFFINEMIX),
    "+ AffineMix + ColorAug": (True, NO_CCAM, COLORAUG),
    "+ AffineMix + ColorAug + CCAM (paper)": (True, {}, COLORAUG),
    # diagnosis: the plain mean teacher with the unlabelled images' true labels instead of the teacher's
    "oracle: ClassMix with true labels": (True, NO_CCAM, {**KEPT_MEAN, "pseudo_labels": "ground_truth"}),
}

METRICS = ("miou", "pixel_acc", "abs_rel", "rmse", "delta1")
DIAGNOSTICS = ("teacher_miou", "student_miou", "teacher_confident_share", "teacher_confident_accuracy")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def run_ablation(
    out_dir: str | Path,
    rows: Sequence[str],
    seeds: Sequence[int],
    common_semi: Mapping[str, Any] | None = None,
    base_model: Mapping[str, Any] | None = None,
    **train: Any,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Train and test every (row, seed) not yet done; returns ``{row: {seed: result}}``.

    ``base_model``: model options every row shares (the backbone); ``train``: the arguments of
    ``train_and_test`` every row shares (steps, image size...).
    """
    base_model = base_model or {"backbone": "resnet18", "decoder_channels": 64}
    out = Path(out_dir)
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for name in rows:
        semi, model_options, semi_options = ROWS[name]
        for seed in seeds:
            folder = out / slug(name) / f"seed{seed}"
            done = folder / "result.json"
            if not done.exists():
                result = train_and_test(
                    folder,
                    semi,
                    seed=seed,
                    model_options={**dict(base_model), **model_options},
                    semi_options={**dict(common_semi or {}), **semi_options} if semi else None,
                    **train,
                )
                folder.mkdir(parents=True, exist_ok=True)
                tmp = done.with_suffix(".tmp")
                tmp.write_text(json.dumps(result, indent=1))
                tmp.replace(done)
            results.setdefault(name, {})[seed] = json.loads(done.read_text())
    return results


def _final_diagnostics(result: Mapping[str, Any]) -> dict[str, float]:
    rows = result.get("diagnostics") or []
    return dict(rows[-1]) if rows else {}


def markdown(results: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> str:
    """Mean ± std over seeds (sample std), then each seed's value, for every metric."""

    def cell(values: list[float]) -> str:
        values = [v for v in values if v == v]
        if not values:
            return "-"
        mean = statistics.fmean(values)
        spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
        return f"{mean:.3f}{spread} ({' / '.join(f'{v:.3f}' for v in values)})"

    head = ["row", *METRICS, *DIAGNOSTICS]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, per_seed in results.items():
        seeds = sorted(per_seed)
        cells = [cell([float(per_seed[s].get(k, float("nan"))) for s in seeds]) for k in METRICS]
        diags = [_final_diagnostics(per_seed[s]) for s in seeds]
        cells += [cell([float(d.get(k, float("nan"))) for d in diags]) for k in DIAGNOSTICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="semi-supervised ablation over seeds, synthetic scenes")
    parser.add_argument("--out", default="runs/semi_ablation")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of: {'; '.join(ROWS)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--max-steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, nargs=2, default=(96, 128))
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--decoder-channels", type=int, default=64)
    parser.add_argument("--diagnostics-every", type=int, default=100)
    parser.add_argument(
        "--semi-options", type=json.loads, default=None, help="JSON, shared by every semi row"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]  # (row names hold no comma)
    if unknown:
        parser.error(f"--rows: unknown row(s) {unknown}; known: {list(ROWS)}")
    results = run_ablation(
        args.out,
        rows,
        [int(s) for s in args.seeds.split(",")],
        args.semi_options,
        {"backbone": args.backbone, "decoder_channels": args.decoder_channels},
        fraction=args.fraction,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        diagnostics_every=args.diagnostics_every,
    )
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
