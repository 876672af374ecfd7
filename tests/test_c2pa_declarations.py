"""AI declarations wherever real manifests put them, each signed by c2pa's Builder and read back."""
from __future__ import annotations

import json

import pytest

from detectors.c2pa_manifest import C2paManifestDetector
from detectors.results import Label, Signal, Strength
from provenance.check import CheckConfig, Checker, NamedBytes
from provenance.c2pa.vocabulary import SOURCE_TYPES, AiInvolvement, describe_source_type
from provenance.imageio import load_image
from tests.c2pa_helpers import IPTC, BuilderSigner, action, jpeg_bytes, manifest

MODEL_ID = "gemini-2.5-flash-image"


@pytest.fixture(scope="module")
def signer(keys) -> BuilderSigner:
    return BuilderSigner(keys)


@pytest.fixture(scope="module")
def detector(keys) -> C2paManifestDetector:
    return C2paManifestDetector(trust_anchors=[keys.root_cert], use_trust_store=False)


@pytest.fixture(scope="module")
def checker(keys) -> Checker:
    return Checker(CheckConfig(detectors=("c2pa", "metadata"), detector_options={
        "c2pa": {"trust_anchors": [keys.root_cert], "use_trust_store": False}}))


@pytest.fixture(scope="module")
def ai_image(signer) -> bytes:
    return signer.sign(manifest(action("c2pa.created", "trainedAlgorithmicMedia"), generator="some-generator"),
                       jpeg_bytes(50))


@pytest.fixture(scope="module")
def photo(signer) -> bytes:
    return signer.sign(manifest(action("c2pa.created", "digitalCapture"), generator="camera"), jpeg_bytes(80))


def _opened(label: str = "parent", **parameters) -> dict:
    return action("c2pa.opened", parameters={"ingredientIds": [label], **parameters})


def test_firefly_vendor_parameters_on_opened_are_a_declaration(signer, detector, checker):
    """Adobe Firefly opening a third-party model's output: the source type sits in parameters."""
    firefly = manifest(_opened(**{"com.adobe.digitalSourceType": IPTC + "trainedAlgorithmicMedia",
                                  "com.adobe.modelId": MODEL_ID, "com.adobe.modelVersion": "2.5",
                                  "com.adobe.details": "Gemini"}), generator="Adobe_Firefly")
    data = signer.sign(firefly, jpeg_bytes(), ingredients=[({"title": "generated.jpg", "relationship": "parentOf",
                                                              "label": "parent"}, "image/jpeg", jpeg_bytes(10))])
    evidence = detector.detect(load_image(data))
    assert (evidence.signal, evidence.strength, evidence.state) == (Signal.SYNTHETIC, Strength.DECLARED_TRUSTED,
                                                                     "Trusted")
    assert "parameters.com.adobe.digitalSourceType" in evidence.summary
    assert f"model {MODEL_ID} 2.5" in evidence.summary and "declares AI generation" in evidence.summary
    [declaration] = [d for d in evidence.details["declarations"] if d["source_type"]]
    assert declaration["field"] == "c2pa.actions.v2 c2pa.opened parameters.com.adobe.digitalSourceType"
    assert declaration["manifest"] == evidence.details["active_manifest"] and declaration["via"] == []
    assert declaration["model"] == f"{MODEL_ID} 2.5"

    verdict = checker.check_one(NamedBytes("firefly.jpg", data))
    assert (verdict.label, verdict.ai_involvement) == (Label.SYNTHETIC, AiInvolvement.GENERATED)
    assert json.loads(verdict.to_json())["ai_involvement"] == "ai_generated"


def test_v1_style_action_with_a_string_software_agent(signer, detector):
    """c2pa-rs 0.91.3 writes the actions label as v2 even for a v1 claim, but keeps the v1 shape."""
    old = {"claim_version": 1, "claim_generator": "Old_Tool/1.0",
           "assertions": [{"label": "c2pa.actions", "data": {"actions": [
               action("c2pa.created", "trainedAlgorithmicMedia", softwareAgent="Adobe Firefly")]}}]}
    evidence = detector.detect(load_image(signer.sign(old, jpeg_bytes())))
    assert evidence.signal == Signal.SYNTHETIC and evidence.details["ai_involvement"] == "ai_generated"
    [declaration] = evidence.details["declarations"]
    assert declaration["field"].endswith("c2pa.created digitalSourceType")
    assert (declaration["generator"], declaration["model"]) == ("Adobe Firefly", "Adobe Firefly")


def test_an_edit_of_an_ai_image_is_ai_derived(signer, detector, ai_image):
    edit = manifest(_opened(), action("c2pa.edited"), generator="Photo editor")
    data = signer.sign(edit, jpeg_bytes(51), ingredients=[
        ({"title": "ai.jpg", "relationship": "parentOf", "label": "parent"}, "image/jpeg", ai_image)])
    evidence = detector.detect(load_image(data))
    assert evidence.signal == Signal.SYNTHETIC and evidence.state == "Trusted"
    assert "derived from AI-generated content" in evidence.summary and "parentOf 'ai.jpg'" in evidence.summary
    assert evidence.details["ai_involvement"] == AiInvolvement.GENERATED
    [declaration] = [d for d in evidence.details["declarations"] if d["source_type"]]
    assert declaration["via"] == ["parentOf 'ai.jpg'"] and declaration["manifest"] != evidence.details["active_manifest"]
    assert declaration["applies_as"] == "trainedAlgorithmicMedia"


