/*===- Dropout.h - Which (b, h, q, kv) pairs dropout drops -----*- C -*-===//
 *
 * The one definition of `softmax(dropout = p)`'s random mask, shared by the
 * CPU kernels (LowerCpuTile.cpp emits the same steps as MLIR), the CUDA
 * kernels (the emitter pastes this text into each .cu), and the float64
 * references, so that one seed gives one mask on every back end.
 *
 * Philox4x32-10 (Salmon et al., SC'11; the generator of cuRAND, PyTorch
 * and FlashAttention) maps a 128-bit counter and a 64-bit key to four
 * 32-bit words. Pair (b, h, q, kv) of a call, with b, q and kv global (the
 * sequence window's positions, the batch's first sequence added), reads
 *     key     = (seed mod 2^32, seed / 2^32)
 *     counter = (kv / 4, q, b * HQ + h, offset)
 *     r       = word kv % 4 of philox4x32_10(counter, key)
 * and is dropped iff r < threshold = floor(p * 2^32); a kept pair's
 * probability is scaled by 1 / (1 - p). Four neighbouring keys share one
 * Philox call, so a kernel that draws for four keys at once computes a
 * quarter of the rounds. The offset (32 bits) advances per training step,
 * as PyTorch's Philox offset does, so one seed serves many steps.
 *
 * Plain C, no headers, for C, C++, CUDA and NVRTC alike.
 *
 *===----------------------------------------------------------------------===*/
#ifndef ATTNC_RUNTIME_DROPOUT_H
#define ATTNC_RUNTIME_DROPOUT_H

#if defined(__CUDACC__)
#define ATTNC_DROPOUT_FN static inline __host__ __device__
#else
#define ATTNC_DROPOUT_FN static inline
#endif

/* Philox's multipliers and Weyl key increments (Random123). */
#define ATTNC_PHILOX_M0 0xD2511F53u
#define ATTNC_PHILOX_M1 0xCD9E8D57u
#define ATTNC_PHILOX_W0 0x9E3779B9u
#define ATTNC_PHILOX_W1 0xBB67AE85u

/* out[0..3] = philox4x32_10(c, (k0, k1)). */
ATTNC_DROPOUT_FN void attnc_philox4x32_10(const unsigned c[4], unsigned k0,
                                          unsigned k1, unsigned out[4]) {
  unsigned x0 = c[0], x1 = c[1], x2 = c[2], x3 = c[3];
  for (int round = 0; round < 10; ++round) {
    unsigned long long p0 = (unsigned long long)ATTNC_PHILOX_M0 * x0;
    unsigned long long p1 = (unsigned long long)ATTNC_PHILOX_M1 * x2;
    unsigned hi0 = (unsigned)(p0 >> 32), lo0 = (unsigned)p0;
    unsigned hi1 = (unsigned)(p1 >> 32), lo1 = (unsigned)p1;
    x0 = hi1 ^ x1 ^ k0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ k1;
    x3 = lo0;
    k0 += ATTNC_PHILOX_W0;
    k1 += ATTNC_PHILOX_W1;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

/* The drop threshold of probability p in [0, 1): floor(p * 2^32). */
ATTNC_DROPOUT_FN unsigned attnc_dropout_threshold(double p) {
  double t = p * 4294967296.0;
  return t <= 0 ? 0u : t >= 4294967295.0 ? 4294967295u : (unsigned)t;
}

/* Whether pair (bh = b * HQ + h, q, kv) is kept (all global, as above). */
ATTNC_DROPOUT_FN int attnc_dropout_keep(unsigned long long seed,
                                        unsigned offset, unsigned long long bh,
                                        unsigned long long q,
                                        unsigned long long kv,
                                        unsigned threshold) {
  unsigned c[4] = {(unsigned)(kv >> 2), (unsigned)q, (unsigned)bh, offset};
  unsigned r[4];
  attnc_philox4x32_10(c, (unsigned)seed, (unsigned)(seed >> 32), r);
  return r[kv & 3] >= threshold;
}

#endif /* ATTNC_RUNTIME_DROPOUT_H */
