"""Data and a float64 numpy reference for the `attnc run` lit tests.

  attn_ref.py gen DIR B HQ HKV LQ LK D DV [--seed N] [--dtype float32|float16]
      writes DIR/q.npy, DIR/k.npy, DIR/v.npy: standard normal values.
  attn_ref.py gen-varlen DIR HQ HKV D DV --lq A,B,.. --lk A,B,.. [--seed N]
      writes a packed variable-length batch: DIR/q.npy [total_q, HQ, D],
      DIR/k.npy, DIR/v.npy [total_kv, HKV, D|DV] and the int32 offsets
      DIR/cu_q.npy, DIR/cu_kv.npy of the given per-sequence lengths.
  attn_ref.py gen-paged DIR B HQ HKV LQ D DV --lk A,B,.. --page-size N
                    [--seed N]
      writes q [B, HQ, LQ, D], a paged cache DIR/k.npy, DIR/v.npy
      [num_pages, N, HKV, D|DV] with two unused pages, its pages handed out
      in shuffled order, DIR/page_table.npy int32 [B, max_pages] (unused
      entries -1) and DIR/kv_lens.npy int32 [B].
  attn_ref.py check VARIANT --q Q --k K --v V --out OUT [--lse LSE]
                    [--input NAME=FILE]... [-D NAME=VALUE]... --tol TOL
                    [--cu-seqlens-q CU_Q --cu-seqlens-kv CU_KV]
                    [--page-table PT --kv-lens LENS]
      recomputes the attention of VARIANT in float64 from the same files and
      fails unless OUT (and LSE) are float32 of the right shape, free of NaN,
      and within relative Frobenius error TOL of the reference. Rows whose
      mask keeps nothing must give 0 and a log-sum-exp of -inf.

The variants are written out here by hand from the specs they mirror (the
shared reference specs, and those the tests write), so that the check owes
nothing to attnc.
"""
import argparse
import math
import sys

import numpy as np


def _param(defines, name, default, kind):
    return kind(defines.get(name, default))


# Each variant: (mask(h, q, kv, inp, sizes, D), score(s, h, q, kv, inp, sizes,
# D) or None, normalisation, bias(sizes) for sigmoid). h is [1, HQ, 1, 1],
# q [LQ, 1], kv [1, LK]; inputs are float64/int64/bool arrays.
def _variants():
    return {
        "causal": dict(mask=lambda h, q, kv, i, s, d: q >= kv),
        "full": dict(mask=lambda h, q, kv, i, s, d: np.ones_like(q >= kv)),
        "causal_cross": dict(
            mask=lambda h, q, kv, i, s, d: q + (s["LK"] - s["LQ"]) >= kv),
        "document": dict(
            mask=lambda h, q, kv, i, s, d:
            (i["doc_q"][:, None] == i["doc_kv"][None, :]) & (q >= kv)),
        "keep": dict(mask=lambda h, q, kv, i, s, d: i["keep"][None, :] & (q >= kv)),
        "local_softcap_alibi": dict(
            mask=lambda h, q, kv, i, s, d:
            (q >= kv) & (q - kv < _param(d, "window", 256, int)),
            score=lambda x, h, q, kv, i, s, d: (
                _param(d, "cap", 50.0, float)
                * np.tanh(x / _param(d, "cap", 50.0, float))
                - i["slopes"][h] * (q - kv).astype(np.float64))),
        "sigmoid_causal": dict(mask=lambda h, q, kv, i, s, d: q >= kv,
                               normalize="sigmoid",
                               bias=lambda s: -math.log(float(s["LK"]))),
    }


def reference(variant, q, k, v, inputs, defines):
    """out [B, HQ, LQ, DV] and lse [B, HQ, LQ] (None for sigmoid), float64."""
    spec = _variants()[variant]
    B, HQ, LQ, D = q.shape
    HKV, LK, DV = k.shape[1], k.shape[2], v.shape[3]
    sizes = dict(B=B, HQ=HQ, HKV=HKV, LQ=LQ, LK=LK, D=D, DV=DV)
    group = HQ // HKV
    kk = np.repeat(k, group, axis=1)  # head h reads key head h // group
    vv = np.repeat(v, group, axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q, kk) / math.sqrt(D)
    h = np.arange(HQ).reshape(1, HQ, 1, 1)
    qi = np.arange(LQ).reshape(LQ, 1)
    ki = np.arange(LK).reshape(1, LK)
    if "score" in spec:
        s = spec["score"](s, h, qi, ki, inputs, sizes, defines)
    m = np.broadcast_to(spec["mask"](h, qi, ki, inputs, sizes, defines), s.shape)
    if spec.get("normalize") == "sigmoid":
        p = np.where(m, 1.0 / (1.0 + np.exp(-(s + spec["bias"](sizes)))), 0.0)
        return np.einsum("bhqk,bhkd->bhqd", p, vv), None
    sm = np.where(m, s, -np.inf)
    mx = sm.max(axis=-1, keepdims=True, initial=-np.inf)  # LK = 0: -inf
    mx = np.where(np.isfinite(mx), mx, 0.0)
    e = np.where(m, np.exp(sm - mx), 0.0)
    l = e.sum(axis=-1, keepdims=True)
    kept = l > 0
    p = np.where(kept, e / np.where(kept, l, 1.0), 0.0)
    lse = np.where(kept, np.log(np.where(kept, l, 1.0)) + mx, -np.inf)[..., 0]
    return np.einsum("bhqk,bhkd->bhqd", p, vv), lse


