"""softmax(dropout = p) from Python: attnc.Kernel and attnc.torch.

The mask is regenerated here by an independent numpy Philox4x32-10 (the
definition in runtime/include/attnc/Runtime/Dropout.h), and out and the
gradients are checked against float64 torch autograd on that mask.
"""
import numpy as np
import pytest

import attnc

SPEC = """attention drop {
  param p: float = 0.3
  mask = q >= kv
  normalize = softmax(dropout = p)
}
"""

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
U32 = np.uint64(0xFFFFFFFF)


def philox(c0, c1, c2, c3, seed):
    """philox4x32_10 on uint64 arrays holding 32-bit words."""
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)
    for _ in range(10):
        p0 = np.uint64(M0) * c0
        p1 = np.uint64(M1) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & U32,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & U32)
        k0, k1 = (k0 + np.uint64(W0)) & U32, (k1 + np.uint64(W1)) & U32
    return c0, c1, c2, c3


def factors(B, HQ, LQ, LK, p, seed, offset):
    """[B, HQ, LQ, LK]: 0 for a dropped pair, 1 / (1 - p) for a kept one."""
    b, h, q, kv = np.meshgrid(np.arange(B), np.arange(HQ), np.arange(LQ),
                              np.arange(LK), indexing="ij")
    words = philox((kv >> 2).astype(np.uint64), q.astype(np.uint64),
                   (b * HQ + h).astype(np.uint64),
                   np.full(q.shape, offset, np.uint64), seed)
    r = np.choose(kv & 3, words)
    keep = r >= np.uint64(int(p * 2 ** 32))
    return np.where(keep, 1.0 / (1.0 - p), 0.0)


def test_philox_known_answers():
    # Random123's kat_vectors for philox4x32_10.
    z = np.zeros(1, np.uint64)
    assert [int(w[0]) for w in philox(z, z, z, z, 0)] == [
        0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


def test_kernel_matches_the_mask_and_checks_its_arguments():
    rng = np.random.default_rng()
    B, H, L, D = 2, 3, 37, 16
    q, k, v = (rng.standard_normal((B, H, L, D)).astype(np.float32) for _ in range(3))
    kernel = attnc.compile(SPEC)
    seed, offset = 2 ** 64 - 5, 11
    out = kernel(q, k, v, dropout=(seed, offset))
    s = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k) / np.sqrt(D)
    s = np.where(np.tril(np.ones((L, L), bool)), s, -np.inf)
    P = np.exp(s - s.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    want = np.einsum("bhqk,bhkd->bhqd", P * factors(B, H, L, L, 0.3, seed, offset), v)
    assert np.abs(out - want).max() < 1e-4
    # No seed: plain softmax.
    plain = kernel(q, k, v)
    assert np.abs(plain - np.einsum("bhqk,bhkd->bhqd", P, v)).max() < 1e-4
    with pytest.raises(ValueError, match="offset"):
        kernel(q, k, v, dropout=(1, 2 ** 32))
    with pytest.raises(ValueError, match="seed"):
        kernel(q, k, v, dropout=(-1, 0))
    with pytest.raises(ValueError, match=r"\(seed, offset\)"):
        kernel(q, k, v, dropout=3)
    with pytest.raises(ValueError, match="has no softmax"):
        attnc.compile("attention plain {}")(q, k, v, dropout=(1, 0))


def test_torch_autograd_reuses_the_mask():
    torch = pytest.importorskip("torch")
    import attnc.torch as attn_torch

    rng = np.random.default_rng()
    B, HQ, HKV, L, D, DV = 1, 4, 2, 29, 16, 24
    q = rng.standard_normal((B, HQ, L, D))
    k = rng.standard_normal((B, HKV, L, D))
    v = rng.standard_normal((B, HKV, L, DV))
    dout = rng.standard_normal((B, HQ, L, DV))
    seed, offset = 1234, 5
    f = attn_torch.attention(SPEC)

    def grads(fn, dtype):
        ts = [torch.tensor(x, dtype=dtype, requires_grad=True) for x in (q, k, v)]
        out = fn(*ts)
        out.backward(torch.tensor(dout, dtype=dtype))
        return [out.detach().double()] + [t.grad.double() for t in ts]

    F = torch.tensor(factors(B, HQ, L, L, 0.3, seed, offset))

    def reference(tq, tk, tv):
        tk, tv = (t.repeat_interleave(HQ // HKV, dim=1) for t in (tk, tv))
        s = tq @ tk.transpose(-1, -2) / D ** 0.5
        s = s.masked_fill(~torch.ones(L, L, dtype=torch.bool).tril(), float("-inf"))
        return (torch.softmax(s, -1) * F) @ tv

    want = grads(reference, torch.float64)
    got = grads(lambda *t: f(*t, dropout=(seed, offset)), torch.float32)
    for g, w, name in zip(got, want, ("out", "dq", "dk", "dv")):
        assert (g - w).norm() / w.norm() < 1e-4, name
    # The same through the custom operators (as torch.compile runs them).
    compiled = torch.compile(lambda *t: f(*t, dropout=(seed, offset)), fullgraph=True)
    got = grads(compiled, torch.float32)
    for g, w, name in zip(got, want, ("out", "dq", "dk", "dv")):
        assert (g - w).norm() / w.norm() < 1e-4, name


def test_torch_varlen_draws_as_the_batch():
    """A packed varlen batch of two equal sequences, forward and backward,
    equals the dense B = 2 call with the same seed (sequence i draws as
    batch entry i)."""
    torch = pytest.importorskip("torch")
    import attnc.torch as attn_torch

    f = attn_torch.attention(SPEC)
    B, H, L, D = 2, 3, 21, 16
    gen = torch.Generator().manual_seed(3)
    dense = [torch.randn(B, H, L, D, generator=gen, requires_grad=True) for _ in range(3)]
    dout = torch.randn(B, H, L, D, generator=gen)
    seed = (99, 4)
    out = f(*dense, dropout=seed)
    out.backward(dout)
    want = [out.detach()] + [t.grad.clone() for t in dense]

    packed = [t.detach().transpose(1, 2).reshape(B * L, H, D).requires_grad_() for t in dense]
    cu = torch.tensor([0, L, 2 * L], dtype=torch.int32)
    layout = {"cu_seqlens_q": cu, "cu_seqlens_kv": cu}
    pout = f(*packed, layout=layout, dropout=seed)
    pout.backward(dout.transpose(1, 2).reshape(B * L, H, D))
    unpack = lambda t: t.reshape(B, L, H, D).transpose(1, 2)  # noqa: E731
    got = [unpack(pout.detach())] + [unpack(t.grad) for t in packed]
    for g, w, name in zip(got, want, ("out", "dq", "dk", "dv")):
        assert (g - w).abs().max() < 1e-5, name
