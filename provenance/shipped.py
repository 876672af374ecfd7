"""Where shipped models live and what their files are called: the one place that knows.

Trained classifiers ship in ``detectors/weights/<name>/`` (``classifier.json`` plus the family's
weights file); our generators in ``provenance/generators/weights/<name>/`` (``config.json`` plus
``weights.safetensors``). Every weights file is safetensors: loading one never runs code.
"""
from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent

CLASSIFIERS_DIR = _ROOT / "detectors" / "weights"
CLASSIFIER_META_FILE = "classifier.json"
# the gate that makes the classifiers abstain on computer-rendered images (detectors/learned/rendered.py):
# a folder beside the classifiers' with gate.json, not classifier.json, so it is no classifier itself
RENDERED_GATE_DIR = CLASSIFIERS_DIR / "rendered-graphic"
# family -> weights file inside a classifier folder
CLASSIFIER_WEIGHTS_FILES = {"cnn": "cnn.safetensors", "spectral": "spectral.safetensors",
                            "surprise": "surprise.safetensors"}

GENERATORS_DIR = _ROOT / "provenance" / "generators" / "weights"
GENERATOR_CONFIG_FILE = "config.json"
GENERATOR_WEIGHTS_FILE = "weights.safetensors"

MODEL_CARD_FILE = "MODEL_CARD.md"
SPLITS_FILE = "splits.json"  # a shipped classifier's record of which real photos fed which split


def _names(folder: Path, marker: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if (p / marker).is_file()) if folder.is_dir() else []


def shipped_classifiers() -> list[str]:
    """Names of the classifiers shipped with trained weights, e.g. ``["cnn", "spectral"]``."""
    return _names(CLASSIFIERS_DIR, CLASSIFIER_META_FILE)


def shipped_generators() -> list[str]:
    return _names(GENERATORS_DIR, GENERATOR_WEIGHTS_FILE)


def classifier_dir(name_or_path: str | Path) -> Path:
    """A classifier folder given as a path, or a shipped classifier's by name."""
    path = Path(name_or_path)
    return path if path.is_dir() else CLASSIFIERS_DIR / str(name_or_path)


def generator_dir(name_or_path: str | Path) -> Path:
    """An export folder given as a path, or a shipped generator's by name."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    shipped = GENERATORS_DIR / str(name_or_path)
    if shipped.is_dir():
        return shipped
    raise FileNotFoundError(f"{name_or_path}: not a directory nor a shipped generator "
                            f"(shipped: {', '.join(shipped_generators()) or 'none'})")
