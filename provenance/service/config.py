"""What a running service is allowed to do: limits, queue sizes, the token and the check set-up."""
from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from provenance.imageio import LoadLimits


@dataclass(frozen=True)
class ServiceConfig:
    max_upload_bytes: int = 50 * 2**20  # the whole request body, counted while it streams in
    max_files: int = 16  # per request
    max_pixels: int = 50_000_000  # per image, checked by the loader from the header, before decoding
    time_budget_s: float = 60.0  # per request: reading the body, waiting in the queue and checking
    concurrency: int = 1  # checks running at once in this process (worker threads)
    queue_size: int = 64  # requests admitted to wait for a worker; beyond that, 503 + Retry-After
    token: str | None = field(default=None, repr=False)  # bearer token for /v1/*; never logged
    # The check set-up, as `provenance check` takes it.
    detectors: tuple[str, ...] | None = None  # None: the default detectors
    trust_anchors: tuple[str, ...] = ()
    use_trust_store: bool = True

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_files", "max_pixels", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.queue_size < 0 or self.time_budget_s <= 0:
            raise ValueError("queue_size must be >= 0 and time_budget_s > 0")

    @property
    def limits(self) -> LoadLimits:
        return LoadLimits(max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels)

    def check_config(self):
        from provenance.check import CheckConfig
        from provenance.threads import detector_threads

        options = {"c2pa": {"trust_anchors": [Path(p) for p in self.trust_anchors],
                            "use_trust_store": self.use_trust_store}}
        shared = {"detector_options": options, "limits": self.limits, "threads": detector_threads(self.concurrency)}
        if self.detectors is None:
            return CheckConfig(**shared)
        return CheckConfig(detectors=self.detectors, **shared)

    def to_json(self) -> str:
        """For handing the configuration to uvicorn worker processes (through their environment)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServiceConfig":
        values = json.loads(text)
        for key in ("detectors", "trust_anchors"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
