#!/usr/bin/env python3
"""Why attnc's f16 CPU kernels do not use AVX512-FP16 arithmetic.

AVX512-FP16 multiplies and adds in half precision (vfmadd*ph: the sum is
rounded to f16 after every step); it has no dot product that accumulates in
float32 (AVX512-BF16's vdpbf16ps does, for bf16). A kernel that used it for
S = Q K^T or O = P V would accumulate in f16. This script emulates that
(each fused multiply-add exact, then rounded to f16) on one head of f16
inputs and prints the relative Frobenius error of the output against a
float64 reference, beside what attnc does (f16 storage, float32
arithmetic) and the error of merely storing the exact output as f16.

    python3 bench/f16_accumulation.py [--lq 256] [--lk 4096] [--d 128]
"""
import argparse

import numpy as np


def softmax_rows(s):
    m = s.max(axis=1, keepdims=True)
    p = np.exp(s - m)
    return p / p.sum(axis=1, keepdims=True)


def fma_f16_matmul(a, b):
    """a @ b with an f16 accumulator: acc = f16(acc + a[:, i] * b[i, :])."""
    acc = np.zeros((a.shape[0], b.shape[1]), dtype=np.float16)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for i in range(a.shape[1]):
        acc = (acc.astype(np.float64) + np.outer(a64[:, i], b64[i, :])).astype(np.float16)
    return acc


def rel(x, ref):
    return float(np.linalg.norm(x.astype(np.float64) - ref) / np.linalg.norm(ref))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lq", type=int, default=256)
    ap.add_argument("--lk", type=int, default=4096)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    # The data of attn-bench and the numerical tests.
    q = rng.uniform(-2, 2, (a.lq, a.d)).astype(np.float16)
    k = rng.uniform(-2, 2, (a.lk, a.d)).astype(np.float16)
    v = rng.uniform(-1, 1, (a.lk, a.d)).astype(np.float16)
    scale = 1 / np.sqrt(a.d)

    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    ref = softmax_rows(q64 @ k64.T * scale) @ v64

    # attnc: f16 storage, float32 arithmetic.
    q32, k32, v32 = (x.astype(np.float32) for x in (q, k, v))
    p32 = softmax_rows((q32 @ k32.T) * np.float32(scale))
    out32 = (p32 @ v32).astype(np.float16)

    # AVX512-FP16 for Q K^T only (softmax and P V in float32).
    s16 = fma_f16_matmul(q, k.T).astype(np.float32) * np.float32(scale)
    out_s16 = (softmax_rows(s16) @ v32).astype(np.float16)

    # AVX512-FP16 for both products (P rounded to f16 for P V).
    p16 = softmax_rows(s16).astype(np.float16)
    out_all16 = fma_f16_matmul(p16, v)

    print(f"LQ={a.lq} LK={a.lk} D={a.d}, inputs f16, relative error of out vs float64:")
    print(f"  the exact output stored as f16           {rel(ref.astype(np.float16), ref):.2e}")
    print(f"  attnc: f16 storage, float32 arithmetic   {rel(out32, ref):.2e}")
    print(f"  f16 accumulation in Q K^T                {rel(out_s16, ref):.2e}")
    print(f"  f16 accumulation in Q K^T and P V        {rel(out_all16, ref):.2e}")


if __name__ == "__main__":
    main()
