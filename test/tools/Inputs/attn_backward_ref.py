"""A float64 numpy reference of the backward pass for `attnc run --dout`.

  attn_backward_ref.py dout DIR B HQ LQ DV [--seed N]
      writes DIR/dout.npy: standard normal float32 values.
  attn_backward_ref.py check VARIANT --q Q --k K --v V --dout DO
                    --dq DQ --dk DK --dv DV [--dinput NAME=FILE]...
                    [--input NAME=FILE]... [-D NAME=VALUE]... --tol TOL
      recomputes dq, dk, dv (and the gradients of the --dinput inputs) of
      the loss sum(out * dout) in float64 and fails unless each file is
      float32 of the right shape, free of NaN, and within relative Frobenius
      error TOL. The gradients are the analytic backward written out below
      (softmax: dZ = P (dP - rowsum(dO O)); sigmoid: dZ = dP s (1 - s)),
      chained through each variant's hand-written score derivative; the
      input gradients are checked against central differences of
      attn_ref.py's forward as well (which validates the analytic ones).

The variants mirror the specs by hand, as in attn_ref.py, so the check owes
nothing to attnc.
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attn_ref  # noqa: E402


def _param(defines, name, default, kind):
    return kind(defines.get(name, default))


# Each variant's score derivatives: dscore(s, h, q, kv, inputs, defines) is
# d(score)/d(scaled logit); dinputs[name](dz, s, h, q, kv, inputs, defines)
# is the gradient of that input given dZ = dL/d(score).
def _derivatives():
    def alibi_dscore(s, h, q, kv, i, d):
        cap = _param(d, "cap", 50.0, float)
        return 1.0 - np.tanh(s / cap) ** 2

    def alibi_dslopes(dz, s, h, q, kv, i, d):
        rel = (q - kv).astype(np.float64)  # score = ... - slopes[h] * rel
        return -(dz * rel).sum(axis=(0, 2, 3))

    one = dict(dscore=lambda s, h, q, kv, i, d: np.ones_like(s), dinputs={})
    return {
        "full": one,
        "causal": one,
        "causal_cross": one,
        "sigmoid_causal": one,
        "local_softcap_alibi": dict(dscore=alibi_dscore,
                                    dinputs={"slopes": alibi_dslopes}),
    }


def backward(variant, q, k, v, dout, inputs, defines):
    """dq, dk, dv and {input: gradient}, float64."""
    spec = attn_ref._variants()[variant]
    der = _derivatives()[variant]
    B, HQ, LQ, D = q.shape
    HKV, LK, DV = k.shape[1], k.shape[2], v.shape[3]
    sizes = dict(B=B, HQ=HQ, HKV=HKV, LQ=LQ, LK=LK, D=D, DV=DV)
    group = HQ // HKV
    kk = np.repeat(k, group, axis=1)
    vv = np.repeat(v, group, axis=1)
    scale = 1.0 / math.sqrt(D)
    s = np.einsum("bhqd,bhkd->bhqk", q, kk) * scale
    h = np.arange(HQ).reshape(1, HQ, 1, 1)
    qi = np.arange(LQ).reshape(LQ, 1)
    ki = np.arange(LK).reshape(1, LK)
    z = spec["score"](s, h, qi, ki, inputs, sizes, defines) if "score" in spec else s
    m = np.broadcast_to(spec["mask"](h, qi, ki, inputs, sizes, defines), s.shape)
    if spec.get("normalize") == "sigmoid":
        p = np.where(m, 1.0 / (1.0 + np.exp(-(z + spec["bias"](sizes)))), 0.0)
        out = np.einsum("bhqk,bhkd->bhqd", p, vv)
        dp = np.einsum("bhqd,bhkd->bhqk", dout, vv)
        dz = np.where(m, dp * p * (1.0 - p), 0.0)
    else:
        zm = np.where(m, z, -np.inf)
        mx = zm.max(axis=-1, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        e = np.where(m, np.exp(zm - mx), 0.0)
        l = e.sum(axis=-1, keepdims=True)
        p = np.where(l > 0, e / np.where(l > 0, l, 1.0), 0.0)  # empty rows: 0
        out = np.einsum("bhqk,bhkd->bhqd", p, vv)
        dp = np.einsum("bhqd,bhkd->bhqk", dout, vv)
        delta = (dout * out).sum(axis=-1, keepdims=True)
        dz = p * (dp - delta)
    ds = np.where(m, dz * der["dscore"](s, h, qi, ki, inputs, defines), 0.0)
    dq = np.einsum("bhqk,bhkd->bhqd", ds, kk) * scale
    dk = (np.einsum("bhqk,bhqd->bhkd", ds, q) * scale).reshape(
        B, HKV, group, LK, D).sum(axis=2)
    dv = np.einsum("bhqk,bhqd->bhkd", p, dout).reshape(
        B, HKV, group, LK, DV).sum(axis=2)
    dinputs = {name: f(np.where(m, dz, 0.0), s, h, qi, ki, inputs, defines)
               for name, f in der["dinputs"].items()}
    return dq, dk, dv, dinputs


def central_difference(variant, q, k, v, dout, inputs, defines, name):
    """d sum(out * dout) / d inputs[name] by central differences."""
    grad = np.zeros_like(inputs[name])
    eps = 1e-5
    for idx in np.ndindex(*grad.shape):
        loss = []
        for sign in (1, -1):
            shifted = dict(inputs)
            shifted[name] = inputs[name].copy()
            shifted[name][idx] += sign * eps
            out, _ = attn_ref.reference(variant, q, k, v, shifted, defines)
            loss.append((out * dout).sum())
        grad[idx] = (loss[0] - loss[1]) / (2 * eps)
    return grad


def _compare(label, got, ref, tol, errors):
    rel = attn_ref._rel(got, ref)
    print(f"{label}: relative error {rel:.3g} (tolerance {tol:g})")
    if not rel < tol:  # NaN fails
        errors.append(f"{label}: relative error {rel:.3g} >= {tol:g}")


def check(args):
    defines = dict(d.split("=", 1) for d in args.define)
    inputs = {}
    for spec in args.input:
        name, path = spec.split("=", 1)
        a = np.load(path)
        inputs[name] = a if a.dtype == np.bool_ else (
            a.astype(np.int64) if a.dtype.kind == "i" else a.astype(np.float64))
    q, k, v, dout = (np.load(p).astype(np.float64)
                     for p in (args.q, args.k, args.v, args.dout))
    dq, dk, dv, dinputs = backward(args.variant, q, k, v, dout, inputs, defines)
    errors = []
    for label, path, ref in (("dq", args.dq, dq), ("dk", args.dk, dk),
                             ("dv", args.dv, dv)):
        got = attn_ref._load_float(path, label, ref.shape, errors)
        if got is not None:
            _compare(label, got, ref, args.tol, errors)
    for spec in args.dinput:
        name, path = spec.split("=", 1)
        if name not in dinputs:
            errors.append(f"d{name}: the variant has no such gradient")
            continue
        cd = central_difference(args.variant, q, k, v, dout, inputs, defines,
                                name)
        _compare(f"d{name} (analytic vs central differences)", dinputs[name],
                 cd, 1e-6, errors)
        got = attn_ref._load_float(path, "d" + name, cd.shape, errors)
        if got is not None:
            _compare("d" + name, got, dinputs[name], args.tol, errors)
    for e in errors:
        print("attn_backward_ref.py: FAIL: " + e, file=sys.stderr)
    return 1 if errors else 0


def make_dout(args):
    rng = np.random.default_rng(args.seed)
    np.save(f"{args.dir}/dout.npy",
            rng.standard_normal(tuple(args.sizes)).astype(np.float32))
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("dout")
    g.add_argument("dir")
    g.add_argument("sizes", type=int, nargs=4)
    g.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check")
    c.add_argument("variant", choices=sorted(_derivatives()))
    for flag in ("--q", "--k", "--v", "--dout", "--dq", "--dk", "--dv"):
        c.add_argument(flag, required=True)
    c.add_argument("--input", action="append", default=[])
    c.add_argument("--dinput", action="append", default=[])
    c.add_argument("-D", "--define", action="append", default=[])
    c.add_argument("--tol", type=float, required=True)
    args = parser.parse_args()
    return make_dout(args) if args.command == "dout" else check(args)


if __name__ == "__main__":
    sys.exit(main())
