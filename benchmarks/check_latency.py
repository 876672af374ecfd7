"""``check`` latency per image against the floor: the time Pillow needs to decode the same file."""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.timing import machine_line, median_ms, print_table
from provenance.check import Checker
from provenance.imageio import load_image


def sample_files(directory: Path) -> list[Path]:
    from skimage import data

    files = []
    astronaut = Image.fromarray(data.astronaut())
    files.append(directory / "astronaut_512.png")
    astronaut.save(files[-1])
    chelsea = Image.fromarray(data.chelsea()).resize((1920, 1080), Image.Resampling.LANCZOS)
    files.append(directory / "chelsea_1920x1080_q90.jpg")
    chelsea.save(files[-1], quality=90)
    files.append(directory / "chelsea_1920x1080.png")
    chelsea.save(files[-1])
    return files


def pillow_decode(path: Path) -> None:
    with Image.open(io.BytesIO(path.read_bytes())) as img:
        img.load()


def main() -> None:
    print(machine_line())
    checker = Checker()
    with tempfile.TemporaryDirectory() as tmp:
        files = sample_files(Path(tmp))
        rows = []
        for path in files:
            floor = median_ms(lambda: pillow_decode(path))
            total = median_ms(lambda: checker.check_one(path), repeats=3)
            image = load_image(path)
            parts = [f"{d.name} {median_ms(lambda: d.detect(image), repeats=3):.0f}" for d in checker.detectors]
            rows.append([path.name, f"{floor:.1f}", f"{total:.0f}", f"{total / floor:.1f}x", ", ".join(parts)])
    print_table(["file", "Pillow decode ms", "check ms", "check / decode", "per detector ms"], rows)


if __name__ == "__main__":
    main()
