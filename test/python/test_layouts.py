"""attnc's inference layouts from Python: packed variable-length batches
(cu_seqlens_q/kv) and paged KV caches (page_table, kv_lens), against the
float64 references of test/tools/Inputs/attn_ref.py, each sequence its own
problem; and the argument errors.
"""
import pathlib
import sys

import numpy as np
import pytest

import attnc

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test" / "tools" / "Inputs"))
import attn_ref  # noqa: E402


def fresh_rng():
    """A generator on a fresh seed, printed so that a failure can be rerun
    (pytest shows a failing test's output)."""
    seed = int(np.random.SeedSequence().entropy % (1 << 32))
    print(f"numpy seed {seed}")
    return np.random.default_rng(seed)


def spec_text(name):
    shared = ROOT.parent / "shared" / "specs" / f"{name}.attn"
    path = shared if shared.exists() else ROOT / "examples" / f"{name}.attn"
    return path.read_text()


def rel(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    norm = np.linalg.norm(ref)
    return np.linalg.norm(got - ref) / (norm if norm > 0 else 1.0)


def check_lse(lse, ref):
    empty = np.isneginf(ref)
    assert np.array_equal(np.isneginf(lse), empty)
    assert rel(lse[~empty], ref[~empty]) < 1e-5


@pytest.mark.parametrize("variant", ["causal_cross", "sigmoid_causal"])
def test_varlen_matches_each_sequence(variant):
    rng = fresh_rng()
    lq, lk = [5, 0, 37, 3, 1], [9, 0, 37, 0, 70]
    HQ, HKV, D, DV = 4, 2, 16, 8
    q = rng.standard_normal((sum(lq), HQ, D)).astype(np.float32)
    k = rng.standard_normal((sum(lk), HKV, D)).astype(np.float32)
    v = rng.standard_normal((sum(lk), HKV, DV)).astype(np.float32)
    cu_q = np.cumsum([0] + lq).astype(np.int32)
    cu_kv = np.cumsum([0] + lk).astype(np.int32)
    kernel = attnc.compile(spec_text(variant))
    sigmoid = variant.startswith("sigmoid")
    got = kernel(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_kv=cu_kv,
                 return_lse=not sigmoid)
    ref, ref_lse = attn_ref.varlen_reference(
        variant, *(x.astype(np.float64) for x in (q, k, v)), cu_q, cu_kv, {}, {})
    out = got if sigmoid else got[0]
    assert out.shape == (sum(lq), HQ, DV)
    assert rel(out, ref) < 1e-5
    if not sigmoid:
        assert got[1].shape == (HQ, sum(lq))
        check_lse(got[1], ref_lse)


@pytest.mark.parametrize("page_size", [1, 16])
def test_paged_cache_matches_each_sequence(page_size):
    rng = fresh_rng()
    B, HQ, HKV, LQ, D, DV = 3, 4, 2, 3, 16, 8
    q, k, v, table, kv_lens = attn_ref.random_paged_cache(
        rng, [40, 0, 23], HQ, HKV, LQ, D, DV, page_size)
    kernel = attnc.compile(spec_text("causal_cross"))
    out, lse = kernel(q, k, v, page_table=table, kv_lens=kv_lens, return_lse=True)
    ref, ref_lse = attn_ref.paged_reference(
        "causal_cross", *(x.astype(np.float64) for x in (q, k, v)), table,
        kv_lens, {}, {})
    assert out.shape == (B, HQ, LQ, DV)
    assert rel(out, ref) < 1e-5
    check_lse(lse, ref_lse)


def test_layout_errors():
    kernel = attnc.compile(spec_text("causal"))
    q = np.zeros((6, 2, 8), np.float32)
    cu = np.array([0, 6], np.int32)
    with pytest.raises(ValueError, match="cu_seqlens_kv is missing"):
        kernel(q, q, q, cu_seqlens_q=cu)
    with pytest.raises(ValueError, match="must not decrease"):
        kernel(q, q, q, cu_seqlens_q=np.array([0, 4, 2, 6], np.int32),
               cu_seqlens_kv=np.array([0, 2, 4, 6], np.int32))
    q4 = np.zeros((1, 2, 1, 8), np.float32)
    cache = np.zeros((2, 4, 2, 8), np.float32)
    with pytest.raises(ValueError, match=r"page_table\[0, 1\] = 7 is not a page"):
        kernel(q4, cache, cache, page_table=np.array([[0, 7]], np.int32),
               kv_lens=np.array([6], np.int32))


def test_torch_layouts_eager_and_compiled():
    """attnc.torch.attention(..., layout=...): a paged cache and a packed
    batch of torch tensors give the float64 reference's output, eagerly and
    under torch.compile(fullgraph=True); a gradient of the paged call
    raises, naming what is missing."""
    torch = pytest.importorskip("torch")
    import attnc.torch as attn_torch

    rng = fresh_rng()
    f = attn_torch.attention(spec_text("causal_cross"))
    q, k, v, table, kv_lens = attn_ref.random_paged_cache(
        rng, [40, 0, 23], 4, 2, 3, 16, 8, 16)
    ref, _ = attn_ref.paged_reference(
        "causal_cross", *(x.astype(np.float64) for x in (q, k, v)), table,
        kv_lens, {}, {})
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    q4, tk4, tv4 = q, tk, tv
    paged = {"page_table": torch.from_numpy(table),
             "kv_lens": torch.from_numpy(kv_lens)}
    compiled = torch.compile(lambda *a, **kw: f(*a, **kw), fullgraph=True,
                             backend="aot_eager")
    for call in (f, compiled):
        out = call(tq, tk, tv, layout=paged)
        assert out.shape == (3, 4, 3, 8)
        assert rel(out.numpy(), ref) < 1e-5

    lq, lk = [5, 0, 37], [9, 0, 37]
    q = rng.standard_normal((sum(lq), 4, 16)).astype(np.float32)
    k = rng.standard_normal((sum(lk), 2, 16)).astype(np.float32)
    v = rng.standard_normal((sum(lk), 2, 8)).astype(np.float32)
    cu_q = np.cumsum([0] + lq).astype(np.int32)
    cu_kv = np.cumsum([0] + lk).astype(np.int32)
    ref, _ = attn_ref.varlen_reference(
        "causal_cross", *(x.astype(np.float64) for x in (q, k, v)), cu_q, cu_kv,
        {}, {})
    varlen = {"cu_seqlens_q": torch.from_numpy(cu_q),
              "cu_seqlens_kv": torch.from_numpy(cu_kv)}
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    for call in (f, compiled):
        out = call(tq, tk, tv, layout=varlen)
        assert out.shape == (sum(lq), 4, 8)
        assert rel(out.numpy(), ref) < 1e-5

    with pytest.raises(NotImplementedError, match="backward of a paged KV cache"):
        f(torch.from_numpy(q4).requires_grad_(), tk4, tv4, layout=paged)
    with pytest.raises(ValueError, match="give cu_seqlens_q and cu_seqlens_kv"):
        f(tq, tk, tv, layout={"page_table": paged["page_table"]})
    with pytest.raises(ValueError, match="must not decrease"):
        f(tq, tk, tv, layout={"cu_seqlens_q": torch.tensor([0, 40, 5, 42], dtype=torch.int32),
                              "cu_seqlens_kv": varlen["cu_seqlens_kv"]})
    key = attn_torch._register(spec_text("causal_cross"), None, None)
    torch.library.opcheck(torch.ops.attnc.attention_layout.default,
                          (key, tq, tk, tv, [], varlen["cu_seqlens_q"],
                           varlen["cu_seqlens_kv"], None, None))


def test_torch_varlen_gradients_match_float64():
    """Training on a packed variable-length batch: attnc.torch's gradients
    (Kernel.backward with cu_seqlens, through attnc::attention_layout's
    autograd formula) equal float64 autograd of each sequence alone, the
    shared slopes' gradient summed over the sequences; torch.compile gives
    eager's."""
    torch = pytest.importorskip("torch")
    import attnc.torch as attn_torch
    sys.path.insert(0, str(ROOT / "test" / "python"))
    from test_api import torch_reference_grads

    rng = fresh_rng()
    lens, HQ, HKV, D, DV = [7, 0, 40, 13], 4, 2, 16, 24
    T = sum(lens)
    cu = torch.tensor(np.cumsum([0] + lens), dtype=torch.int32)
    varlen = {"cu_seqlens_q": cu, "cu_seqlens_kv": cu}
    q = rng.standard_normal((T, HQ, D)).astype(np.float32)
    k = rng.standard_normal((T, HKV, D)).astype(np.float32)
    v = rng.standard_normal((T, HKV, DV)).astype(np.float32)
    slopes = rng.uniform(0.01, 0.5, HQ).astype(np.float32)
    dout = rng.standard_normal((T, HQ, DV)).astype(np.float32)
    f = attn_torch.attention(spec_text("local_softcap_alibi"))

    def grads(call):
        leaves = [torch.tensor(x, requires_grad=True) for x in (q, k, v, slopes)]
        out = call(*leaves[:3], layout=varlen, slopes=leaves[3])
        out.backward(torch.from_numpy(dout))
        return out.detach(), [t.grad.numpy() for t in leaves]

    out, (gq, gk, gv, gs) = grads(f)
    dense = lambda x, r0, n: np.ascontiguousarray(x[r0:r0 + n].transpose(1, 0, 2)[None])
    want_slopes = np.zeros(HQ)
    r0 = 0
    for n in lens:
        if n:
            rq, rk, rv, rin = torch_reference_grads(
                "local_softcap_alibi", dense(q, r0, n), dense(k, r0, n),
                dense(v, r0, n), {"slopes": slopes}, dense(dout, r0, n))
            for got, ref in ((gq, rq), (gk, rk), (gv, rv)):
                assert rel(dense(got, r0, n), ref) < 1e-4
            want_slopes += rin["slopes"]
        r0 += n
    assert rel(gs, want_slopes) < 1e-4

    compiled = torch.compile(lambda *a, **kw: f(*a, **kw), fullgraph=True,
                             backend="aot_eager")
    cout, cgrads = grads(compiled)
    assert torch.allclose(cout, out, rtol=1e-5, atol=1e-6)
    for a, b in zip(cgrads, (gq, gk, gv, gs)):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6)
