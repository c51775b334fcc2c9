"""Quantification benchmark (issue 18): how close each method's sentiment shares come to the
truth when a sample's class mix is far from the training mix, and how often its 90 % interval
covers the truth. The artificial prevalence protocol (APP) of the quantification literature:

* every labelled TEST set (`bench/quantify_data.py`: TweetEval, UMSAB English, GoEmotions) is
  scored once by the model (posteriors cached in ~/.cache/mood-monitor/quantify);
* samples are drawn from it at controlled negative shares (5 %, 15 % ... 95 %), the rest split
  between neutral and positive at a uniformly random ratio, of 50 to 2,000 posts (``--sizes``),
  ``--reps`` samples per (share, size); a class is drawn without replacement while it has
  enough posts, with replacement beyond;
* each method (`monitor.prevalence.METHODS`, plus Saerens' EM on the per-post posteriors, which
  buckets cannot hold) estimates the shares from what a bucket keeps of the sample, with the
  calibration statistics of the model's VALIDATION split only (TweetEval val: what ships as
  quantify.json); ``--calibrate-on-own-val`` calibrates each set on its own validation split;
* per method and set: the mean absolute error (points) of the negative share and of all three
  shares, and the coverage of the 90 % interval of the negative share.

The default method is chosen on validation data only (``--select``: TweetEval val cut into
two stratified halves, each calibrating the protocol run on the other). Prints tables and,
last, one JSON line.

    .venv/bin/python bench/quantify.py                         # the whole protocol
    .venv/bin/python bench/quantify.py --reps 4 --sets tweeteval   # a quick look
    .venv/bin/python bench/quantify.py --write-calibration   # the shipped quantify.json, rewritten
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantify_data import SETS, posteriors  # noqa: E402

from monitor.prevalence import BINS, CELLS, METHODS, Calibration, Evidence, estimate  # noqa: E402

NEG_SHARES = tuple(round(0.05 + 0.1 * i, 2) for i in range(10))
SIZES = (50, 100, 500, 1000, 2000)
# exact Saerens EM on each post's posterior (buckets keep a joint histogram instead: "em"),
# for reference: "saerens_val" from the validation prior as the prior the posteriors reflect
# (what issue 18 tried), "saerens_bal" from the uniform prior the default model was in effect
# trained under (its sentiment loss weighs the classes to balance, monitor/model/training.py)
PER_POST = ("saerens_val", "saerens_bal")
ALL_METHODS = (*METHODS, *PER_POST)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.machine()} x {os.cpu_count()}"


def evidence(p: np.ndarray) -> Evidence:
    """What a bucket keeps of a sample's posteriors (vectorised `Evidence.of`)."""
    top = np.bincount(p.argmax(1), minlength=3).astype(float)
    bn = np.minimum((p[:, 0] * BINS).astype(int), BINS - 1)
    bp = np.minimum((p[:, 2] * BINS).astype(int), BINS - 1)
    cell = np.minimum((p[:, 0] * CELLS).astype(int), CELLS - 1) * CELLS + np.minimum(
        (p[:, 2] * CELLS).astype(int), CELLS - 1
    )
    return Evidence(
        len(p),
        tuple(top),
        tuple(p.sum(0)),
        tuple(np.bincount(bn, minlength=BINS).astype(float)),
        tuple(np.bincount(bp, minlength=BINS).astype(float)),
        tuple(np.bincount(cell, minlength=CELLS * CELLS).astype(float)),
        tuple(np.bincount(cell, weights=p[:, 0], minlength=CELLS * CELLS)),
        tuple(np.bincount(cell, weights=p[:, 2], minlength=CELLS * CELLS)),
    )


def saerens_em(p: np.ndarray, train_prior: np.ndarray, iters: int = 1000) -> np.ndarray:
    """Saerens, Latinne and Decaestecker (2002): re-weight the posteriors by the prior ratio
    until the mean posterior is the prior."""
    pi = train_prior.copy()
    for _ in range(iters):
        w = p * (pi / train_prior)
        w /= w.sum(1, keepdims=True)
        new = w.mean(0)
        if np.abs(new - pi).max() < 1e-7:
            return new
        pi = new
    return pi


def draw(rng: np.random.Generator, by_class: list[np.ndarray], shares: np.ndarray, size: int) -> np.ndarray:
    counts = np.round(shares * size).astype(int)
    counts[1] = size - counts[0] - counts[2]
    picks = [
        rng.choice(idx, c, replace=c > len(idx)) for idx, c in zip(by_class, counts, strict=True) if c > 0
    ]
    return np.concatenate(picks)