def _rel(got, ref):
    norm = np.linalg.norm(ref)
    return np.linalg.norm(got - ref) / (norm if norm > 0 else 1.0)


def _load_float(path, name, shape, errors):
    a = np.load(path)
    if a.dtype != np.float32:
        errors.append(f"{name}: dtype {a.dtype}, expected float32")
    if a.shape != shape:
        errors.append(f"{name}: shape {a.shape}, expected {shape}")
        return None
    if np.isnan(a).any():
        errors.append(f"{name}: holds NaN")
    return a.astype(np.float64)


def varlen_reference(variant, q, k, v, cu_q, cu_kv, inputs, defines):
    """The packed out [total_q, HQ, DV] and lse [HQ, total_q] of a varlen
    batch: each sequence's rows as a problem of their own (B = 1)."""
    HQ, DV = q.shape[1], v.shape[2]
    out = np.zeros((q.shape[0], HQ, DV))
    lse = np.zeros((HQ, q.shape[0]))
    for i in range(len(cu_q) - 1):
        q0, q1, k0, k1 = cu_q[i], cu_q[i + 1], cu_kv[i], cu_kv[i + 1]
        if k0 == k1:  # no keys: rows fully masked (out 0, lse -inf)
            lse[:, q0:q1] = -np.inf
            continue
        bhld = lambda t: t.transpose(1, 0, 2)[None]
        o, l = reference(variant, bhld(q[q0:q1]), bhld(k[k0:k1]),
                         bhld(v[k0:k1]), inputs, defines)
        out[q0:q1] = o[0].transpose(1, 0, 2)
        if l is not None:
            lse[:, q0:q1] = l[0]
    return out, (None if _variants()[variant].get("normalize") == "sigmoid"
                 else lse)


