"""A detector that misbehaves according to the file's name, as a hostile file would make a real
detector do; registered on import, so worker processes load it as a plugin (``CheckConfig.plugins``)."""
from __future__ import annotations

import os
import time

from detectors import REGISTRY as DETECTORS
from detectors.base import Detector
from detectors.results import Signal, Strength


class HostileDetector(Detector):
    name = "test-hostile"
    family = "test"

    def detect(self, image):
        if "stall" in image.source:
            time.sleep(600)
        if "large" in image.source:
            time.sleep(4)  # over the flat 3 s, within what its megapixels earn
        if "die" in image.source:
            os.kill(os.getpid(), 9)
        if "hog" in image.source:
            hog = b"x" * (400 * 2**20)  # written, so resident
            time.sleep(30)
            del hog
        return self.evidence(Signal.NONE, Strength.NONE, "looked")


if HostileDetector.name not in DETECTORS:
    DETECTORS.register(HostileDetector.name)(HostileDetector)