def protocol(
    probs: np.ndarray,
    labels: np.ndarray,
    cal: Calibration,
    train_prior: np.ndarray,
    *,
    sizes: tuple[int, ...],
    reps: int,
    seed: int,
    methods: tuple[str, ...],
    rounds: int,
    collect: dict[str, list[tuple[float, float, float, float]]] | None = None,
) -> dict[str, dict[str, Any]]:
    """APP samples of ``probs``; ``collect`` (when given) gets, per method, every sample's
    (estimated negative share, its low and high bound, the true share)."""
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == k) for k in range(3)]
    err_neg: dict[str, list[float]] = defaultdict(list)
    err_all: dict[str, list[float]] = defaultdict(list)
    cover: dict[str, list[bool]] = defaultdict(list)
    width: dict[str, list[float]] = defaultdict(list)
    per_size: dict[tuple[str, int], list[float]] = defaultdict(list)
    per_share: dict[tuple[str, float], list[float]] = defaultdict(list)
    for size in sizes:
        for neg in NEG_SHARES:
            for _ in range(reps):
                u = rng.uniform()
                truth = np.array([neg, (1 - neg) * u, (1 - neg) * (1 - u)])
                idx = draw(rng, by_class, truth, size)
                truth = np.bincount(labels[idx], minlength=3) / len(idx)
                p = probs[idx]
                ev = evidence(p)
                for m in methods:
                    if m in PER_POST:
                        shares = saerens_em(p, train_prior if m == "saerens_val" else np.full(3, 1 / 3))
                        low = high = None
                    else:
                        e = estimate(m, ev, cal, bootstrap_rounds=rounds)
                        shares, low, high = np.array(e.shares), e.low[0], e.high[0]
                    err_neg[m].append(abs(shares[0] - truth[0]))
                    err_all[m].append(float(np.abs(shares - truth).mean()))
                    per_size[(m, size)].append(abs(shares[0] - truth[0]))
                    per_share[(m, neg)].append(abs(shares[0] - truth[0]))
                    if low is not None and high is not None:
                        cover[m].append(low - 1e-9 <= truth[0] <= high + 1e-9)
                        width[m].append(high - low)
                        if collect is not None:
                            collect.setdefault(m, []).append((float(shares[0]), low, high, float(truth[0])))
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        out[m] = {
            "mae_negative_pp": round(100 * float(np.mean(err_neg[m])), 2),
            "mae_all_pp": round(100 * float(np.mean(err_all[m])), 2),
            "coverage_90": round(float(np.mean(cover[m])), 3) if cover[m] else None,
            "mean_width_pp": round(100 * float(np.mean(width[m])), 1) if width[m] else None,
            "mae_negative_by_size": {str(s): round(100 * float(np.mean(per_size[(m, s)])), 2) for s in sizes},
            "mae_negative_by_share": {
                f"{s:.2f}": round(100 * float(np.mean(per_share[(m, s)])), 2) for s in NEG_SHARES
            },
            "samples": len(err_neg[m]),
        }
    return out


def table(title: str, res: dict[str, dict[str, Any]]) -> str:
    lines = [title, f"{'method':<12}{'MAE neg':>9}{'MAE all':>9}{'cover90':>9}{'width':>7}   MAE neg by size"]
    for m, r in res.items():
        cov = f"{r['coverage_90']:.3f}" if r["coverage_90"] is not None else "-"
        mae_all = f"{r['mae_all_pp']:.2f}" if r["mae_all_pp"] is not None else "-"
        wid = f"{r['mean_width_pp']:.1f}" if r["mean_width_pp"] is not None else "-"
        by = " ".join(f"{s}:{v:.1f}" for s, v in r["mae_negative_by_size"].items())
        lines.append(f"{m:<12}{r['mae_negative_pp']:>9.2f}{mae_all:>9}{cov:>9}{wid:>7}   {by}")
    return "\n".join(lines)


def mean_by(runs: list[dict[str, Any]], m: str, size: str) -> float:
    return round(sum(r[m]["mae_negative_by_size"][size] for r in runs) / len(runs), 2)


