"""attnc's Python module (python/attnc): kernels against float64 references.

Run by ctest (`python`, PYTHONPATH=build/python) with the system Python.
The references are test/tools/Inputs/attn_ref.py's (written by hand from
the specs, owing nothing to attnc) and, for gradients, float64 torch
autograd. Tests that need torch are skipped where it does not import.
"""
import math
import os
import pathlib
import sys

import numpy as np
import pytest

import attnc
from attnc import _attnc

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test" / "tools" / "Inputs"))
import attn_ref  # noqa: E402

try:
    import torch
except ImportError:  # the torch tests are skipped
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch does not import")


def spec_file(name):
    """The shared reference spec when the checkout has ../shared/specs,
    else the repository's copy in examples/."""
    shared = ROOT.parent / "shared" / "specs" / f"{name}.attn"
    return shared if shared.exists() else ROOT / "examples" / f"{name}.attn"


def rel(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    norm = np.linalg.norm(ref)
    return np.linalg.norm(got - ref) / (norm if norm > 0 else 1.0)


def inputs_for(name, rng, HQ, LQ, LK):
    if name == "document":
        return {"doc_q": np.sort(rng.integers(0, 4, LQ)).astype(np.int32),
                "doc_kv": np.sort(rng.integers(0, 4, LK)).astype(np.int32)}
    if name == "local_softcap_alibi":
        return {"slopes": rng.uniform(0.01, 0.5, HQ).astype(np.float32)}
    return {}


def as_ref_inputs(inputs):
    return {n: a.astype(np.int64) if a.dtype.kind == "i" else a.astype(np.float64)
            for n, a in inputs.items()}


VARIANTS = ["full", "causal", "causal_cross", "document", "local_softcap_alibi",
            "sigmoid_causal"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_numpy_matches_reference(variant):
    """Odd lengths, LQ != LK, GQA and DV != D; lse with its empty rows."""
    rng = np.random.default_rng()
    kernel = attnc.load(spec_file(variant))
    B, HQ, HKV, LQ, LK, D, DV = 2, 4, 2, 37, 53, 24, 40
    q = rng.standard_normal((B, HQ, LQ, D)).astype(np.float32)
    k = rng.standard_normal((B, HKV, LK, D)).astype(np.float32)
    v = rng.standard_normal((B, HKV, LK, DV)).astype(np.float32)
    inputs = inputs_for(variant, rng, HQ, LQ, LK)
    ref, ref_lse = attn_ref.reference(variant, q.astype(np.float64),
                                      k.astype(np.float64), v.astype(np.float64),
                                      as_ref_inputs(inputs), {})
    if ref_lse is None:
        out = kernel(q, k, v, inputs=inputs)
    else:
        out, lse = kernel(q, k, v, inputs=inputs, return_lse=True)
        assert lse.dtype == np.float32 and lse.shape == (B, HQ, LQ)
        empty = np.isneginf(ref_lse)
        assert np.array_equal(np.isneginf(lse), empty)
        assert rel(lse[~empty], ref_lse[~empty]) < 1e-5
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32 and out.shape == (B, HQ, LQ, DV)
    assert rel(out, ref) < 1e-5


def shared_specs():
    shared = ROOT.parent / "shared" / "specs"
    folder = shared if shared.is_dir() else ROOT / "examples"
    return sorted(folder.glob("*.attn"))


def random_inputs(kernel, sizes, rng):
    """Arrays for the kernel's declared inputs, as test/common/RandomTensors.h
    makes them: floats in [-1, 1], sorted small ids over LQ or LK, bools."""
    out = {}
    for name, dtype, dims in kernel.inputs:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in dims)
        if dtype == "float32":
            out[name] = rng.uniform(-1, 1, shape).astype(np.float32)
        elif dtype == "bool":
            out[name] = rng.integers(0, 2, shape).astype(np.bool_)
        elif len(dims) == 1 and dims[0] in ("LQ", "LK"):
            out[name] = np.sort(rng.integers(0, 4, shape)).astype(np.int64)
        else:
            out[name] = rng.integers(0, 300, shape).astype(np.int64)
    return out


@pytest.mark.parametrize("path", shared_specs(), ids=lambda p: p.stem)
def test_every_shared_spec_matches_the_spec_interpreter(path):
    """Every reference spec against the float64 reference computed from the
    spec itself (_attnc._reference: the C++ SpecInterpreter, in the build
    tree's module), f32 and bf16."""
    if not hasattr(_attnc, "_reference"):
        pytest.skip("this build of attnc._attnc has no _reference (pip's)")
    rng = np.random.default_rng()
    text = path.read_text()
    sizes = dict(B=2, HQ=4, HKV=2, LQ=45, LK=70, D=24, DV=40)
    kernel = attnc.compile(text)
    q = rng.standard_normal((sizes["B"], sizes["HQ"], sizes["LQ"], sizes["D"]))
    k = rng.standard_normal((sizes["B"], sizes["HKV"], sizes["LK"], sizes["D"]))
    v = rng.standard_normal((sizes["B"], sizes["HKV"], sizes["LK"], sizes["DV"]))
    q, k, v = (x.astype(np.float32) for x in (q, k, v))
    inputs = random_inputs(kernel, sizes, rng)
    ref, ref_lse = _attnc._reference(
        text, {}, *(x.astype(np.float64) for x in (q, k, v)), inputs)
    if ref_lse is None:
        out = kernel(q, k, v, inputs=inputs)
    else:
        out, lse = kernel(q, k, v, inputs=inputs, return_lse=True)
        empty = np.isneginf(ref_lse)
        assert np.array_equal(np.isneginf(lse), empty)
        assert rel(lse[~empty], ref_lse[~empty]) < 1e-5
    assert rel(out, ref) < 1e-5
    if torch is not None:
        bf16 = attnc.compile(text, dtype="bf16")
        tq, tk, tv = (torch.from_numpy(x).to(torch.bfloat16) for x in (q, k, v))
        rq, rk, rv = (t.double().numpy() for t in (tq, tk, tv))
        ref16, _ = _attnc._reference(text, {}, rq, rk, rv, inputs)
        got = bf16(tq, tk, tv, inputs={n: torch.from_numpy(a) for n, a in inputs.items()})
        assert rel(got.float().numpy(), ref16) < 1e-2


def test_one_kernel_serves_every_length():
    """No compile after the first: every shape runs on the same kernel."""
    rng = np.random.default_rng()
    kernel = attnc.load(spec_file("causal"))
    before = _attnc.compile_count()
    for L, D in [(1, 8), (17, 64), (130, 32), (257, 128)]:
        q = rng.standard_normal((1, 2, L, D)).astype(np.float32)
        k = rng.standard_normal((1, 1, L + 3, D)).astype(np.float32)
        v = rng.standard_normal((1, 1, L + 3, D)).astype(np.float32)
        ref, _ = attn_ref.reference("causal", *(x.astype(np.float64) for x in (q, k, v)),
                                    {}, {})
        assert rel(kernel(q, k, v), ref) < 1e-5
    assert _attnc.compile_count() == before


def test_params_override():
    """params is attnc's -D: a narrower window than the spec's 256."""
    rng = np.random.default_rng()
    kernel = attnc.load(spec_file("local_softcap_alibi"), params={"window": 5, "cap": 20.0})
    HQ, L, D = 2, 40, 16
    q, k, v = (rng.standard_normal((1, HQ, L, D)).astype(np.float32) for _ in range(3))
    inputs = inputs_for("local_softcap_alibi", rng, HQ, L, L)
    ref, _ = attn_ref.reference("local_softcap_alibi", *(x.astype(np.float64) for x in (q, k, v)),
                                as_ref_inputs(inputs), {"window": "5", "cap": "20.0"})
    assert rel(kernel(q, k, v, inputs=inputs), ref) < 1e-5


@needs_torch
def test_torch_strided_views_bf16():
    """[B, L, H, D] tensors seen as [B, H, L, D] by a transpose (strided, not
    copied): the same result as contiguous copies, returned as torch."""
    kernel = attnc.load(spec_file("causal"), dtype="bf16")
    g = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    B, L, H, D = 2, 45, 3, 32
    x = [torch.randn(B, L, H, D, generator=g).to(torch.bfloat16) for _ in range(3)]
    q, k, v = (t.transpose(1, 2) for t in x)
    assert not q.is_contiguous()
    out = kernel(q, k, v)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16
    same = kernel(*(t.contiguous() for t in (q, k, v)))
    assert torch.equal(out, same)
    ref, _ = attn_ref.reference("causal", *(t.double().numpy() for t in (q, k, v)), {}, {})
    assert rel(out.float().numpy(), ref) < 1e-2


def torch_reference_grads(variant, q, k, v, inputs, dout):
    """float64 autograd through attn_ref's formulas (softmax variants)."""
    B, HQ, LQ, D = q.shape
    HKV, LK = k.shape[1], k.shape[2]
    t = {n: torch.tensor(a, dtype=torch.float64, requires_grad=a.dtype.kind == "f")
         for n, a in as_ref_inputs(inputs).items()}
    qq, kk, vv = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (q, k, v))
    group = HQ // HKV
    s = qq @ kk.repeat_interleave(group, 1).transpose(-1, -2) / math.sqrt(D)
    qi = torch.arange(LQ).view(LQ, 1)
    ki = torch.arange(LK).view(1, LK)
    if variant == "local_softcap_alibi":
        s = 50.0 * torch.tanh(s / 50.0) - t["slopes"].view(1, HQ, 1, 1) * (qi - ki)
        mask = (qi >= ki) & (qi - ki < 256)
    else:
        mask = qi >= ki
    p = torch.softmax(s.masked_fill(~mask, -math.inf), -1).nan_to_num(0.0)
    out = p @ vv.repeat_interleave(group, 1)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    grads = {n: x.grad.numpy() for n, x in t.items() if x.grad is not None}
    return qq.grad.numpy(), kk.grad.numpy(), vv.grad.numpy(), grads