def test_a_composite_that_places_an_ai_ingredient(signer, detector, checker, ai_image, photo):
    composite = manifest(_opened(), action("c2pa.placed", parameters={"ingredientIds": ["element"]}),
                         generator="Layout tool")
    data = signer.sign(composite, jpeg_bytes(81), ingredients=[
        ({"title": "photo.jpg", "relationship": "parentOf", "label": "parent"}, "image/jpeg", photo),
        ({"title": "ai.jpg", "relationship": "componentOf", "label": "element"}, "image/jpeg", ai_image)])
    evidence = detector.detect(load_image(data))
    assert evidence.signal == Signal.SYNTHETIC
    assert "a composite with AI-generated content (compositeWithTrainedAlgorithmicMedia)" in evidence.summary
    assert "componentOf 'ai.jpg'" in evidence.summary
    assert not evidence.details["capture_declared"]  # the photo underneath does not make it a capture
    applied = {d["applies_as"] for d in evidence.details["declarations"]}
    assert applied == {"digitalCapture", "compositeWithTrainedAlgorithmicMedia"}

    verdict = checker.check_one(NamedBytes("composite.jpg", data))
    assert (verdict.label, verdict.ai_involvement) == (Label.SYNTHETIC, AiInvolvement.EDITED)


def test_ai_edit_of_a_photo_is_told_apart_from_generation(signer, detector, checker, photo):
    fill = manifest(_opened(), action("c2pa.edited", "compositeWithTrainedAlgorithmicMedia",
                                      description="generative fill"), generator="Photo editor")
    data = signer.sign(fill, jpeg_bytes(82), ingredients=[
        ({"title": "photo.jpg", "relationship": "parentOf", "label": "parent"}, "image/jpeg", photo)])
    evidence = detector.detect(load_image(data))
    assert "editing or compositing with AI (compositeWithTrainedAlgorithmicMedia)" in evidence.summary
    assert "AI generation" not in evidence.summary
    verdict = checker.check_one(NamedBytes("filled.jpg", data))
    assert (verdict.label, verdict.ai_involvement) == (Label.SYNTHETIC, AiInvolvement.EDITED)

    # trainedAlgorithmicMedia on an edit describes what was added: still an AI edit, not generation
    added = manifest(_opened(), action("c2pa.edited", "trainedAlgorithmicMedia"), generator="Photo editor")
    data = signer.sign(added, jpeg_bytes(83), ingredients=[
        ({"title": "photo.jpg", "relationship": "parentOf", "label": "parent"}, "image/jpeg", photo)])
    assert detector.detect(load_image(data)).details["ai_involvement"] == AiInvolvement.EDITED


def test_an_ai_reference_given_as_input_does_not_make_the_output_ai(signer, detector, ai_image):
    """inputTo: the ingredient fed a process; its origin says nothing about this capture."""
    made = manifest(action("c2pa.created", "digitalCapture"), generator="camera")
    data = signer.sign(made, jpeg_bytes(84), ingredients=[
        ({"title": "reference.jpg", "relationship": "inputTo"}, "image/jpeg", ai_image)])
    evidence = detector.detect(load_image(data))
    assert evidence.signal == Signal.CAPTURE and not evidence.details["ai_declared"]


def test_a_generator_named_only_as_claim_generator_is_weak(signer, detector, checker):
    data = signer.sign(manifest(_opened(), generator="Adobe_Firefly"), jpeg_bytes(85), ingredients=[
        ({"title": "in.jpg", "relationship": "parentOf", "label": "parent"}, "image/jpeg", jpeg_bytes(11))])
    evidence = detector.detect(load_image(data))
    assert (evidence.signal, evidence.strength) == (Signal.SYNTHETIC, Strength.WEAK)
    assert "names a generator (Adobe_Firefly in claim_generator_info" in evidence.summary
    assert checker.check_one(data).label == Label.LIKELY_SYNTHETIC

    plain = signer.sign(manifest(_opened(), generator="Adobe_Photoshop"), jpeg_bytes(86), ingredients=[
        ({"title": "in.jpg", "relationship": "parentOf", "label": "parent"}, "image/jpeg", jpeg_bytes(12))])
    assert detector.detect(load_image(plain)).signal == Signal.NONE


@pytest.mark.parametrize("source_type", SOURCE_TYPES)
def test_every_source_type_reads_back_with_its_photo_desk_meaning(source_type, signer, detector):
    data = signer.sign(manifest(action("c2pa.created", source_type)), jpeg_bytes(90))
    evidence = detector.detect(load_image(data))
    info = describe_source_type(source_type)
    assert info.involvement != AiInvolvement.UNKNOWN and info.meaning
    assert evidence.details["ai_involvement"] == info.involvement == evidence.ai_involvement
    if info.involvement in (AiInvolvement.GENERATED, AiInvolvement.EDITED, AiInvolvement.ALGORITHMIC):
        assert evidence.signal == Signal.SYNTHETIC
    elif source_type in ("digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"):
        assert evidence.signal == Signal.CAPTURE
    else:
        assert evidence.signal == Signal.NONE and info.meaning in evidence.summary


def test_ai_involvement_of_a_verdict_rests_on_trusted_claims_only(signer, keys, checker):
    drawn = signer.sign(manifest(action("c2pa.created", "digitalCreation")), jpeg_bytes(91))
    trusted = checker.check_one(drawn)
    assert (trusted.label, trusted.ai_involvement) == (Label.NO_EVIDENCE, AiInvolvement.DIGITAL_CREATION)
    assert any("made by a person with digital tools" in r for r in trusted.reasons)
    untrusting = Checker(CheckConfig(detectors=("c2pa", "metadata"), detector_options={
        "c2pa": {"use_trust_store": False}}))
    untrusted = untrusting.check_one(drawn)
    assert (untrusted.label, untrusted.ai_involvement) == (Label.NO_EVIDENCE, None)
    assert any("signer not on the trust list" in r for r in untrusted.reasons)
