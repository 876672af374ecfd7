"""``provenance dataset verify``: is a built dataset complete, consistent and leak-free?"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image

from .layout import EXTENSIONS, PLAN_FILE, SPLITS, image_path, metadata_path
from .plan import Item


def verify_dataset(out: str | Path, deep: bool = False) -> tuple[int, list[str]]:
    """(images checked, problems). ``deep`` also decodes watermarks and reads C2PA manifests."""
    out = Path(out)
    plan_file = out / PLAN_FILE
    if not plan_file.is_file():
        return 0, [f"{out}: no {PLAN_FILE} (not a dataset built by provenance)"]
    plan = {item["id"]: Item(**item) for item in map(json.loads, plan_file.read_text().splitlines())}
    problems: list[str] = []
    seen: dict[str, str] = {}
    rows = []
    for split in SPLITS:
        metadata = metadata_path(out, split)
        if not metadata.is_file():
            problems.append(f"{metadata}: missing (build not finished? run the same build command again)")
            continue
        listed = set()
        for number, line in enumerate(metadata.read_text().splitlines(), 1):
            row = json.loads(line)
            rows.append(row)
            where = f"{metadata}:{number}"
            listed.add(row["file_name"])
            if row["id"] in seen:
                problems.append(f"{where}: {row['id']} listed twice (also at {seen[row['id']]})")
            seen[row["id"]] = where
            item = plan.get(row["id"])
            if item is None:
                problems.append(f"{where}: {row['id']} is not in the plan")
                continue
            wrong = [k for k, v in item.labels().items() if row.get(k) != v]
            if wrong or row["split"] != split or row["file_name"] != item.file_name:
                problems.append(f"{where}: labels differ from the plan ({', '.join(wrong) or 'split/file name'})")
            problems += _check_file(image_path(out, row), row)
        present = {p.name for p in (out / split).iterdir() if p.suffix in EXTENSIONS.values()} \
            if (out / split).is_dir() else set()
        problems += [f"{out / split / name}: image without a metadata row" for name in sorted(present - listed)]
    problems += [f"{item_id}: planned but missing" for item_id in sorted(set(plan) - set(seen))]
    problems += _split_leaks(rows)
    if deep:
        problems += _deep_checks(out, rows)
    return len(rows), problems


def _check_file(path: Path, row: dict) -> list[str]:
    if not path.is_file():
        return [f"{path}: listed but missing"]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        return [f"{path}: contents differ from the recorded sha256"]
    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the finding
        return [f"{path}: not a readable image ({exc})"]
    if size != (row["width"], row["height"]):
        return [f"{path}: is {size[0]}x{size[1]}, labels say {row['width']}x{row['height']}"]
    if (row["label"] == "real") != (row["generator"] == "none"):
        return [f"{path}: label {row['label']} with generator {row['generator']}"]
    return []


def _split_leaks(rows: list[dict]) -> list[str]:
    splits_of: dict[str, set[str]] = {}
    for row in rows:
        if row["label"] == "real" or row["source_group"]:  # outside fakes have groups too
            splits_of.setdefault(row["source_group"], set()).add(row["split"])
    return [f"photo group {group!r} appears in splits {', '.join(sorted(s))}"
            for group, s in sorted(splits_of.items()) if len(s) > 1]


def _deep_checks(out: Path, rows: list[dict]) -> list[str]:
    """The pixels and bytes carry what the labels claim (marks only where nothing was perturbed)."""
    import numpy as np

    from provenance.c2pa.reading import ManifestReader
    from provenance.watermark.decision import best, decode_watermark
    from provenance.watermark.marking import DEFAULT_SCHEME

    problems = []
    reader = ManifestReader(use_trust_store=False)
    for row in rows:
        path = image_path(out, row)
        data = path.read_bytes()
        has_manifest = reader.read(data, Image.open(path).get_format_mimetype()) is not None
        if has_manifest != (row["c2pa"] == "signed"):
            problems.append(f"{path}: C2PA label {row['c2pa']} but manifest {'present' if has_manifest else 'absent'}")
        # Our mark is only promised to survive JPEG down to ~q75 (README robustness table).
        mark_should_read = row["perturbation"] == "none" and (row["format"] == "png" or row["quality"] >= 85)
        if row["label"] == "synthetic" and mark_should_read:
            bgr = np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1].copy()
            found = best(decode_watermark(bgr, (row.get("watermark_scheme") or DEFAULT_SCHEME,)))
            if found.detected != row["watermark"]:
                problems.append(f"{path}: watermark label {row['watermark']} but decoder says {found.detected}")
            # an unreadable ID (too many bit errors to trust: payload.ID_MAX_CORRECTIONS) is no wrong label
            elif found.detected and found.watermark_id is not None and str(found.watermark_id) != row["watermark_id"]:
                problems.append(f"{path}: watermark ID {found.watermark_id} but label {row['watermark_id']}")
    reader.close()
    return problems