def domain_runs(
    args: argparse.Namespace, collect: dict[str, list[tuple[float, float, float, float]]]
) -> list[dict[str, dict[str, Any]]]:
    """Leave one domain out, on validation data only: each domain's validation split calibrates
    the protocol run on every other domain's validation split (TweetEval val -> GoEmotions val
    and back): how each method fares when the text moves, which held-out halves of one domain
    cannot show. ``collect`` gets every sample (the domain-shift term is fitted on them)."""
    runs = []
    for a in args.calibrate_on:
        ap_, al = posteriors(a, "val", args.model)
        for b in args.calibrate_on:
            if b != a:
                bp, bl = posteriors(b, "val", args.model)
                runs.append(validation_run(ap_, al, f"{a} val", bp, bl, args, args.seed + 3, collect))
    return runs


def validation_run(
    cal_probs: Any,
    cal_labels: Any,
    source: str,
    probs: Any,
    labels: Any,
    args: argparse.Namespace,
    seed: int,
    collect: dict[str, list[tuple[float, float, float, float]]],
) -> dict[str, dict[str, Any]]:
    """One validation-only run: (``cal_probs``, ``cal_labels``) calibrate, the protocol runs on
    (``probs``, ``labels``) with half the test sets' repetitions."""
    cal = Calibration.from_validation(list(cal_probs), list(cal_labels), source, args.prior)
    prior = np.bincount(np.asarray(cal_labels), minlength=3) / len(cal_labels)
    return protocol(
        np.asarray(probs),
        np.asarray(labels),
        cal,
        prior,
        sizes=args.sizes,
        reps=max(2, args.reps // 2),
        seed=seed,
        methods=args.methods,
        rounds=args.rounds,
        collect=collect,
    )


def fit_shift(samples: list[tuple[float, float, float, float]], level: float = 0.9) -> float:
    """The smallest domain-shift standard deviation (`monitor.prevalence.with_shift`) with which
    ``level`` of the samples' widened intervals cover their true share."""
    z = {0.9: 1.6449}[level]
    arr = np.array(samples)
    s, lo, hi, t = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]

    def cover(sd: float) -> float:
        extra = (z * sd) ** 2
        low = np.maximum(0.0, s - np.sqrt((s - lo) ** 2 + extra))
        high = np.minimum(1.0, s + np.sqrt((hi - s) ** 2 + extra))
        return float(np.mean((low - 1e-9 <= t) & (t <= high + 1e-9)))

    if cover(0.0) >= level:
        return 0.0
    a, b = 0.0, 1.0
    for _ in range(40):
        mid = (a + b) / 2
        a, b = (a, mid) if cover(mid) >= level else (mid, b)
    return round(b, 4)


