/*===- KernelABI.h - The C ABI of generated CPU kernels ------------*- C -*-===//
 *
 * What a generated CPU kernel (JIT or ahead of time) exports, and what the
 * runtime's dispatcher (CpuDispatch.h) passes it. Plain C so that a user's
 * program can call an AOT object directly. One kernel call runs the tasks
 * [task_begin, task_end) of the flat task space
 *     task = (b * (HQ / P) + hb) * numQTiles + qt,
 *     numQTiles = ceil(P * LQ / tileQ),   P = meta[ATTNC_META_ROW_HEADS],
 * so a thread pool splits the work by ranges of tasks. With P = 1 (every
 * call but a decode step's) that is (b * HQ + h) * ceil(LQ / tileQ) + qt.
 *
 * Every tensor travels as MLIR's 1-D strided memref descriptor: element i of
 * the flat buffer is at ((T *)aligned)[offset + i], and the kernel computes
 * i = sum(index[d] * stride[d]) with the strides from `meta`. The dispatcher
 * places `aligned` at the lowest address the view touches, so negative and
 * zero strides work too.
 *
 * ATTNC_KERNEL_ABI_VERSION names this layout; it changes whenever the
 * entry point, the buffer or meta slots, or the arena layout change.
 *
 *===----------------------------------------------------------------------===*/
#ifndef ATTNC_RUNTIME_KERNELABI_H
#define ATTNC_RUNTIME_KERNELABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: the scratch arena (ATTNC_BUF_ARENA) holds the kernel's tiles, which
 * were stack arrays in version 1.
 * 3: the meta slots of the sequence window (ATTNC_META_Q_POS ..
 * ATTNC_META_LK_TOTAL), before the inputs.
 * 4: ATTNC_META_ROW_HEADS and the paged cache's slots (ATTNC_META_PAGE_SIZE
 * .. ATTNC_META_PAGE_TABLE_STRIDE), before the inputs.
 * 5: the dropout slots (ATTNC_META_DROPOUT .. ATTNC_META_DROPOUT_BATCH),
 * before the inputs. */
#define ATTNC_KERNEL_ABI_VERSION 5

/* MLIR's descriptor of a memref<?xT, strided<[1], offset: ?>>. */
typedef struct attnc_buffer {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t size;
  int64_t stride; /* always 1 */
} attnc_buffer;

/* Slots of the `buffers` array. Inputs follow in declaration order. q, k, v
 * and out have the kernel's storage type (f32, f16 or bf16); lse is f32;
 * the trace buffer and the arena are i8; the ids scratch is i64; int inputs
 * are i64, float inputs f32, bool inputs i8 (0 or 1). An absent lse, trace
 * or scratch is a buffer of size 0. */
enum attnc_buffer_slot {
  ATTNC_BUF_Q = 0,
  ATTNC_BUF_K = 1,
  ATTNC_BUF_V = 2,
  ATTNC_BUF_OUT = 3,
  ATTNC_BUF_LSE = 4,
  ATTNC_BUF_TRACE = 5,
  /* Masks with ids_eq atoms (X[q] == Y[kv], e.g. document ids): the
   * kernel's pre-pass entry (attnc_kernel_<name>__prepass) runs first over
   * the tasks b * HQ + h and stores the min and max of Y per key tile here:
   * B * HQ * numIdsAtoms * numKTiles * 2 words; the main kernel reads them. */
  ATTNC_BUF_IDS_SCRATCH = 6,
  /* The scratch arena of this call (see attnc_arena_bytes). */
  ATTNC_BUF_ARENA = 7,
  ATTNC_BUF_INPUTS = 8
};

/* Slots of the `meta` array (int64). Strides are in elements. Inputs follow
 * at ATTNC_META_INPUTS, each as its rank dimensions then its rank strides. */
