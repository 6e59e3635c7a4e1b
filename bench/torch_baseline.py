#!/usr/bin/env python3
"""PyTorch CPU baselines for attn-bench (run by `attn-bench --baseline torch`).

Times, on the CPU and with the given shape, dtype and thread count:
  - sdpa: torch.nn.functional.scaled_dot_product_attention (full, and causal
    through is_causal=True; other masks are not SDPA's job here); with
    --backward also its backward: torch.autograd.grad of one forward's graph
    (retain_graph) with a random dout, timed alone ("bwd_ms");
  - flex: torch.nn.attention.flex_attention with a mask_mod for the variants
    it knows (full, causal, sliding_window, document, natten2d), compiled
    with torch.compile when that works (else eager, and it says so). The
    BlockMask is built once, outside the timing (its time is reported).
Each result is the median of --runs runs after --warmup. Prints ONE JSON
object on its last line: {"torch": VERSION, "sdpa": {...}, "flex": {...}},
each {"ms": ...} or {"skipped": WHY}; or {"error": "torch not available: ..."}
when torch does not import. Always exits 0 unless the arguments are bad.
"""
import argparse
import json
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", required=True, help="the attention block's name")
    p.add_argument("--shape", required=True, help="B,HQ,HKV,LQ,LK,D,DV")
    p.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--param", action="append", default=[], help="NAME=VALUE")
    p.add_argument("--input", action="append", default=[], help="NAME=FILE.npy")
    p.add_argument("--backward", action="store_true",
                   help="also time SDPA's backward (bwd_ms)")
    return p.parse_args()


def timed(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def sdpa_backward(torch, a, q, k, v, causal, extra):
    """{"bwd_ms": ...} for SDPA's backward, or {"bwd_skipped": WHY}."""
    try:
        qq, kk, vv = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(
            qq, kk, vv, is_causal=causal, **extra)
        g = torch.Generator().manual_seed(2)
        dout = (torch.rand(out.shape, generator=g) * 2 - 1).to(out.dtype)
        ms = timed(lambda: torch.autograd.grad(out, (qq, kk, vv), dout,
                                               retain_graph=True),
                   a.warmup, a.runs)
        return {"bwd_ms": ms}
    except Exception as e:
        return {"bwd_skipped": "SDPA backward failed: %s" %
                str(e).splitlines()[0][:300]}


def mask_mod_for(variant, params, inputs, torch, LQ, LK):
    """The FlexAttention mask_mod of a variant, or (None, why)."""
    if variant == "full":
        return (lambda b, h, q, kv: q >= 0), None  # every pair
    if variant == "causal":
        return (lambda b, h, q, kv: q >= kv), None
    if variant == "sliding_window":
        w = int(params.get("window", 128))
        return (lambda b, h, q, kv: (q >= kv) & (q - kv < w)), None
    if variant == "document":
        if "doc_q" not in inputs or "doc_kv" not in inputs:
            return None, "document needs the doc_q and doc_kv inputs"
        dq = torch.as_tensor(inputs["doc_q"]).to(torch.int64)
        dk = torch.as_tensor(inputs["doc_kv"]).to(torch.int64)
        return (lambda b, h, q, kv: (dq[q] == dk[kv]) & (q >= kv)), None
    if variant == "natten2d":
        width = int(params.get("width", 16))
        half = int(params.get("kernel", 5)) // 2
        rows = LK // width

        def natten(b, h, q, kv):
            qr = torch.clamp(q // width, half, rows - 1 - half)
            qc = torch.clamp(q % width, half, width - 1 - half)
            return (torch.abs(kv // width - qr) <= half) & \
                   (torch.abs(kv % width - qc) <= half)
        return natten, None
    return None, "torch_baseline.py has no mask_mod for '%s'" % variant


def main():
    a = parse_args()
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        print(json.dumps({"error": "torch not available: %s" % e}))
        return 0
    B, HQ, HKV, LQ, LK, D, DV = (int(x) for x in a.shape.split(","))
    params = dict(p.split("=", 1) for p in a.param)
    inputs = {}
    if a.input:
        import numpy as np
        for spec in a.input:
            name, path = spec.split("=", 1)
            inputs[name] = np.load(path)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dtype = {"f32": torch.float32, "f16": torch.float16,
             "bf16": torch.bfloat16}[a.dtype]
    g = torch.Generator().manual_seed(1)
    q = (torch.rand(B, HQ, LQ, D, generator=g) * 4 - 2).to(dtype)
    k = (torch.rand(B, HKV, LK, D, generator=g) * 4 - 2).to(dtype)
    v = (torch.rand(B, HKV, LK, DV, generator=g) * 2 - 1).to(dtype)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    F = torch.nn.functional

    # SDPA: full and causal. GQA by enable_gqa, or by repeating k and v.
    if a.variant in ("full", "causal"):
        causal = a.variant == "causal"
        kk, vv, extra = k, v, {}
        if HQ != HKV:
            try:
                F.scaled_dot_product_attention(q[:, :, :1], k[:, :, :1],
                                               v[:, :, :1], enable_gqa=True)
                extra = {"enable_gqa": True}
            except TypeError:
                kk = k.repeat_interleave(HQ // HKV, dim=1)
                vv = v.repeat_interleave(HQ // HKV, dim=1)
        try:
            with torch.no_grad():
                ms = timed(lambda: F.scaled_dot_product_attention(
                    q, kk, vv, is_causal=causal, **extra), a.warmup, a.runs)
            result["sdpa"] = {"ms": ms}
        except Exception as e:
            result["sdpa"] = {"skipped": "SDPA failed: %s" % e}
        if a.backward and "ms" in result["sdpa"]:
            result["sdpa"].update(sdpa_backward(torch, a, q, kk, vv, causal,
                                                extra))
    else:
        result["sdpa"] = {"skipped": "SDPA covers full and causal only"}

    # FlexAttention.
    try:
        from torch.nn.attention.flex_attention import (create_block_mask,
                                                       flex_attention)
    except Exception as e:
        result["flex"] = {"skipped": "no FlexAttention: %s" % e}
        print(json.dumps(result))
        return 0
    mask_mod, why = mask_mod_for(a.variant, params, inputs, torch, LQ, LK)
    if mask_mod is None:
        result["flex"] = {"skipped": why}
        print(json.dumps(result))
        return 0
    try:
        t0 = time.perf_counter()
        bm = create_block_mask(mask_mod, B, None, LQ, LK, device="cpu")
        block_mask_ms = (time.perf_counter() - t0) * 1e3
        gqa = HQ != HKV
        note = "torch.compile"
        try:
            fn = torch.compile(flex_attention)
            t0 = time.perf_counter()
            with torch.no_grad():
                fn(q, k, v, block_mask=bm, enable_gqa=gqa)
            first_ms = (time.perf_counter() - t0) * 1e3
        except Exception as e:
            fn, note = flex_attention, "eager (torch.compile failed: %s)" % \
                str(e).splitlines()[0][:200]
            t0 = time.perf_counter()
            with torch.no_grad():
                fn(q, k, v, block_mask=bm, enable_gqa=gqa)
            first_ms = (time.perf_counter() - t0) * 1e3
        with torch.no_grad():
            ms = timed(lambda: fn(q, k, v, block_mask=bm, enable_gqa=gqa),
                       a.warmup, a.runs)
        result["flex"] = {"ms": ms, "note": note,
                          "block_mask_ms": block_mask_ms,
                          "first_call_ms": first_ms}
    except Exception as e:
        result["flex"] = {"skipped": "FlexAttention failed: %s" %
                          str(e).splitlines()[0][:300]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
