#!/usr/bin/env python3
"""SASS instructions per key tile of attnc's CUDA kernels, with no GPU.

    python3 scripts/sass-count.py FILE.cu [FILE.cu ...] [--arch sm_90a|sm_80]
        [--dtype 1] [--hd 128] [--hdv 128] [--nvcc PATH] [--nvdisasm PATH]

Compiles each emitted .cu for one entry (-DATTNC_ONLY_*) with the options
the runtime's NVRTC path uses (-std=c++17, no fast math), reads ptxas's
register and spill counts, disassembles the cubin with nvdisasm (PyPI:
nvidia-cuda-nvdisasm) and counts the instructions of each copy of the tile
code: for sm_90a, from the first HGMMA of S = Q K^T to the release of the
stage (SYNCS.ARRIVE), so the wait for K and the tile's classification are
not counted; for sm_80,
from the first HMMA of S = Q K^T to the last HMMA of O += P V, where one
copy follows the other. These are the instructions one warp issues per key
tile when no branch inside the copy is taken (straight-line code). The
counts are per arch, dtype and head dims; one line per file and copy.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile


def find_nvdisasm(given):
    if given:
        return given
    found = shutil.which("nvdisasm")
    if found:
        return found
    for pattern in ("/usr/local/cuda/bin/nvdisasm",
                    os.path.expanduser("~/.pyenv/versions/*/lib/python3*/site-packages/nvidia/cu*/bin/nvdisasm"),
                    "/usr/local/lib/python3*/dist-packages/nvidia/cu*/bin/nvdisasm"):
        hits = glob.glob(pattern)
        if hits:
            return hits[0]
    try:
        import nvidia  # noqa: F401  (pip install nvidia-cuda-nvdisasm)
        for base in nvidia.__path__:
            hits = glob.glob(os.path.join(base, "cu*", "bin", "nvdisasm"))
            if hits:
                return hits[0]
    except ImportError:
        pass
    sys.exit("sass-count: nvdisasm not found (pip install nvidia-cuda-nvdisasm, or --nvdisasm)")


INSN = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;")


def instructions(sass):
    """(opcode text) per instruction line, in address order."""
    out = []
    for line in sass.splitlines():
        m = INSN.search(line)
        if m:
            out.append(m.group(1))
    return out


def tiles_sm90(insns):
    """Instruction counts of the copies: the first HGMMA of S = Q K^T (the
    one that does not accumulate, `RZ, !UPT`) .. the stage release."""
    counts, start = [], None
    for i, s in enumerate(insns):
        if "HGMMA" in s and "RZ, !UPT" in s and start is None:
            start = i
        elif "SYNCS.ARRIVE" in s and start is not None:
            counts.append(i - start + 1)
            start = None
    return counts


def tiles_sm80(insns):
    """Instruction counts of the copies: first HMMA .. last HMMA of a run."""
    hmma = [i for i, s in enumerate(insns) if s.split()[0].lstrip("@!P0123456789T ").startswith("HMMA") or " HMMA" in s]
    if not hmma:
        return []
    counts, first, last = [], hmma[0], hmma[0]
    for i in hmma[1:]:
        if i - last > 400:  # a gap: the next copy starts
            counts.append(last - first + 1)
            first = i
        last = i
    counts.append(last - first + 1)
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--arch", default=None, help="sm_90a or sm_80 (default: from the file name)")
    p.add_argument("--dtype", default="1", help="1 bf16, 0 f16")
    p.add_argument("--hd", default="128")
    p.add_argument("--hdv", default="128")
    p.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    p.add_argument("--nvdisasm", default=None)
    args = p.parse_args()
    nvdisasm = find_nvdisasm(args.nvdisasm)
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for f in args.files:
            arch = args.arch or ("sm_90a" if "sm_90a" in os.path.basename(f) else "sm_80")
            gencode = "arch=compute_90a,code=sm_90a" if arch == "sm_90a" else "arch=compute_80,code=sm_80"
            cubin = os.path.join(tmp, "k.cubin")
            cmd = [args.nvcc, "-std=c++17", "-gencode", gencode, "-cubin", "-Xptxas", "-v",
                   "-DATTNC_ONLY_DT=" + args.dtype, "-DATTNC_ONLY_HD=" + args.hd,
                   "-DATTNC_ONLY_HDV=" + args.hdv, f, "-o", cubin]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{f}: nvcc failed:\n{r.stderr[-2000:]}")
                status = 1
                continue
            # ptxas -v: one "Used N registers" line per function; the
            # forward entry is the one with the most registers.
            regs = max((int(x) for x in re.findall(r"Used (\d+) registers", r.stderr)), default=0)
            spills = sum(int(x) for x in re.findall(r"(\d+) bytes spill stores", r.stderr))
            sass = subprocess.run([nvdisasm, "-c", cubin], capture_output=True, text=True, check=True).stdout
            insns = instructions(sass)
            tiles = tiles_sm90(insns) if arch == "sm_90a" else tiles_sm80(insns)
            mufu = sum(1 for s in insns if "MUFU" in s)
            print(f"{os.path.basename(f):40s} {arch:6s} regs {regs:3d} spill {spills:4d} "
                  f"kernel {len(insns):6d} MUFU {mufu:5d} per-tile copies {tiles}")
    return status


if __name__ == "__main__":
    sys.exit(main())
