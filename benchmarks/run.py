"""Run the benchmarks, write benchmarks/results/<name>.json, regenerate the README's table.

    python -m benchmarks.run                 # all
    python -m benchmarks.run transfer        # some (the table keeps the others' last results)
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from .common import machine

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
README = ROOT.parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _benchmarks() -> dict:
    from . import (
        compression,
        demo_load,
        detection,
        distributed,
        drawings,
        generative,
        honest,
        image_memory,
        imagenet,
        make_test,
        make_your_own,
        nlp,
        nlp_honest,
        photos,
        rl,
        speech,
        speech_embedding_probe,
        speech_honest,
        timeseries,
        timeseries_unseen,
        transfer,
        vision,
    )

    return {
        "vision_digits": vision.digits_model,
        "vision_seeds": vision.digits_seeds,
        "vision_explanations": vision.explanations,
        "vision_demo": vision.demo_latency,
        "vision_demo_photos": vision.photo_demo,
        "vision_drawings": drawings.run,
        "vision_honest": honest.run,
        "transfer_digits": transfer.run,
        "imagenet_sample_photos": imagenet.sample_photos,
        "photos_synthetic": photos.synthetic,
        "photos_ants_bees": photos.ants_bees,
        "photos_transfer": photos.transfer_table,
        "nlp_sentiment": nlp.sentiment,
        "nlp_tflite": nlp.tflite,
        "nlp_dates": nlp.dates,
        "nlp_explanations": nlp.explanations,
        "nlp_demo": nlp.demo_latency,
        "nlp_text_peers": nlp.text_peers,
        "timeseries_forecasting": timeseries.forecasting,
        "timeseries_classical": timeseries.classical,
        "timeseries_unseen": timeseries_unseen.run,
        "timeseries_shipped": timeseries.shipped,
        "timeseries_anomaly": timeseries.anomaly,
        "timeseries_explanations": timeseries.explanations,
        "timeseries_demo": timeseries.demo_latency,
        "generative_quality": generative.quality,
        "generative_tflite": generative.tflite,
        "generative_explanations": generative.explanations,
        "generative_demo": generative.demo_latency,
        "compression_digits": compression.digits,
        "rl_cartpole": rl.cartpole,
        "rl_acrobot": rl.acrobot,
        "rl_mountaincar": rl.mountaincar,
        "rl_transfer": rl.transfer,
        "rl_tflite": rl.tflite,
        "rl_play": rl.play,
        "rl_explanations": rl.explanations,
        "image_memory": image_memory.run,
        "speech_loso": speech.loso,
        "speech_few_shot": speech.few_shot,
        "speech_demo": speech.demo,
        "speech_pretrained": speech_embedding_probe.run,
        "speech_not_sure": speech_honest.run,
        "nlp_not_sure": nlp_honest.run,
        "detection_raccoon": detection.raccoon,
        "detection_raccoon_folds": detection.raccoon_folds,
        "detection_shapes": detection.shapes,
        "demo_load": demo_load.run,
        "make_test": make_test.run,
        "distributed_digits": distributed.run,
        "make_your_own": make_your_own.run,
        "tune_digits": distributed.tune_digits,
        "tune_ants_bees": distributed.tune_ants_bees,
    }


def main(only: list[str] | None = None) -> int:
    import toolkit  # noqa: F401  (Keras backend, log level)
    from toolkit.storage import write_json

    benchmarks = _benchmarks()
    names = only or list(benchmarks)
    unknown = sorted(set(names) - set(benchmarks))
    if unknown:
        print(f"Unknown benchmarks {unknown}. Valid: {sorted(benchmarks)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        result = benchmarks[name]()
        result.update({
            "benchmark": name,
            "seconds": round(time.perf_counter() - start, 1),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
        })
        write_json(RESULTS / f"{name}.json", result)
        for row in result["rows"]:
            print(f"  {'PASS' if row['passed'] else 'FAIL'} {row['name']}: {_fmt(row)} (goal {row['goal']})")
    write_readme_table()
    return 0


def _fmt(row: dict) -> str:
    value = row["measured"]
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        text = f"{value:.1e}"
    else:
        text = f"{value:.4f}" if isinstance(value, float) and abs(value) < 10 else f"{value:.1f}"
    return f"{text} {row['unit']}".strip()


def results() -> dict[str, dict]:
    """Stored results, in the order the benchmarks run."""
    order = list(_benchmarks())
    found = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json")}
    return dict(sorted(found.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def table() -> str:
    lines = ["| benchmark | measured | goal | met | notes |", "|---|---|---|---|---|"]
    dates, machines = set(), set()
    for result in results().values():
        dates.add(result["date"][:10])
        machines.add(f"{result['machine']['cpus']} CPUs, Python {result['machine']['python']}")
        for row in result["rows"]:
            met = "" if row["goal"] == "reference" else ("yes" if row["passed"] else "**no**")
            lines.append(f"| {row['name']} | {_fmt(row)} | {row['goal']} | {met} | {row.get('note', '')} |")
    header = (f"Measured by `make bench` on {', '.join(sorted(machines))}, "
              f"{' to '.join(sorted(dates)[:: max(1, len(dates) - 1)])}; JSON in `benchmarks/results/`.\n\n")
    return header + "\n".join(lines)


def write_readme_table() -> None:
    from toolkit.storage import atomic_write_text

    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(README, f"{head}{START}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or None))
