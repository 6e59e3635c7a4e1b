"""GPU baselines for scripts/gpu-check.sh, and the comparison table.

    python3 torch_gpu_bench.py DATA ATTNC_RESULTS.jsonl [--runs N] [--warmup N]
                               [--no-flex] [--budget-s S]

For every benchmark case DATA/bench/*/case.txt (written by attn-gpu-prepare)
this times, on the same shape and dtype, PyTorch's SDPA with the flash
backend and with the cuDNN backend (torch.nn.attention.sdpa_kernel), and
FlexAttention (torch.compile'd flex_attention with the variant's mask_mod;
the block mask is built once, outside the timing), with CUDA events: the
median of --runs after --warmup. Variants SDPA cannot express (windows,
documents) or that FlexAttention cannot (sigmoid normalisation) are "n/a".
Then it prints one table with the attnc times from ATTNC_RESULTS (the
harness's bench output) and the ratios baseline time / attnc time (> 1:
attnc is faster). Needs only torch (no numpy): .npy files are parsed here.
"""
import argparse
import ast
import json
import math
import os
import re
import struct
import sys
import time


def read_npy(path, torch):
    """An int64/int32/float32/bool .npy file as a CPU torch tensor."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(path + ": not a .npy file")
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (hlen,) = struct.unpack("<I", data[8:12])
        start = 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    if header.get("fortran_order"):
        raise ValueError(path + ": Fortran order is not supported")
    dtypes = {"<i8": torch.int64, "<i4": torch.int32, "<f4": torch.float32,
              "|b1": torch.bool, "<f8": torch.float64}
    dt = dtypes[header["descr"]]
    body = bytearray(data[start + hlen:])
    t = torch.frombuffer(body, dtype=dt) if len(body) else torch.empty(0, dtype=dt)
    return t.reshape(header["shape"]).clone()


def read_case(d):
    case = {"dir": d, "inputs": []}
    with open(os.path.join(d, "case.txt")) as f:
        for line in f:
            key, _, rest = line.strip().partition(" ")
            if key == "shape":
                case["shape"] = [int(x) for x in rest.split()]
            elif key == "input":
                case["inputs"].append(rest.split()[0])
            else:
                case[key] = rest
    return case


def cuda_time(torch, fn, runs, warmup):
    """Median milliseconds of fn() over `runs`, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def param(label, name, default):
    m = re.search(r"\b" + name + r"=(\d+)", label)
    return int(m.group(1)) if m else default


