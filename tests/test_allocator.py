"""The allocator policy: freed image-sized buffers are reused instead of faulted in again."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Check one 1080p photo with the watermark detectors a few times; print the page faults per check.
SCRIPT = """
import io, resource, sys
import numpy as np
from PIL import Image
from skimage import data
from provenance.allocator import apply_allocator_policy
applied = apply_allocator_policy() if sys.argv[1] == "policy" else False
from provenance.check import CheckConfig, Checker, NamedBytes
buffer = io.BytesIO()
Image.fromarray(data.chelsea()).resize((1920, 1080)).save(buffer, "JPEG", quality=90)
photo = NamedBytes("chelsea.jpg", buffer.getvalue())
# the classical schemes only: the learned one's onnxruntime sessions keep their own buffers
checker = Checker(CheckConfig(detectors=("watermark", "sd-watermark"),
                              detector_options={"watermark": {"schemes": ["dwtDct", "dwtDctSvd"]}}))
for _ in range(2):
    checker.check(photo)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    checker.check(photo)
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def _faults_per_check(mode: str, env_extra: dict | None = None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(env_extra or {}, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env,
                         timeout=120, check=True, cwd=REPO)
    applied, faults = out.stdout.split()[-2:]
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_policy_stops_refaulting_image_buffers():
    applied, with_policy = _faults_per_check("policy")
    _, without = _faults_per_check("none")
    assert applied == "True"
    one_rgb_image = 1080 * 1920 * 3 // 4096  # pages
    assert without > one_rgb_image  # glibc's defaults hand buffers back and fault them in again
    assert with_policy < without / 10


def test_a_users_own_malloc_settings_win():
    applied, _ = _faults_per_check("policy", {"MALLOC_TRIM_THRESHOLD_": "1000000"})
    assert applied == "False"
