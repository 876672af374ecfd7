"""``cnn``: a timm ResNet trained from scratch on native-resolution patches.

No pretrained weights are downloaded. The input is the neighbouring-pixel residual (NPR) of the tile,
not its colours, and the stem's stride and max-pool are removed (as GRIP-style forensic CNNs do), so
the first layers see pixel-level traces instead of averaging them away or learning scene content. The
same augmentations (JPEG 50-100, resize 0.5-1.5, blur, noise) are drawn for both classes, so the
network learns generator traces rather than format. Training is seeded and resumable.

Inference runs the exported ``cnn.onnx`` (uint8 tiles in, logits out) with onnxruntime when it sits
next to the weights, so ``check`` never imports torch or timm (importing timm alone costs seconds);
torch and timm remain for training, export, and runs not yet exported. Where the CPU has VNNI
(:func:`provenance.precision.use_int8`), its int8 form ``cnn.int8.onnx`` runs instead: 1.6x faster
per tile, with the float graph's verdicts (``python -m benchmarks cnn_precision`` measures both).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from provenance.files import file_sha256, save_atomically
from provenance.shipped import CLASSIFIER_WEIGHTS_FILES

from .base import CLASSIFIERS, ImageClassifier

CHECKPOINT = "checkpoint.pt"
WEIGHTS_FILE = CLASSIFIER_WEIGHTS_FILES["cnn"]
ONNX_FILE = "cnn.onnx"
ONNX_INT8_FILE = "cnn.int8.onnx"
ONNX_TOLERANCE = 1e-3  # max |logit difference| allowed between the exported graph and torch fp32


@dataclass(frozen=True)
class CNNConfig:
    arch: str = "resnet10t"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    stem_width: int = 16
    tile: int = 64
    max_tiles: int = 64
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    augment: bool = True
    # Augment a window of this side around the tile instead of the whole training image (0): the same
    # augmentations at a fraction of the cost on large crops. Keep it >= 2 * tile + 8 so a tile still
    # fits after the strongest (0.5x) downscale. The shipped toy weights were trained with 0.
    augment_window: int = 0
    # Upper sigma (8-bit levels) of the Gaussian noise augmentation, drawn for both classes. The corpus
    # recipe raises it: trained up to 6, the corpus CNN called a high-ISO real photo (RNI15 Flowers, colour
    # noise of sigma ~50) P = 1.00 synthetic, since nothing in training had noise like it.
    augment_noise_sigma: float = 6.0
    # "npr": neighbouring-pixel residual, x minus a nearest-neighbour 2x down-and-up copy of itself
    # (Tan et al., CVPR 2024). It keeps the local pixel correlations that upsampling layers leave and
    # removes most scene content, which a model trained on a few dozen photos otherwise learns instead:
    # on RGB input our CNN scored a held-out circuit-board photo above every synthetic image
    # (validation AUC 0.905); on NPR input it separates them (see the model card). "rgb": raw pixels.
    input: str = "npr"


def build_network(config: CNNConfig):
    import timm
    from torch import nn

    model = timm.create_model(config.arch, pretrained=False, num_classes=1, channels=config.channels,
                              stem_width=config.stem_width)
    for module in model.modules():  # the first strided conv: keep full resolution
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
            break
    if hasattr(model, "maxpool"):
        model.maxpool = nn.Identity()
    if config.input == "npr":
        return nn.Sequential(_residual_module()(), model)
    if config.input != "rgb":
        raise ValueError(f"unknown CNN input {config.input!r}; use rgb or npr")
    return model


def _residual_module():
    import torch
    from torch import nn

    class NeighbourResidual(nn.Module):
        """x - up(down(x)) with nearest 2x resampling: each 2x2 block minus its top-left pixel."""

        def forward(self, x):
            # nearest-neighbour interpolate exports as one Resize: 6x cheaper in onnxruntime than
            # the Expand/Reshape pairs of repeat_interleave, with identical values
            anchor = torch.nn.functional.interpolate(x[..., ::2, ::2], scale_factor=2.0, mode="nearest")
            residual = (x - anchor[..., :x.shape[-2], :x.shape[-1]]) * 4
            return residual.contiguous(memory_format=torch.channels_last)  # what the fast conv kernels want

    return NeighbourResidual


def _scale(tiles):
    """(n, T, T, 3) uint8 tensor -> (n, 3, T, T) float in [-1, 1], channels-last in memory."""
    import torch

    x = tiles.permute(0, 3, 1, 2).float() / 127.5 - 1
    return x.contiguous(memory_format=torch.channels_last)


def _tile_scorer(network):
    """The network with its input scaling in front: what ``cnn.onnx`` holds (uint8 tiles -> logits)."""
    from torch import nn

    class TileScorer(nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, tiles):
            return self.network(_scale(tiles)).squeeze(1)

    return TileScorer().eval()


class OnnxTileModel:
    """``cnn.onnx`` run by onnxruntime on the CPU, float32. One intra-op thread without spinning:
    on a shared 2-core machine a second spinning thread costs more than it gains (64 tiles: 103 ms
    on 1 thread vs 162-329 ms on 2 under a foreign load), and parallel scans run one worker per core."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.precision = "int8" if path.name == ONNX_INT8_FILE else "fp32"

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(tiles, dtype=np.uint8)})[0]


