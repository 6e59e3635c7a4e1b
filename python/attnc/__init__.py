"""attnc from Python: compile an attention spec (.attn) and run its CPU kernel.

    import attnc, numpy as np
    kernel = attnc.compile(open("causal.attn").read())
    out = kernel(q, k, v)                      # q [B, HQ, LQ, D], k [B, HKV, LK, D], v [B, HKV, LK, DV]
    out, lse = kernel(q, k, v, return_lse=True)
    dq, dk, dv, dinputs = kernel.backward(q, k, v, out, lse, dout)

q, k and v are numpy arrays or torch tensors (CPU), taken with their strides
and without a copy (DLPack); outputs are new arrays of the same kind. One
kernel serves every B, H, L and head dim. Errors raise ValueError with
attnc's message (spec errors keep file:line:col and the caret line).
See docs/python.md.
"""
from . import _attnc

__all__ = ["compile", "load", "Kernel"]

_STORAGE = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _empty(like, shape, dtype):
    """A new array of `shape` and numpy-style `dtype`, of the same kind
    (numpy or torch, and torch device) as `like`."""
    if _is_torch(like):
        import torch
        return torch.empty(shape, dtype=getattr(torch, dtype), device=like.device)
    import numpy as np
    if dtype == "bfloat16":
        raise ValueError("numpy has no bfloat16: pass torch tensors to a "
                         "bfloat16 kernel")
    return np.empty(shape, dtype=np.dtype(dtype))


def _window(window):
    """(q_offset, kv_offset, total_lq, total_lk) for the extension."""
    if window is None:
        return (0, 0, -1, -1)
    try:
        w = tuple(int(x) for x in window)
    except (TypeError, ValueError):
        w = ()
    if len(w) != 4:
        raise ValueError("window must be (q_offset, kv_offset, total_lq, "
                         f"total_lk), not {window!r}")
    return w


def _dropout(dropout):
    """None, or (seed, offset) checked, for the extension."""
    if dropout is None:
        return None
    try:
        seed, offset = (int(x) for x in dropout)
    except (TypeError, ValueError):
        raise ValueError("dropout must be (seed, offset), two ints, not "
                         f"{dropout!r}") from None
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"dropout seed {seed} is outside [0, 2**64)")
    if not 0 <= offset < 2 ** 32:
        raise ValueError(f"dropout offset {offset} is outside [0, 2**32) "
                         "(Philox's counter word 3)")
    return (seed, offset)


def _shape(x, what, rank):
    shape = tuple(int(n) for n in x.shape)
    if len(shape) != rank:
        raise ValueError(f"{what} must have rank {rank}, not {len(shape)} "
                         f"(shape {shape})")
    return shape


