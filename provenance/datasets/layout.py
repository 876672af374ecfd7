"""The on-disk layout of a built dataset (Hugging Face ``imagefolder``), shared by the builder,
the reader, the verifier and the card::

    DIR/README.md                   dataset card (counts, pipeline, sources)
    DIR/train|validation|test/      images + metadata.jsonl (file_name + labels), one row per image
    DIR/c2pa_trust_root.pem         root certificate that signed the manifests in this set
    DIR/.build/                     config.json, plan.jsonl, records/<id>.json, keys/ (not data)
"""
from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "validation", "test")
CARD_FILE = "README.md"
BUILD_DIR = ".build"
CONFIG_FILE = f"{BUILD_DIR}/config.json"
PLAN_FILE = f"{BUILD_DIR}/plan.jsonl"
RECORDS_DIR = f"{BUILD_DIR}/records"
KEYS_DIR = f"{BUILD_DIR}/keys"
METADATA_FILE = "metadata.jsonl"
TRUST_ROOT_FILE = "c2pa_trust_root.pem"
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def file_name(item_id: str, image_format: str) -> str:
    return f"{item_id}{EXTENSIONS[image_format]}"


def image_path(out: Path, row: dict) -> Path:
    return Path(out) / row["split"] / row["file_name"]


def record_path(out: Path, item_id: str) -> Path:
    return Path(out) / RECORDS_DIR / f"{item_id}.json"


def metadata_path(out: Path, split: str) -> Path:
    return Path(out) / split / METADATA_FILE