def _onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


@CLASSIFIERS.register("cnn")
class CNNClassifier(ImageClassifier):
    family = "cnn"
    Config = CNNConfig

    def __init__(self, **config):
        super().__init__(**config)
        self._network = None
        self._weights_dir: Path | None = None  # torch weights to load when the network is first needed
        self.runtime: OnnxTileModel | None = None  # set when loaded from a folder with cnn.onnx

    @property
    def network(self):
        """The torch network (built, and loaded from the weights folder, on first use)."""
        if self._network is None:
            network = build_network(self.config)
            if self._weights_dir is not None:
                from safetensors.torch import load_file

                network.load_state_dict(load_file(str(self._weights_dir / WEIGHTS_FILE)))
            self._network = network.eval()
        return self._network

    @network.setter
    def network(self, value) -> None:
        self._network = value

    @property
    def backend(self) -> str:
        """What scores tiles: ``onnxruntime-int8`` / ``onnxruntime-fp32``, or ``torch-fp32`` /
        ``torch-bf16`` (each by CPU capability)."""
        if self.runtime is not None:
            return f"onnxruntime-{self.runtime.precision}"
        from provenance.precision import use_bf16

        return "torch-bf16" if use_bf16() else "torch-fp32"

    @property
    def _noise(self):
        from provenance.datasets.perturbations import Noise

        return Noise(1.0, self.config.augment_noise_sigma)

    def _batch(self, images, labels, rng):
        from .augment import augment

        by_class = [np.flatnonzero(labels == c) for c in (0, 1)]
        tiles, targets, t = [], [], self.tile
        while len(tiles) < self.config.batch_size:
            target = int(rng.integers(2))
            rgb = images[by_class[target][rng.integers(len(by_class[target]))]]
            if self.config.augment:
                if self.config.augment_window:
                    h, w = rgb.shape[:2]
                    y = rng.integers(max(h - self.config.augment_window, 0) + 1)
                    x = rng.integers(max(w - self.config.augment_window, 0) + 1)
                    rgb = rgb[y:y + self.config.augment_window, x:x + self.config.augment_window]
                rgb = augment(rgb, rng, self._noise)
            h, w = rgb.shape[:2]
            if h < t or w < t:
                continue
            y, x = rng.integers(h - t + 1), rng.integers(w - t + 1)
            tile = rgb[y:y + t, x:x + t]
            tiles.append(tile[:, ::-1] if rng.random() < 0.5 else tile)
            targets.append(target)
        return np.stack(tiles), np.array(targets, np.float32)

    def fit(self, images, labels, steps: int = 2000, seed: int = 0, out: str | Path | None = None,
            checkpoint_every: int = 200, on_log: Callable[[dict], None] | None = None,
            log_every: int = 50) -> "CNNClassifier":
        import torch

        from provenance.precision import autocast, use_bf16

        labels = np.asarray(labels, int)
        if len(set(labels.tolist())) != 2:
            raise ValueError("training needs both real and synthetic images")
        torch.manual_seed(seed)
        bf16 = use_bf16()
        self.runtime, self._weights_dir = None, None  # a fit replaces any exported graph
        self.network = build_network(self.config).to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.config.lr,
                                      weight_decay=self.config.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, self.config.lr, total_steps=steps, pct_start=0.1)
        step, elapsed = 0, 0.0
        checkpoint = Path(out) / CHECKPOINT if out else None
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        if checkpoint is not None and checkpoint.is_file():
            state = torch.load(checkpoint, map_location="cpu", weights_only=False)
            if state["config"] != asdict(self.config) or state["seed"] != seed or state["steps"] != steps:
                raise ValueError(f"{out} holds a run with other settings; use the same ones or another --out")
            self.network.load_state_dict(state["network"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            step, elapsed = state["step"], state["elapsed"]
        self.network.train()
        running = []
        while step < steps:
            started = time.perf_counter()
            tiles, targets = self._batch(images, labels, np.random.default_rng([seed, step]))
            with autocast(bf16):
                logits = self.network(self._tensor(tiles)).float().squeeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(targets))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            elapsed += time.perf_counter() - started
            running.append(float(loss.detach()))
            if on_log and (step % log_every == 0 or step == steps):
                on_log({"step": step, "loss": round(float(np.mean(running)), 5), "seconds": round(elapsed, 1)})
                running = []
            if checkpoint is not None and (step % checkpoint_every == 0 or step == steps):
                state = {"config": asdict(self.config), "seed": seed, "steps": steps, "step": step,
                         "elapsed": elapsed, "network": self.network.state_dict(),
                         "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
                save_atomically(checkpoint, lambda path: torch.save(state, path))
        self.network.eval()
        self._fitted = True
        self.training = {"steps": steps, "seed": seed, "seconds": round(elapsed, 1), "images": len(labels),
                         "synthetic": int(labels.sum()), "precision": "bf16" if bf16 else "fp32"}
        return self

    @staticmethod
    def _tensor(tiles: np.ndarray):
        import torch

        return _scale(torch.from_numpy(np.ascontiguousarray(tiles)))

    def tile_logits(self, tiles):
        if self.runtime is not None:
            # 64 tiles a run: full-resolution activations of more would grow onnxruntime's arena
            # (and the peak RSS) for no speed (per-run overhead is well under 1% of the work)
            return np.concatenate([self.runtime(tiles[i:i + 64]) for i in range(0, len(tiles), 64)]) \
                if len(tiles) else np.zeros(0, np.float32)
        return self.torch_tile_logits(tiles)

    def torch_tile_logits(self, tiles, bf16: bool | None = None) -> np.ndarray:
        """Tile logits from the torch network, in bf16 only where the CPU runs it natively."""
        import torch

        from provenance.precision import autocast, use_bf16

        network = self.network.eval()
        bf16 = use_bf16() if bf16 is None else bf16
        out = []
        with torch.inference_mode(), autocast(bf16):
            for start in range(0, len(tiles), 64):
                out.append(network(self._tensor(tiles[start:start + 64])).float().squeeze(1).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def export_onnx(self, path: str | Path, check_tiles: np.ndarray | None = None) -> float:
        """Write the network with its input scaling as ONNX (needs the ``export`` extra: onnx,
        onnxscript) and return the max |logit difference| against torch fp32 on ``check_tiles``
        (random tiles when none are given); refuses to keep a graph that disagrees."""
        import torch

        path = Path(path)
        t = self.tile
        scorer = _tile_scorer(self.network.eval())
        example = torch.zeros((2, t, t, 3), dtype=torch.uint8)
        temporary = path.with_name(path.name + ".tmp")
        torch.onnx.export(scorer, (example,), str(temporary), dynamo=True, external_data=False, verbose=False,
                          input_names=["tiles"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("n", min=1, max=4096)},))
        if check_tiles is None:
            check_tiles = np.random.default_rng(0).integers(0, 256, (32, t, t, 3), dtype=np.uint8)
        difference = float(np.max(np.abs(OnnxTileModel(temporary)(check_tiles) -
                                          self.torch_tile_logits(check_tiles, bf16=False))))
        if not difference <= ONNX_TOLERANCE:
            temporary.unlink()
            raise ValueError(f"exported graph differs from the torch model by {difference:.2e} (> {ONNX_TOLERANCE})")
        _stamp_weights(temporary, self.network)
        temporary.replace(path)
        return difference

    def export_int8(self, float_graph: str | Path, path: str | Path, calibration_tiles: np.ndarray,
                    check_tiles: np.ndarray, percentile: float | None = None) -> dict[str, float]:
        """Write the int8 form of the exported float graph ``float_graph``: weights int8 per output
        channel in a 7-bit range (so AVX2 kernels without VNNI cannot saturate), activations uint8
        with ranges set on ``calibration_tiles`` (which should look like what ``check`` will see:
        photos and generator output, not noise): their extremes, or with ``percentile`` that
        percentile of each activation (a few extreme residuals in a diverse set would otherwise
        stretch the ranges and cost every other image its precision). Returns the tile-logit
        differences against the float graph on ``check_tiles``: {"max": ..., "mean": ..., "correlation": ...}."""
        from provenance.onnx_int8 import quantize_graph

        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        batch = 64
        usable = len(calibration_tiles) - len(calibration_tiles) % batch or len(calibration_tiles)
        try:
            # equal batches: the histogram calibrators stack them. The whole backbone (convolutions,
            # ReLUs, residual adds, pooling) so no activation is requantised between layers; the NPR
            # input residual and the head stay float32
            quantize_graph(float_graph, temporary, ({"tiles": calibration_tiles[i:i + batch]} for i in range(0, usable, batch)),
                           op_types=["Conv", "Add", "AveragePool", "Relu"], percentile=percentile)
            reference = OnnxTileModel(Path(float_graph))(check_tiles).ravel()
            quantised = OnnxTileModel(temporary)(check_tiles).ravel()
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
        difference = np.abs(reference - quantised)
        return {"max": float(difference.max()), "mean": float(difference.mean()),
                "correlation": float(np.corrcoef(reference, quantised)[0, 1])}

    def _save_weights(self, directory: Path) -> None:
        if self._network is None and self._weights_dir is not None:  # loaded and never changed: copy, no torch
            if self._weights_dir.resolve() != directory.resolve():
                shutil.copyfile(self._weights_dir / WEIGHTS_FILE, directory / WEIGHTS_FILE)
            return
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))

    def _load_weights(self, directory: Path) -> None:
        """Nothing torch is loaded here: with ``cnn.onnx`` present (and onnxruntime installed)
        inference never needs it; otherwise the network loads on first use."""
        if not (directory / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{directory}: no {WEIGHTS_FILE}")
        self._network, self._weights_dir = None, directory
        self.runtime = None
        if not _onnxruntime_available():
            return
        from provenance.precision import use_int8

        digest = file_sha256(directory / WEIGHTS_FILE)
        for name in ((ONNX_INT8_FILE, ONNX_FILE) if use_int8() else (ONNX_FILE,)):
            if (directory / name).is_file():
                runtime = OnnxTileModel(directory / name)
                # a graph exported from other weights (the folder was retrained since) is not used
                if runtime.metadata.get(WEIGHTS_DIGEST_KEY) == digest:
                    self.runtime = runtime
                    return


WEIGHTS_DIGEST_KEY = "provenance.weights_sha256"


def _weights_digest(network) -> str:
    """sha256 of the safetensors file these weights save to (what :func:`provenance.files.file_sha256` reads back)."""
    import hashlib

    from safetensors.torch import save

    return hashlib.sha256(save({k: v.detach().contiguous() for k, v in network.state_dict().items()})).hexdigest()


def _stamp_weights(onnx_path: Path, network) -> None:
    """Record which weights the graph was exported from, so a stale graph is never used."""
    import onnx

    model = onnx.load(str(onnx_path))
    entry = model.metadata_props.add()
    entry.key, entry.value = WEIGHTS_DIGEST_KEY, _weights_digest(network)
    onnx.save(model, str(onnx_path))
