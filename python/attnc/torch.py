"""attnc kernels as PyTorch operators: differentiable, and traceable by torch.compile.

    import attnc.torch
    attn = attnc.torch.attention(open("local_softcap_alibi.attn").read())
    out = attn(q, k, v, slopes=slopes)        # [B, H, L, D] tensors, autograd works
    model = torch.compile(model, fullgraph=True)

Two custom operators (torch.library) carry every spec: attnc::attention and
attnc::attention_backward. Each takes a key naming a registered spec, and
the spec's input tensors as a list in declaration order. Both have fake
(meta) kernels, so torch.compile traces them with no graph break, and the
forward one has an autograd formula: dq, dk, dv and the gradients of the
float inputs the spec differentiates, from attnc's backward kernels. The
kernel's storage type follows q's dtype (float32, float16, bfloat16) unless
`dtype` fixes it. CPU tensors only. Two more operators,
attnc::attention_layout and attnc::attention_layout_backward, run the layouts
(`layout=`): a packed variable-length batch, differentiable, and a paged KV
cache, forward only. Eager calls on plain tensors skip the
operators' dispatch (_eager_path): the kernel alone when no gradient is
wanted, else an autograd.Function with the same formula. ring_attention
(ring.py) runs a spec over a sequence sharded across torch.distributed
ranks.
"""
import hashlib
from typing import List, Optional, Tuple

import torch

from . import _dropout as _dropout_pair
from . import compile as _compile

__all__ = ["attention", "Attention", "ring_attention"]

# key -> (spec_text, params, name, import_dirs, {storage dtype: attnc.Kernel})
_SPECS = {}
_STORAGE = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def _register(spec_text, params, name, import_dirs=None):
    dirs = list(import_dirs or [])
    material = repr((spec_text, sorted((params or {}).items()), name, dirs))
    key = hashlib.sha256(material.encode()).hexdigest()[:24]
    if key not in _SPECS:
        _SPECS[key] = (spec_text, dict(params or {}), name, dirs, {})
    return key


def _kernel(key, dtype):
    if key not in _SPECS:
        raise ValueError(f"attnc: no spec registered under {key!r} (an "
                         "attnc.torch.attention of another process?)")
    text, params, name, import_dirs, kernels = _SPECS[key]
    if dtype not in _STORAGE:
        raise ValueError(f"attnc: q has dtype {dtype}; the kernels take "
                         "float32, float16 and bfloat16")
    storage = _STORAGE[dtype]
    if storage not in kernels:
        kernels[storage] = _compile(text, dtype=storage, params=params, name=name,
                                    import_dirs=import_dirs)
    return kernels[storage]


def _names(kernel):
    return [n for n, _, _ in kernel.inputs]


def _pack_dropout(dropout):
    """attnc.Kernel's (seed, offset) as the operators' int64 list (a seed
    of 2**63 or more wraps to a negative int64), or None."""
    if dropout is None:
        return None
    seed, offset = _dropout_pair(dropout)
    return [seed - 2 ** 64 if seed >= 2 ** 63 else seed, offset]


def _unpack_dropout(dropout):
    return None if dropout is None else (dropout[0] % 2 ** 64, dropout[1])


def _run_forward(key, q, k, v, inputs, dropout=None):
    """out and lse (for sigmoid an unused float32 tensor) from the kernel."""
    kernel = _kernel(key, q.dtype)
    named = dict(zip(_names(kernel), inputs))
    if kernel._native.sigmoid:  # no lse: an unused float32 tensor
        B, HQ, LQ, _ = q.shape
        return kernel(q, k, v, inputs=named), q.new_zeros((B, HQ, LQ), dtype=torch.float32)
    return kernel(q, k, v, inputs=named, return_lse=True,
                  dropout=_unpack_dropout(dropout))


