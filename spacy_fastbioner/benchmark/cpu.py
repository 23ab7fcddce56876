"""The CPU a benchmark ran on: its model name and the instruction sets that
decide int8 and bf16 speed, so that figures can be read across machines.

int8: AVX-512 VNNI (Cascade Lake, Zen 4 and later), AVX-VNNI (Alder Lake and
later), AMX-INT8 (Sapphire Rapids); bf16: AVX-512 BF16, AMX-BF16. Without a
dot-product instruction, int8 matrix products gain far less over fp32.
"""

import platform
from pathlib import Path
from typing import Any, Dict, List, Optional

INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VECTOR_FLAGS = ("avx2", "avx512f")


def _cpuinfo_fields(text: str) -> Dict[str, str]:
    """The `key: value` fields of the first processor in /proc/cpuinfo text."""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_info(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> Dict[str, Any]:
    """The CPU's model name and its int8, bf16 and vector instruction sets,
    from /proc/cpuinfo (Linux), else from `platform` (flags unknown: None).

    cpuinfo_path (Path): The cpuinfo file to read.
    RETURNS (Dict[str, Any]): model, int8 (List[str] or None), bf16, vector, source.
    """
    try:
        fields = _cpuinfo_fields(cpuinfo_path.read_text(encoding="utf8", errors="replace"))
    except OSError:
        fields = {}
    flags: Optional[List[str]] = None
    model = fields.get("model name") or fields.get("Model") or fields.get("cpu model")
    if "flags" in fields or "Features" in fields:
        flags = (fields.get("flags") or fields.get("Features") or "").split()
    if not model:
        model = platform.processor() or platform.machine() or "unknown"
    return {
        "model": model,
        "int8": None if flags is None else [f for f in INT8_FLAGS if f in flags],
        "bf16": None if flags is None else [f for f in BF16_FLAGS if f in flags],
        "vector": None if flags is None else [f for f in VECTOR_FLAGS if f in flags],
        "source": str(cpuinfo_path) if fields else "platform",
    }


def describe_cpu(info: Dict[str, Any]) -> str:
    """One line: "AMD EPYC; int8: avx512_vnni; bf16: avx512_bf16"."""

    def names(key: str) -> str:
        value = info.get(key)
        if value is None:
            return "unknown"
        return ", ".join(value) if value else "none"

    return f"{info.get('model', 'unknown')}; int8: {names('int8')}; bf16: {names('bf16')}"