@needs_torch
@pytest.mark.parametrize("variant", ["causal", "local_softcap_alibi"])
def test_backward_matches_autograd(variant):
    """dq, dk, dv (GQA: summed over the group) and d(slopes)."""
    rng = np.random.default_rng()
    kernel = attnc.load(spec_file(variant))
    B, HQ, HKV, LQ, LK, D, DV = 1, 4, 2, 29, 29, 16, 24
    q = rng.standard_normal((B, HQ, LQ, D)).astype(np.float32)
    k = rng.standard_normal((B, HKV, LK, D)).astype(np.float32)
    v = rng.standard_normal((B, HKV, LK, DV)).astype(np.float32)
    dout = rng.standard_normal((B, HQ, LQ, DV)).astype(np.float32)
    inputs = inputs_for(variant, rng, HQ, LQ, LK)
    out, lse = kernel(q, k, v, inputs=inputs, return_lse=True)
    dq, dk, dv, dinputs = kernel.backward(q, k, v, out, lse, dout, inputs=inputs)
    want = torch_reference_grads(variant, q, k, v, inputs, dout)
    for got, ref in zip((dq, dk, dv), want[:3]):
        assert got.shape == ref.shape and rel(got, ref) < 1e-4
    assert sorted(dinputs) == sorted(want[3])
    for n in dinputs:
        assert rel(dinputs[n], want[3][n]) < 1e-4


