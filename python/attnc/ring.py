"""Ring attention: context parallelism for attnc kernels over torch.distributed.

    import attnc.torch
    attn = attnc.torch.ring_attention(open("document.attn").read(), group=None)
    out = attn(q, k, v, doc_q=doc, doc_kv=doc)   # this rank's shard, autograd works

The sequence is split across the ranks of `group` in rank order: rank r
holds query rows (and keys) at positions offset_r .. offset_r + L_r - 1,
where offset_r sums the shard lengths of the ranks before it (shards may
differ in length). Each rank runs its queries against every key shard as
the K/V shards travel around the ring, each call on a *window* of the
sequences (KernelABI.h's sequence window), so masks, scores and input reads
see global positions and a pair of shards whose tiles are all EMPTY
visits no tile. The partial outputs are merged with their log-sum-exp
(sigmoid: summed). The backward goes round the ring too: each rank adds
its share of dk and dv to the travelling gradients, which end at their
owners after one more hop.

The spec's input tensors are the whole sequence's (e.g. the document ids
of all positions), the same on every rank. The gradient of a float input
that a rank gets is its share; summed over the group (as data-parallel
gradients are) it is the gradient of the whole problem.

The ranks exchange tensors with point-to-point messages (gloo for CPU
tensors); attnc's Python module runs CPU kernels only, so NCCL on CUDA
tensors is not supported yet. Not traceable by torch.compile.
"""
import torch
import torch.distributed as dist

__all__ = ["ring_attention"]

_KEYS, _GRADS = 0, 1  # message tags


def _start_exchange(group, tensors, shapes, tag):
    """Starts sending `tensors` to the next rank and receiving those of the
    previous one (of `shapes`); returns a function that waits for both
    transfers and returns the received tensors. The keys and their
    gradients, which have the same shapes, travel under their own tags."""
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    nxt = dist.get_global_rank(group, (rank + 1) % world) if group else (rank + 1) % world
    prv = dist.get_global_rank(group, (rank - 1) % world) if group else (rank - 1) % world
    received = [t.new_empty(s) for t, s in zip(tensors, shapes)]
    ops = [dist.P2POp(dist.isend, t.contiguous(), nxt, group, tag) for t in tensors]
    ops += [dist.P2POp(dist.irecv, r, prv, group, tag) for r in received]
    requests = dist.batch_isend_irecv(ops)

    def finish():
        del ops[:]  # the sent tensors lived until here
        for req in requests:
            req.wait()
        return received
    return finish


class _Layout:
    """Shard lengths and offsets of the group, from one all_gather."""

    def __init__(self, group, lq, lk):
        world = dist.get_world_size(group)
        mine = torch.tensor([lq, lk], dtype=torch.int64)
        every = [torch.empty(2, dtype=torch.int64) for _ in range(world)]
        dist.all_gather(every, mine, group=group)
        self.rank = dist.get_rank(group)
        self.world = world
        self.lq = [int(e[0]) for e in every]
        self.lk = [int(e[1]) for e in every]
        self.total_lq, self.total_lk = sum(self.lq), sum(self.lk)
        self.q_offset = sum(self.lq[:self.rank])

    def kv_offset(self, src):
        return sum(self.lk[:src])

    def window(self, src):
        return (self.q_offset, self.kv_offset(src), self.total_lq, self.total_lk)

    def kv_shape(self, like, src):
        return (like.shape[0], like.shape[1], self.lk[src], like.shape[3])


def _merge(out, lse, part, part_lse):
    """Merges two partial softmax results of the same rows (float32)."""
    new = torch.logaddexp(lse, part_lse)
    empty = new == float("-inf")  # no kept key in either
    w_old = torch.where(empty, 0.0, torch.exp(lse - new)).unsqueeze(-1)
    w_new = torch.where(empty, 0.0, torch.exp(part_lse - new)).unsqueeze(-1)
    return out * w_old + part.float() * w_new, new


def _ring_forward(kernel, group, q, k, v, inputs):
    layout = _Layout(group, q.shape[2], k.shape[2])
    sigmoid = kernel._native.sigmoid
    B, HQ, LQ, _ = q.shape
    out = torch.zeros((B, HQ, LQ, v.shape[3]), dtype=torch.float32)
    lse = torch.full((B, HQ, LQ), float("-inf"), dtype=torch.float32)
    kc, vc, src = k, v, layout.rank
    for step in range(layout.world):
        prv = (src - 1) % layout.world
        # The next shard travels while this one computes.
        if step + 1 < layout.world:
            incoming = _start_exchange(group, [kc, vc], [layout.kv_shape(k, prv),
                                                         layout.kv_shape(v, prv)], _KEYS)
        if sigmoid:
            out += kernel(q, kc, vc, inputs=inputs, window=layout.window(src)).float()
        else:
            part, part_lse = kernel(q, kc, vc, inputs=inputs, return_lse=True,
                                    window=layout.window(src))
            out, lse = _merge(out, lse, part, part_lse)
        if step + 1 < layout.world:
            kc, vc = incoming()
            src = prv
    return out.to(q.dtype), (None if sigmoid else lse), layout