def select(
    probs: np.ndarray,
    labels: np.ndarray,
    args: argparse.Namespace,
    domain: list[dict[str, dict[str, Any]]],
    collect: dict[str, list[tuple[float, float, float, float]]],
) -> tuple[str, dict[str, Any]]:
    """The default method from validation data only: two stratified halves of the (pooled)
    validation split, each calibrating the protocol run on the other, and the leave-one-domain-out
    runs (`domain_runs`); the lowest negative-share MAE over all of them among the methods that
    work on what buckets keep."""
    rng = np.random.default_rng(args.seed + 1)
    half = np.zeros(len(labels), bool)
    for k in range(3):
        idx = np.flatnonzero(labels == k)
        half[rng.permutation(idx)[: len(idx) // 2]] = True
    runs = [
        validation_run(
            probs[a].tolist(),
            labels[a].tolist(),
            "val-half",
            probs[b],
            labels[b],
            args,
            args.seed + 2,
            collect,
        )
        for a, b in ((half, ~half), (~half, half))
    ]
    runs += domain

    def mean(m: str, key: str) -> Any:
        vals = [r[m][key] for r in runs]
        return None if None in vals else round(sum(vals) / len(vals), 3)

    merged = {
        m: {key: mean(m, key) for key in ("mae_negative_pp", "mae_all_pp", "coverage_90", "mean_width_pp")}
        | {"mae_negative_by_size": {s: mean_by(runs, m, s) for s in runs[0][m]["mae_negative_by_size"]}}
        for m in args.methods
    }
    # the default must work on what buckets keep; its intervals get the domain-shift term
    ok = [m for m in args.methods if m not in ("cc", "pcc") and m not in PER_POST]
    best = min(
        ok or [m for m in args.methods if m not in PER_POST], key=lambda m: merged[m]["mae_negative_pp"]
    )
    return best, merged


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--reps", type=int, default=10, help="samples per (negative share, size)")
    ap.add_argument("--rounds", type=int, default=50, help="bootstrap rounds of hdy/hem intervals")
    ap.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=list(ALL_METHODS))
    ap.add_argument("--model", default="default")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--calibrate-on-own-val", action="store_true")
    ap.add_argument(
        "--calibrate-on",
        nargs="+",
        default=["tweeteval", "goemotions"],
        choices=list(SETS),
        help="validation splits pooled into the calibration (and the selection's halves)",
    )
    ap.add_argument(
        "--no-shift",
        action="store_true",
        help="intervals without the domain-shift term (sampling and calibration noise only)",
    )
    ap.add_argument("--write-calibration", action="store_true", help="write quantify.json next to the model")
    args = ap.parse_args()
    args.sizes = tuple(args.sizes)
    # the prior the model's posteriors answer for (em), a property of the model: from its
    # quantify.json (uniform for the class-balanced default model)
    from monitor.model.calibration import calibration_for
    from monitor.model.settings import ModelSettings

    shipped = calibration_for(ModelSettings(sentiment=args.model))
    args.prior = shipped.posterior_prior if shipped is not None else None
    args.methods = tuple(args.methods)
    t0 = time.time()
    vp, vl = [], []
    for name in args.calibrate_on:
        p, y = posteriors(name, "val", args.model)
        vp, vl = vp + list(p), vl + list(y)
    val_p, val_y = np.array(vp), np.array(vl)
    cal = Calibration.from_validation(vp, vl, " + ".join(f"{n} val" for n in args.calibrate_on), args.prior)
    prior = np.bincount(val_y, minlength=3) / len(val_y)
    # every validation fold's samples, from no shift (halves of one split) to a change of
    # platform (one domain calibrating another): the domain-shift term is fitted on all of them
    samples: dict[str, list[tuple[float, float, float, float]]] = {}
    chosen, sel = select(val_p, val_y, args, domain_runs(args, samples), samples)
    shift = {
        m: fit_shift(v) for m, v in sorted(samples.items()) if m not in ("cc", "pcc") and m not in PER_POST
    }
    if shift and not args.no_shift:
        cal = replace(cal, shift_sd=tuple(shift.items()))
        print(f"domain-shift sd per method (every validation fold): {shift}")
    if args.write_calibration:
        from monitor.model.scorers import DEFAULT_DIR

        path = (DEFAULT_DIR if args.model == "default" else Path(args.model)) / "quantify.json"
        path.write_bytes(orjson.dumps(cal.as_json(), option=orjson.OPT_INDENT_2) + b"\n")
        print(f"wrote {path}")
    print(table("selection: val halves + leave one domain out (validation data only)", sel))
    print(f"chosen default: {chosen}\n")
    report: dict[str, Any] = {"chosen": chosen, "selection": sel, "shift_sd": shift, "sets": {}}
    for name in args.sets:
        tp, tl = posteriors(name, "test", args.model)
        c, pr = cal, prior
        if args.calibrate_on_own_val and name != "tweeteval":
            op, ol = posteriors(name, "val", args.model)
            c = Calibration.from_validation(op, ol, f"{name} val", args.prior)
            pr = np.bincount(np.array(ol), minlength=3) / len(ol)
        res = protocol(
            np.array(tp),
            np.array(tl),
            c,
            pr,
            sizes=args.sizes,
            reps=args.reps,
            seed=args.seed,
            methods=args.methods,
            rounds=args.rounds,
        )
        report["sets"][name] = res
        print(table(f"{name} test ({len(tl)} posts), calibration: {c.source}", res))
        print()
    cc = (
        np.mean([r["cc"]["mae_negative_pp"] for r in report["sets"].values()])
        if "cc" in args.methods
        else None
    )
    best = np.mean([r[chosen]["mae_negative_pp"] for r in report["sets"].values()])
    cov = np.mean([r[chosen]["coverage_90"] or 0 for r in report["sets"].values()])
    report["summary"] = {
        "default": chosen,
        "mae_negative_pp_default": round(float(best), 2),
        "mae_negative_pp_cc": None if cc is None else round(float(cc), 2),
        "coverage_90_default": round(float(cov), 3),
        "cpu": cpu_model(),
        "seconds": round(time.time() - t0, 1),
        "reps": args.reps,
        "sizes": list(args.sizes),
    }
    print(orjson.dumps(report).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
