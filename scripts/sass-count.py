#!/usr/bin/env python3
"""SASS instructions per key tile of attnc's CUDA kernels, with no GPU.

    python3 scripts/sass-count.py FILE.cu [FILE.cu ...] [--arch sm_90a|sm_80]
        [--dtype 1] [--hd 128] [--hdv 128] [--nvcc PATH] [--nvdisasm PATH]

Compiles each emitted .cu for one entry (-DATTNC_ONLY_*) with the options
the runtime's NVRTC path uses (-std=c++17, no fast math), reads ptxas's
register and spill counts, disassembles the cubin with nvdisasm (PyPI:
nvidia-cuda-nvdisasm) and counts the instructions of each copy of the tile
code: for sm_90a, one iteration of the consumers' main loop (issue of
S = Q K^T and of the previous tile's P V, the waits, the element code and
softmax of one copy, FULL or PARTIAL, and packing P; the rescale of a raw
logit that only a scale <= 0 runs is not counted); for sm_80, a rough
split of the HMMA runs (a gap of more than 400 instructions starts a new
copy), from the first HMMA of S = Q K^T to the last of O += P V: a layout
heuristic, not a per-tile count to quote. These are the instructions one warp issues per key
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


def lines_with_labels(sass):
    """[(kind, text)]: kind 'label' (text = name) or 'insn' (text = instruction)."""
    out = []
    for line in sass.splitlines():
        lab = re.match(r"^\s*(\.L_x_\d+):", line)
        if lab:
            out.append(("label", lab.group(1)))
            continue
        m = INSN.search(line)
        if m:
            out.append(("insn", m.group(1)))
    return out


def skipped_blocks(items, lo, hi):
    """Instruction counts of the blocks in [lo, hi) that a forward
    conditional branch skips and that hold 32 or more FMUL and no MUFU:
    the `u.pre != 1` rescale of a raw logit, which runs only for a scale
    <= 0 (not counted per tile)."""
    total = 0
    for i in range(lo, hi):
        kind, text = items[i]
        m = re.match(r"@!?U?P\w+\s+BRA\s+`\((\.L_x_\d+)\)", text) if kind == "insn" else None
        if not m:
            continue
        for j in range(i + 1, hi):
            if items[j] == ("label", m.group(1)):
                block = [t for k, t in items[i + 1:j] if k == "insn"]
                if sum("FMUL" in t for t in block) >= 32 and not any("MUFU" in t for t in block):
                    total += len(block)
                break
    return total


def tiles_sm90(sass):
    """Instructions one consumer warp issues per key tile in the main loop:
    the loop body (named barrier, S = Q K^T and P V issue, waits, element
    code and softmax, packing P) with one of its two copies of the element
    code (FULL, then PARTIAL)."""
    items = lines_with_labels(sass)
    idx = [i for i, (k, t) in enumerate(items) if k == "insn"]
    w1 = next((i for i in idx if "WARPGROUP.DEPBAR.LE gsb0, 0x1" in items[i][1]), None)
    if w1 is None:
        return []
    w0 = next(i for i in idx if i > w1 and "WARPGROUP.DEPBAR.LE gsb0, 0x0" in items[i][1])
    # The loop: from the label its back edge jumps to, to that back edge.
    back = None
    for i in idx:
        if i <= w0:
            continue
        m = re.search(r"BRA\s+`\((\.L_x_\d+)\)", items[i][1])
        if m:
            tgt = next((j for j, it in enumerate(items) if it == ("label", m.group(1))), None)
            if tgt is not None and tgt < w1:
                back, head = i, tgt
                break
    if back is None:
        return []
    count = lambda lo, hi: sum(1 for k, _ in items[lo:hi] if k == "insn")
    # The two copies between the waits: the first ends at an unconditional
    # BRA to the join, the second starts at the label of a branch after w1.
    u = next(i for i in idx if w1 < i < w0 and re.match(r"BRA\s+`", items[i][1]))
    join = re.search(r"\((\.L_x_\d+)\)", items[u][1]).group(1)
    b_start = u + 1
    a_start = w1 + 1
    copies = [(a_start, u + 1), (b_start, next(j for j in range(u, len(items)) if items[j] == ("label", join)))]
    loop = count(head, back + 1)
    sizes = [count(lo, hi) - skipped_blocks(items, lo, hi) for lo, hi in copies]
    raw = [count(lo, hi) for lo, hi in copies]
    # Per tile: the loop minus the copy not taken, minus the skipped rescale.
    per = sorted(loop - raw[1 - c] - (raw[c] - sizes[c]) for c in range(2))
    return per


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
            tiles = tiles_sm90(sass) if arch == "sm_90a" else tiles_sm80(insns)
            mufu = sum(1 for s in insns if "MUFU" in s)
            print(f"{os.path.basename(f):40s} {arch:6s} regs {regs:3d} spill {spills:4d} "
                  f"kernel {len(insns):6d} MUFU {mufu:5d} per-tile copies {tiles}")
    return status


if __name__ == "__main__":
    sys.exit(main())
