// The kernel templates of codegen/cuda/ on their own, as a user of the
// headers would instantiate them: a hand-written spec struct (full
// attention, softmax, folded scale) and one entry per arch, with the nvcc
// host launchers (cuda-kernel-templates.test compiles this with nvcc).
#define ATTNC_NVCC_HOST 1
#include <cuda.h>
#include <cuda_runtime.h>

#include "attnc_sm80.cuh"
#include "attnc_sm90.cuh"

struct full_spec {
  static constexpr bool sigmoid = false, prescale = true, has_sink = false;
  static constexpr int ids = 0;
  struct rowset {
    int64_t hullLo, hullHi;
  };
  static ATTNC_HD rowset rows(const attnc_ctx &c, int64_t, int64_t) { return {0, c.LK - 1}; }
  static ATTNC_HD int tile_kind(const attnc_ctx &, const rowset &, int64_t, int64_t, const int64_t *) { return 1; }
  static __device__ attnc_uniforms uniforms(const attnc_ctx &c) {
    const float l2 = rsqrtf((float)c.D) * 1.4426950408889634f;
    return {rsqrtf((float)c.D), 0.f, l2, 1.f};
  }
  template <bool PARTIAL>
  static __device__ float element(const attnc_ctx &, const attnc_uniforms &, int, int, bool inb, float s) {
    return inb ? s : -INFINITY;
  }
};

ATTNC_SM80_ENTRY(full80_bf16_128_128, full_spec, attnc_bf16, 128, 128)
ATTNC_SM90_ENTRY(full90_bf16_128_128, full_spec, attnc_bf16, 128, 128)

static const attnc_host_entry entries80[] = {{1, 128, 128, 128, 128, (const void *)full80_bf16_128_128},
                                             {0, 0, 0, 0, 0, nullptr}};
static const attnc_host_entry entries90[] = {{1, 128, 128, 128, 128, (const void *)full90_bf16_128_128},
                                             {0, 0, 0, 0, 0, nullptr}};
extern "C" int launch80(const attnc_cuda_args *a, cudaStream_t s) { return attnc_sm80_launch(a, s, entries80, nullptr); }
extern "C" int launch90(const attnc_cuda_args *a, cudaStream_t s) { return attnc_sm90_launch(a, s, entries90, nullptr); }
