from __future__ import annotations

import io

import numpy as np
from PIL import Image, PngImagePlugin

from detectors.fusion import fuse
from detectors.metadata import MetadataDetector
from detectors.results import Evidence, Label, Signal, Strength
from provenance.imageio import load_image

A1111 = "a cat, oil painting\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Model: sd15"


def _png(text: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _jpeg_with_exif(tag: int, value) -> bytes:
    exif = Image.Exif()
    exif[tag] = value
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _detect(data: bytes) -> Evidence:
    return MetadataDetector().detect(load_image(data))


def test_a1111_parameters_and_comfyui_are_found():
    ev = _detect(_png({"parameters": A1111}))
    assert ev.signal == Signal.SYNTHETIC and ev.strength == Strength.WEAK
    assert "AUTOMATIC1111" in ev.summary
    ev = _detect(_png({"prompt": '{"3": {"class_type": "KSampler", "inputs": {}}}'}))
    assert ev.signal == Signal.SYNTHETIC and "ComfyUI" in ev.summary


def test_innocent_text_chunks_are_not_flagged():
    ev = _detect(_png({"prompt": "Press photo, caption: the mayor speaks", "Software": "GIMP 2.10"}))
    assert ev.signal == Signal.NONE


def test_exif_software_naming_a_generator():
    assert _detect(_jpeg_with_exif(0x0131, "Midjourney v6")).signal == Signal.SYNTHETIC
    assert _detect(_jpeg_with_exif(0x0131, "Adobe Photoshop 25.0")).signal == Signal.NONE


def test_xmp_digital_source_type():
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/'
           'trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>')
    ev = _detect(_png({"XML:com.adobe.xmp": xmp}))
    assert ev.signal == Signal.SYNTHETIC and "DigitalSourceType" in ev.summary
    ev = _detect(_png({"XML:com.adobe.xmp": xmp.replace("trainedAlgorithmicMedia", "digitalCapture")}))
    assert ev.signal == Signal.NONE and "not relied on" in ev.summary


def _ev(signal, strength, summary="x", **details):
    return Evidence("d", "f", signal, strength, summary, details=details)


def test_fusion_ladder():
    none = _ev(Signal.NONE, Strength.NONE)
    assert fuse([none, none])[0] == Label.NO_EVIDENCE
    assert "not proof" in fuse([none])[1][-1]
    assert fuse([_ev(Signal.SYNTHETIC, Strength.STRONG), none])[0] == Label.SYNTHETIC
    assert fuse([_ev(Signal.SYNTHETIC, Strength.DECLARED), none])[0] == Label.SYNTHETIC
    assert fuse([_ev(Signal.SYNTHETIC, Strength.MODERATE), none])[0] == Label.LIKELY_SYNTHETIC
    assert fuse([_ev(Signal.SYNTHETIC, Strength.WEAK), none])[0] == Label.LIKELY_SYNTHETIC
    assert fuse([_ev(Signal.CAPTURE, Strength.DECLARED_TRUSTED), none])[0] == Label.CAPTURE_DECLARED
    # an untrusted capture claim is reported but not relied on
    label, reasons = fuse([_ev(Signal.CAPTURE, Strength.DECLARED, "capture by untrusted"), none])
    assert label == Label.NO_EVIDENCE and "capture by untrusted" in reasons


def test_fusion_is_cautious_with_broken_or_conflicting_evidence():
    none = _ev(Signal.NONE, Strength.NONE)
    # a manifest grafted onto another image fails validation: never enough to call it synthetic
    assert fuse([_ev(Signal.TAMPERED, Strength.NONE, ai_declared=True), none])[0] == Label.INCONCLUSIVE
    # trusted capture vs weak metadata: conflict, not a verdict either way
    assert fuse([_ev(Signal.CAPTURE, Strength.DECLARED_TRUSTED), _ev(Signal.SYNTHETIC, Strength.WEAK)])[0] \
        == Label.INCONCLUSIVE
    # a calibrated mark outweighs a capture claim, and the conflict is reported
    label, reasons = fuse([_ev(Signal.CAPTURE, Strength.DECLARED_TRUSTED, "cap"), _ev(Signal.SYNTHETIC, Strength.STRONG)])
    assert label == Label.SYNTHETIC and any(r.startswith("conflict") for r in reasons)
    skipped = _ev(Signal.SKIPPED, Strength.NONE, "too small")
    assert fuse([skipped, skipped])[0] == Label.INCONCLUSIVE
    label, reasons = fuse([skipped, none])
    assert label == Label.NO_EVIDENCE and any("not examined" in r for r in reasons)


def test_a_detector_that_failed_makes_the_verdict_inconclusive_not_no_evidence():
    none = _ev(Signal.NONE, Strength.NONE)
    failed = Evidence("watermark", "watermark", Signal.ERROR, Strength.NONE, "watermark failed on this file",
                      error="MemoryError: ")
    label, reasons = fuse([failed, none])
    assert label == Label.INCONCLUSIVE
    assert any("watermark failed" in r for r in reasons)
    assert any("not examined by watermark: MemoryError" in r for r in reasons)
    # positive evidence from the others still stands
    assert fuse([failed, _ev(Signal.SYNTHETIC, Strength.STRONG)])[0] == Label.SYNTHETIC
