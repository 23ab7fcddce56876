"""The CPU's instruction sets, and the class they put it in for int8 speed.

int8 matrix products are fast where the CPU has a dot-product instruction:
AVX-512 VNNI (Cascade Lake, Zen 4 and later), AVX-VNNI (Alder Lake and
later), AMX-INT8 (Sapphire Rapids), or ARM's dot product (`asimddp`,
`dotprod`). Without one, an x86 CPU with AVX2 multiplies int8 in 16-bit steps,
and the runtimes' int8 kernels rank differently (issue 25: OpenVINO's static
int8 fell below ONNX Runtime's int8 and even below OpenVINO fp32).

The classification is a pure function of a set of flags, so that tests (and a
warning at load time) can put any CPU in a class.
"""

import platform
import subprocess
from pathlib import Path
from typing import FrozenSet, Iterable, List, Optional

AVX512_VNNI = "avx512-vnni"
AVX2 = "avx2"
ARM_DOTPROD = "arm-dotprod"
OTHER = "other"
CPU_CLASSES = (AVX512_VNNI, AVX2, ARM_DOTPROD, OTHER)

# Flags, as /proc/cpuinfo spells them, by what they bring.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "amx_tile"})
DOTPROD_FLAGS = frozenset({"asimddp", "dotprod"})
# The flags worth recording beside a choice: the rest of /proc/cpuinfo's list
# says nothing about int8 speed.
RECORDED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "asimddp", "dotprod")
# macOS names of the same features (`sysctl hw.optional...`), by our name.
_DARWIN_FLAGS = {
    "hw.optional.arm.FEAT_DotProd": "asimddp",
    "hw.optional.avx2_0": "avx2",
    "hw.optional.avx512f": "avx512f",
}


def cpu_class(flags: Optional[Iterable[str]]) -> str:
    """The class of a CPU for int8 speed, from its instruction-set flags.

    flags (Optional[Iterable[str]]): The CPU's flags (lower case, as in
        /proc/cpuinfo); None when they could not be read.
    RETURNS (str): "avx512-vnni" (any VNNI or AMX int8 dot product on x86,
        AVX-VNNI included), "avx2", "arm-dotprod" or "other".
    """
    found = {flag.lower() for flag in flags or ()}
    if found & VNNI_FLAGS:
        return AVX512_VNNI
    if found & DOTPROD_FLAGS:
        return ARM_DOTPROD
    if "avx2" in found:
        return AVX2
    return OTHER


def recorded_flags(flags: Optional[Iterable[str]]) -> Optional[List[str]]:
    """RETURNS (Optional[List[str]]): The flags among `RECORDED_FLAGS` that the CPU has, in that order."""
    if flags is None:
        return None
    found = set(flags)
    return [flag for flag in RECORDED_FLAGS if flag in found]


def parse_cpuinfo_flags(text: str) -> Optional[FrozenSet[str]]:
    """The flags of the first processor in /proc/cpuinfo text: x86's `flags`
    line, or ARM's `Features` line.

    text (str): The file's text.
    RETURNS (Optional[FrozenSet[str]]): The flags, or None when no such line.
    """
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def read_cpu_flags(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> Optional[FrozenSet[str]]:
    """The instruction-set flags of this machine's CPU: /proc/cpuinfo on
    Linux, `sysctl` on macOS; None where neither answers (the class is then
    "other", and a choice is made by the timings alone).

    cpuinfo_path (Path): The cpuinfo file to read.
    RETURNS (Optional[FrozenSet[str]]): The flags, lower case.
    """
    try:
        flags = parse_cpuinfo_flags(cpuinfo_path.read_text(encoding="utf8", errors="replace"))
    except OSError:
        flags = None
    if flags is not None or platform.system() != "Darwin":
        return flags
    found = set()
    for name, flag in _DARWIN_FLAGS.items():
        try:
            out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        if out.stdout.strip() == "1":
            found.add(flag)
    return frozenset(found)


def this_cpu_class() -> str:
    """RETURNS (str): The class of this machine's CPU (see `cpu_class`)."""
    return cpu_class(read_cpu_flags())
