"""A distilled placement scorer: crop registration's search at a fraction of the decoder trunk's cost.

Registration (:mod:`.registration`) ranks a crop's placements by the decoder's confidence, mean
|logit| of the read-out at every window of a canvas, which costs one pass of the decoder's dense
trunk (:class:`.networks.PlacementScores`) per crop scale: most of reading an unmarked image or a
crop. :class:`DistilledScores` keeps the teacher's read-out (its 16 x 16-cell linear layer as one
dilated convolution) and replaces the trunk by a narrow one (16-24 channels instead of 32-64) trained
here to reproduce the teacher's reduced feature map and window scores on canvases as registration
builds them, from marked and unmarked photos after crops, JPEG and resizing.

The scorer only ranks placements: the shortlist is re-scored on its real views by the real decoder
and the decision reads only those views. It sees no key, so the views it picks on an unmarked image
are as good as any fixed views for a random key and the false-positive bound (each view one test
in the Bonferroni correction) holds whatever it learned. What it can cost is detections, measured
by ``python -m benchmarks watermark_scorer``.

Training (:class:`ScorerTrainer`, ``provenance train watermark-scorer``) is seeded and resumable:

    samples.npz           the search bases (256 px RGB uint8) of the edited photos, built once
    checkpoint.pt         full state (tensors only; read back with ``weights_only=True``)
    scorer.safetensors    the student, its config and the teacher's digest in the metadata
    config.json           configs, step, wall time, hardware, photos, validation agreement
    log.jsonl             losses per interval
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import PlacementScores

FORMAT = "provenance-placement-scorer-v1"
SCORER_FILE = "scorer.safetensors"
SAMPLES_FILE = "samples.npz"
CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ScorerConfig:
    first: int = 16  # channels of the first (stride 2) convolution
    width: int = 24  # channels of the others
    dilations: tuple[int, ...] = (1, 2, 2)  # the convolutions after the second stride 2, at stride 4

    @classmethod
    def from_dict(cls, values: dict) -> "ScorerConfig":
        return cls(**{**values, "dilations": tuple(values.get("dilations", cls.dilations))})


def scorer_path(weights: str | Path) -> Path:
    """Where a distilled scorer for learned weights ``weights`` sits: beside them."""
    return Path(weights).with_suffix(".scorer.safetensors")


def scorer_onnx_path(weights: str | Path) -> Path:
    """Its ONNX export, which the scheme runs on onnxruntime."""
    return Path(weights).with_suffix(".scorer.onnx")


def _digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class DistilledScores(nn.Module):
    """The contract of :class:`.networks.PlacementScores` (dense): canvases (N, 3, H, W) in [0, 1] ->
    mean |logit| at every window, 4 px apart; a narrow trunk, the teacher's read-out (``teacher``:
    a dense :class:`.networks.PlacementScores`)."""

    def __init__(self, teacher: PlacementScores, config: ScorerConfig = ScorerConfig()):
        super().__init__()
        if teacher.stride != 4 or teacher.dilation != 2:
            raise ValueError("the distilled scorer mirrors a dense (stride 4) teacher")
        layers = [_block(3, config.first, 2), _block(config.first, config.width, 2)]
        layers += [_block(config.width, config.width, 1, d) for d in config.dilations]
        self.features = nn.Sequential(*layers)
        self.reduce = nn.Conv2d(config.width, teacher.reduce.out_channels, 1)
        self.register_buffer("weight", teacher.weight.detach().clone())
        self.register_buffer("bias", teacher.bias.detach().clone())
        self.stride, self.dilation, self.config = teacher.stride, teacher.dilation, config

    def reduced(self, canvas: torch.Tensor) -> torch.Tensor:
        """The 8-channel map the read-out reads, as the teacher's ``reduce(features(...))``."""
        x = canvas - F.avg_pool2d(canvas, 7, 1, 3, count_include_pad=False)  # as Decoder.forward
        return self.reduce(self.features(x * 8))

    def read_out(self, reduced: torch.Tensor) -> torch.Tensor:
        return F.conv2d(reduced, self.weight, self.bias, dilation=self.dilation).abs().mean(dim=1)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        return self.read_out(self.reduced(canvas))


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    # ReLU, not the teacher's GELU: onnxruntime fuses it into the convolution
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation), nn.BatchNorm2d(cout), nn.ReLU())