def _ring_backward(kernel, group, layout, q, k, v, out, lse, dout, inputs):
    dq = torch.zeros(q.shape, dtype=torch.float32)
    dk = torch.zeros(k.shape, dtype=torch.float32)
    dv = torch.zeros(v.shape, dtype=torch.float32)
    dinputs = {}
    kc, vc, src = k, v, layout.rank
    for step in range(layout.world):
        prv = (src - 1) % layout.world
        if step + 1 < layout.world:  # the next shard travels meanwhile
            incoming = _start_exchange(group, [kc, vc], [layout.kv_shape(k, prv),
                                                         layout.kv_shape(v, prv)], _KEYS)
        pq, pk, pv, pin = kernel.backward(q, kc, vc, out, lse, dout, inputs=inputs,
                                          window=layout.window(src))
        dq += pq.float()
        dk += pk.float()
        dv += pv.float()
        for n, g in pin.items():
            dinputs[n] = dinputs[n] + g if n in dinputs else g
        # The gradients of the keys travel with them; after the last step
        # one more hop brings them to their owner.
        if step + 1 < layout.world:
            dk, dv = _start_exchange(group, [dk, dv], [layout.kv_shape(k, prv),
                                                       layout.kv_shape(v, prv)], _GRADS)()
            kc, vc = incoming()
            src = prv
        elif layout.world > 1:
            dk, dv = _start_exchange(group, [dk, dv], [k.shape, v.shape], _GRADS)()
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dinputs


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel, group, names, q, k, v, *inputs):
        named = dict(zip(names, inputs))
        out, lse, layout = _ring_forward(kernel, group, q, k, v, named)
        ctx.kernel, ctx.group, ctx.names, ctx.layout = kernel, group, names, layout
        ctx.has_lse = lse is not None
        ctx.save_for_backward(q, k, v, out, lse if lse is not None else out.new_empty(0),
                              *inputs)
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, *inputs = ctx.saved_tensors
        named = dict(zip(ctx.names, inputs))
        dq, dk, dv, grads = _ring_backward(
            ctx.kernel, ctx.group, ctx.layout, q, k, v, out,
            lse if ctx.has_lse else None, dout.contiguous(), named)
        dinputs = [grads[n].to(x.dtype) if n in grads and x.is_floating_point() else None
                   for n, x in zip(ctx.names, inputs)]
        return (None, None, None, dq, dk, dv, *dinputs)


def ring_attention(spec_text, *, group=None, dtype=None, params=None, name=None):
    """f(q, k, v, **inputs) -> out for this rank's shard of the sequence.

    q [B, HQ, Lq_r, D], k [B, HKV, Lk_r, D], v [B, HKV, Lk_r, DV]: the rows
    and keys of this rank, in rank order over `group` (None: the default
    group, which must be initialised). inputs: the whole sequence's tensors
    by the spec's names. Differentiable in q, k, v and the float inputs
    (each rank gets its share of an input's gradient). dtype (f32, f16,
    bf16) fixes the storage type; by default q's."""
    from . import torch as attnc_torch
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("ring_attention needs torch.distributed: call "
                           "torch.distributed.init_process_group first")
    key = attnc_torch._register(spec_text, params, name)
    names = attnc_torch._names(attnc_torch._kernel(key, torch.float32))
    want = attnc_torch._storage(dtype)

    def f(q, k, v, **inputs):
        attnc_torch._check_call(want, names, q, inputs)
        for what, t in (("q", q), ("k", k), ("v", v)):
            if not isinstance(t, torch.Tensor) or t.dim() != 4:
                raise ValueError(f"{what} must be a torch tensor of rank 4 "
                                 "[B, H, L, D]")
            if t.device.type != "cpu":
                raise ValueError(f"{what} is on {t.device}: ring_attention "
                                 "runs attnc's CPU kernels (gloo) only")
        kernel = attnc_torch._kernel(key, q.dtype)
        return _RingAttention.apply(kernel, group, tuple(names), q, k, v,
                                    *[inputs[n] for n in names])

    return f
