"""`provenance serve`: every endpoint and status code through FastAPI's TestClient.

The limits are exercised on an app running only the cheap metadata detector; the verdicts on the
full default detector set, trusting the test keys.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time

import pytest

for _module in ("fastapi", "uvicorn", "python_multipart", "fastapi_offline"):
    pytest.importorskip(_module, reason=f"the [serve] extra is not installed ({_module}): pip install 'provenance[serve]'")
pytest.importorskip("httpx2", reason="FastAPI's TestClient needs httpx2")
from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from provenance.check import CheckConfig, Checker  # noqa: E402
from provenance.cli import main  # noqa: E402
from provenance.service.app import create_app  # noqa: E402
from provenance.service.config import ServiceConfig  # noqa: E402
from tests.service_helpers import plain_photo_jpeg, signed_generated_image  # noqa: E402

LIGHT = dict(detectors=("metadata",))


@pytest.fixture(scope="module")
def generated(tiny_gan, keys, tmp_path_factory):
    return signed_generated_image(tiny_gan, keys, tmp_path_factory.mktemp("generated"))


@pytest.fixture(scope="module")
def photo() -> bytes:
    return plain_photo_jpeg()


@pytest.fixture(scope="module")
def full(keys):
    """The default detectors (classifiers included), trusting only the test root."""
    config = ServiceConfig(trust_anchors=(str(keys.root_cert),), use_trust_store=False)
    with TestClient(create_app(config, load_in_background=False)) as client:
        yield client


def light_client(**overrides) -> TestClient:
    return TestClient(create_app(ServiceConfig(**{**LIGHT, **overrides}), load_in_background=False))


def test_generated_and_signed_image_is_synthetic_and_records_match_check_json(full, generated, photo, keys):
    response = full.post("/v1/check", files=[("files", ("gen.png", generated.read_bytes(), "image/png")),
                                             ("files", ("photo.jpg", photo, "image/jpeg"))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    gen, plain = body["records"]
    assert (gen["source"], gen["label"]) == ("gen.png", "synthetic")
    c2pa = next(e for e in gen["evidence"] if e["detector"] == "c2pa")
    assert c2pa["signal"] == "synthetic" and c2pa["state"] == "Trusted"
    assert c2pa["details"]["signer"]["common_name"] == "test generator signer"
    assert any(e["detector"] == "watermark" and e["signal"] == "synthetic" for e in gen["evidence"])
    assert (plain["source"], plain["label"]) == ("photo.jpg", "no_evidence_of_synthesis")

    # the same record `provenance check --json` prints for the same file (but the timing)
    checker = Checker(CheckConfig(detector_options={"c2pa": {"trust_anchors": [keys.root_cert], "use_trust_store": False}}))
    expected = checker.check_one(generated).to_dict()
    for record in (gen, expected):
        record.pop("seconds")
        record.pop("source")
    assert json.loads(json.dumps(gen)) == json.loads(json.dumps(expected))


def test_concurrent_checks_on_the_shared_checker_give_the_same_records(keys, generated, photo):
    config = ServiceConfig(concurrency=2, trust_anchors=(str(keys.root_cert),), use_trust_store=False)
    uploads = {"gen.png": generated.read_bytes(), "photo.jpg": photo}
    with TestClient(create_app(config, load_in_background=False)) as client:
        def post(name):
            record = client.post("/v1/check", files=[("files", (name, uploads[name], "image/jpeg"))]).json()["records"][0]
            record.pop("seconds")
            return name, record

        alone = dict(post(name) for name in uploads)
        together: list = []
        threads = [threading.Thread(target=lambda n=name: together.append(post(n))) for name in list(uploads) * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(together) == 4 and all(record == alone[name] for name, record in together)
    assert alone["gen.png"]["label"] == "synthetic"


def test_raw_body_with_heatmap(full, photo):
    response = full.post("/v1/check?heatmap=1&name=desk/photo.jpg", content=photo, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    (record,) = response.json()["records"]
    assert record["source"] == "photo.jpg" and record["label"] == "no_evidence_of_synthesis"
    heatmap = record["heatmap"]
    assert heatmap["detector"] == "cnn" and (heatmap["width"], heatmap["height"]) == (512, 512)
    assert len(heatmap["tiles"]) == 64 and all(0 <= t["p"] <= 1 for t in heatmap["tiles"])
    assert {(t["x"], t["y"]) for t in heatmap["tiles"]} == {(x, y) for x in range(0, 512, 64) for y in range(0, 512, 64)}
    assert "heatmap" not in full.post("/v1/check", content=photo, headers={"content-type": "image/jpeg"}).json()["records"][0]


def test_client_file_names_are_labels_never_paths(full, photo):
    response = full.post("/v1/check", files=[("files", ("../../etc/passwd", photo, "image/jpeg")),
                                             ("files", ("C:\\x\\evil.jpg", b"not an image", "application/octet-stream"))])
    first, second = response.json()["records"]
    assert first["source"] == "passwd" and first["image"]["width"] == 512  # the upload was checked, not the file
    assert second["source"] == "evil.jpg" and second["label"] == "error"
    assert second["error"] == "not a recognised image format"  # one bad file does not fail the request


def test_labels_are_printable_last_components():
    from provenance.service.uploads import label_for

    assert label_for("a/b\\c\x00\x1b.jpg", 0) == "c.jpg"
    assert label_for("", 2) == "upload-3" and label_for(None, 0) == "upload-1"
    assert len(label_for("x" * 1000, 0)) == 200


def test_detectors_health_and_readiness(full):
    assert full.get("/healthz").json() == {"status": "ok"}
    assert full.get("/readyz").json()["status"] == "ready"
    info = full.get("/v1/detectors").json()
    by_name = {d["name"]: d for d in info["detectors"]}
    assert set(by_name) >= {"c2pa", "watermark", "sd-watermark", "metadata", "cnn"}
    cnn = by_name["cnn"]
    assert len(cnn["weights_sha256"]["cnn.safetensors"]) == 64
    assert 0 < cnn["operating_point"]["threshold"] < 1 and cnn["operating_point"]["target_fpr"] == 0.01
    assert by_name["watermark"]["keys"] == ["default (public)"] and by_name["c2pa"]["trust_anchors"] == 1
    assert info["limits"]["max_files"] == 16


def test_openapi_and_offline_docs(full):
    spec = full.get("/openapi.json").json()
    check = spec["paths"]["/v1/check"]["post"]
    assert {"multipart/form-data", "image/*", "application/octet-stream"} <= set(check["requestBody"]["content"])
    assert {"200", "413", "415", "422", "503"} <= set(check["responses"])
    assert "/v1/detectors" in spec["paths"] and "/readyz" in spec["paths"]
    docs = full.get("/docs").text
    assert "http://" not in docs and "https://" not in docs and "//" not in docs.replace("<!--", "")
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs)
    assert len(assets) == 3 and all(full.get(asset).status_code == 200 for asset in assets), assets
    assert "swagger-ui-bundle.js" in docs and "swagger-ui.css" in docs


def test_page_has_no_outside_assets(full):
    page = full.get("/")
    assert page.status_code == 200 and 'id="files"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self';")
    for text in (page.text, full.get("/static/app.js").text, full.get("/static/app.css").text):
        assert "http://" not in text and "https://" not in text


def test_413_when_declared_streamed_or_too_many_files(photo):
    with light_client(max_upload_bytes=len(photo) + 1000, max_files=2) as client:
        declared = client.post("/v1/check", content=photo + bytes(2000), headers={"content-type": "image/jpeg"})
        assert declared.status_code == 413 and "upload limit" in declared.json()["detail"]

        def chunked():  # no Content-Length: the limit is counted as the body streams in
            for _ in range(100):
                yield bytes(1000)

        streamed = client.post("/v1/check", content=chunked(), headers={"content-type": "image/jpeg"})
        assert streamed.status_code == 413 and "upload limit" in streamed.json()["detail"]

        three = [("files", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(3)]
        too_many = client.post("/v1/check", files=three)
        assert too_many.status_code == 413 and "more than 2 files" in too_many.json()["detail"]
        assert client.post("/v1/check", files=three[:2]).status_code == 200


def test_body_is_cut_off_at_the_limit_not_read_to_the_end():
    import asyncio

    from provenance.service.uploads import UploadError, read_raw

    sent = []

    async def body():
        for _ in range(100):
            sent.append(1000)
            yield bytes(1000)

    with pytest.raises(UploadError) as refused:
        asyncio.run(read_raw(body(), "image/jpeg", None, max_bytes=10_500))
    assert refused.value.status == 413 and sum(sent) == 11_000


def test_pixel_limit_is_the_loaders_and_names_the_file():
    from tests.test_imageio import png_with_claimed_size

    with light_client(max_pixels=1_000_000) as client:
        response = client.post("/v1/check", files=[("files", ("bomb.png", png_with_claimed_size(5000, 5000), "image/png"))])
    (record,) = response.json()["records"]
    assert response.status_code == 200 and record["source"] == "bomb.png" and record["label"] == "error"
    assert "over the 1 MP limit" in record["error"]


def test_415_for_non_image_bodies_and_parts(photo):
    with light_client() as client:
        assert client.post("/v1/check", content=b"{}", headers={"content-type": "application/json"}).status_code == 415
        part = client.post("/v1/check", files=[("files", ("a.jpg", photo, "image/jpeg")), ("files", ("x.html", b"<p>", "text/html"))])
        assert part.status_code == 415 and "x.html" in part.json()["detail"]


def test_422_for_no_file_empty_body_or_bad_query(photo):
    with light_client() as client:
        fields_only = client.post("/v1/check", content=b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\n',
                                  headers={"content-type": "multipart/form-data; boundary=b"})
        assert fields_only.status_code == 422 and "no file" in fields_only.json()["detail"]
        assert client.post("/v1/check", content=b"", headers={"content-type": "image/jpeg"}).status_code == 422
        truncated = client.post("/v1/check", content=b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\n\r\nabc',
                                headers={"content-type": "multipart/form-data; boundary=b"})
        assert truncated.status_code == 422
        assert client.post("/v1/check?heatmap=maybe", content=photo, headers={"content-type": "image/jpeg"}).status_code == 422


class GatedChecker(Checker):
    """A real (metadata-only) Checker whose checks wait for a gate: holds a worker busy on demand."""

    def __init__(self, delay: float = 0.0):
        super().__init__(CheckConfig(detectors=("metadata",)))
        self.gate = threading.Event()
        self.delay = delay

    def check(self, sources):
        self.gate.wait(10)
        time.sleep(self.delay)
        return super().check(sources)


def test_503_while_loading_and_when_the_queue_is_full(photo):
    checker = GatedChecker()
    app = create_app(ServiceConfig(concurrency=1, queue_size=0), checker=checker)
    with TestClient(app) as client:
        loading = client.post("/v1/check", content=photo, headers={"content-type": "image/jpeg"})
        assert loading.status_code == 503 and loading.headers["retry-after"] == "5"
        assert client.get("/readyz").status_code == 503 and client.get("/healthz").status_code == 200
        checker.gate.set()  # the warm-up check finishes: ready
        _wait_until(lambda: client.get("/readyz").status_code == 200)

        checker.gate.clear()
        first: dict = {}
        holder = threading.Thread(target=lambda: first.update(r=client.post(
            "/v1/check", content=photo, headers={"content-type": "image/jpeg"})))
        holder.start()
        _wait_until(lambda: app.state.service.queue.admitted == 1)
        full = client.post("/v1/check", content=photo, headers={"content-type": "image/jpeg"})
        assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
        assert "queue is full" in full.json()["detail"]
        checker.gate.set()
        holder.join(10)
        assert first["r"].status_code == 200


def test_time_budget_504_when_the_check_runs_over_and_503_when_waiting(photo):
    checker = GatedChecker(delay=1.0)
    checker.gate.set()
    app = create_app(ServiceConfig(concurrency=1, queue_size=4, time_budget_s=0.4), checker=checker)
    with TestClient(app) as client:
        _wait_until(lambda: client.get("/readyz").status_code == 200)
        outcomes: list = []
        threads = [threading.Thread(target=lambda: outcomes.append(client.post(
            "/v1/check", content=photo, headers={"content-type": "image/jpeg"}).status_code)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(outcomes) == [503, 504]


def test_bearer_token_and_request_ids(photo, caplog):
    with light_client(token="s3cret") as client, caplog.at_level(logging.INFO, "provenance.service"):
        refused = client.post("/v1/check", content=photo, headers={"content-type": "image/jpeg"})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/detectors", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/healthz").status_code == 200 and client.get("/").status_code == 200
        ok = client.post("/v1/check", content=photo, headers={"content-type": "image/jpeg", "X-Request-ID": "desk-42",
                                                              "Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.headers["x-request-id"] == "desk-42" == ok.json()["request_id"]
        odd = client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
        assert len(odd.headers["x-request-id"]) == 32  # an unsafe client ID is replaced, not echoed
    lines = [r.getMessage() for r in caplog.records if r.name == "provenance.service"]
    assert any(line.startswith("desk-42 POST /v1/check 200 files=1") for line in lines), lines
    assert not any("s3cret" in line for line in lines)


def test_serve_without_the_extra_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert result.output.strip() == ("provenance: serve: needs the [serve] extra (uvicorn not installed): "
                                     "pip install 'provenance[serve]'")


def test_serve_refuses_other_hosts_without_a_token(monkeypatch):
    monkeypatch.delenv("PROVENANCE_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--token" in result.output


def test_serve_fails_in_one_line_on_a_bad_trust_anchor_or_detector(tmp_path):
    not_pem = tmp_path / "root.pem"
    not_pem.write_text("not a certificate")
    bad_anchor = CliRunner().invoke(main, ["serve", "--trust", str(not_pem)])
    assert bad_anchor.exit_code == 1
    assert bad_anchor.output.strip() == f"provenance: serve: {not_pem}: not a PEM certificate file"
    bad_name = CliRunner().invoke(main, ["serve", "--detector", "nope"])
    assert bad_name.exit_code == 2 and "unknown detector(s) nope" in bad_name.output


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
