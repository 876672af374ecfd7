"""Which float precision torch work runs in on this CPU: bfloat16 only where the CPU has it natively.

bf16 autocast pays on CPUs with native bf16 instructions (AMX, AVX512-BF16): 2.5-3.8x for our CNNs.
Where bf16 is emulated (AVX2 and plain AVX512) it is 6-9x *slower* than float32 (measured: 64 CNN
tiles in 1,819 ms bf16 vs 208-298 ms fp32 on an AVX2 EPYC), so there float32 is used.
:func:`use_bf16` is the one place that decides, for inference and training alike; benchmarks print
:func:`describe` so every timing says which path ran.

Exported CNN graphs run by onnxruntime have a float32 and an int8 form: :func:`use_int8` picks
int8 where the CPU has integer dot-product instructions (VNNI), the path measured to keep every
verdict (``python -m benchmarks cnn_precision``); float32 elsewhere.

``PROVENANCE_PRECISION=fp32|bf16|int8`` overrides the decision (e.g. to measure the other path):
fp32 means float32 everywhere, bf16 bfloat16 torch work, int8 the int8 graphs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PRECISION_ENV = "PROVENANCE_PRECISION"
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuCapability:
    isa: str  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", ...; "unknown" without torch
    avx512_bf16: bool
    amx_bf16: bool
    vnni: bool = False  # AVX512-VNNI or AVX-VNNI: int8 dot products in one instruction

    @property
    def native_bf16(self) -> bool:
        return self.avx512_bf16 or self.amx_bf16


@lru_cache(maxsize=1)
def cpu_capability() -> CpuCapability:
    """This CPU's vector ISA (as torch sees it) and whether it runs bfloat16 natively.

    Asks torch when it is already imported (importing it costs a second); otherwise reads
    /proc/cpuinfo, which names the same feature flags.
    """
    import sys

    from_flags = capability_from_flags(_cpu_flags())
    if "torch" in sys.modules:
        import torch

        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return CpuCapability(torch.backends.cpu.get_cpu_capability(),
                             bool(probe()) if probe else from_flags.avx512_bf16,
                             bool(amx()) if amx else from_flags.amx_bf16, from_flags.vnni)
    return from_flags


def capability_from_flags(flags: set[str]) -> CpuCapability:
    isa = "AVX512" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags else \
        "AVX2" if "avx2" in flags else "DEFAULT" if flags else "unknown"
    return CpuCapability(isa, "avx512_bf16" in flags, "amx_bf16" in flags and "amx_tile" in flags,
                         bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags))


def _cpu_flags() -> set[str]:
    try:
        for line in _CPUINFO.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def use_bf16(preferred: bool = True, capability: CpuCapability | None = None) -> bool:
    """Whether to run torch work under bf16 autocast: only when the work prefers it (some models
    are faster in fp32 even with native bf16) and the CPU runs bf16 natively, unless overridden."""
    forced = _forced()
    if forced is not None:
        return forced == "bf16"
    return preferred and (capability or cpu_capability()).native_bf16


def use_int8(capability: CpuCapability | None = None) -> bool:
    """Whether exported graphs run in their int8 form: where the CPU has VNNI, unless overridden."""
    forced = _forced()
    if forced is not None:
        return forced == "int8"
    return (capability or cpu_capability()).vnni


_ALIASES = {"fp32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "int8": "int8"}


def _forced() -> str | None:
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in _ALIASES:
        raise ValueError(f"{PRECISION_ENV}={value!r}: use fp32, bf16, int8 or auto")
    return _ALIASES[value]


def autocast(enabled: bool):
    """``torch.autocast`` on CPU in bfloat16 when ``enabled`` (a no-op context otherwise)."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def describe() -> str:
    """One line for benchmark output: the ISA, native bf16 or not, and the path torch work takes."""
    cap = cpu_capability()
    native = "AMX-BF16" if cap.amx_bf16 else "AVX512-BF16" if cap.avx512_bf16 else "no"
    return (f"cpu_capability={cap.isa} native_bf16={native} vnni={'yes' if cap.vnni else 'no'} "
            f"torch_precision={'bf16' if use_bf16() else 'fp32'} onnx_precision={'int8' if use_int8() else 'fp32'}")
