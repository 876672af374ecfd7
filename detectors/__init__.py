"""Read side: everything that scores an image.

``detectors.create("c2pa")`` builds a detector by name; ``detectors.available()`` lists them.
Each detector module registers itself on import, as timm's model files do.
"""
from provenance.registry import Registry

from .base import Detector
from .results import Evidence, Label, Signal, Strength, Verdict

REGISTRY: Registry[Detector] = Registry("detector")
register = REGISTRY.register
create = REGISTRY.create
available = REGISTRY.available

# Imported for their registrations.
from . import c2pa_manifest, classifiers, metadata, watermark_ours, watermark_thirdparty  # noqa: E402,F401

__all__ = ["Detector", "Evidence", "Label", "Signal", "Strength", "Verdict", "create", "available", "register"]
