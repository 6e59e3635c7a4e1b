// copy_kernel.cu - A hand-written .cu that follows CudaABI.h, for testing the
// runtime's NVRTC path and launcher (forwardCuda) without the emitter.
// The tests prepend the text of CudaABI.h, as the emitter pastes it.
// Spec "copy": out = q (needs D == DV), lse[b, h, l] = l + the pre-pass's
// scratch word of (b, h, key tile 0) (which it sets to 1000), and, when the
// call has an int input idx[LQ], a bounds-checked read of idx[l] that must
// lie in [0, LQ): an index outside reports ATTNC status code 1 (input 0,
// dimension 0, the index), a zero reports code 2 (division by zero), as
// generated kernels do. Entries: bf16 and f16 with D = DV = 64; the
// ATTNC_ONLY_* macros keep one. Spec "copytma" (bf16, 64, 64) is the same
// copy with the sm_90a calling convention: its record asks for tensor maps
// (a second parameter the launcher encodes) and clusters of 2 CTAs; it
// reports code 2 if a map arrives empty. It runs on compute capability 9.0+.

static __device__ void attnc_report(const attnc_cuda_args &a, long long code,
                                    long long w1, long long w2, long long w3) {
  if (atomicCAS(reinterpret_cast<unsigned long long *>(a.error), 0ull,
                (unsigned long long)code) == 0ull) {
    a.error[1] = w1;
    a.error[2] = w2;
    a.error[3] = w3;
  }
}

static __device__ void copy_body(const attnc_cuda_args &a, int rows) {
  const long long b = blockIdx.z, h = blockIdx.y;
  const unsigned short *q = static_cast<const unsigned short *>(a.q);
  unsigned short *o = static_cast<unsigned short *>(a.out);
  for (long long r = threadIdx.x; r < (long long)rows * a.DV; r += blockDim.x) {
    const long long l = (long long)blockIdx.x * rows + r / a.DV, d = r % a.DV;
    if (l >= a.LQ)
      continue;
    o[b * a.os[0] + h * a.os[1] + l * a.os[2] + d * a.os[3]] =
        q[b * a.qs[0] + h * a.qs[1] + l * a.qs[2] + d * a.qs[3]];
    if (d != 0)
      continue;
    if (a.lse) {
      const long long bonus = a.scratch ? a.scratch[(b * a.HQ + h) * ((a.LK + 63) / 64)] : 0;
      a.lse[b * a.ls[0] + h * a.ls[1] + l * a.ls[2]] = float(l + bonus);
    }
    if (a.inputs) {
      const attnc_input &in = a.inputs[0];
      const long long i = static_cast<const long long *>(in.data)[l * in.strides[0]];
      if (i < 0 || i >= in.dims[0])
        attnc_report(a, 1, 0, 0, i);
      else if (i == 0)
        attnc_report(a, 2, 0, 0, 0);
    }
  }
}

extern "C" {
#if !defined(ATTNC_ONLY_DT) || \
    (ATTNC_ONLY_DT == 1 && ATTNC_ONLY_HD == 64 && ATTNC_ONLY_HDV == 64)
__constant__ int attnc_fwd_copy__bf16_64_64__launch[ATTNC_LAUNCH_WORDS] = {
    16, 128, 0, 0, 0, 0, 0, 0};
__global__ void attnc_fwd_copy__bf16_64_64(attnc_cuda_args a) { copy_body(a, 16); }
#endif
#if !defined(ATTNC_ONLY_DT) || \
    (ATTNC_ONLY_DT == 0 && ATTNC_ONLY_HD == 64 && ATTNC_ONLY_HDV == 64)
__constant__ int attnc_fwd_copy__f16_64_64__launch[ATTNC_LAUNCH_WORDS] = {
    32, 64, 0, 0, 0, 0, 0, 0};
__global__ void attnc_fwd_copy__f16_64_64(attnc_cuda_args a) { copy_body(a, 32); }
#endif

#if !defined(ATTNC_ONLY_DT) || \
    (ATTNC_ONLY_DT == 1 && ATTNC_ONLY_HD == 64 && ATTNC_ONLY_HDV == 64)
__constant__ int attnc_fwd_copytma__bf16_64_64__launch[ATTNC_LAUNCH_WORDS] = {
    16, 128, 0, 2, 0, 1, 32, 0};
__global__ void attnc_fwd_copytma__bf16_64_64(attnc_cuda_args a,
                                              const __grid_constant__ attnc_tma_maps m) {
  bool q = false, k = false, v = false;
  for (int i = 0; i < 16; ++i) {
    q = q || m.q.opaque[i] != 0;
    k = k || m.k.opaque[i] != 0;
    v = v || m.v.opaque[i] != 0;
  }
  if (threadIdx.x == 0 && !(q && k && v))
    attnc_report(a, 2, 0, 0, 0);
  copy_body(a, 16);
}
#endif

// One scratch word per (b, h, key tile): tile 0 gets 1000.
__constant__ int attnc_prepass_copy__launch[ATTNC_LAUNCH_WORDS] = {
    64, 32, 0, 0, 1, 0, 0, 0};
__global__ void attnc_prepass_copy(attnc_cuda_args a) {
  const long long tiles = (a.LK + 63) / 64;
  if (threadIdx.x == 0)
    a.scratch[(blockIdx.z * a.HQ + blockIdx.y) * tiles + blockIdx.x] =
        blockIdx.x == 0 ? 1000 : blockIdx.x;
}
}
