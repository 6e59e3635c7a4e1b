"""attnc.torch: the custom operators, autograd and torch.compile.

Skipped where torch does not import. Gradients are checked against float64
torch autograd (test_api.torch_reference_grads).
"""
import pathlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import attnc.torch as attn_torch  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_api import rel, spec_file, torch_reference_grads  # noqa: E402


def make(rng, B=1, HQ=4, HKV=2, L=29, D=16, DV=24):
    q = rng.standard_normal((B, HQ, L, D)).astype(np.float32)
    k = rng.standard_normal((B, HKV, L, D)).astype(np.float32)
    v = rng.standard_normal((B, HKV, L, DV)).astype(np.float32)
    return q, k, v


@pytest.mark.parametrize("variant", ["causal", "local_softcap_alibi"])
def test_autograd_matches_float64(variant):
    rng = np.random.default_rng()
    f = attn_torch.attention(spec_file(variant).read_text())
    q, k, v = make(rng)
    inputs = {}
    if variant == "local_softcap_alibi":
        inputs["slopes"] = rng.uniform(0.01, 0.5, 4).astype(np.float32)
    dout = rng.standard_normal((1, 4, 29, 24)).astype(np.float32)
    tq, tk, tv = (torch.tensor(x, requires_grad=True) for x in (q, k, v))
    tin = {n: torch.tensor(a, requires_grad=True) for n, a in inputs.items()}
    out = f(tq, tk, tv, **tin)
    out.backward(torch.tensor(dout))
    want = torch_reference_grads(variant, q, k, v, inputs, dout)
    for t, ref in zip((tq, tk, tv), want[:3]):
        assert rel(t.grad.numpy(), ref) < 1e-4
    for n, t in tin.items():
        assert rel(t.grad.numpy(), want[3][n]) < 1e-4


def test_opcheck():
    """torch.library.opcheck: schema, fake kernel, autograd registration."""
    rng = np.random.default_rng(1)
    text = spec_file("local_softcap_alibi").read_text()
    attn_torch.attention(text)  # registers the spec
    key = attn_torch._register(text, None, None)
    q, k, v = (torch.tensor(x, requires_grad=True) for x in make(rng))
    slopes = torch.tensor(rng.uniform(0.01, 0.5, 4).astype(np.float32), requires_grad=True)
    torch.library.opcheck(torch.ops.attnc.attention.default, (key, q, k, v, [slopes]))


def test_torch_compile_fullgraph():
    """A model around the op compiles with no graph break; forward and
    gradients equal eager's."""
    rng = np.random.default_rng()
    attn = attn_torch.Attention(spec_file("causal").read_text())
    proj = torch.nn.Linear(16, 16)

    def model(x):
        B, L, _ = x.shape
        h = proj(x).view(B, L, 2, 8).transpose(1, 2)  # [B, H, L, D]
        return attn(h, h, h).transpose(1, 2).reshape(B, L, 16).sum()

    x = torch.tensor(rng.standard_normal((2, 33, 16)).astype(np.float32), requires_grad=True)
    eager = model(x)
    (gx,) = torch.autograd.grad(eager, x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got = compiled(x)
    (cx,) = torch.autograd.grad(got, x)
    assert torch.allclose(got, eager, rtol=1e-5, atol=1e-5)
    assert torch.allclose(cx, gx, rtol=1e-5, atol=1e-5)


def test_bf16_follows_q_and_errors():
    rng = np.random.default_rng()
    f = attn_torch.attention(spec_file("local_softcap_alibi").read_text())
    q, k, v = (torch.tensor(x).to(torch.bfloat16) for x in make(rng))
    slopes = torch.full((4,), 0.1)
    out = f(q, k, v, slopes=slopes)
    assert out.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="missing \\['slopes'\\]"):
        f(q, k, v)
    with pytest.raises(ValueError, match="made for"):
        attn_torch.attention(spec_file("causal").read_text(), dtype="f32")(q, k, v)
    with pytest.raises(ValueError, match="dtype must be"):
        attn_torch.attention(spec_file("causal").read_text(), dtype="f64")


