#!/usr/bin/env python3
"""Python-side overhead of an attnc call on a cached kernel, at small shapes.

For each shape it times, in one run, medians of many calls:
  - cpp:      Kernel::forward from C++ (attn-bench --json, the same shape,
              spec, dtype and threads): the work no binding can avoid;
  - binding:  the extension's forward on preallocated arrays (nanobind,
              DLPack import of q, k, v and out, the C++ call);
  - call:     kernel(q, k, v), numpy arrays: the binding plus the Python
              wrapper (shape checks, allocating out);
  - torch:    kernel(q, k, v) on torch tensors;
  - torch_op: attnc.torch.attention(...)(q, k, v) under torch.no_grad, when
              torch imports (eager inference: the kernel without the
              custom op);
  - torch_grad: the same with q, k, v requiring grad: the torch.library
              custom op's dispatch and autograd's bookkeeping (forward only).
The overhead of a path is its median minus cpp's. Prints a Markdown table
(docs/benchmarks.md records one) and, with --json, one JSON object.

    PYTHONPATH=build/python python3 bench/python_overhead.py [--bench build/tools/attn-bench]
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

import attnc

ROOT = pathlib.Path(__file__).resolve().parents[1]


def median_us(fn, runs, repeat):
    """Median over `runs` batches of the mean time of `repeat` calls, in µs."""
    for _ in range(repeat):  # warm up
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        times.append((time.perf_counter() - t0) / repeat * 1e6)
    return statistics.median(times)


def cpp_us(bench, spec, shape, threads):
    cmd = [bench, str(spec), "--shape", ",".join(map(str, shape)), "--threads",
           str(threads), "--runs", "2000", "--warmup", "200", "--json"]
    got = subprocess.run(cmd, capture_output=True, text=True)
    if got.returncode != 0:
        sys.exit(f"python_overhead: {' '.join(cmd)} failed:\n{got.stderr}")
    result = json.loads(got.stdout)
    if "results" in result:
        result = result["results"][0]
    return result["ms"] * 1e3


def measure(args, shape):
    B, HQ, HKV, LQ, LK, D, DV = shape
    rng = np.random.default_rng(0)
    q = rng.standard_normal((B, HQ, LQ, D), dtype=np.float32)
    k = rng.standard_normal((B, HKV, LK, D), dtype=np.float32)
    v = rng.standard_normal((B, HKV, LK, DV), dtype=np.float32)
    out = np.empty((B, HQ, LQ, DV), dtype=np.float32)
    kernel = attnc.load(args.spec)
    native, t = kernel._native, args.threads
    row = {"shape": shape, "cpp": cpp_us(args.bench, args.spec, shape, t)}
    row["binding"] = median_us(lambda: native.forward(q, k, v, out, None, {}, t),
                               args.runs, args.repeat)
    row["call"] = median_us(lambda: kernel(q, k, v, threads=t), args.runs, args.repeat)
    try:
        import torch
        import attnc.torch as attnc_torch
    except ImportError:
        return row
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    row["torch"] = median_us(lambda: kernel(tq, tk, tv, threads=t), args.runs, args.repeat)
    f = attnc_torch.attention(pathlib.Path(args.spec).read_text())
    with torch.no_grad():
        row["torch_op"] = median_us(lambda: f(tq, tk, tv), args.runs, args.repeat)
    gq, gk, gv = (x.clone().requires_grad_() for x in (tq, tk, tv))
    row["torch_grad"] = median_us(lambda: f(gq, gk, gv), args.runs, args.repeat)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(ROOT / "examples" / "causal.attn"))
    p.add_argument("--bench", default=str(ROOT / "build" / "tools" / "attn-bench"))
    p.add_argument("--shapes", default="1,1,1,1,1,8,8;1,8,8,16,16,64,64;2,8,2,64,64,64,64",
                   help="B,HQ,HKV,LQ,LK,D,DV shapes separated by ';'")
    p.add_argument("--threads", type=int, default=0,
                   help="kernel threads for cpp, binding, call and torch (0: attnc's "
                        "default pool, which torch_op and torch_grad always use)")
    p.add_argument("--runs", type=int, default=31)
    p.add_argument("--repeat", type=int, default=300)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    shapes = [tuple(int(n) for n in s.split(",")) for s in args.shapes.split(";")]
    if any(len(s) != 7 for s in shapes):
        p.error("each shape is B,HQ,HKV,LQ,LK,D,DV")
    rows = [measure(args, s) for s in shapes]
    cols = [c for c in ("binding", "call", "torch", "torch_op", "torch_grad")
            if c in rows[0]]
    print(f"spec {pathlib.Path(args.spec).name}, f32, threads {args.threads}; "
          f"µs per call (median), overhead = path - cpp\n")
    print("| shape B,HQ,HKV,LQ,LK,D,DV | cpp | " +
          " | ".join(f"{c} (overhead)" for c in cols) + " |")
    print("|---" * (2 + len(cols)) + "|")
    for r in rows:
        cells = [f"{r[c]:.1f} ({r[c] - r['cpp']:+.1f})" for c in cols]
        print(f"| {','.join(map(str, r['shape']))} | {r['cpp']:.1f} | " +
              " | ".join(cells) + " |")
    if args.json:
        print(json.dumps({"spec": args.spec, "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