class Kernel:
    """A compiled spec. Call it as kernel(q, k, v, inputs=..., return_lse=...)."""

    def __init__(self, native, text, dtype, params, name, buffer_name, import_dirs):
        self._native = native
        self._spec = (text, dtype, dict(params or {}), name, buffer_name,
                      list(import_dirs))
        self._backward = None  # the same spec compiled with its backward

    def _backward_native(self):
        """The spec compiled with its backward (once per kernel)."""
        if self._backward is None:
            text, dtype, params, name, buffer_name, import_dirs = self._spec
            self._backward = _attnc.compile(text, dtype, params, name or "",
                                            True, buffer_name, import_dirs)
        return self._backward

    @property
    def name(self):
        return self._native.name

    @property
    def dtype(self):
        """The storage type of q, k, v and out: float32, float16 or bfloat16."""
        return self._native.dtype

    @property
    def inputs(self):
        """[(name, dtype, dims)] of the spec's input tensors, in declaration
        order; a dim is a size's name ("LQ", "HQ", ...) or an int."""
        return [(n, t, list(d)) for n, t, d in self._native.inputs]

    def __call__(self, q, k, v, *, inputs=None, return_lse=False, threads=0,
                 window=None, cu_seqlens_q=None, cu_seqlens_kv=None,
                 page_table=None, kv_lens=None, dropout=None):
        """out [B, HQ, LQ, DV] (and lse [B, HQ, LQ], float32, with return_lse).

        dropout = (seed, offset), for a spec with softmax(dropout = p): a
        training call, which drops each (q, kv) pair's probability with
        probability p by Philox4x32 on (seed, offset) (the same mask as
        attnc's C++ API and CUDA kernels); None (default): no dropout.
        Advance the offset (0 .. 2**32 - 1) each step; pass the same pair
        to backward.

        window = (q_offset, kv_offset, total_lq, total_lk) runs the call as a
        piece of longer sequences (context parallelism): q's rows are query
        positions q_offset.. of total_lq, k's and v's keys positions
        kv_offset.. of total_lk; the spec's q, kv, LQ and LK, and inputs
        sized LQ or LK, are the sequences'. lse then merges pieces: see
        attnc.torch.ring_attention.

        cu_seqlens_q, cu_seqlens_kv (int32 [B + 1]): a packed variable-length
        batch, q [total_q, HQ, D], k and v [total_kv, HKV, D|DV]; out is then
        [total_q, HQ, DV] and lse [HQ, total_q]; each sequence is a problem
        of its own.

        page_table (int32 [B, max_pages]), kv_lens (int32 [B]): k and v are a
        paged KV cache [num_pages, page_size, HKV, D|DV]; sequence b's keys
        are the first kv_lens[b] rows of its pages in table order."""
        layout = {}
        if cu_seqlens_q is not None or cu_seqlens_kv is not None:
            layout.update(cu_seqlens_q=cu_seqlens_q, cu_seqlens_kv=cu_seqlens_kv)
        if page_table is not None or kv_lens is not None:
            layout.update(page_table=page_table, kv_lens=kv_lens)
        for key, value in list(layout.items()):
            if value is None:
                raise ValueError(f"{key} is missing: pass both cu_seqlens_q and "
                                 "cu_seqlens_kv, or both page_table and kv_lens")
        if return_lse and self._native.sigmoid:
            raise ValueError(f"'{self.name}' normalises with a sigmoid: it has "
                             "no log-sum-exp (return_lse)")
        if "cu_seqlens_q" in layout:
            T, HQ, _ = _shape(q, "q", 3)
            DV = _shape(v, "v", 3)[2]
            out_shape, lse_shape = (T, HQ, DV), (HQ, T)
        else:
            B, HQ, LQ, _ = _shape(q, "q", 4)
            DV = _shape(v, "v", 4)[3]
            out_shape, lse_shape = (B, HQ, LQ, DV), (B, HQ, LQ)
        out = _empty(q, out_shape, self.dtype)
        lse = _empty(q, lse_shape, "float32") if return_lse else None
        self._native.forward(q, k, v, out, lse, dict(inputs or {}), threads,
                             _window(window), layout, _dropout(dropout))
        return (out, lse) if return_lse else out

    def backward(self, q, k, v, out, lse, dout, *, inputs=None, threads=0,
                 window=None, cu_seqlens_q=None, cu_seqlens_kv=None,
                 dropout=None):
        """(dq, dk, dv, dinputs) for the upstream gradient dout = dL/dout.

        dropout: the forward's (seed, offset), whose mask the backward
        regenerates.

        lse is the forward's (return_lse=True; None for a sigmoid spec).
        dinputs maps each float input the score reads to its gradient
        (float32, the input's shape). The first call compiles the spec's
        backward (once per kernel). With a window (see __call__), out and
        lse are the rows' over all keys of the sequence, and the results
        are this piece's shares: dq and dinputs sum over the key pieces,
        dk and dv over the query pieces.

        cu_seqlens_q, cu_seqlens_kv: the packed variable-length batch of
        the forward (see __call__): q, out, dout, dq [total_q, HQ, D|DV], k,
        v, dk, dv [total_kv, HKV, D|DV], lse [HQ, total_q]. An input's
        gradient is the sum over the sequences, or per sequence for an
        input with a B dimension."""
        layout = {}
        if cu_seqlens_q is not None or cu_seqlens_kv is not None:
            if cu_seqlens_q is None or cu_seqlens_kv is None:
                raise ValueError("pass both cu_seqlens_q and cu_seqlens_kv")
            layout = {"cu_seqlens_q": cu_seqlens_q, "cu_seqlens_kv": cu_seqlens_kv}
        native = self._backward_native()
        if lse is None and not native.sigmoid:
            raise ValueError("lse is required: pass the forward's "
                             "(kernel(..., return_lse=True))")
        inputs = dict(inputs or {})
        grads = {}
        for n in native.differentiable_inputs:
            if n in inputs:
                grads[n] = _empty(q, tuple(int(s) for s in inputs[n].shape),
                                  "float32")
        rank = 3 if layout else 4
        dq = _empty(q, _shape(q, "q", rank), self.dtype)
        dk = _empty(q, _shape(k, "k", rank), self.dtype)
        dv = _empty(q, _shape(v, "v", rank), self.dtype)
        native.backward(q, k, v, out, lse, dout, dq, dk, dv, inputs, grads,
                        threads, _window(window), layout, _dropout(dropout))
        return dq, dk, dv, grads


def compile(spec_text, *, target="cpu", dtype="f32", params=None, name=None,
            import_dirs=None, _buffer_name="<spec>"):
    """Compiles the .attn text (the block `name` when it holds several).

    dtype: the storage type of q, k, v and out (f32, f16 or bf16); params:
    {name: value} overrides of the spec's params (attnc's -D); import_dirs:
    folders where `import "PATH"` looks after the importing file's own
    folder (attnc's -I; the text of attnc.compile resolves from the working
    directory, attnc.load's from the file's)."""
    if target != "cpu":
        raise ValueError(f"target must be 'cpu' (the CUDA kernels are not "
                         f"reachable from Python yet), not {target!r}")
    if not isinstance(spec_text, str):
        raise ValueError("spec_text must be a str (the .attn text); use "
                         "attnc.load(path) for a file")
    import os
    if isinstance(import_dirs, (str, bytes, os.PathLike)):
        raise ValueError("import_dirs must be a list of folders, not one path")
    dirs = [os.fspath(d) for d in (import_dirs or [])]
    native = _attnc.compile(spec_text, dtype, dict(params or {}), name or "",
                            False, _buffer_name, dirs)
    return Kernel(native, spec_text, dtype, params, name, _buffer_name, dirs)


def load(path, **options):
    """attnc.compile on the text of the .attn file at `path` (errors name it)."""
    import os
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return compile(text, _buffer_name=path, **options)
