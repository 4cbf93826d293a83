"""Benchmark (issue 15): what item text and a pretrained backbone buy, side by side in one run.

Not a test. Usage:
    .venv/bin/python scripts/benchmark_pretrained.py [--ml100k PATH/ml-100k.inter] [--epochs 30]
        [--max-train-seconds 600] [--threads 2] [--datasets ml-100k shop] [--variants id id+text pretrained]
        [--backbone-layers N --lora-rank R --lora-alpha A --no-id-embedding] [--json-out runs.json]
        [any other bench option]

Runs ``python -m recsys_tasks.bench`` once per dataset and variant, each in its own process, on ML-100K
(with the ``ml-100k.item`` next to it for text) and on the synthetic shop with a new-items segment
(``--data synthetic:shop``):

* ``id``: the item-id transformer without text (``--model transformer --no-item-text``);
* ``id+text``: the same, its item rows started from the item texts (``--item-text``);
* ``pretrained``: a pretrained text backbone fine-tuned with LoRA (``--model pretrained --item-text``).

Options this script does not know go to every bench run (e.g. ``--lr 1e-3 --patience 5``); the
backbone options only to ``pretrained``. The runs share one text cache, so each dataset's texts are
encoded once. Prints a markdown table (quality, the new-items segment, seconds per epoch, trainable
parameters, artifact size), then whether the issue's target held: pretrained NDCG@10 on ML-100K at
least the id model's, or pretrained new-items NDCG@10 on the shop at least twice the id model's (and
above zero: twice nothing is no gain). The last line is JSON with every report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ML_100K = Path("/work/shared/datasets/ml-100k/ml-100k.inter")
VARIANTS = {
    "id": ["--model", "transformer", "--no-item-text"],
    "id+text": ["--model", "transformer", "--item-text"],
    "pretrained": ["--model", "pretrained", "--item-text"],
}
DATASETS = ("ml-100k", "shop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", type=Path, default=ML_100K, help="the ML-100K .inter file")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=None, help="default: bench's")
    parser.add_argument("--max-train-seconds", type=float, default=None, help="per run")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shop-users", type=int, default=None)
    parser.add_argument("--shop-items", type=int, default=None)
    parser.add_argument("--backbone", default=None, help="pretrained only (default: bench's)")
    parser.add_argument("--backbone-layers", type=int, default=None, help="pretrained only")
    parser.add_argument("--lora-rank", type=int, default=None, help="pretrained only")
    parser.add_argument("--lora-alpha", type=float, default=None, help="pretrained only")
    parser.add_argument("--id-embedding", action=argparse.BooleanOptionalAction, default=None,
                        help="pretrained only")
    parser.add_argument("--json-out", type=Path, default=None, help="also write every report here")
    args, passthrough = parser.parse_known_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="recsys-bench-pretrained-") as tmp:
        for dataset in args.datasets:
            for variant in args.variants:
                cmd = _command(args, passthrough, dataset, variant, text_cache=Path(tmp) / "text_cache")
                runs.append({"dataset": dataset, "variant": variant, **_run(cmd)})
                print(_summary(runs[-1]), flush=True)
    print()
    print(_table(runs))
    print()
    for line in _targets(runs):
        print(line)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(runs, indent=1))
    print(json.dumps(runs))


def _command(
    args: argparse.Namespace, passthrough: list[str], dataset: str, variant: str, *, text_cache: Path
) -> list[str]:
    """The bench command line of one dataset and variant."""
    cmd = [sys.executable, "-m", "recsys_tasks.bench", *VARIANTS[variant]]
    cmd += ["--text-cache", str(text_cache / dataset)]
    if dataset == "shop":
        cmd += ["--data", "synthetic:shop", *_options(args, "shop_users", "shop_items")]
    else:
        cmd += ["--data", str(args.ml100k)]
    cmd += _options(args, "epochs", "max_train_seconds", "threads")
    if variant == "pretrained":
        cmd += _options(args, "backbone", "backbone_layers", "lora_rank", "lora_alpha")
        if args.id_embedding is not None:
            cmd.append("--id-embedding" if args.id_embedding else "--no-id-embedding")
    return cmd + passthrough


def _options(args: argparse.Namespace, *names: str) -> list[str]:
    """``--name value`` for each of ``names`` that was given."""
    out = []
    for name in names:
        if getattr(args, name) is not None:
            out += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return out


def _run(cmd: list[str]) -> dict:
    """The report of one bench run (its progress goes to this process's stderr), or its exit status."""
    print("$ " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit status {done.returncode}"}
    return json.loads(lines[-1])


def _summary(run: dict) -> str:
    if "error" in run:
        return f"{run['dataset']} {run['variant']}: failed ({run['error']})"
    new = run["new_items"]
    return (f"{run['dataset']} {run['variant']}: ndcg@10 {run['ndcg@10']:.4f}, new items ndcg@10 "
            f"{_num(new['ndcg@10'])} ({new['users']} users), {run['epochs']} epochs, "
            f"{run['seconds_per_epoch']} s/epoch")


def _table(runs: list[dict]) -> str:
    """The runs as a markdown table."""
    head = ("| dataset | variant | NDCG@10 | HR@10 | new items NDCG@10 / HR@10 (users) | s/epoch | epochs "
            "| trainable params | artifact MB |")
    columns = head.count("|") - 1
    rows = [head, "|" + "---|" * columns]
    for run in runs:
        if "error" in run:
            cells = [f"failed: {run['error']}", *[""] * (columns - 3)]
        else:
            new = run["new_items"]
            cells = [
                _num(run["ndcg@10"]), _num(run["hr@10"]),
                f"{_num(new['ndcg@10'])} / {_num(new['hr@10'])} ({new['users']})",
                str(run["seconds_per_epoch"]), str(run["epochs"]), f"{run['trainable_params']:,}",
                str(run["artifact_mb"]),
            ]
        rows.append("| " + " | ".join([run["dataset"], run["variant"], *cells]) + " |")
    return "\n".join(rows)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _targets(runs: list[dict]) -> list[str]:
    """Whether pretrained beat the id model as issue 15 asks, on each dataset that ran both."""
    found = {(r["dataset"], r["variant"]): r for r in runs if "error" not in r}
    lines, held = [], []
    ml_id, ml_pre = found.get(("ml-100k", "id")), found.get(("ml-100k", "pretrained"))
    if ml_id and ml_pre:
        ok = ml_pre["ndcg@10"] >= ml_id["ndcg@10"]
        held.append(ok)
        lines.append(f"ML-100K NDCG@10: pretrained {ml_pre['ndcg@10']:.4f} vs id {ml_id['ndcg@10']:.4f}: "
                     f"{'held' if ok else 'missed'} (pretrained >= id)")
    shop_id, shop_pre = found.get(("shop", "id")), found.get(("shop", "pretrained"))
    if shop_id and shop_pre and shop_pre["new_items"]["users"]:
        pre, base = shop_pre["new_items"]["ndcg@10"], shop_id["new_items"]["ndcg@10"]
        ok = pre > 0 and pre >= 2 * base
        held.append(ok)
        users = shop_pre["new_items"]["users"]
        lines.append(f"shop new-items NDCG@10 ({users} users): pretrained {pre:.4f} vs id {base:.4f}: "
                     f"{'held' if ok else 'missed'} (pretrained >= 2 x id, and > 0)")
    if not held:
        return ["target: not measured (needs the id and pretrained variants on ML-100K or the shop)"]
    return [*lines, f"target (either of the above): {'HELD' if any(held) else 'MISSED'}"]


if __name__ == "__main__":
    main()
