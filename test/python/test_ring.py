"""attnc.torch.ring_attention: 4 CPU processes (torch.multiprocessing, gloo).

Each rank holds a shard of unequal length of one sequence; the ring's
output and gradients (dq, dk, dv of the shard, and the sum over ranks of
the float inputs' gradient shares) must equal the single-process kernel's
(attnc.torch.attention on the whole sequence) for causal, sliding-window,
document and sliding-window + ALiBi (a float input) masks, and sigmoid
causal attention (partial outputs summed, not merged by lse). Also the
window keyword of Kernel.__call__ and its errors, in one process.
"""
import pathlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

import attnc  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_api import rel, spec_file  # noqa: E402

WORLD = 4
SHARDS = [17, 13, 16, 15]  # 61 positions, unequal shards
CASES = [("causal", None), ("sliding_window", {"window": 20}),
         ("document", None), ("local_softcap_alibi", {"window": 20}),
         ("sigmoid_causal", None),
         # A softmax sink: counted once, by the key shard at position 0,
         # even for queries whose window never reaches that shard.
         ("gpt_oss_sinks", {"window": 20})]


def problem(variant, seed):
    """The whole sequence's tensors, the same on every rank."""
    g = torch.Generator().manual_seed(seed)
    L = sum(SHARDS)
    q = torch.randn(2, 4, L, 16, generator=g)
    k = torch.randn(2, 2, L, 16, generator=g)
    v = torch.randn(2, 2, L, 12, generator=g)
    dout = torch.randn(2, 4, L, 12, generator=g)
    inputs = {}
    if variant == "document":
        ids = torch.sort(torch.randint(0, 4, (L,), generator=g)).values
        inputs = {"doc_q": ids, "doc_kv": ids}
    if variant == "local_softcap_alibi":
        inputs = {"slopes": torch.rand(4, generator=g) * 0.5}
    if variant == "gpt_oss_sinks":
        inputs = {"sinks": torch.randn(4, generator=g)}
    return q, k, v, dout, inputs


def rank_main(rank, init_file, seed):
    dist.init_process_group("gloo", init_method=f"file://{init_file}",
                            rank=rank, world_size=WORLD)
    try:
        import attnc.torch as attn_torch
        begin = sum(SHARDS[:rank])
        end = begin + SHARDS[rank]
        for variant, params in CASES:
            text = spec_file(variant).read_text()
            q, k, v, dout, inputs = problem(variant, seed)
            floats = {n: t for n, t in inputs.items() if t.is_floating_point()}
            # The single-process kernel on the whole sequence.
            whole = attn_torch.attention(text, params=params)
            wq, wk, wv = (t.clone().requires_grad_() for t in (q, k, v))
            win = {n: (t.clone().requires_grad_() if n in floats else t)
                   for n, t in inputs.items()}
            whole(wq, wk, wv, **win).backward(dout)
            # The ring on this rank's shard.
            ring = attn_torch.ring_attention(text, params=params)
            sq, sk, sv = (t[:, :, begin:end].clone().requires_grad_()
                          for t in (q, k, v))
            sin = {n: (t.clone().requires_grad_() if n in floats else t)
                   for n, t in inputs.items()}
            out = ring(sq, sk, sv, **sin)
            want = whole(q, k, v, **inputs)[:, :, begin:end]
            assert rel(out.detach().numpy(), want.detach().numpy()) < 1e-5, \
                (variant, rank, "out")
            out.backward(dout[:, :, begin:end])
            for name, got, ref in (("dq", sq.grad, wq.grad), ("dk", sk.grad, wk.grad),
                                   ("dv", sv.grad, wv.grad)):
                ref = ref[:, :, begin:end]
                assert rel(got.numpy(), ref.numpy()) < 1e-4, (variant, rank, name)
            for n in floats:
                share = sin[n].grad.clone()
                dist.all_reduce(share)
                assert rel(share.numpy(), win[n].grad.numpy()) < 1e-4, \
                    (variant, rank, n)
    finally:
        dist.destroy_process_group()


def test_ring_matches_single_process(tmp_path):
    seed = int(np.random.default_rng().integers(1 << 30))
    mp.spawn(rank_main, args=(str(tmp_path / "init"), seed), nprocs=WORLD,
             join=True)


def test_window_keyword_and_errors():
    """Kernel(window=...) on numpy: pieces merged with lse equal the whole
    call; bad windows raise ValueError with the runtime's message."""
    rng = np.random.default_rng()
    kernel = attnc.compile(spec_file("causal").read_text())
    q = rng.standard_normal((1, 2, 40, 8)).astype(np.float32)
    k = rng.standard_normal((1, 1, 40, 8)).astype(np.float32)
    v = rng.standard_normal((1, 1, 40, 8)).astype(np.float32)
    out, lse = kernel(q, k, v, return_lse=True)
    parts = [kernel(q[:, :, 25:], k[:, :, a:b], v[:, :, a:b], return_lse=True,
                    window=(25, a, 40, 40)) for a, b in ((0, 11), (11, 40))]
    m = np.logaddexp(parts[0][1], parts[1][1])
    merged = sum(o * np.exp(l - m)[..., None] for o, l in parts)
    assert rel(merged, out[:, :, 25:]) < 1e-5
    assert np.allclose(m, lse[:, :, 25:], atol=1e-5)
    with pytest.raises(ValueError, match="sequence window"):
        kernel(q, k, v, window=(1, 0, 40, 40))
    with pytest.raises(ValueError, match="window must be"):
        kernel(q, k, v, window=(0, 0))


def test_ring_needs_an_initialised_group():
    import attnc.torch as attn_torch
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    with pytest.raises(RuntimeError, match="init_process_group"):
        attn_torch.ring_attention(spec_file("causal").read_text())
