"""Our vectorised dwtDct/dwtDctSvd decoders vs imwatermark's, on 512x512 and 1920x1080 photos.

Run: ``python benchmarks/watermark_decode.py``. Prints, per size and method, whether the bits are
identical and the median decode time of each over a few runs; also the PSNR of imwatermark's
embed vs ours on the same image.
"""
from __future__ import annotations

import os
import statistics
import time

import cv2
import numpy as np

PAYLOAD_BITS = 128
RUNS = 5


def _photo(width: int, height: int) -> np.ndarray:
    from skimage import data

    rgb = data.astronaut() if width == height else data.rocket()
    return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)[:, :, ::-1])


def _median_ms(fn, runs: int = RUNS) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def main(runs: int = RUNS) -> list[dict]:
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    from provenance import watermark
    from provenance.watermark import fast

    threads = cv2.getNumThreads()
    print(f"watermark decode: CPUs {os.cpu_count()}, OpenCV threads {threads}, median of {runs} runs, "
          f"{PAYLOAD_BITS}-bit payload")
    bits = np.random.default_rng(0).integers(0, 2, PAYLOAD_BITS).astype(bool)
    rows = []
    print(f"{'size':>10s} {'method':9s} {'image':8s} {'same bits':>9s} {'imwatermark ms':>14s} {'ours ms':>8s} {'speed-up':>8s}")
    for width, height in ((512, 512), (1920, 1080)):
        plain = _photo(width, height)
        for method in fast.METHODS:
            encoder = WatermarkEncoder()
            encoder.set_watermark("bits", list(bits.astype(int)))
            marked = watermark.get(method).embed(plain, bits)
            for label, image in (("plain", plain), ("marked", marked)):
                decoder = WatermarkDecoder("bits", PAYLOAD_BITS)
                lib_ms, lib_bits = _median_ms(lambda: decoder.decode(image, method), runs)
                our_ms, our_bits = _median_ms(lambda: fast.decode(image, PAYLOAD_BITS, method), runs)
                same = bool(np.array_equal(np.asarray(lib_bits, dtype=bool), our_bits))
                rows.append({"size": f"{width}x{height}", "method": method, "image": label, "same_bits": same,
                             "imwatermark_ms": lib_ms, "ours_ms": our_ms, "speedup": lib_ms / our_ms})
                print(f"{width:>4d}x{height:<5d} {method:9s} {label:8s} {'yes' if same else 'NO':>9s} "
                      f"{lib_ms:14.1f} {our_ms:8.1f} {lib_ms / our_ms:7.1f}x")
            if (width, height) == (512, 512):
                lib_marked = encoder.encode(plain.copy(), method)
                print(f"{'':>10s} {method:9s} embed PSNR: imwatermark {_psnr(plain, lib_marked):.1f} dB, "
                      f"ours {_psnr(plain, marked):.1f} dB")
    return rows


if __name__ == "__main__":
    main()
