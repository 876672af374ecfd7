"""False positives of the learned mark's decisions on unmarked images: the soft (exact weighted
sign) test against the hard match count, per view rule, against the bound each claims.

    python -m benchmarks watermark_soft_null --images 1000 --keys 2000

The unmarked images are the watermark calibration's variants (photos, flips, crops, re-encodes:
``provenance.watermark.calibration._variant``, the same seed rule as the nulls). Each (image, key)
is one decision: the view the rule picks and its p-value, before the x views correction. The rule
picks the best of ``views`` views, so a valid test has at most views x level of them at p <= level
(Bonferroni); the table prints both. The public default key's
row checks that a fixed, known pattern is no easier to hit by chance than a random key's.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

LEVELS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def decisions(n_images: int, n_keys: int, weights: str | None, seed: int = 0):
    """(soft p, hard p) of every (image, key) decision, (n_images, n_keys + 1) each; the last
    column is the public default key."""
    from provenance import watermark
    from provenance.watermark import calibration as wm_calibration
    from provenance.watermark import payload, soft_sync
    from provenance.watermark.learned.scheme import TEST_NAME, calibration_path
    from provenance.watermark.null_model import Calibration

    scheme = watermark.get("learned", **({"weights": weights} if weights else {}))
    null = Calibration(calibration_path(scheme.weights)).null(TEST_NAME)
    hard_p = np.array([null.p_value(m) for m in range(65)])
    keys = wm_calibration.calibration_keys(n_keys, seed) + [payload.DEFAULT_KEY]
    patterns = payload.sync_patterns(keys, scheme.name, 64)
    soft = np.ones((n_images, len(keys)))
    hard = np.ones((n_images, len(keys)))
    cache: dict = {}
    started = time.perf_counter()
    for i in range(n_images):
        rgb = wm_calibration._variant(i, seed, cache)
        logits = scheme.decode_logits(np.ascontiguousarray(rgb[:, :, ::-1]))[:, :64]
        _, soft[i] = soft_sync.best_view_p_values(soft_sync.signed_weights(logits), patterns)
        matches = ((logits > 0)[None] == patterns[:, None, :]).sum(axis=2).max(axis=1)
        hard[i] = hard_p[matches]
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{n_images} images, {time.perf_counter() - started:.0f} s", flush=True)
    return soft, hard, scheme.trials


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks watermark_soft_null")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--weights", default=None, help="learned weights (default: the shipped ones)")
    parser.add_argument("--save", default=None, help="write the p-values here (.npz)")
    args = parser.parse_args(argv if argv is not None else [])
    from benchmarks.timing import machine_line, print_table

    print(machine_line())
    soft, hard, views = decisions(args.images, args.keys, args.weights)
    if args.save:
        np.savez_compressed(args.save, soft=soft, hard=hard)
    random_keys, default_key = np.s_[:, :-1], np.s_[:, -1]
    rows = []
    for level in LEVELS:
        row = [f"{level:g}"]
        for p, part in ((soft, random_keys), (hard, random_keys), (soft, default_key), (hard, default_key)):
            chosen = p[part]
            row.append(f"{int((chosen <= level).sum())} ({(chosen <= level).mean():.1e})")
        row.append(f"{views * level:.0e}")
        rows.append(row)
    print(f"\n{args.images} unmarked variants x {args.keys} random keys (+ the public default key); "
          f"{views} views each, the rule's view; cells: decisions at p <= level before the x{views} view "
          "correction (rate)\n")
    print_table(["p <=", "soft, random keys", "hard (calibrated), random keys", "soft, default key",
                 "hard, default key", f"bound: {views} x level (rate)"], rows)
    print(f"\nsmallest p: soft {soft.min():.2e}, hard {hard.min():.2e}; decisions at the shipped threshold "
          f"(corrected p <= 1e-6): soft {int((soft * views <= 1e-6).sum())}, hard {int((hard * views <= 1e-6).sum())}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
