"""The machine and its physical limit: CPU model, clock, SIMD lanes, peak GFLOP/s."""

from __future__ import annotations

import os
import platform
import re
import subprocess

from ..engines.base import default_threads


def _cpuinfo() -> dict:
    info: dict = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, sep, v = line.partition(":")
                if not sep:
                    if info:  # first processor block is enough
                        break
                    continue
                info.setdefault(k.strip(), v.strip())
    except OSError:  # pragma: no cover - not Linux
        pass
    return info


def _lscpu_max_mhz() -> float | None:
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^CPU max MHz:\s*([\d.]+)", out, re.M)
    return float(m.group(1)) if m else None


def _amd_zen(family: int, model: int) -> str | None:
    if family == 0x1A:
        return "Zen 5"
    if family == 0x19:
        return "Zen 4" if (0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF) else "Zen 3"
    if family == 0x17:
        return "Zen / Zen 2"
    return None


def machine_info() -> dict:
    """CPU model, usable cores, clock, vector width and the fp32 FMA peak, read from the system.

    Peak = cores × clock × fp32 lanes × FMA units × 2 (an FMA is a multiply and an add).
    The FMA-unit count cannot be read from the system; we assume 2 per core (true for
    Intel server cores since Skylake-SP Gold/Platinum and for AMD Zen 2-5).  On AMD Zen 4
    a 512-bit FMA runs as two halves on 256-bit pipes, so its real datapath peak is half
    the AVX-512 formula; ``peak_gflops_fp32_datapath`` states that corrected figure.
    """
    ci = _cpuinfo()
    flags = set(ci.get("flags", "").split())
    cores = default_threads()
    lscpu_max = _lscpu_max_mhz()
    cpuinfo_mhz = float(ci["cpu MHz"]) if "cpu MHz" in ci else None
    if lscpu_max:
        mhz, mhz_source = lscpu_max, "lscpu 'CPU max MHz'"
    elif cpuinfo_mhz:
        mhz, mhz_source = cpuinfo_mhz, "/proc/cpuinfo 'cpu MHz' (no max clock exposed; boost may be higher)"
    else:  # pragma: no cover
        mhz, mhz_source = float("nan"), "unknown"
    if "avx512f" in flags:
        isa, lanes = "AVX-512", 16
    elif "avx2" in flags and "fma" in flags:
        isa, lanes = "AVX2+FMA", 8
    elif "avx" in flags:
        isa, lanes = "AVX (no FMA)", 8
    else:
        isa, lanes = "SSE", 4
    fma_units = 2
    peak = cores * mhz / 1e3 * lanes * fma_units * 2
    vendor = ci.get("vendor_id", platform.processor() or "?")
    family, model = int(ci.get("cpu family", 0) or 0), int(ci.get("model", 0) or 0)
    zen = _amd_zen(family, model) if vendor == "AuthenticAMD" else None
    datapath = peak
    note = f"assumes {fma_units} FMA units per core, each {lanes * 32} bits wide"
    if zen == "Zen 4" and lanes == 16:
        datapath = peak / 2
        note += (
            "; Zen 4 executes a 512-bit FMA as two 256-bit halves (2 × 256-bit FMA pipes), so its datapath peak is half"
        )
    name = ci.get("model name", platform.processor() or "?")
    if zen:
        name += f" (family {family}, model {model}: {zen})"
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile") if f in flags]
    return {
        "cpu": name,
        "vendor": vendor,
        "cores": cores,
        "logical_cpus": os.cpu_count(),
        "mhz": mhz,
        "mhz_source": mhz_source,
        "isa": isa,
        "fp32_lanes": lanes,
        "fma_units": fma_units,
        "flags": shown,
        "hypervisor": "hypervisor" in flags,
        "peak_gflops_fp32": round(peak, 1),
        "peak_gflops_fp32_datapath": round(datapath, 1),
        "peak_note": note,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
