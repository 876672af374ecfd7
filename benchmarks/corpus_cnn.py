"""The NPR-input CNN trained on the public corpus, judged on generator families it never saw,
against the shipped spectral recipe on the same folds, crops and thresholds.

    python -m benchmarks.corpus_cnn --corpus /root/provenance-corpus \
        [--cache /root/provenance-runs/corpus-cnn] [--folds 3] [--steps 2000] [--noise-sigma 40] [--fold K] [--json]

Leave-families-out in ``--folds`` folds: the generator families (all but ``mixed-unnamed``, which
names no generator and always trains) are dealt into folds of about equal fake counts; each fold
trains without its families and is scored on them, so every family is unseen exactly once. (Holding
out a third of the families at a time is harder than leaving out one: fewer generators train.)

Every image goes through the class-blind pipeline (``provenance.corpus_detector.training_crop``:
JPEG history for lossless originals, a native 224 px crop, a final JPEG at quality 70-95); training
images contribute 3 crops, scored images 1. Reals split by photo: train 60%, validation 20% (sets the
threshold by the shipped rule: <= 1% false positives on *each* real source's validation photos, none
for a source under 100 photos), test 20%. In the same run and folds:

- ``spectral-lr``: the shipped ``spectral-corpus`` recipe (spectral features, logistic regression);
- ``corpus-cnn``: the ``cnn`` family (NPR input, no early downsampling, class-blind augmentation),
  trained from scratch for ``--steps`` steps of 64 tiles (checkpointed: kill and re-run to resume);
- ``cnn+spectral``: the mean of the two scores, each standardised on the fold's training reals.

Crops, features and scores are cached under ``--cache``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from .corpus_lofo import held_out_metrics

SIZE = 224
ALWAYS_TRAIN = "mixed-unnamed"


def deal_folds(counts: dict[str, int], folds: int) -> list[list[str]]:
    """Families dealt largest first to the fold with the fewest fakes so far (deterministic)."""
    out: list[list[str]] = [[] for _ in range(folds)]
    load = [0] * folds
    for family in sorted(counts, key=lambda f: (-counts[f], f)):
        k = int(np.argmin(load))
        out[k].append(family)
        load[k] += counts[family]
    return out


def cached_features(crops: dict[str, np.ndarray], store: Path) -> dict[str, np.ndarray]:
    from provenance.corpus_detector import crop_features, save_npz

    done: dict[str, np.ndarray] = {}
    if store.is_file():
        with np.load(store, allow_pickle=False) as saved:
            done = dict(zip((str(k) for k in saved["keys"]), saved["features"]))
    todo = [k for k in crops if k not in done]
    for key in todo:
        done[key] = crop_features(crops[key])
    if todo:
        keys = sorted(done)
        save_npz(store, keys=np.array(keys), features=np.stack([done[k] for k in keys]))
    return done


def train_cnn(images: list[np.ndarray], labels: np.ndarray, out: Path, steps: int, noise_sigma: float = 6.0):
    from detectors.learned.cnn import CNNClassifier
    from provenance.corpus_cnn import AUGMENT_WINDOW

    model = CNNClassifier(augment_window=AUGMENT_WINDOW, augment_noise_sigma=noise_sigma)
    model.fit(images, labels, steps=steps, out=out, checkpoint_every=100, log_every=100,
              on_log=lambda log: print(f"{out.name} {log}", file=sys.stderr, flush=True))
    return model


def run(corpus: Path, cache: Path, folds: int, steps: int, in_distribution: bool = False,
        noise_sigma: float = 6.0, only_fold: int | None = None) -> dict:
    from provenance.corpus_cnn import cached_crops
    from provenance.corpus_detector import corpus_samples

    from .corpus_lofo import Detectors

    cache.mkdir(parents=True, exist_ok=True)
    samples = corpus_samples(corpus, SIZE)
    crops = cached_crops(samples, cache, 0)
    rows = [s for s in samples if s.key in crops]
    y = np.array([r.label for r in rows])
    family = np.array([r.family for r in rows])
    source = np.array([r.source for r in rows])
    group_split = np.array([r.split for r in rows])  # every image by its source group
    split = np.where(y == 1, "fake", group_split)  # the folds: reals by group, fakes by family
    trainable = [r for r in rows if r.label or r.split == "train"]
    more = [cached_crops(trainable, cache, k) for k in (1, 2)]
    features = [cached_features(c, cache / f"features-{SIZE}-seed{k}.npz") for k, c in enumerate([crops, *more])]
    x = np.stack([features[0][r.key] for r in rows])
    val = group_split == "validation"

    def scores_for(train: np.ndarray, out: Path) -> dict[str, np.ndarray]:
        """Both detectors (and their mean) trained on ``train``, scored on every row's crop."""
        train_rows = [r for r, t in zip(rows, train) if t]
        train_y = np.r_[y[train], [r.label for c in more for r in train_rows if r.key in c]]
        train_x = np.stack([features[0][r.key] for r in train_rows] +
                           [f[r.key] for f in features[1:] for r in train_rows if r.key in f])
        scores = {"spectral-lr": Detectors.spectral_lr(train_x, train_y)(x)}
        stored = out / "scores.npz"
        if stored.is_file():
            with np.load(stored, allow_pickle=False) as saved:
                by_key = dict(zip((str(k) for k in saved["keys"]), saved["scores"]))
        else:
            images = [crops[r.key] for r in train_rows] + [c[r.key] for c in more for r in train_rows if r.key in c]
            model = train_cnn(images, train_y, out, steps, noise_sigma)
            del images
            logits = model.decision_function([crops[r.key] for r in rows])
            by_key = {r.key: float(s) for r, s in zip(rows, logits)}
            np.savez(stored, keys=np.array(list(by_key)), scores=np.array(list(by_key.values())))
        scores["corpus-cnn"] = np.array([by_key[r.key] for r in rows])
        reals = train & (y == 0)
        z = {name: (s - s[reals].mean()) / (s[reals].std() + 1e-9) for name, s in scores.items()}
        scores["cnn+spectral"] = (z["spectral-lr"] + z["corpus-cnn"]) / 2
        return scores

    def record(name: str, target: np.ndarray, test: np.ndarray, scores: dict, train: np.ndarray, **extra) -> None:
        results["families"][name] = {d: held_out_metrics(s, y, val, test, source) for d, s in scores.items()}
        results["counts"][name] = {"test_fakes": int(((y == 1) & target & test).sum()),
                                   "test_reals": int((test & (y == 0)).sum()), "train": int(train.sum()), **extra}

    results: dict = {"size": SIZE, "images": len(rows), "steps": steps, "noise_sigma": noise_sigma,
                     "families": {}, "counts": {}}
    tag = f"-noise{noise_sigma:g}" if noise_sigma != 6.0 else ""
    if in_distribution:  # the shipped model's split: every family trains on its train groups
        train = group_split == "train"
        scores = scores_for(train, cache / f"cnn-in-distribution-{steps}{tag}")
        for name in [*sorted(set(family[y == 1])), "all"]:
            target = (family == name) if name != "all" else (y == 1)
            record(name, target, (group_split == "test") & ((y == 0) | target), scores, train)
        results["mode"] = "in-distribution (test source groups)"
        return results

    counts = {str(f): int((family == f).sum()) for f in sorted(set(family[y == 1])) if f != ALWAYS_TRAIN}
    results["folds"] = deal_folds(counts, folds)
    for k, held_families in enumerate(results["folds"]):
        if only_fold is not None and k != only_fold:
            continue
        held = np.isin(family, held_families)
        train = ((y == 1) & ~held) | (split == "train")
        scores = scores_for(train, cache / f"cnn-fold{k}-of{folds}-{steps}{tag}")
        for name in [*held_families, f"fold {k}: all held out"]:
            target = held if name.startswith("fold ") else family == name
            record(name, target, ((y == 1) & target) | (split == "test"), scores, train, fold=k)
        (cache / f"corpus-cnn-{folds}folds-{steps}{tag}{'' if only_fold is None else f'-fold{only_fold}'}.json"
         ).write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("/root/provenance-corpus"))
    parser.add_argument("--cache", type=Path, default=Path("/root/provenance-runs/corpus-cnn"))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--in-distribution", action="store_true",
                        help="Instead of held-out families: train on every family's train groups (the shipped "
                             "model's split) and score each family's test groups.")
    parser.add_argument("--noise-sigma", type=float, default=6.0,
                        help="Upper sigma of the CNN's noise augmentation (the shipped cnn-corpus: 40).")
    parser.add_argument("--fold", type=int, default=None, help="Run only this fold (0-based).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    if not args.corpus.is_dir():
        print(f"corpus_cnn: {args.corpus}: no corpus; run `provenance dataset corpus rebuild` first (skipped)")
        return
    from .corpus_lofo import table
    from .timing import capability_line

    print(capability_line())
    print("baseline: spectral-lr (the shipped spectral-corpus recipe), same folds, crops and threshold rule")
    results = run(args.corpus, args.cache, args.folds, args.steps, args.in_distribution, args.noise_sigma, args.fold)
    if args.in_distribution:
        tag = f"-noise{args.noise_sigma:g}" if args.noise_sigma != 6.0 else ""
        (args.cache / f"corpus-cnn-in-distribution-{args.steps}{tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results))
        return
    what = results.get("mode") or f"{args.folds} folds of held-out families {results['folds']}"
    print(f"{results['images']} images, {SIZE}px pipeline crops, {what}; corpus-cnn {args.steps} steps. "
          "Cells: AUC / TPR at the validation threshold / worst real source's test FPR\n")
    print(table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