enum attnc_meta_slot {
  ATTNC_META_B = 0,
  ATTNC_META_HQ = 1,
  ATTNC_META_HKV = 2,
  ATTNC_META_LQ = 3,
  ATTNC_META_LK = 4,
  ATTNC_META_D = 5,
  ATTNC_META_DV = 6,
  ATTNC_META_Q_STRIDES = 7,    /* 4: b, h, l, d */
  ATTNC_META_K_STRIDES = 11,   /* 4 */
  ATTNC_META_V_STRIDES = 15,   /* 4 */
  ATTNC_META_OUT_STRIDES = 19, /* 4 */
  ATTNC_META_LSE_STRIDES = 23, /* 3: b, h, l */
  ATTNC_META_HAS_LSE = 26,
  ATTNC_META_HAS_TRACE = 27,
  /* The sequence window (context parallelism): the call's LQ query rows
   * are positions Q_POS .. Q_POS + LQ - 1 and its LK keys positions
   * KV_POS .. KV_POS + LK - 1 of sequences of LQ_TOTAL queries and
   * LK_TOTAL keys. The spec's q, kv, LQ and LK, its masks, its input reads
   * and the input dimensions named LQ or LK are in those global terms;
   * tiles, tasks, buffers and the trace stay local. A plain call has 0, 0,
   * LQ, LK. Requires 0 <= Q_POS, Q_POS + LQ <= LQ_TOTAL, and likewise for
   * the keys. */
  ATTNC_META_Q_POS = 28,
  ATTNC_META_KV_POS = 29,
  ATTNC_META_LQ_TOTAL = 30,
  ATTNC_META_LK_TOTAL = 31,
  /* P >= 1 query heads per task (decode: one K/V tile load serves the
   * rows of P heads). Task rows r = 0 .. P * LQ - 1 of head block hb are
   * query q = r % LQ of head hb * P + r / LQ, tiled tileQ rows at a time.
   * Requires P to divide HQ / HKV. A kernel reads it only if its mask
   * reads no `h` and it has no grid patch (KernelInfo::packsHeads,
   * FlashOp::packsQueryHeads); the runtime passes 1 but for a decode
   * step (CpuDispatch.h, rowHeadsOf). */
  ATTNC_META_ROW_HEADS = 32,
  /* A paged KV cache read in place: 0 (K and V are [B, HKV, LK, *] by
   * their strides), or N > 0: K and V are caches of pages of N rows, and
   * key position p (the window's KV_POS + the local key) of sequence b is
   * row p % N of page meta[PAGE_TABLE + b * PAGE_TABLE_STRIDE + p / N],
   * its element d of head hkv at page * S_b + hkv * S_h + (p % N) * S_l +
   * d * S_d with K's (or V's) four strides in their slots (b, h, l, d: the
   * b slot holds the page stride). The table, of int64 page numbers,
   * follows everything else in meta. Kernels with a grid patch read
   * neither (KernelInfo::pagedKeys). A kernel reads table entries only of
   * pages that hold keys of the call, those it prefetches (two ahead)
   * included, and the runtime checks every one of them. */
  ATTNC_META_PAGE_SIZE = 33,
  ATTNC_META_PAGE_TABLE = 34,
  ATTNC_META_PAGE_TABLE_STRIDE = 35,
  /* softmax(dropout = p) (Dropout.h): 1 when this call drops pairs (a
   * training step), 0 for none; the Philox key (the seed); counter word 3
   * (the offset, below 2^32); and the global number of the call's sequence
   * b = 0 (counter word 2 is (DROPOUT_BATCH + b) * HQ + h, so the calls of
   * a varlen batch's sequences draw apart). Kernels of specs without
   * dropout read none of them. */
  ATTNC_META_DROPOUT = 36,
  ATTNC_META_DROPOUT_SEED = 37,
  ATTNC_META_DROPOUT_OFFSET = 38,
  ATTNC_META_DROPOUT_BATCH = 39,
  ATTNC_META_INPUTS = 40
};

/* status[0] after a call: 0 on success, else one of these codes, with the
 * details of the first error. Later tasks of the call may still run; the
 * call's results are then meaningless. */
enum attnc_status_code {
  ATTNC_STATUS_OK = 0,
  /* An input read out of range: status[1] = input number (declaration
   * order), status[2] = dimension, status[3] = the index read. */
  ATTNC_STATUS_INPUT_OUT_OF_RANGE = 1,
  /* An integer division or modulo by zero in the spec's expressions. */
  ATTNC_STATUS_DIVISION_BY_ZERO = 2,
  /* The arena is smaller than the call needs: status[1] = the bytes
   * needed (attnc_arena_bytes), status[2] = the arena's size. Nothing is
   * written then. */
  ATTNC_STATUS_ARENA_TOO_SMALL = 3,
  /* A shift (<< or >>) in the spec's expressions by a count outside
   * [0, 63]: status[1] = the count. */
  ATTNC_STATUS_SHIFT_OUT_OF_RANGE = 4
};
#define ATTNC_STATUS_WORDS 4

/* The trace buffer (a debug aid for tests): when meta[ATTNC_META_HAS_TRACE]
 * is 1, the kernel stores, for every key tile it visits, 1 (FULL, no mask
 * code) or 2 (PARTIAL) at trace[task * numKTiles + kt]. */

/* The scratch arena: a kernel call keeps its tiles (the Q, K and V tiles,
 * the scores, the row statistics, the accumulator, the gathered rows and
 * keys of grid masks) in buffers[ATTNC_BUF_ARENA], not on the stack, so
 * any supported head dim runs on any thread. The caller gives every call
 * that may run concurrently its own arena of at least attnc_arena_bytes()
 * bytes, 64-byte aligned, offset 0; its contents need no initialisation and
 * are garbage afterwards. The runtime's dispatcher gives each
 * participating thread its own, which the thread keeps for its next call
 * (grown when a call needs more). The layout, in bytes, is
 * these sections in order, each rounded up to 64 (tq, tk: the tile sizes;
 * d, dv: the head dims; a section may be larger than its tile needs):
 *   Q tile 4 tq (d + 1), K tile 4 tk (d + 1), V tile 4 (tk + 1) dv,
 *   scores 4 tq tk, row max, row sum, row rescale 4 tq each,
 *   accumulator 4 tq dv, query rows 8 tq, gathered keys 8 tk.
 * The arguments are positive and small (the dispatcher bounds tiles by
 * 65536 and head dims by the supported range, kMaxHeadDim in
 * ForwardChecks.h), so the sum fits int64. */
