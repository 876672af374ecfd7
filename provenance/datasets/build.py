"""Build a labelled dataset from a plan: parallel workers, atomic writes, resumable after a kill.

The files and folders it writes are described in :mod:`provenance.datasets.layout`. A record is written (atomically) only after its image file is in place, so after a kill the set of
records is exactly the set of finished images; ``metadata.jsonl`` files are assembled from the
records at the end, again atomically. Running the same command again finishes the rest.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from provenance.c2pa.strip import strip_manifest
from provenance.errors import first_line
from provenance.files import write_atomically
from provenance.generators.photos import load_photos
from provenance.imageio import encode_image
from provenance.threads import set_torch_threads
from .card import card_text, count_table
from .layout import (CARD_FILE, CONFIG_FILE, KEYS_DIR, PIL_FORMATS, PLAN_FILE, RECORDS_DIR, SPLITS,
                     TRUST_ROOT_FILE, image_path, metadata_path, record_path)
from .perturbations import apply_all
from .plan import DatasetConfig, Item, make_plan


class DatasetError(ValueError):
    """One line naming the dataset folder's problem."""


class ItemMaker:
    """Turns planned items into files; one per worker process, models loaded lazily once."""

    def __init__(self, out: Path, config: DatasetConfig, keys_dir: Path | None):
        self.out, self.config, self.keys_dir = out, config, keys_dir
        self._photos = None
        self._makers: dict = {}

    def photo(self, name: str) -> np.ndarray:
        if self._photos is None:
            self._photos = {p.name: p.rgb for p in load_photos(self.config.real)}
        return self._photos[name]

    def maker(self, family: str):
        if family not in self._makers:
            from provenance.generation import GenerateOptions, ImageMaker

            c = self.config
            model = c.gan_model if family == "gan" else c.diffusion_model
            options = GenerateOptions(size=c.size, seed=c.seed, watermark=c.watermark_fraction > 0,
                                      c2pa=self.keys_dir is not None, keys=self.keys_dir,
                                      sample_options={"steps": c.diffusion_steps} if family == "diffusion" else {})
            self._makers[family] = ImageMaker(model, options)
        return self._makers[family]

    def real_pixels(self, item: Item) -> np.ndarray:
        s, size = item.source, self.config.size
        photo = self.photo(s["photo"])
        height, width = photo.shape[:2]
        scaled = photo if [width, height] == s["scaled_size"] else np.asarray(
            Image.fromarray(photo).resize(tuple(s["scaled_size"]), Image.Resampling.LANCZOS))
        x, y = s["crop_xy"]
        crop = scaled[y:y + size, x:x + size]
        return np.ascontiguousarray(crop[:, ::-1] if s["hflip"] else crop)

    def make(self, item: Item) -> dict:
        """Make, write and record one item; returns its metadata row."""
        # Every row has the same keys, so tabular loaders infer one schema.
        extra: dict = {"model": "", "model_version": "", "watermark_scheme": "", "watermark_id": ""}
        if item.source and "external" in item.source:
            from .external import external_pixels

            rgb = external_pixels(item.source["path"], item.source["processing"], self.config.size)
        elif item.label == "real":
            rgb = self.real_pixels(item)
        else:
            maker = self.maker(item.generator)
            rgb = maker.sample(item.index, 1)[0]
            extra.update(model=maker.model_name, model_version=maker.model_version)
            watermark_id = None
            if item.watermark:
                rgb, watermark_id = maker.mark(rgb, item.index)
            extra.update(watermark_scheme=maker.options.scheme if watermark_id else "",
                         watermark_id=str(watermark_id) if watermark_id else "")
        rgb = apply_all(rgb, item.perturbations)
        data = encode_image(rgb, PIL_FORMATS[item.encode["format"]], quality=item.encode.get("quality", 95))
        if item.c2pa != "none":
            data = self.maker(item.generator).sign(data, item.index, watermark_id, extra={"dataset_item": item.id})
            if item.c2pa == "stripped":
                data = strip_manifest(data)
        height, width = rgb.shape[:2]
        row = {"file_name": item.file_name, **item.labels(), "width": width, "height": height,
               "sha256": hashlib.sha256(data).hexdigest(), **extra}
        write_atomically(image_path(self.out, row), data)
        write_atomically(record_path(self.out, item.id), json.dumps(row).encode())
        return row


# -- worker processes --------------------------------------------------------------------------
_WORKER: ItemMaker | None = None


def _init_worker(out: str, config: dict, keys_dir: str | None) -> None:
    set_torch_threads(1)
    global _WORKER
    _WORKER = ItemMaker(Path(out), DatasetConfig.from_dict(config), Path(keys_dir) if keys_dir else None)


