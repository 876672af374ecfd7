"""Our vectorised dwtDct/dwtDctSvd decoders vs imwatermark's, on 512x512 and 1920x1080 photos.

Prints, per size and method, whether the bits are identical and the median decode time of each;
the PSNR of imwatermark's embed vs ours on the same image; and what ``check`` spends on both
watermark detectors for one image when each computes its own transforms vs when they share one
:class:`provenance.watermark.fast.Transforms` (as ``check`` does).
"""
from __future__ import annotations

import cv2
import numpy as np

from benchmarks.timing import machine_line, print_table, timed

PAYLOAD_BITS = 128
RUNS = 5


def _photo(width: int, height: int) -> np.ndarray:
    from skimage import data

    rgb = data.astronaut() if width == height else data.rocket()
    return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)[:, :, ::-1])


def main(runs: int = RUNS) -> list[dict]:
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    from provenance import watermark
    from provenance.watermark import fast
    from provenance.watermark.marking import psnr

    from provenance.precision import describe

    print(f"{machine_line()} {describe()} opencv_threads={cv2.getNumThreads()}, median of {runs} runs, "
          f"{PAYLOAD_BITS}-bit payload")
    bits = np.random.default_rng(0).integers(0, 2, PAYLOAD_BITS).astype(bool)
    rows, table, psnr_rows = [], [], []
    for width, height in ((512, 512), (1920, 1080)):
        plain = _photo(width, height)
        for method in fast.METHODS:
            marked = watermark.get(method).embed(plain, bits)
            for label, image in (("plain", plain), ("marked", marked)):
                decoder = WatermarkDecoder("bits", PAYLOAD_BITS)
                lib_ms, lib_bits = timed(lambda: decoder.decode(image, method), runs, warmup=0)
                our_ms, our_bits = timed(lambda: fast.decode(image, PAYLOAD_BITS, method), runs)
                same = bool(np.array_equal(np.asarray(lib_bits, dtype=bool), our_bits))
                rows.append({"size": f"{width}x{height}", "method": method, "image": label, "same_bits": same,
                             "imwatermark_ms": lib_ms, "ours_ms": our_ms, "speedup": lib_ms / our_ms})
                table.append([f"{width}x{height}", method, label, "yes" if same else "NO",
                              f"{lib_ms:.1f}", f"{our_ms:.1f}", f"{lib_ms / our_ms:.1f}x"])
            if (width, height) == (512, 512):
                encoder = WatermarkEncoder()
                encoder.set_watermark("bits", list(bits.astype(int)))
                lib_marked = encoder.encode(plain.copy(), method)
                psnr_rows.append([method, f"{psnr(plain, lib_marked):.1f}", f"{psnr(plain, marked):.1f}"])
    print_table(["size", "method", "image", "same bits", "imwatermark ms", "ours ms", "speed-up"], table)
    print()
    print_table(["embed at 512x512", "imwatermark PSNR dB", "ours PSNR dB"], psnr_rows)
    print()
    print_table(["1920x1080, both watermark detectors", "separate transforms ms", "one shared pass ms", "speed-up"],
                [shared_pass_row(_photo(1920, 1080), runs)])
    return rows


def shared_pass_row(bgr: np.ndarray, runs: int) -> list[str]:
    """The keyed-mark detector's two decodes plus the SD detector's three colour paths."""
    from provenance.watermark import fast, thirdparty

    sd_paths = [thirdparty.PATH_OPTIONS[path] for path in sorted({p for _, p in thirdparty.tests()})]

    def decodes(shared: bool) -> None:
        image = fast.Transforms(bgr)
        ours = [image.votes(method) if shared else fast.Transforms(bgr).votes(method) for method in fast.METHODS]
        sd = [image.votes("dwtDct", **path) if shared else fast.Transforms(bgr).votes("dwtDct", **path)
              for path in sd_paths]
        assert len(ours) + len(sd) == 5

    separate, _ = timed(lambda: decodes(False), runs)
    shared, _ = timed(lambda: decodes(True), runs)
    return ["dwtDct + dwtDctSvd (ours), dwtDct on 3 colour paths (SD)", f"{separate:.1f}", f"{shared:.1f}",
            f"{separate / shared:.2f}x"]


if __name__ == "__main__":
    main()