def build_scorer(teacher: PlacementScores, config: ScorerConfig = ScorerConfig()) -> DistilledScores:
    return DistilledScores(teacher, config)


def teacher_of(weights: str | Path) -> PlacementScores:
    """The dense placement scores of learned weights ``weights`` (the teacher), in eval mode."""
    from .weights import load_networks

    _, decoder, _ = load_networks(weights)
    return PlacementScores(decoder, dense=True).eval()


def save_scorer(path: str | Path, scorer: DistilledScores, teacher_weights: str | Path, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous() for k, v in scorer.state_dict().items() if k not in ("weight", "bias")}
    metadata = {"format": FORMAT, "config": json.dumps(asdict(scorer.config)),
                "teacher_sha256": _digest(teacher_weights), "extra": json.dumps(extra or {})}
    save_file(tensors, str(path), metadata=metadata)


def scorer_metadata(path: str | Path) -> dict:
    """The ``extra`` a scorer file records (step, validation agreement, the photos of its samples)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return json.loads((handle.metadata() or {}).get("extra", "{}"))


def load_scorer(path: str | Path, teacher_weights: str | Path) -> DistilledScores:
    """The distilled scorer at ``path`` for learned weights ``teacher_weights`` (whose read-out it
    uses), in eval mode; refuses a scorer distilled from other weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .weights import WeightsError

    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a placement scorer (format {metadata.get('format')!r})")
    if metadata.get("teacher_sha256") != _digest(teacher_weights):
        raise WeightsError(f"{path}: distilled from other learned weights than {teacher_weights}")
    scorer = build_scorer(teacher_of(teacher_weights), ScorerConfig.from_dict(json.loads(metadata["config"])))
    state = {**load_file(str(path)), "weight": scorer.weight, "bias": scorer.bias}
    scorer.load_state_dict(state)
    return scorer.eval()


