#!/usr/bin/env python3
"""A packed variable-length batch against its sequences run one at a time.

Issue 18's target: a varlen batch of 8 sequences of lengths 100..4000 runs
within 10% of the sum of its sequences run one at a time. Both sides use
the same compiled kernel and threads; the batch is one call with
cu_seqlens_q/kv on packed q, k, v [total, H, D], each sequence one call on
its own [1, H, L, D] arrays, dense copies ("dense") and views of the
packed arrays ("views": the batch's own layout, each head's rows HKV * D
apart). Rounds alternate the three, and the ratios are taken per round
(batch / sum of the sequences' calls), then their medians. Prints a
Markdown table (docs/benchmarks.md records one).

    PYTHONPATH=build/python python3 bench/varlen_batch.py [--rounds 7] [--threads 2]
"""
import argparse
import statistics
import time

import numpy as np

import attnc

SPEC = "attention causal {\n  mask = q + LK - LQ >= kv\n}\n"


def timed(fn):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lengths", default="100,523,1000,1789,2400,3100,3650,4000")
    ap.add_argument("--heads", default="8,2", help="HQ,HKV")
    ap.add_argument("--head-dim", type=int, default=64)
    a = ap.parse_args()
    lengths = [int(x) for x in a.lengths.split(",")]
    hq, hkv = (int(x) for x in a.heads.split(","))
    d = a.head_dim
    kernel = attnc.compile(SPEC, dtype="f32", name="causal")
    rng = np.random.default_rng(0)
    total = sum(lengths)
    q = rng.standard_normal((total, hq, d), dtype=np.float32)
    k = rng.standard_normal((total, hkv, d), dtype=np.float32)
    v = rng.standard_normal((total, hkv, d), dtype=np.float32)
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    # Each sequence alone, [1, H, L, D], copied out of the packed arrays.
    views, dense = [], []
    for i in range(len(lengths)):
        rows = slice(cu[i], cu[i + 1])
        views.append(tuple(t[rows].transpose(1, 0, 2)[None] for t in (q, k, v)))
        dense.append(tuple(np.ascontiguousarray(t) for t in views[-1]))

    def batch():
        kernel(q, k, v, cu_seqlens_q=cu, cu_seqlens_kv=cu, threads=a.threads)

    def one_at_a_time(seqs):
        for sq, sk, sv in seqs:
            kernel(sq, sk, sv, threads=a.threads)

    batch(), one_at_a_time(dense), one_at_a_time(views)  # warm up
    ms = {"batch": [], "dense": [], "views": []}
    ratios = {"dense": [], "views": []}
    for _ in range(a.rounds):
        b = timed(batch)
        ms["batch"].append(b)
        for name, seqs in (("dense", dense), ("views", views)):
            t = timed(lambda: one_at_a_time(seqs))
            ms[name].append(t)
            ratios[name].append(b / t)
    med = {name: statistics.median(x) for name, x in ms.items()}
    print("| lengths | HQ, HKV, D | threads | batch (ms) | sequences, dense (ms) "
          "| sequences, views (ms) | batch / dense | batch / views |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {a.lengths} | {hq}, {hkv}, {d} | {a.threads} | {med['batch']:.2f} "
          f"| {med['dense']:.2f} | {med['views']:.2f} "
          f"| {statistics.median(ratios['dense']):.3f} "
          f"| {statistics.median(ratios['views']):.3f} |")


if __name__ == "__main__":
    main()