def test_bad_input_raises_clear_errors(tmp_path):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 8, 16)).astype(np.float32)
    kernel = attnc.load(spec_file("document"))
    docs = {"doc_q": np.zeros(8, np.int32), "doc_kv": np.zeros(8, np.int32)}
    assert kernel(q, q, q, inputs=docs).shape == (1, 2, 8, 16)
    with pytest.raises(ValueError, match="float64"):
        kernel(q.astype(np.float64), q, q, inputs=docs)
    with pytest.raises(ValueError, match="rank 4"):
        kernel(q[0], q, q, inputs=docs)
    with pytest.raises(ValueError, match="doc_kv"):
        kernel(q, q, q, inputs={"doc_q": docs["doc_q"]})
    with pytest.raises(ValueError, match="doc_q"):
        kernel(q, q, q, inputs={**docs, "doc_q": np.zeros(7, np.int32)})
    with pytest.raises(ValueError, match="numpy has no bfloat16"):
        attnc.load(spec_file("causal"), dtype="bf16")(q, q, q)
    with pytest.raises(ValueError, match="dtype must be one of"):
        attnc.load(spec_file("causal"), dtype="f8")
    with pytest.raises(ValueError, match="expected an int, a float or a bool"):
        attnc.load(spec_file("causal"), params={"window": [1]})
    with pytest.raises(ValueError, match="lse is required"):
        kernel.backward(q, q, q, q, None, q, inputs=docs)
    bad = tmp_path / "bad.attn"
    bad.write_text("attention bad {\n  mask = q >= nope\n}\n")
    with pytest.raises(ValueError) as e:
        attnc.load(bad)
    assert f"{bad}:2:" in str(e.value) and "error:" in str(e.value)
    assert "^" in str(e.value)  # the caret line


def test_import_dirs(tmp_path):
    """import "PATH" from text resolves in import_dirs (attnc's -I); a list
    is required, and a missing file is a located error."""
    text = 'import "lib/masks.attn"\nattention a {\n  mask = causal\n}\n'
    with pytest.raises(ValueError, match="lib/masks.attn"):
        attnc.compile(text, _buffer_name=str(tmp_path / "a.attn"))
    examples = str(ROOT / "examples")
    kernel = attnc.compile(text, import_dirs=[examples])
    assert kernel.inputs == []  # only what the block uses: no doc ids
    rng = np.random.default_rng()
    q, k, v = (rng.standard_normal((1, 2, 9, 8)).astype(np.float32) for _ in range(3))
    causal = attnc.compile("attention c {\n  mask = q >= kv\n}\n")
    assert np.abs(kernel(q, k, v) - causal(q, k, v)).max() < 1e-6
    with pytest.raises(ValueError, match="list of folders"):
        attnc.compile(text, import_dirs=examples)