#define ATTNC_ARENA_ALIGN 64
static inline int64_t attnc_arena_section(int64_t bytes) {
  return (bytes + ATTNC_ARENA_ALIGN - 1) / ATTNC_ARENA_ALIGN * ATTNC_ARENA_ALIGN;
}
static inline int64_t attnc_arena_bytes(int64_t tq, int64_t tk, int64_t d,
                                        int64_t dv) {
  return attnc_arena_section(4 * tq * (d + 1)) +
         attnc_arena_section(4 * tk * (d + 1)) +
         attnc_arena_section(4 * (tk + 1) * dv) +
         attnc_arena_section(4 * tq * tk) + 3 * attnc_arena_section(4 * tq) +
         attnc_arena_section(4 * tq * dv) + attnc_arena_section(8 * tq) +
         attnc_arena_section(8 * tk);
}

/* The backward pass (issue 14). The runtime's driver (CpuBackward.h) runs
 * the tiled loops and the matrix products; a generated kernel exports, with
 * the same entry signature as the forward, two element-wise helpers:
 *
 * attnc_kernel_<name>__bwd_kinds: the column view of the mask schedule
 * (mask_schedule_columns) for one key tile. Buffers:
 *   ATTNC_BWD_DESC (i64) in:  b, h, kt, tileQ, tileK
 *   ATTNC_BWD_KINDS (i64) out: kinds[qt] for every query tile qt in
 *     [first, last] (0 EMPTY, 1 FULL, 2 PARTIAL), and kinds[numQTiles] =
 *     first, kinds[numQTiles + 1] = last (first > last: none); the entries
 *     outside [first, last] are not written.
 *
 * attnc_kernel_<name>__bwd_tile: one (query tile, key tile) pair of rows
 * q0 .. q0 + tq - 1 of head h and keys k0 .. k0 + tk - 1. Buffers:
 *   ATTNC_BWD_DESC (i64) in:  b, h, q0, tq, k0, tk, kind (1 FULL, 2 PARTIAL,
 *     ATTNC_BWD_SINK_ROWS)
 *   ATTNC_BWD_S (f32, tq x tk, row-major) in: the raw dot products
 *     q_row . k_row; out: P (softmax: exp(z - lse); sigmoid:
 *     sigmoid(z + bias); 0 on pairs the mask drops), times the dropout
 *     factor F (0 or 1 / (1 - p)) in a call with ATTNC_META_DROPOUT set,
 *     as the forward's P V took it
 *   ATTNC_BWD_DP (f32, tq x tk) in: dP = dO_row . v_row; out: dL/d(dot),
 *     i.e. dS * scale with dS = dL/ds of the scaled logit s (softmax:
 *     from dZ = P (dP F - delta))
 *   ATTNC_BWD_LSE, ATTNC_BWD_DELTA (f32, tq): the forward's lse of the rows
 *     and rowsum(dO * O) (softmax only)
 *   ATTNC_BWD_DINPUTS (f32): the caller's partial gradients of the
 *     differentiable inputs (differentiableInputs(), declaration order), each
 *     dense row-major at the offsets meta[ATTNC_META_INPUTS + 2 * sum(rank)
 *     + i], i the input's number among them; the kernel adds to them.
 * For a spec with a softmax sink, kind ATTNC_BWD_SINK_ROWS (3, with
 * k0 = 0 and tk = 0) is the rows' sinks: S[i] (tq floats) gets row i's
 * P_s = exp(s - lse) of its sink s, and dL/ds = -P_s delta goes through
 * the sink's derivative to ATTNC_BWD_DINPUTS (when it reads a float input),
 * in the call whose key window starts at key 0 only (the forward counts
 * the sink there; P_s = 0 in the others); dP is not read.
 * kt, q0 and k0 are local (tiles and rows of the call's tensors); both
 * helpers add the sequence window's ATTNC_META_Q_POS and ATTNC_META_KV_POS
 * to them where the spec sees positions, and the kinds helper classifies
 * the query tiles of the window only.
 * Both read the spec's inputs at ATTNC_BUF_INPUTS.. and sizes and strides
 * from `meta` as the forward does (only the input strides, the sizes and
 * the window);
 * task_begin and task_end are unused (0). Errors go to `status` as in the
 * forward. */
enum attnc_bwd_buffer_slot {
  ATTNC_BWD_DESC = 0,
  ATTNC_BWD_KINDS = 1,
  ATTNC_BWD_S = 1,
  ATTNC_BWD_DP = 2,
  ATTNC_BWD_LSE = 3,
  ATTNC_BWD_DELTA = 4,
  ATTNC_BWD_DINPUTS = 5
};
#define ATTNC_BWD_SINK_ROWS 3

/* The entry point of a generated kernel. */
typedef void (*attnc_cpu_kernel_fn)(const attnc_buffer *buffers,
                                    const int64_t *meta, int64_t *status,
                                    int64_t task_begin, int64_t task_end);

#ifdef __cplusplus
}
#endif

#endif /* ATTNC_RUNTIME_KERNELABI_H */