def _run_item(item: dict) -> dict:
    try:
        return _WORKER.make(Item(**item))
    except Exception as exc:  # reported per item; the build goes on and a re-run retries it
        return {"id": item["id"], "error": first_line(exc, with_type=True)}


@dataclass
class BuildResult:
    out: Path
    planned: int
    made_now: int
    already_done: int
    failed: list[dict]
    counts: dict

    def to_dict(self) -> dict:
        return {"out": str(self.out), "planned": self.planned, "made_now": self.made_now,
                "already_done": self.already_done, "failed": self.failed, "counts": self.counts}


def _prepare(out: Path, config: DatasetConfig, keys: Path | None) -> tuple[list[Item], Path | None]:
    saved = out / CONFIG_FILE
    if saved.is_file():
        before = DatasetConfig.from_dict(json.loads(saved.read_text()))
        if before != config:
            changed = [k for k, v in config.to_dict().items() if before.to_dict()[k] != v]
            raise DatasetError(f"{out}: was built with other settings ({', '.join(changed)}); "
                               "re-run with the same options or use another --out")
    plan_file = out / PLAN_FILE
    if plan_file.is_file():
        plan = [Item(**json.loads(line)) for line in plan_file.read_text().splitlines()]
    else:
        try:
            plan = make_plan(config, load_photos(config.real))
        except FileNotFoundError as exc:
            raise DatasetError(str(exc)) from None
        (out / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
        write_atomically(saved, json.dumps(config.to_dict(), indent=2))
        write_atomically(plan_file, "".join(json.dumps(i.to_dict()) + "\n" for i in plan))
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
    keys_dir = None
    if any(item.c2pa != "none" for item in plan):
        keys_dir = _dataset_keys(out, keys)
    return plan, keys_dir


def _dataset_keys(out: Path, keys: Path | None) -> Path:
    """The given keys, or a key pair made for this dataset; its root goes next to the data."""
    from provenance.c2pa.keys import init_keys, load_keys

    if keys is not None:
        paths = load_keys(keys)
    else:
        directory = out / KEYS_DIR
        paths = load_keys(directory) if (directory / "signer.pem").is_file() else init_keys(
            directory, common_name="provenance dataset signer")
    if paths.root_cert.is_file():
        shutil.copyfile(paths.root_cert, out / TRUST_ROOT_FILE)
    return paths.directory


def done_rows(out: Path, plan: Iterable[Item]) -> dict[str, dict]:
    """Records whose image file is present (a record without its file is redone)."""
    rows = {}
    for item in plan:
        path = record_path(out, item.id)
        if path.is_file():
            row = json.loads(path.read_text())
            if image_path(out, row).is_file():
                rows[item.id] = row
    return rows


def build_dataset(out: str | Path, config: DatasetConfig, workers: int = 1, keys: str | Path | None = None,
                  on_progress: Callable[[int, int], None] | None = None,
                  map_items: Callable[[list[dict], tuple], Iterable[dict]] | None = None) -> BuildResult:
    """Build (or finish building) the dataset in ``out``. ``on_progress(done, total)`` after each image.
    ``map_items(todo, worker_args)``, when given, runs the items elsewhere (e.g. on Ray) instead of
    ``workers`` local processes: each of its workers calls ``_init_worker(*worker_args)`` once, then
    ``_run_item`` per item, and the rows come back in any order."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan, keys_dir = _prepare(out, config, Path(keys) if keys else None)
    rows = done_rows(out, plan)
    already = len(rows)
    todo = [item.to_dict() for item in plan if item.id not in rows]
    failed: list[dict] = []
    if on_progress:
        on_progress(already, len(plan))
    args = (str(out), config.to_dict(), str(keys_dir) if keys_dir else None)
    if map_items is not None:
        results, pool = map_items(todo, args), None
    elif workers <= 1:
        _init_worker(*args)
        results = map(_run_item, todo)
        pool = None
    else:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=args)
        results = pool.imap_unordered(_run_item, todo)
    try:
        for row in results:
            if "error" in row:
                failed.append(row)
            else:
                rows[row["id"]] = row
            if on_progress:
                on_progress(len(rows) + len(failed), len(plan))
    finally:
        if pool is not None:
            pool.terminate()
    finish(out, plan, rows, config)
    return BuildResult(out, len(plan), len(rows) - already, already, failed, count_table(rows.values()))


def finish(out: Path, plan: list[Item], rows: dict[str, dict], config: DatasetConfig) -> None:
    """Write each split's metadata.jsonl (plan order) and the dataset card from the records."""
    done = [rows[item.id] for item in plan if item.id in rows]
    for split in SPLITS:
        lines = "".join(json.dumps(row) + "\n" for row in done if row["split"] == split)
        write_atomically(metadata_path(out, split), lines)
    write_atomically(out / CARD_FILE, card_text(config, done, len(plan), out))