def paged_reference(variant, q, k, v, table, lens, inputs, defines):
    """out [B, HQ, LQ, DV] and lse [B, HQ, LQ] of a paged cache: each
    sequence its own problem on its pages' first kv_lens[b] rows."""
    B, HQ, LQ, _ = q.shape
    out = np.zeros((B, HQ, LQ, v.shape[3]))
    lse = np.full((B, HQ, LQ), -np.inf)
    ps = k.shape[1]
    for b in range(B):
        n = int(lens[b])
        if n == 0:
            continue
        rows = [table[b, i // ps] * ps + i % ps for i in range(n)]
        seq = lambda t: t.reshape(-1, t.shape[2], t.shape[3])[rows].transpose(1, 0, 2)[None]
        o, l = reference(variant, q[b:b + 1], seq(k), seq(v), inputs, defines)
        out[b] = o[0]
        if l is not None:
            lse[b] = l[0]
    return out, (None if _variants()[variant].get("normalize") == "sigmoid"
                 else lse)


def check(args):
    defines = dict(d.split("=", 1) for d in args.define)
    inputs = {}
    for spec in args.input:
        name, path = spec.split("=", 1)
        a = np.load(path)
        inputs[name] = a if a.dtype == np.bool_ else (
            a.astype(np.int64) if a.dtype.kind == "i" else a.astype(np.float64))
    q, k, v = (np.load(p).astype(np.float64) for p in (args.q, args.k, args.v))
    if args.page_table:
        table, lens = (np.load(p).astype(np.int64)
                       for p in (args.page_table, args.kv_lens))
        ref, ref_lse = paged_reference(args.variant, q, k, v, table, lens,
                                       inputs, defines)
    elif args.cu_seqlens_q:
        cu_q, cu_kv = (np.load(p).astype(np.int64)
                       for p in (args.cu_seqlens_q, args.cu_seqlens_kv))
        ref, ref_lse = varlen_reference(args.variant, q, k, v, cu_q, cu_kv,
                                        inputs, defines)
    else:
        ref, ref_lse = reference(args.variant, q, k, v, inputs, defines)
    errors = []
    out = _load_float(args.out, "out", ref.shape, errors)
    if out is not None:
        rel = _rel(out, ref)
        print(f"out: relative error {rel:.3g} (tolerance {args.tol:g})")
        if not rel < args.tol:
            errors.append(f"out: relative error {rel:.3g} >= {args.tol:g}")
    if args.lse:
        if ref_lse is None:
            errors.append("lse: the variant has none")
        else:
            lse = _load_float(args.lse, "lse", ref_lse.shape, errors)
            if lse is not None:
                empty = np.isneginf(ref_lse)
                if not np.array_equal(np.isneginf(lse), empty):
                    errors.append("lse: -inf where the reference is finite "
                                  "or the other way round")
                else:
                    rel = _rel(lse[~empty], ref_lse[~empty])
                    print(f"lse: relative error {rel:.3g}, "
                          f"{int(empty.sum())} empty rows")
                    if not rel < args.tol:
                        errors.append(f"lse: relative error {rel:.3g} >= "
                                      f"{args.tol:g}")
    for e in errors:
        print("attn_ref.py: FAIL: " + e, file=sys.stderr)
    return 1 if errors else 0


def gen(args):
    rng = np.random.default_rng(args.seed)
    B, HQ, HKV, LQ, LK, D, DV = args.sizes
    for name, shape in (("q", (B, HQ, LQ, D)), ("k", (B, HKV, LK, D)),
                        ("v", (B, HKV, LK, DV))):
        np.save(f"{args.dir}/{name}.npy",
                rng.standard_normal(shape).astype(args.dtype))
    return 0


def gen_varlen(args):
    rng = np.random.default_rng(args.seed)
    lq = [int(x) for x in args.lq.split(",")]
    lk = [int(x) for x in args.lk.split(",")]
    assert len(lq) == len(lk), "--lq and --lk need one length per sequence"
    HQ, HKV, D, DV = args.sizes
    for name, shape in (("q", (sum(lq), HQ, D)), ("k", (sum(lk), HKV, D)),
                        ("v", (sum(lk), HKV, DV))):
        np.save(f"{args.dir}/{name}.npy",
                rng.standard_normal(shape).astype(np.float32))
    np.save(f"{args.dir}/cu_q.npy", np.cumsum([0] + lq).astype(np.int32))
    np.save(f"{args.dir}/cu_kv.npy", np.cumsum([0] + lk).astype(np.int32))
    return 0


def random_paged_cache(rng, lens, HQ, HKV, LQ, D, DV, page_size):
    """A paged cache of random float32 data for sequences of `lens` keys:
    (q [B, HQ, LQ, D], k [pages, page_size, HKV, D], v [..., DV],
    page_table int32 [B, max_pages + 1] with the pages in shuffled order
    and -1 past each sequence's, kv_lens int32 [B]); two spare pages."""
    B = len(lens)
    pages = [(n + page_size - 1) // page_size for n in lens]
    num_pages = sum(pages) + 2
    order = rng.permutation(num_pages)
    table = np.full((B, max(pages) + 1), -1, np.int32)
    at = 0
    for b in range(B):
        table[b, :pages[b]] = order[at:at + pages[b]]
        at += pages[b]
    q = rng.standard_normal((B, HQ, LQ, D)).astype(np.float32)
    k = rng.standard_normal((num_pages, page_size, HKV, D)).astype(np.float32)
    v = rng.standard_normal((num_pages, page_size, HKV, DV)).astype(np.float32)
    return q, k, v, table, np.array(lens, np.int32)


def gen_paged(args):
    rng = np.random.default_rng(args.seed)
    lens = [int(x) for x in args.lk.split(",")]
    B, HQ, HKV, LQ, D, DV = args.sizes
    assert len(lens) == B, "--lk needs one length per sequence"
    arrays = random_paged_cache(rng, lens, HQ, HKV, LQ, D, DV, args.page_size)
    for name, a in zip(("q", "k", "v", "page_table", "kv_lens"), arrays):
        np.save(f"{args.dir}/{name}.npy", a)
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("sizes", type=int, nargs=7)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--dtype", default="float32")
    gv = sub.add_parser("gen-varlen")
    gv.add_argument("dir")
    gv.add_argument("sizes", type=int, nargs=4)
    gv.add_argument("--lq", required=True)
    gv.add_argument("--lk", required=True)
    gv.add_argument("--seed", type=int, default=0)
    gp = sub.add_parser("gen-paged")
    gp.add_argument("dir")
    gp.add_argument("sizes", type=int, nargs=6)
    gp.add_argument("--lk", required=True)
    gp.add_argument("--page-size", type=int, required=True)
    gp.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check")
    c.add_argument("variant", choices=sorted(_variants()))
    for flag in ("--q", "--k", "--v", "--out"):
        c.add_argument(flag, required=True)
    c.add_argument("--lse")
    c.add_argument("--input", action="append", default=[])
    c.add_argument("-D", dest="define", action="append", default=[])
    c.add_argument("--tol", type=float, required=True)
    c.add_argument("--cu-seqlens-q")
    c.add_argument("--cu-seqlens-kv")
    c.add_argument("--page-table")
    c.add_argument("--kv-lens")
    args = parser.parse_args()
    return {"gen": gen, "gen-varlen": gen_varlen, "gen-paged": gen_paged,
            "check": check}[
        args.command](args)


if __name__ == "__main__":
    sys.exit(main())
