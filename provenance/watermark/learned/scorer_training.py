"""Training the distilled placement scorer (:mod:`.scorer`): seeded and resumable.

Files in ``out``:

    samples.npz           the search bases (256 px RGB uint8) of the edited photos, built once, with the
                          names of their photos: a run resumes from it without the photos (another machine)
    checkpoint.pt         full state (tensors only; read back with ``weights_only=True``)
    scorer.safetensors    the student, its config, the teacher's digest and its photos in the metadata
    config.json           configs, step, wall time, hardware, photos, validation agreement
    log.jsonl             losses per interval
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .scheme import scorer_onnx_path, scorer_path
from .scorer import DistilledScores, ScorerConfig, export_scorer, save_scorer, teacher_of

SCORER_FILE = "scorer.safetensors"
SAMPLES_FILE = "samples.npz"
CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"


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


def list_photos(photos: str | Path, exclude: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """The photos under ``photos`` (recursively, sorted), less those whose path relative to it is in
    ``exclude``; at least two."""
    from provenance.generators.photos import image_paths

    paths = image_paths(photos, exclude)
    if len(paths) < 2:
        raise ValueError(f"{photos}: needs at least two photos (after {len(set(exclude))} excluded)")
    return paths


SIZES = ((512, 512), (1920, 1080), (1080, 1080), (1280, 720), (768, 1024), (640, 480))


def draw_photo(photo_paths: list[Path], rng: np.random.Generator, unreadable: set[int]) -> tuple[int, np.ndarray]:
    """A photo drawn at random from ``photo_paths``: (its index, RGB). Files that cannot be read as
    images are skipped and remembered in ``unreadable``; ValueError once none of them can be read."""
    from provenance.imageio import ImageLoadError, load_image

    while len(unreadable) < len(photo_paths):
        index = int(rng.integers(len(photo_paths)))
        if index in unreadable:
            continue
        try:
            return index, load_image(photo_paths[index]).rgb
        except ImageLoadError:
            unreadable.add(index)
    raise ValueError(f"none of the {len(photo_paths)} photos could be read as an image")


def build_samples(scheme, registration, photo_paths: list[Path], n: int, seed: int, marked_share: float = 0.75,
                  on_progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """``n`` search bases (registration's 256 px RGB uint8 view) of photos drawn from ``photo_paths``,
    each at one of :data:`SIZES`, edited by :func:`edited_sample`; with whether each is marked and the
    index of its photo (for a photo-level validation split)."""
    from provenance.generators.photos import cover

    rng = np.random.default_rng([seed, 7])
    bases, marked, photo = [], [], []
    unreadable: set[int] = set()
    while len(bases) < n:
        index, rgb = draw_photo(photo_paths, rng, unreadable)
        is_marked = bool(rng.random() < marked_share)
        rgb = cover(rgb, SIZES[int(rng.integers(len(SIZES)))])
        bases.append(registration.base(edited_sample(scheme, rgb, rng, is_marked)))
        marked.append(is_marked)
        photo.append(index)
        if on_progress:
            on_progress(1)
    return {"bases": np.stack(bases), "marked": np.array(marked), "photo": np.array(photo)}


# -- training --------------------------------------------------------------------------------------

def peak_mismatch(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How far each canvas's best window score is from the teacher's, at the student's best window and at
    the teacher's: registration keeps the crop scale whose best score is highest, so the peaks' heights,
    not the flat rest of the map, decide which crop it reads."""
    scores, target = scores.flatten(1), target.flatten(1)
    best = target.max(dim=1)
    at_teachers_best = scores.gather(1, best.indices[:, None])[:, 0]
    return F.mse_loss(scores.max(dim=1).values, best.values) + F.mse_loss(at_teachers_best, best.values)


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
    peak_loss: float = 0.0  # weight of matching each canvas's best window score (what picks the crop scale)
    log_every: int = 50
    sample_every: int = 1000  # validation agreement
    checkpoint_every: int = 100
    scorer: ScorerConfig = field(default_factory=ScorerConfig)


_RESUME_MUST_MATCH = ("weights", "photos", "exclude", "samples", "marked_share", "validation_share", "seed",
                      "batch_size", "peak_loss", "scorer")


class ScorerTrainer:
    """Distils the learned mark's dense placement scores into :class:`DistilledScores` (module doc)."""

    def __init__(self, out: str | Path, config: ScorerTrainConfig, on_sample_built: Callable[[int], None] | None = None,
                 device: str = "cpu"):
        from .registration import Registration, RegistrationConfig
        from .scheme import LearnedScheme
        from .weights import read_metadata

        self.out, self.config, self.device = Path(out), config, torch.device(device)
        self.out.mkdir(parents=True, exist_ok=True)
        self.scheme = LearnedScheme(config.weights, backend="torch")  # marks the samples
        self.teacher = teacher_of(config.weights)
        # canvases exactly as the scheme's registration builds them; the trainer does its own scoring
        def score(canvases: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return self.teacher(torch.from_numpy(canvases)).numpy()

        self.registration = Registration(read_metadata(config.weights)[0], score, RegistrationConfig(), self.teacher.stride)
        torch.manual_seed(config.seed)
        self.student = DistilledScores(self.teacher, config.scorer)
        self.teacher.to(self.device)
        self.student.to(self.device)
        self.optimizer = torch.optim.AdamW(self.student.parameters(), config.lr, weight_decay=1e-4)
        self.step, self.elapsed = 0, 0.0
        previous = self._load_checkpoint()
        self.samples = self._samples(on_sample_built)
        # runs before session 14 kept no names beside their samples: their photos must still be there
        self.photo_names = ([str(name) for name in self.samples["photo_names"]] if "photo_names" in self.samples
                            else self._names(self._photos()))
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
        return list_photos(self.config.photos, self.config.exclude)

    def _names(self, paths: list[Path]) -> list[str]:
        return [str(p.relative_to(self.config.photos)) for p in paths]

    def _samples(self, on_sample_built) -> dict[str, np.ndarray]:
        from provenance.files import save_atomically

        path = self.out / SAMPLES_FILE
        if path.is_file():
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        photo_paths = self._photos()
        samples = build_samples(self.scheme, self.registration, photo_paths, self.config.samples, self.config.seed,
                                self.config.marked_share, on_sample_built)
        samples["photo_names"] = np.array(self._names(photo_paths))
        def write(target: Path) -> None:
            with open(target, "wb") as handle:
                np.savez(handle, **samples)

        save_atomically(path, write)
        return samples

    def _load_checkpoint(self) -> dict | None:
        path = self.out / CHECKPOINT_FILE
        if not path.is_file():
            return None
        state = torch.load(path, weights_only=True, map_location=self.device)
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
            phases = self.registration.refinement_phases() if rng.random() < self.config.extra_phase_p else []
            phase = phases[int(rng.integers(len(phases)))] if phases else self.registration.coarse_phases()[0]
            out.append(self.registration.canvases(small, [phase])[0])
        return np.stack(out)

    def _targets(self, canvases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's reduced feature map and window scores for ``canvases`` (on the trainer's device)."""
        with torch.no_grad():
            reduced = self.teacher.reduced(canvases)
            return reduced, self.student.read_out(reduced)

    def _on_device(self, canvases: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(canvases).to(self.device)

    def _feature_rms(self) -> float:
        rng = np.random.default_rng([self.config.seed, 5])
        index = rng.choice(self.train_index, min(64, len(self.train_index)), replace=False)
        reduced, _ = self._targets(self._on_device(self.canvases(index, self.scales[len(self.scales) // 2], rng)))
        return float(reduced.pow(2).mean().sqrt())

    def batch(self, step: int) -> tuple[np.ndarray, int]:
        """Step ``step``'s canvases and torch seed: a function of the step alone, so a run resumes exactly."""
        rng = np.random.default_rng([self.config.seed, 1, step])
        seed = int(rng.integers(2**31))
        index = rng.choice(self.train_index, min(self.config.batch_size, len(self.train_index)), replace=False)
        return self.canvases(index, self.scales[int(rng.integers(len(self.scales)))], rng), seed

    def train_step(self) -> dict[str, float]:
        canvases, seed = self.batch(self.step)
        torch.manual_seed(seed)
        canvases = self._on_device(canvases)
        reduced_target, score_target = self._targets(canvases)
        self.student.train()
        reduced = self.student.reduced(canvases)
        scores = self.student.read_out(reduced)
        feature_loss = F.mse_loss(reduced, reduced_target) / self.feature_scale ** 2
        score_loss = F.mse_loss(scores, score_target)
        peak_loss = peak_mismatch(scores, score_target)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step)
        self.optimizer.zero_grad()
        (feature_loss + score_loss + self.config.peak_loss * peak_loss).backward()
        self.optimizer.step()
        return {"feature_loss": feature_loss.item(), "score_loss": score_loss.item(), "peak_loss": peak_loss.item()}

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
                canvases = self._on_device(self.canvases(index, scale, rng))
                _, teacher = self._targets(canvases)
                teacher, student = teacher.cpu(), self.student(canvases).cpu()
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
                "hardware": hardware(), "device": self._device_name(), "validation": self.validation,
                "samples": {"total": int(len(self.samples["marked"])), "marked": int(self.samples["marked"].sum()),
                            "train": int(len(self.train_index)), "validation": int(len(self.validation_index))},
                "photos": self._extra()["photos"]}
        save_atomically(self.out / CONFIG_FILE, lambda p: p.write_text(json.dumps(info, indent=2) + "\n"))

    def _device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else str(self.device)

    def _extra(self) -> dict:
        """What the scorer's metadata records: its step, validation agreement and every photo its
        samples came from (so a benchmark can show it reads none of them)."""
        photos = sorted({self.photo_names[i] for i in np.unique(self.samples["photo"])})
        return {"step": self.step, "validation": self.validation, "photos": photos}

    def install(self) -> tuple[Path, Path]:
        """Put the scorer beside the learned weights, ``<weights>.scorer.safetensors``, and its ONNX
        export, ``<weights>.scorer.onnx``: registration ranks placements with it from then on."""
        from provenance.files import save_atomically

        target = scorer_path(self.config.weights)
        import copy

        student = copy.deepcopy(self.student).to("cpu")  # the trainer's own stays on its device
        save_atomically(target, lambda p: save_scorer(p, student, self.config.weights, self._extra()))
        return target, export_scorer(student, scorer_onnx_path(self.config.weights))