@torch.library.custom_op("attnc::attention", mutates_args=())
def _attention(key: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               inputs: List[torch.Tensor], dropout: Optional[List[int]] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    return _run_forward(key, q, k, v, inputs, dropout)


@_attention.register_fake
def _(key, q, k, v, inputs, dropout=None):
    B, HQ, LQ, _ = q.shape
    return (q.new_empty((B, HQ, LQ, v.shape[3])),
            q.new_empty((B, HQ, LQ), dtype=torch.float32))


def _gradient_list(names, grads, inputs):
    """One entry per input: its gradient, or an empty tensor for an input
    without one (int, bool, or a float only the mask reads)."""
    return [grads[n] if n in grads else x.new_empty(0, dtype=torch.float32)
            for n, x in zip(names, inputs)]


def _run_backward(key, q, k, v, out, lse, dout, inputs, dropout=None):
    """dq, dk, dv and {name: float32 gradient} from the backward kernels."""
    kernel = _kernel(key, q.dtype)
    return kernel.backward(q, k, v, out, None if kernel._native.sigmoid else lse,
                           dout.contiguous(),
                           inputs=dict(zip(_names(kernel), inputs)),
                           dropout=_unpack_dropout(dropout))


@torch.library.custom_op("attnc::attention_backward", mutates_args=())
def _attention_backward(key: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        out: torch.Tensor, lse: torch.Tensor, dout: torch.Tensor,
                        inputs: List[torch.Tensor], dropout: Optional[List[int]] = None
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[torch.Tensor]]:
    dq, dk, dv, grads = _run_backward(key, q, k, v, out, lse, dout, inputs, dropout)
    return dq, dk, dv, _gradient_list(_names(_kernel(key, q.dtype)), grads, inputs)


_LAYOUTS = (("cu_seqlens_q", "cu_seqlens_kv"), ("page_table", "kv_lens"))


def _layout_args(layout):
    """The four layout tensors (None where absent) from `layout`, a dict with
    cu_seqlens_q and cu_seqlens_kv, or page_table and kv_lens."""
    if not isinstance(layout, dict):
        raise ValueError("layout must be a dict: {'cu_seqlens_q': ..., "
                         "'cu_seqlens_kv': ...} or {'page_table': ..., "
                         "'kv_lens': ...}")
    if set(layout) not in [set(pair) for pair in _LAYOUTS]:
        raise ValueError(f"layout has keys {sorted(layout)}; give cu_seqlens_q "
                         "and cu_seqlens_kv (a packed variable-length batch), or "
                         "page_table and kv_lens (a paged KV cache)")
    return [layout.get(n) for pair in _LAYOUTS for n in pair]


def _run_layout(key, q, k, v, inputs, cu_seqlens_q, cu_seqlens_kv, page_table,
                kv_lens, dropout=None):
    """out and lse (for sigmoid an unused float32 tensor) of a layout call."""
    kernel = _kernel(key, q.dtype)
    args = dict(inputs=dict(zip(_names(kernel), inputs)),
                cu_seqlens_q=cu_seqlens_q, cu_seqlens_kv=cu_seqlens_kv,
                page_table=page_table, kv_lens=kv_lens,
                dropout=_unpack_dropout(dropout))
    if kernel._native.sigmoid:
        return kernel(q, k, v, **args), q.new_zeros(_layout_lse_shape(q, cu_seqlens_q),
                                                    dtype=torch.float32)
    return kernel(q, k, v, return_lse=True, **args)


def _layout_lse_shape(q, cu_seqlens_q):
    # varlen: [HQ, total_q]; paged: [B, HQ, LQ]
    return (q.shape[1], q.shape[0]) if cu_seqlens_q is not None else tuple(q.shape[:3])


@torch.library.custom_op("attnc::attention_layout", mutates_args=())
def _attention_layout(key: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      inputs: List[torch.Tensor], cu_seqlens_q: Optional[torch.Tensor],
                      cu_seqlens_kv: Optional[torch.Tensor],
                      page_table: Optional[torch.Tensor],
                      kv_lens: Optional[torch.Tensor],
                      dropout: Optional[List[int]] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    return _run_layout(key, q, k, v, inputs, cu_seqlens_q, cu_seqlens_kv,
                       page_table, kv_lens, dropout)


@_attention_layout.register_fake
def _(key, q, k, v, inputs, cu_seqlens_q, cu_seqlens_kv, page_table, kv_lens,
      dropout=None):
    lse = q.new_empty(_layout_lse_shape(q, cu_seqlens_q), dtype=torch.float32)
    if cu_seqlens_q is not None:  # q [total_q, HQ, D], v [total_kv, HKV, DV]
        return q.new_empty((q.shape[0], q.shape[1], v.shape[2])), lse
    # q [B, HQ, LQ, D], v [num_pages, page_size, HKV, DV]
    return q.new_empty((q.shape[0], q.shape[1], q.shape[2], v.shape[3])), lse


_NO_PAGED_BACKWARD = (
    "attnc.torch: the backward of a paged KV cache is not built (a cache "
    "is for inference); run the paged call under torch.no_grad(), or pass "
    "dense or packed variable-length tensors to train")


@torch.library.custom_op("attnc::attention_layout_backward", mutates_args=())
def _attention_layout_backward(
        key: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        out: torch.Tensor, lse: torch.Tensor, dout: torch.Tensor,
        inputs: List[torch.Tensor], cu_seqlens_q: torch.Tensor,
        cu_seqlens_kv: torch.Tensor, dropout: Optional[List[int]] = None
        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[torch.Tensor]]:
    """The backward of a packed variable-length batch (Kernel.backward)."""
    kernel = _kernel(key, q.dtype)
    names = _names(kernel)
    dq, dk, dv, grads = kernel.backward(
        q, k, v, out, None if kernel._native.sigmoid else lse, dout.contiguous(),
        inputs=dict(zip(names, inputs)), cu_seqlens_q=cu_seqlens_q,
        cu_seqlens_kv=cu_seqlens_kv, dropout=_unpack_dropout(dropout))
    return dq, dk, dv, _gradient_list(names, grads, inputs)


@_attention_layout_backward.register_fake
def _(key, q, k, v, out, lse, dout, inputs, cu_seqlens_q, cu_seqlens_kv,
      dropout=None):
    return _fake_gradients(key, q, k, v, inputs)


def _layout_setup_context(ctx, inputs, output):
    key, q, k, v, ins, cu_q, cu_kv, page_table, _kv_lens, dropout = inputs
    out, lse = output
    ctx.key = key
    ctx.dropout = dropout
    ctx.paged = page_table is not None
    ctx.mark_non_differentiable(lse)
    if not ctx.paged:
        ctx.save_for_backward(q, k, v, out, lse, cu_q, cu_kv, *ins)


def _layout_backward(ctx, dout, _dlse):
    if ctx.paged:
        raise NotImplementedError(_NO_PAGED_BACKWARD)
    q, k, v, out, lse, cu_q, cu_kv, *ins = ctx.saved_tensors
    dq, dk, dv, grads = torch.ops.attnc.attention_layout_backward(
        ctx.key, q, k, v, out, lse, dout, list(ins), cu_q, cu_kv, ctx.dropout)
    return (None, dq, dk, dv,
            [g.to(x.dtype) if g.numel() == x.numel() and x.is_floating_point() else None
             for g, x in zip(grads, ins)],
            None, None, None, None, None)


_attention_layout.register_autograd(_layout_backward,
                                    setup_context=_layout_setup_context)


def _differentiable(key, dtype):
    kernel = _kernel(key, dtype)
    # The backward's compile says which inputs it differentiates.
    return set(kernel._backward_native().differentiable_inputs)


def _fake_gradients(key, q, k, v, inputs):
    """What the backward operators return, as fake tensors: dq, dk, dv and
    one entry per input (its float32 gradient, or empty)."""
    diff = _differentiable(key, q.dtype)
    names = _names(_kernel(key, q.dtype))
    # Contiguous, as the real kernel's (empty_like would keep a view's strides).
    return (q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape),
            [x.new_empty(x.shape if n in diff else (0,), dtype=torch.float32)
             for n, x in zip(names, inputs)])


@_attention_backward.register_fake
def _(key, q, k, v, out, lse, dout, inputs, dropout=None):
    return _fake_gradients(key, q, k, v, inputs)


def _setup_context(ctx, inputs, output):
    key, q, k, v, ins, dropout = inputs
    out, lse = output
    ctx.key = key
    ctx.dropout = dropout
    ctx.num_inputs = len(ins)
    ctx.mark_non_differentiable(lse)
    ctx.save_for_backward(q, k, v, out, lse, *ins)


def _backward(ctx, dout, _dlse):
    q, k, v, out, lse, *ins = ctx.saved_tensors
    dq, dk, dv, grads = torch.ops.attnc.attention_backward(
        ctx.key, q, k, v, out, lse, dout, list(ins), ctx.dropout)
    return (None, dq, dk, dv,
            [g.to(x.dtype) if g.numel() == x.numel() and x.is_floating_point() else None
             for g, x in zip(grads, ins)], None)


_attention.register_autograd(_backward, setup_context=_setup_context)


class _EagerAttention(torch.autograd.Function):
    """The operator's forward and autograd formula without the custom op's
    dispatch, for eager calls that record a graph (docs/benchmarks.md)."""

    @staticmethod
    def forward(ctx, key, dropout, q, k, v, *inputs):
        out, lse = _run_forward(key, q, k, v, inputs, dropout)
        ctx.key = key
        ctx.dropout = dropout
        ctx.mark_non_differentiable(lse)
        ctx.save_for_backward(q, k, v, out, lse, *inputs)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse, *ins = ctx.saved_tensors
        dq, dk, dv, grads = _run_backward(ctx.key, q, k, v, out, lse, dout, ins,
                                          ctx.dropout)
        names = _names(_kernel(ctx.key, q.dtype))
        return (None, None, dq, dk, dv,
                *[grads[n].to(x.dtype) if n in grads and x.is_floating_point() else None
                  for n, x in zip(names, ins)])


def _eager_path(q, k, v, inputs):
    """How a call runs: "operator" (the custom op) under torch.compile, for
    tracers and for tensor subclasses; for plain tensors in eager mode,
    "inference" (no gradient wanted: the kernel alone) or "autograd"
    (_EagerAttention)."""
    if torch.compiler.is_compiling():
        return "operator"
    if not all(type(t) is torch.Tensor for t in (q, k, v)):
        return "operator"  # subclasses (fake, functional, DTensor) and proxies
    if not all(isinstance(t, torch.Tensor) for t in inputs):
        return "operator"  # the operator's schema reports them
    if not torch.is_grad_enabled() or not any(
            t.requires_grad for t in (q, k, v, *inputs)):
        return "inference"
    return "autograd"


_FIXED_DTYPES = {"f32": torch.float32, "f16": torch.float16,
                 "bf16": torch.bfloat16, None: None}


def _storage(dtype):
    """The torch dtype an attention is made for (None: q's)."""
    if dtype not in _FIXED_DTYPES:
        raise ValueError(f"dtype must be f32, f16, bf16 or None, not {dtype!r}")
    return _FIXED_DTYPES[dtype]


def _check_call(want, names, q, inputs):
    """q's dtype against the attention's, and the inputs against the spec's
    declared names: the checks every attention function makes first."""
    if want is not None and q.dtype != want:
        raise ValueError(f"q has dtype {q.dtype}; this attention was "
                         f"made for {want}")
    missing = [n for n in names if n not in inputs]
    extra = sorted(set(inputs) - set(names))
    if missing or extra:
        raise ValueError(f"inputs: missing {missing}, unknown {extra} "
                         f"(the spec declares {names})")


def attention(spec_text, *, dtype=None, params=None, name=None, import_dirs=None):
    """f(q, k, v, *, layout=None, dropout=None, **inputs) -> out for the
    spec: q [B, HQ, LQ, D], k [B, HKV, LK, D], v [B, HKV, LK, DV], inputs by
    the spec's names. Differentiable in q, k, v and the float inputs;
    traceable by torch.compile(fullgraph=True). dtype (f32, f16, bf16) fixes
    the storage type; by default q's. import_dirs: where the spec's
    `import "PATH"` looks (attnc.compile's).

    dropout = (seed, offset), for a spec with softmax(dropout = p): a
    training call (attnc.Kernel.__call__); its backward regenerates the
    same mask. None: no dropout (e.g. under model.eval()). With a varlen
    layout, sequence i draws as batch entry i of a dense call.

    layout is {"cu_seqlens_q", "cu_seqlens_kv"}: a packed variable-length
    batch, q [total_q, HQ, D], k and v [total_kv, HKV, D|DV], out [total_q,
    HQ, DV], differentiable; or {"page_table", "kv_lens"}: k and v a paged
    KV cache [num_pages, page_size, HKV, D|DV] (attnc.Kernel's layouts),
    forward only: asking for its gradient raises NotImplementedError."""
    key = _register(spec_text, params, name, import_dirs)
    names = _names(_kernel(key, torch.float32))  # checks the spec now
    for keyword in ("layout", "dropout"):
        if keyword in names:
            raise ValueError(f"the spec declares an input named '{keyword}', "
                             "which attnc.torch.attention's calls cannot pass "
                             f"(their {keyword}= keyword); rename the input")
    want = _storage(dtype)

    def f(q, k, v, *, layout=None, dropout=None, **inputs):
        _check_call(want, names, q, inputs)
        ins = [inputs[n] for n in names]
        path = _eager_path(q, k, v, ins)
        dropout = _pack_dropout(dropout)
        if layout is not None:
            args = _layout_args(layout)
            if path == "autograd" and args[2] is not None:
                raise NotImplementedError(_NO_PAGED_BACKWARD)
            if path == "inference":
                return _run_layout(key, q, k, v, ins, *args, dropout)[0]
            return torch.ops.attnc.attention_layout(key, q, k, v, ins, *args,
                                                    dropout)[0]
        if path == "inference":
            # Nothing to record for autograd or a compiler: the kernel
            # directly, without the custom op's dispatch.
            return _kernel(key, q.dtype)(q, k, v, inputs=inputs,
                                         dropout=_unpack_dropout(dropout))
        if path == "autograd":
            return _EagerAttention.apply(key, dropout, q, k, v, *ins)[0]
        out, _ = torch.ops.attnc.attention(key, q, k, v, ins, dropout)
        return out

    return f


class Attention(torch.nn.Module):
    """The spec as a module: forward(q, k, v, **inputs) on [B, H, L, D]."""

    def __init__(self, spec_text, *, dtype=None, params=None, name=None,
                 import_dirs=None):
        super().__init__()
        self._f = attention(spec_text, dtype=dtype, params=params, name=name,
                            import_dirs=import_dirs)

    def forward(self, q, k, v, *, layout=None, dropout=None, **inputs):
        return self._f(q, k, v, layout=layout, dropout=dropout, **inputs)


from .ring import ring_attention  # noqa: E402 (it uses this module's registry)