def export_scorer(scorer: DistilledScores, out: str | Path) -> Path:
    """The scorer as ONNX with registration's contract (input ``canvases``, output ``scores``, the window
    spacing in its ``stride`` metadata), as the decoder's ``.placements.onnx`` has it."""
    import onnx

    canvas = torch.rand(1, 3, 144, 152)
    torch.onnx.export(scorer.eval(), (canvas,), str(out), input_names=["canvases"], output_names=["scores"],
                      opset_version=17, dynamo=False,
                      dynamic_axes={"canvases": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n", 1: "rows", 2: "cols"}})
    graph = onnx.load(str(out))
    graph.metadata_props.add(key="stride", value=str(scorer.stride))
    graph.metadata_props.add(key="scorer", value="distilled")
    onnx.save(graph, str(out))
    return Path(out)


# -- training data ---------------------------------------------------------------------------------

def edited_sample(scheme, rgb: np.ndarray, rng: np.random.Generator, marked: bool) -> np.ndarray:
    """``rgb`` (a photo at some size) as registration may meet it, BGR: marked with random bits or not,
    then cropped (same aspect, 0.64-1 of each side, anywhere) most of the time, re-encoded as JPEG
    q50-95 half the time, and resized by 0.5-1.5 now and then."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    if marked:
        bgr = scheme.embed(bgr, rng.random(scheme.capacity) < 0.5)
    h, w = bgr.shape[:2]
    if rng.random() < 0.85:
        keep = rng.uniform(0.64, 1.0)
        ch, cw = round(h * keep), round(w * keep)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        bgr = np.ascontiguousarray(bgr[top:top + ch, left:left + cw])
    if rng.random() < 0.5:
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 96))])
        bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if rng.random() < 0.2:
        f = rng.uniform(0.5, 1.5)
        bgr = cv2.resize(bgr, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
    return bgr


SIZES = ((512, 512), (1920, 1080), (1080, 1080), (1280, 720), (768, 1024), (640, 480))


def build_samples(scheme, photo_paths: list[Path], n: int, seed: int, marked_share: float = 0.75,
                  on_progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """``n`` search bases (registration's 256 px RGB uint8 view) of photos drawn from ``photo_paths``,
    each at one of :data:`SIZES`, edited by :func:`edited_sample`; with whether each is marked and the
    index of its photo (for a photo-level validation split)."""
    from provenance.generators.photos import cover
    from provenance.imageio import ImageLoadError, load_image

    rng = np.random.default_rng([seed, 7])
    registration = scheme.new_registration()
    bases, marked, photo = [], [], []
    while len(bases) < n:
        index = int(rng.integers(len(photo_paths)))
        try:
            rgb = load_image(photo_paths[index]).rgb
        except ImageLoadError:
            continue
        is_marked = bool(rng.random() < marked_share)
        rgb = cover(rgb, SIZES[int(rng.integers(len(SIZES)))])
        bases.append(registration.base(edited_sample(scheme, rgb, rng, is_marked)))
        marked.append(is_marked)
        photo.append(index)
        if on_progress:
            on_progress(1)
    return {"bases": np.stack(bases), "marked": np.array(marked), "photo": np.array(photo)}


# -- training --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScorerTrainConfig:
    weights: str  # the learned mark's weights: the teacher, and the read-out the student keeps
    photos: str  # folder of photos (recursively)
    exclude: tuple[str, ...] = ()  # paths under ``photos`` never used (e.g. a benchmark's photos)
    samples: int = 3000
    marked_share: float = 0.75
    validation_share: float = 0.1  # of the photos: their samples are never trained on
    steps: int = 5000
    seed: int = 0
    batch_size: int = 32
    lr: float = 3e-3
    extra_phase_p: float = 0.45  # share of canvases at a refinement phase (2 px off the coarse grid)
    log_every: int = 50
    sample_every: int = 1000  # validation agreement
    checkpoint_every: int = 100
    scorer: ScorerConfig = field(default_factory=ScorerConfig)


_PHASES = ((2, 0), (0, 2), (2, 2))
_RESUME_MUST_MATCH = ("weights", "photos", "exclude", "samples", "marked_share", "validation_share", "seed",
                      "batch_size", "scorer")


class ScorerTrainer:
    """Distils the learned mark's dense placement scores into :class:`DistilledScores` (module doc)."""

    def __init__(self, out: str | Path, config: ScorerTrainConfig, on_sample_built: Callable[[int], None] | None = None):
        from . import scheme as scheme_module

        self.out, self.config = Path(out), config
        self.out.mkdir(parents=True, exist_ok=True)
        self.scheme = scheme_module.LearnedScheme(config.weights, backend="torch")
        self.registration = self.scheme.new_registration()
        self.teacher = teacher_of(config.weights)
        torch.manual_seed(config.seed)
        self.student = build_scorer(self.teacher, config.scorer)
        self.optimizer = torch.optim.AdamW(self.student.parameters(), config.lr, weight_decay=1e-4)
        self.step, self.elapsed = 0, 0.0
        previous = self._load_checkpoint()
        self.photo_paths = self._photos()
        self.samples = self._samples(on_sample_built)
        photos = np.unique(self.samples["photo"])
        held = np.random.default_rng([config.seed, 3]).permutation(photos)[: max(1, round(config.validation_share * len(photos)))]
        is_held = np.isin(self.samples["photo"], held)
        self.train_index, self.validation_index = np.flatnonzero(~is_held), np.flatnonzero(is_held)
        self.scales = list(self.registration.config.scales())
        self.feature_scale = previous.get("feature_scale") if previous else None
        if self.feature_scale is None:
            self.feature_scale = self._feature_rms()
        self.validation: dict[str, float] = previous.get("validation", {}) if previous else {}

    def _photos(self) -> list[Path]:
        from provenance.generators.photos import IMAGE_SUFFIXES

        root = Path(self.config.photos)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: not a directory")
        excluded = set(self.config.exclude)
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                       and str(p.relative_to(root)) not in excluded)
        if len(paths) < 2:
            raise ValueError(f"{root}: needs at least two photos (after {len(excluded)} excluded)")
        return paths

    def _samples(self, on_sample_built) -> dict[str, np.ndarray]:
        from provenance.files import save_atomically

        path = self.out / SAMPLES_FILE
        if path.is_file():
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        samples = build_samples(self.scheme, self.photo_paths, self.config.samples, self.config.seed,
                                self.config.marked_share, on_sample_built)
        def write(target: Path) -> None:
            with open(target, "wb") as handle:
                np.savez(handle, **samples)

        save_atomically(path, write)
        return samples

    def _load_checkpoint(self) -> dict | None:
        path = self.out / CHECKPOINT_FILE
        if not path.is_file():
            return None
        state = torch.load(path, weights_only=True)
        saved = json.loads(state["config"])
        mine = json.loads(json.dumps(asdict(self.config)))
        changed = [k for k in _RESUME_MUST_MATCH if saved.get(k) != mine.get(k)]
        if changed:
            raise ValueError(f"{self.out}: a run with other {', '.join(changed)} is there; use another --out")
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        return {"feature_scale": float(state["feature_scale"]), "validation": json.loads(state["validation"])}

    def canvases(self, indices: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
        """Canvases of samples ``indices`` at crop scale ``scale``, as registration builds them, each at
        the coarse phase or (``extra_phase_p``) one of the refinement phases."""
        out = []
        for i in indices:
            base = self.samples["bases"][i].astype(np.float32) / 255
            side = max(self.registration.stride, round(self.registration.size * scale))
            small = cv2.resize(base, (side, side), interpolation=cv2.INTER_AREA)
            phase = _PHASES[int(rng.integers(3))] if rng.random() < self.config.extra_phase_p else (0, 0)
            out.append(self.registration.canvases(small, [phase])[0])
        return np.stack(out)

    def _targets(self, canvases: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's reduced feature map and window scores for ``canvases``."""
        with torch.no_grad():
            x = torch.from_numpy(canvases)
            reduced = self.teacher.reduce(self.teacher.features((x - F.avg_pool2d(x, 7, 1, 3, count_include_pad=False)) * 8))
            return reduced, self.student.read_out(reduced)

    def _feature_rms(self) -> float:
        rng = np.random.default_rng([self.config.seed, 5])
        index = rng.choice(self.train_index, min(64, len(self.train_index)), replace=False)
        reduced, _ = self._targets(self.canvases(index, self.scales[len(self.scales) // 2], rng))
        return float(reduced.pow(2).mean().sqrt())

    def train_step(self) -> dict[str, float]:
        rng = np.random.default_rng([self.config.seed, 1, self.step])
        torch.manual_seed(int(rng.integers(2**31)))
        index = rng.choice(self.train_index, min(self.config.batch_size, len(self.train_index)), replace=False)
        canvases = self.canvases(index, self.scales[int(rng.integers(len(self.scales)))], rng)
        reduced_target, score_target = self._targets(canvases)
        self.student.train()
        reduced = self.student.reduced(torch.from_numpy(canvases))
        feature_loss = F.mse_loss(reduced, reduced_target) / self.feature_scale ** 2
        score_loss = F.mse_loss(self.student.read_out(reduced), score_target)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step)
        self.optimizer.zero_grad()
        (feature_loss + score_loss).backward()
        self.optimizer.step()
        return {"feature_loss": feature_loss.item(), "score_loss": score_loss.item()}

    def learning_rate(self, step: int) -> float:
        """A tenth of the run warming up, then a cosine to zero at ``steps``: a function of the step alone,
        so a resumed run (with the same ``steps``) continues exactly."""
        warm = max(1, self.config.steps // 10)
        if step < warm:
            return self.config.lr * (step + 1) / warm
        return float(self.config.lr * 0.5 * (1 + np.cos(np.pi * min(1.0, (step - warm) / max(1, self.config.steps - warm)))))

    def evaluate(self) -> dict[str, float]:
        """On the validation photos' samples, at every crop scale: how often the student's best window
        is the teacher's or next to it, over marked samples at the scale the teacher finds best, and
        the correlation of all window scores."""
        rng = np.random.default_rng([self.config.seed, 9])
        index = self.validation_index[:64]
        self.student.eval()
        best: dict[int, tuple[float, int, int]] = {}  # sample -> (teacher's best score, teacher window, student window)
        teacher_all, student_all = [], []
        with torch.inference_mode():
            for scale in self.scales:
                canvases = self.canvases(index, scale, rng)
                _, teacher = self._targets(canvases)
                student = self.student(torch.from_numpy(canvases))
                teacher_all.append(teacher.flatten().numpy())
                student_all.append(student.flatten().numpy())
                cols = teacher.shape[-1]
                for k, i in enumerate(index):
                    t, s = int(teacher[k].argmax()), int(student[k].argmax())
                    if float(teacher[k].max()) > best.get(int(i), (-1.0, 0, 0))[0]:
                        best[int(i)] = (float(teacher[k].max()), t, s, cols)
        marked = [v for i, v in best.items() if self.samples["marked"][i]]
        near = [abs(t // c - s // c) <= 1 and abs(t % c - s % c) <= 1 for _, t, s, c in marked]
        correlation = float(np.corrcoef(np.concatenate(teacher_all), np.concatenate(student_all))[0, 1])
        return {"best_window_agreement": float(np.mean(near)) if near else float("nan"), "score_correlation": correlation}

    def run(self, on_log: Callable[[dict], None] | None = None) -> None:
        from provenance.generators.training import run_loop

        def validate(entry: dict | None) -> None:
            self.validation = {k: round(v, 4) for k, v in self.evaluate().items()}
            if entry is not None:
                entry.update({f"eval_{k}": v for k, v in self.validation.items()})

        run_loop(self, self.config, self.train_step, validate, on_log)

    def save(self) -> None:
        from provenance.files import save_atomically

        from .training import hardware

        checkpoint = {"config": json.dumps(asdict(self.config)), "step": self.step, "elapsed": self.elapsed,
                      "feature_scale": self.feature_scale, "validation": json.dumps(self.validation),
                      "student": self.student.state_dict(), "optimizer": self.optimizer.state_dict()}
        save_atomically(self.out / CHECKPOINT_FILE, lambda p: torch.save(checkpoint, p))
        save_atomically(self.out / SCORER_FILE, lambda p: save_scorer(p, self.student, self.config.weights, self._extra()))
        info = {"training": asdict(self.config), "step": self.step, "wall_seconds": round(self.elapsed, 1),
                "hardware": hardware(), "validation": self.validation,
                "samples": {"total": int(len(self.samples["marked"])), "marked": int(self.samples["marked"].sum()),
                            "train": int(len(self.train_index)), "validation": int(len(self.validation_index))},
                "photos": self._extra()["photos"]}
        save_atomically(self.out / CONFIG_FILE, lambda p: p.write_text(json.dumps(info, indent=2) + "\n"))

    def _extra(self) -> dict:
        """What the scorer's metadata records: its step, validation agreement and every photo its
        samples came from (so a benchmark can show it reads none of them)."""
        root = Path(self.config.photos)
        photos = sorted({str(self.photo_paths[i].relative_to(root)) for i in np.unique(self.samples["photo"])})
        return {"step": self.step, "validation": self.validation, "photos": photos}

    def install(self) -> tuple[Path, Path]:
        """Put the scorer beside the learned weights, ``<weights>.scorer.safetensors``, and its ONNX
        export, ``<weights>.scorer.onnx``: registration ranks placements with it from then on."""
        from provenance.files import save_atomically

        target = scorer_path(self.config.weights)
        save_atomically(target, lambda p: save_scorer(p, self.student, self.config.weights, self._extra()))
        return target, export_scorer(self.student, scorer_onnx_path(self.config.weights))