def test_eager_calls_skip_the_operator(monkeypatch):
    """Eager calls run the kernels without the custom operator (no_grad: the
    forward alone; with a gradient wanted: an autograd.Function) and give
    the operator's out and gradients."""
    rng = np.random.default_rng()
    text = spec_file("local_softcap_alibi").read_text()
    f = attn_torch.attention(text)
    key = attn_torch._register(text, None, None)
    q, k, v = (torch.tensor(x) for x in make(rng))
    slopes = torch.tensor(rng.uniform(0.01, 0.5, 4).astype(np.float32))
    dout = torch.randn(1, 4, 29, 24)

    def leaves():
        return [t.clone().requires_grad_() for t in (q, k, v, slopes)]
    op_in = leaves()
    op_out, _ = torch.ops.attnc.attention(key, *op_in[:3], [op_in[3]])
    op_out.backward(dout)

    def refuse(*args):
        raise AssertionError("the custom operator ran")
    monkeypatch.setattr(torch.ops.attnc, "attention", refuse)
    with torch.no_grad():
        assert torch.equal(f(q, k, v, slopes=leaves()[3]), op_out.detach())
    assert torch.equal(f(q, k, v, slopes=slopes), op_out.detach())
    eager_in = leaves()
    out = f(*eager_in[:3], slopes=eager_in[3])
    assert out.grad_fn is not None and torch.equal(out.detach(), op_out.detach())
    out.backward(dout)
    for got, want in zip(eager_in, op_in):
        assert torch.equal(got.grad, want.grad)


def test_sinks_autograd_matches_float64():
    """softmax(sink = sinks[h]) (examples/gpt_oss_sinks.attn): out and the
    gradients, d(sinks) included, against float64 torch autograd with the
    sink as one more logit column that has no value; LQ > LK + 127 leaves
    rows with no kept key (out 0, and they carry no gradient)."""
    rng = np.random.default_rng()
    f = attn_torch.attention(spec_file("gpt_oss_sinks").read_text())
    B, HQ, HKV, LQ, LK, D, DV = 1, 4, 2, 170, 37, 16, 24
    q = rng.standard_normal((B, HQ, LQ, D)).astype(np.float32)
    k = rng.standard_normal((B, HKV, LK, D)).astype(np.float32)
    v = rng.standard_normal((B, HKV, LK, DV)).astype(np.float32)
    sinks = rng.standard_normal(HQ).astype(np.float32)
    dout = rng.standard_normal((B, HQ, LQ, DV)).astype(np.float32)
    got = [torch.tensor(x, requires_grad=True) for x in (q, k, v, sinks)]
    out = f(*got[:3], sinks=got[3])
    out.backward(torch.tensor(dout))

    ref = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (q, k, v, sinks)]
    kk = ref[1].repeat_interleave(HQ // HKV, 1)
    vv = ref[2].repeat_interleave(HQ // HKV, 1)
    z = ref[0] @ kk.transpose(-1, -2) / np.sqrt(D)
    qi, ki = torch.arange(LQ)[:, None], torch.arange(LK)[None, :]
    z = z.masked_fill(~((qi >= ki) & (qi - ki < 128)), -float("inf"))
    z = torch.cat([z, ref[3].view(1, HQ, 1, 1).expand(B, HQ, LQ, 1)], -1)
    p = torch.softmax(z, -1)[..., :-1]
    want = p @ vv
    want.backward(torch.tensor(dout, dtype=torch.float64))
    assert rel(out.detach().numpy(), want.detach().numpy()) < 1e-5
    assert np.all(out.detach().numpy()[:, :, LK + 127:] == 0)
    for t, r in zip(got, ref):
        assert rel(t.grad.numpy(), r.grad.numpy()) < 1e-4
