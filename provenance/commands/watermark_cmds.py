"""``provenance watermark``: embed, decode and calibrate our invisible watermarks."""
from __future__ import annotations

import json
from pathlib import Path

import click

from provenance import watermark
from provenance.imageio import ImageLoadError, encode_image, format_for_path, load_image
from provenance.watermark import null_model as wm_calibration
from provenance.watermark import decision, payload, soft_marks
from provenance.watermark.marking import DEFAULT_SCHEME, Mark, MarkingError, embed_mark, psnr
from provenance.watermark.size import size_problem

from .common import crop_sides, emit_json, fail, json_option

DEFAULT_DECODE_SCHEMES = decision.DEFAULT_SCHEMES


def _load(path: str):
    try:
        return load_image(path)
    except ImageLoadError as exc:
        fail(path, str(exc))


@click.group("watermark")
def watermark_group():
    """Embed and read invisible watermarks."""


@watermark_group.command("embed")
@click.argument("src", metavar="IN", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output image; format from the extension.")
@click.option("--scheme", type=click.Choice(watermark.available()), default=DEFAULT_SCHEME, show_default=True,
              help="learned: survives crops, rotation, resizing and re-encoding; dwtDctSvd: the classical mark.")
@click.option("--key", default=payload.DEFAULT_KEY, help="Watermark key (the default is public: anyone can forge it).")
@click.option("--generator", type=click.IntRange(0, 255), default=0, show_default=True, help="8-bit generator/issuer code.")
@click.option("--serial", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="32-bit serial.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--strength", type=click.FloatRange(0.5, 2.0), default=None,
              help="learned only: the residual's scale (default 1.2, PSNR ~40.1 dB; 1.0 gives ~41.7 dB and reads "
                   "fewer crops to half the area: README).")
@json_option
def embed_cmd(src, out, scheme, key, generator, serial, quality, strength, as_json):
    """Embed our keyed watermark (sync bits + BCH-protected ID) into IN, write OUT."""
    image = _load(src)
    try:
        fmt = format_for_path(out)
    except ImageLoadError as exc:
        fail(out, str(exc))
    carries_id = payload.layout_for(watermark.get(scheme).capacity).has_id
    if not carries_id and (generator or serial):
        fail(src, f"{scheme} has no room for --generator/--serial")
    wm_id = payload.WatermarkId(generator, serial) if carries_id else None
    try:
        marked_rgb = embed_mark(image.rgb, Mark(scheme, key, wm_id, strength))
    except MarkingError as exc:
        fail(src, str(exc))
    try:
        data = encode_image(marked_rgb, fmt, quality=quality, like=image)
        Path(out).write_bytes(data)
    except (OSError, ValueError, KeyError) as exc:
        fail(out, f"cannot write: {exc}")
    # Read back what was written (JPEG may already have damaged the mark).
    written = load_image(data, name=out)
    check = decision.decode_scheme(written.bgr, watermark.get(scheme), [key], 1, wm_calibration.Calibration())[0]
    record = {
        "in": src, "out": out, "scheme": scheme, "key": decision.key_label(key),
        "id": {"generator": generator, "serial": serial} if wm_id else None,
        "psnr_db": round(psnr(image.rgb, written.rgb), 2),
        "readback": check.to_dict(),
    }
    if as_json:
        emit_json(record)
        return
    click.echo(f"{out}: {scheme} mark, {wm_id or 'no ID'}, PSNR {record['psnr_db']:.1f} dB; "
               f"read back {check.evidence_text}"
               + ("" if check.detected else " (NOT detectable after writing; try PNG or a higher --quality)"))


def _schemes_option(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        return DEFAULT_DECODE_SCHEMES
    if "all" in values:  # every scheme with a null: a shipped one, or its own (``decide``, as decode_scheme reads it)
        shipped = wm_calibration.Calibration()
        return tuple(name for name in watermark.available()
                     if f"{name}/uint8" in shipped or hasattr(watermark.get(name), "decide"))
    return tuple(dict.fromkeys(values))


@watermark_group.command("decode")
@click.argument("src", metavar="IN", type=click.Path(dir_okay=False))
@click.option("--scheme", "schemes", multiple=True, type=click.Choice([*watermark.available(), "all"]),
              help="Scheme(s) to try (repeatable); default dwtDct, dwtDctSvd and learned; 'all' adds rivaGan (slow).")
@click.option("--key", "keys", multiple=True, help="Key(s) to try (repeatable); default the public key.")
@json_option
def decode_cmd(src, schemes, keys, as_json):
    """Look for our keyed watermark in IN; p-values are corrected for every scheme and key tried."""
    image = _load(src)
    schemes = _schemes_option(schemes)
    keys = tuple(keys) or (payload.DEFAULT_KEY,)
    too_small = size_problem(image.width, image.height)
    if too_small:
        fail(src, too_small)
    try:
        results = decision.decode_watermark(image.bgr, schemes, keys)
    except wm_calibration.MissingCalibration as exc:
        fail(src, str(exc))
    top = decision.best(results)
    if as_json:
        emit_json({"source": src, "detected": top.detected, "best": top.to_dict(), "results": [r.to_dict() for r in results]})
        return
    for r in results:
        verdict = "DETECTED" if r.detected else "not detected"
        click.echo(f"{src}: {r.scheme:9s} {r.key}: {r.evidence_text}, corrected p = "
                   f"{r.corrected_p:.2g} ({r.tests} tests): {verdict}" + (f"; {r.id_text}" if r.detected else ""))


@watermark_group.command("calibrate")
@click.option("--n-images", type=click.IntRange(10), default=2000, show_default=True, help="Unmarked variants to decode.")
@click.option("--keys", "n_keys", type=click.IntRange(1), default=5000, show_default=True, help="Random keys per decode.")
@click.option("--rivagan-images", type=click.IntRange(0), default=60, show_default=True,
              help="Variants also decoded with rivaGan (seconds each; 0 leaves rivaGan uncalibrated).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=None, help="Processes (default: up to 2).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=str(wm_calibration.CALIBRATION_FILE),
              show_default=True, help="Where to write the calibration JSON.")
@click.option("--negatives", "negatives", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder of further unmarked photos for the Stable Diffusion tests (repeatable).")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The public corpus (`provenance dataset corpus rebuild --out`): its real photos of "
                   "--corpus-splits are further unmarked photos for the Stable Diffusion tests.")
@click.option("--corpus-splits", default="train,validation", show_default=True,
              help="Which splits of the corpus's real photos (the others stay held out).")
@click.option("--negative-crops", default="", metavar="SIDES", callback=crop_sides,
              help="Also a random crop of each further photo per side, px, comma-separated (e.g. 384,256), "
                   "re-saved as JPEG: block grids of every width, as crops posted online have them.")
@json_option
def calibrate_cmd(n_images, n_keys, rivagan_images, seed, workers, out, negatives, corpus, corpus_splits,
                  negative_crops, as_json):
    """Measure the decoders' null on unmarked photos and write the calibration file."""
    def progress(done, total):
        if not as_json:
            click.echo(f"  decoded {done}/{total} variants", err=True)

    from provenance.watermark.calibration import run_calibration

    files = {}
    if corpus is not None:
        from provenance.corpus_detector import corpus_samples

        splits = {v.strip() for v in corpus_splits.split(",") if v.strip()}
        files[f"{corpus} real photos, {', '.join(sorted(splits))} splits"] = sorted(
            Path(s.image.path) for s in corpus_samples(corpus) if not s.label and s.split in splits)
    result = run_calibration(n_images, n_keys, seed, rivagan_images, workers, progress, negatives, files, negative_crops)
    try:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    except OSError as exc:
        fail(out, f"cannot write: {exc.strerror or exc}")
    if as_json:
        emit_json({k: v for k, v in result.items()})
        return
    click.echo(f"wrote {out}")
    click.echo(_calibration_table(result))


def _calibration_table(result: dict) -> str:
    """One row per test. 'detector' is the threshold after the default detectors' Bonferroni
    factor (ours: 2 schemes x 1 key; SD: every hard and soft test); overdispersion at 1e-6 is the
    fit's floor, i.e. none found (the nulls are narrower than binomial: compare sd with bin.sd).
    Soft rows give t values: the reference sd is Student t's with the soft test's dof."""
    factors = {"keyed": len(DEFAULT_DECODE_SCHEMES), "fixed": soft_marks.test_count(), "soft": soft_marks.test_count()}
    lines = [f"{'test':19s} {'kind':5s} {'images':>6s} {'trials':>8s} {'mean':>6s} {'sd':>5s} {'bin.sd':>6s} "
             f"{'overdisp':>8s} {'max':>6s} {'thr@1e-6':>8s} {'detector':>8s} {'emp.FPR':>13s}"]
    for name, t in result["tests"].items():
        fpr = f"{t['trials_at_or_above_threshold']}/{t['trials']}"
        if t["kind"] == "soft":
            null = wm_calibration.SoftNullFit(name, t["grid_step"], t["p_value_by_t"])
            detector = null.threshold(wm_calibration.TARGET_FPR / factors["soft"])
            lines.append(
                f"{name:19s} {'soft':5s} {t['images']:6d} {t['trials']:8d} {t['mean']:6.2f} {t['sd']:5.2f} "
                f"{t['reference_sd']:6.2f} {'scale':>4s}{t['scale']:4.2f} {t['max_t']:6.2f} "
                f"{t['threshold_at_1e-6']:>8.2f} {detector:>8.2f} {fpr:>13s}")
            continue
        null = wm_calibration.NullFit(name, t["bits"], t["p_value_by_matches"])
        detector = null.threshold(wm_calibration.TARGET_FPR / factors[t["kind"]])
        lines.append(
            f"{name:19s} {t['kind']:5s} {t['images']:6d} {t['trials']:8d} {t['mean']:6.2f} {t['sd']:5.2f} "
            f"{t['binomial_sd']:6.2f} {t['overdispersion']:8.1e} {t['max_matches']:6d} "
            f"{t['threshold_at_1e-6']:>4d}/{t['bits']:<3d} {detector:>4d}/{t['bits']:<3d} {fpr:>13s}")
    return "\n".join(lines)