def baselines(torch, case, runs, warmup, use_flex, deadline):
    """{'flash': ms or reason, 'cudnn': ..., 'flex': ...} for one case."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F
    B, HQ, HKV, LQ, LK, D, DV = case["shape"]
    dt = torch.bfloat16 if case["dtype"] == "bf16" else torch.float16
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    q = torch.randn(B, HQ, LQ, D, device=dev, dtype=dt, generator=g)
    k = torch.randn(B, HKV, LK, D, device=dev, dtype=dt, generator=g)
    v = torch.randn(B, HKV, LK, DV, device=dev, dtype=dt, generator=g)
    spec = case["spec"]
    label = case.get("label", spec)
    out = {}

    causal = {"full": False, "causal": True}.get(spec)
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION),
                          ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        if causal is None:
            out[name] = "n/a (SDPA has no such mask)"
            continue
        try:
            def run():
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            out[name] = cuda_time(torch, run, runs, warmup)
        except Exception as e:  # backend unavailable for this shape/GPU
            out[name] = "failed: " + str(e).splitlines()[0][:80]

    if not use_flex:
        out["flex"] = "skipped (--no-flex)"
        return out
    if spec.startswith("sigmoid"):
        out["flex"] = "n/a (softmax only)"
        return out
    if time.monotonic() > deadline:
        # torch.compile takes tens of seconds per variant and shape; the
        # whole check must fit its time limit.
        out["flex"] = "skipped (--budget-s spent)"
        return out
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        mask_mod = None
        if spec == "causal":
            def mask_mod(b, h, qi, kv):
                return qi >= kv
        elif spec == "sliding_window":
            w = param(label, "window", 128)

            def mask_mod(b, h, qi, kv):
                return (qi >= kv) & (qi - kv < w)
        elif spec == "document":
            doc_q = read_npy(os.path.join(case["dir"], "input_doc_q.npy"), torch).to(dev)
            doc_kv = read_npy(os.path.join(case["dir"], "input_doc_kv.npy"), torch).to(dev)

            def mask_mod(b, h, qi, kv):
                return (doc_q[qi] == doc_kv[kv]) & (qi >= kv)
        score_mod = None
        if spec == "local_softcap_alibi":
            # Gemma-2 local layer: causal window, soft-capping, ALiBi slopes
            # (the same slopes file attnc reads). flex_attention scales by
            # 1/sqrt(D) before score_mod, as the spec's scale does.
            w = param(label, "window", 256)
            cap = 50.0
            slopes = read_npy(os.path.join(case["dir"], "input_slopes.npy"), torch).to(dev)

            def mask_mod(b, h, qi, kv):
                return (qi >= kv) & (qi - kv < w)

            def score_mod(score, b, h, qi, kv):
                return cap * torch.tanh(score / cap) - slopes[h] * (qi - kv).to(score.dtype)
        elif spec != "full" and mask_mod is None:
            out["flex"] = "n/a (no mask_mod written for " + spec + ")"
            return out
        block_mask = (create_block_mask(mask_mod, None, None, LQ, LK, device=dev)
                      if mask_mod else None)
        flex = torch.compile(flex_attention)
        out["flex"] = cuda_time(
            torch, lambda: flex(q, k, v, score_mod=score_mod, block_mask=block_mask),
            runs, warmup)
    except Exception as e:
        out["flex"] = "failed: " + str(e).splitlines()[0][:80]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("attnc_results")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--budget-s", type=float, default=200,
                    help="no new FlexAttention compilation after this many seconds")
    args = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print("torch_gpu_bench: torch not available: %s" % e)
        return 1
    if not torch.cuda.is_available():
        print("torch_gpu_bench: torch sees no CUDA GPU")
        return 1
    # Each case compiles flex_attention anew (its own score_mod / block
    # mask): past dynamo's default of 8 recompilations it silently falls
    # back to the unfused eager path, which would make a baseline 100x slow.
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 1024)

    attnc = {}
    with open(args.attnc_results) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                D = r.get("shape", "").split(",")[5] if r.get("shape") else ""
                attnc[r["label"] + "|" + str(r.get("L", "")) + "|" + D] = r

    deadline = time.monotonic() + args.budget_s
    bench_dir = os.path.join(args.data, "bench")
    rows = []
    for d in sorted(os.listdir(bench_dir)):
        case = read_case(os.path.join(bench_dir, d))
        B, HQ, HKV, LQ, LK, D, DV = case["shape"]
        flop = 2.0 * B * HQ * LQ * LK * (D + DV)
        a = attnc.get(case.get("label", case["spec"]) + "|" + str(LQ) + "|" + str(D))
        a_ms = a["ms"] if a and not a.get("error") else None
        print("torch baselines: %s D=%d L=%d" % (case.get("label"), D, LQ), file=sys.stderr)
        base = baselines(torch, case, args.runs, args.warmup, not args.no_flex,
                         deadline)
        rows.append((case.get("label", case["spec"]), D, LQ, flop, a_ms, base))

    def tflops(flop, ms):
        return "%.1f" % (flop / (ms * 1e9)) if isinstance(ms, float) else "-"

    def ratio(base_ms, a_ms):
        if isinstance(base_ms, float) and isinstance(a_ms, float):
            return "%.2f" % (base_ms / a_ms)
        return "-"

    print()
    if not rows:
        print("no benchmark cases in " + bench_dir)
        return 1
    first = read_case(os.path.join(bench_dir, sorted(os.listdir(bench_dir))[0]))
    B0, HQ0, _, _, _, _, _ = first["shape"]
    print("TFLOP/s = 2*B*HQ*LQ*LK*(D+DV) / time over the FULL matrix for every "
          "variant (masked pairs are not discounted); B=%d HQ=HKV=%d DV=D "
          "%s; torch %s; ratio = baseline time / attnc time (> 1: attnc faster)"
          % (B0, HQ0, first["dtype"], torch.__version__))
    hdr = ("%-28s %4s %6s | %8s %7s | %7s %7s %7s | %6s %6s %6s"
           % ("variant", "D", "L", "attnc ms", "TFLOP/s", "flash", "cudnn", "flex",
              "/flash", "/cudnn", "/flex"))
    print(hdr)
    print("-" * len(hdr))
    notes = []
    for label, D, L, flop, a_ms, base in rows:
        print("%-28s %4d %6d | %8s %7s | %7s %7s %7s | %6s %6s %6s" % (
            label, D, L, "%.3f" % a_ms if a_ms else "FAIL", tflops(flop, a_ms),
            tflops(flop, base["flash"]), tflops(flop, base["cudnn"]),
            tflops(flop, base["flex"]), ratio(base["flash"], a_ms),
            ratio(base["cudnn"], a_ms), ratio(base["flex"], a_ms)))
        for k in ("flash", "cudnn", "flex"):
            if not isinstance(base[k], float):
                notes.append("%s D=%d L=%d %s: %s" % (label, D, L, k, base[k]))
    # The sigmoid target is against attnc's own softmax on the same shape
    # and mask (sigmoid_causal vs causal).
    own = {(label, D, L): a_ms for label, D, L, _, a_ms, _ in rows}
    for (label, D, L), a_ms in sorted(own.items()):
        if label.startswith("sigmoid_causal") and own.get(("causal", D, L)) and a_ms:
            c_ms = own[("causal", D, L)]
            print("sigmoid_causal vs attnc causal softmax, D=%d L=%d: %.2fx (causal %.3f ms / "
                  "sigmoid %.3f ms)" % (D, L, c_ms / a_ms, c_ms, a_ms))
    for n in notes:
        print("  note: " + n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
