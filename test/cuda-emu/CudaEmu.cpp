//===- CudaEmu.cpp - The CPU side of CudaEmu.h: blocks of fibers ----------===//
//
// A launch runs its blocks one after another; a block's threads are fibers
// (ucontext) on the calling thread, switched only at barriers: __syncthreads
// and the warp exchanges of the collectives (shuffles, ldmatrix, mma.sync).
// A pass over the fibers in which no barrier opens and no fiber ends is a
// deadlock (say, a barrier in divergent code) and fails the launch. Shared
// memory is poisoned with 0xff bytes (NaN in f16 and bf16) before every
// block, every ldmatrix row and cp.async chunk is checked to be 16-byte
// aligned inside it, and a cp.async lands only at the wait_group that
// covers its group.
//
// attnc_emu_launch is what test/runtime/FakeCudaDriver.cpp calls for a kernel
// that is not its own: it finds the entry in this library by name.
//
//===----------------------------------------------------------------------===//
#include "CudaEmu.h"
#include "attnc/Runtime/CudaABI.h"

#include <ucontext.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace attnc_emu {
namespace {

struct PendingCopy {
  unsigned char *dst;
  unsigned char data[16];
  unsigned group;
};

/// A wgmma issued and not yet waited for: it runs at the wait_group that
/// covers its group, reading its operands then (registers and shared
/// memory), so a kernel that changes them or reads the accumulator before
/// that wait computes a wrong result here.
struct PendingMma {
  bool ss;
  float *d;
  int n;
  uint64_t a;
  const unsigned *aRegs;
  uint64_t b;
  int accumulate;
  bool bf16;
  unsigned group;
};

struct Fiber {
  ucontext_t ctx;
  Dim3 tid;
  bool done = false;
  std::vector<PendingCopy> copies; // cp.async not yet waited for
  unsigned committed = 0;          // cp.async groups committed so far
  std::vector<PendingMma> mmas;    // wgmma not yet waited for
  unsigned mmaCommitted = 0;       // wgmma groups committed so far
};

struct Mbarrier {
  unsigned count = 0, pending = 0, phase = 0;
  long long tx = 0;
};

/// A named barrier (bar.sync / bar.arrive with an id and a thread count).
struct NamedBarrier {
  unsigned count = 0, gen = 0;
};

struct WarpState {
  unsigned count = 0, gen = 0;
  alignas(16) unsigned char slot[32][64];
};

struct Block {
  Dim3 grid, block, idx;
  unsigned threads = 0, live = 0;
  std::vector<Fiber> fibers;
  std::vector<std::vector<char>> stacks;
  std::vector<WarpState> warps;
  std::vector<unsigned char> smem;
  std::map<unsigned, Mbarrier> mbarriers; // by shared-memory offset
  std::map<unsigned, NamedBarrier> named;  // by barrier id (1..15)
  ucontext_t scheduler;
  int cur = -1;
  unsigned barCount = 0, barGen = 0;
  unsigned long long epoch = 0; // bumped whenever a barrier opens or a fiber ends
  void (*entry)() = nullptr;
  std::string error;
};

Block B;
constexpr size_t kStackBytes = 256 * 1024;

void yieldToScheduler() { swapcontext(&B.fibers[B.cur].ctx, &B.scheduler); }

void fiberMain() {
  B.entry();
  B.fibers[B.cur].done = true;
  --B.live;
  ++B.epoch;
  // A block barrier that waited only for this thread opens now.
  if (B.barCount > 0 && B.barCount >= B.live) {
    B.barCount = 0;
    ++B.barGen;
  }
  // uc_link returns to the scheduler.
}

void fail(const std::string &message) {
  if (B.error.empty())
    B.error = message;
}

void warpBarrier(WarpState &w) {
  const unsigned gen = w.gen;
  if (++w.count == 32) {
    w.count = 0;
    ++w.gen;
    ++B.epoch;
    return;
  }
  while (w.gen == gen)
    yieldToScheduler();
}

WarpState &myWarp() { return B.warps[B.fibers[B.cur].tid.x / 32]; }

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
} // namespace

const Dim3 &threadIndex() { return B.fibers[B.cur].tid; }
const Dim3 &blockIndex() { return B.idx; }
const Dim3 &blockDims() { return B.block; }
const Dim3 &gridDims() { return B.grid; }
unsigned laneId() { return B.fibers[B.cur].tid.x % 32; }
unsigned char *sharedMemory() { return B.smem.data(); }

void syncthreads() {
  const unsigned gen = B.barGen;
  if (++B.barCount >= B.live) {
    B.barCount = 0;
    ++B.barGen;
    ++B.epoch;
    return;
  }
  while (B.barGen == gen)
    yieldToScheduler();
}

/// One thread's arrival at named barrier `id` of `count` threads; the
/// arrival that completes the count opens it (and resets it). `wait`: also
/// block until then (bar.sync), else return at once (bar.arrive).
void namedBarrier(unsigned id, unsigned count, bool wait) {
  if (id == 0 || id > 15 || count == 0 || count % 32 != 0)
    fail("bar: id " + std::to_string(id) + " count " + std::to_string(count) +
         " (ids 1-15, a multiple of 32 threads)");
  NamedBarrier &n = B.named[id];
  const unsigned gen = n.gen;
  if (++n.count >= count) {
    n.count = 0;
    ++n.gen;
    ++B.epoch;
    return;
  }
  while (wait && n.gen == gen && B.error.empty())
    yieldToScheduler();
}

void warpDeposit(const void *data, unsigned bytes) {
  WarpState &w = myWarp();
  std::memcpy(w.slot[laneId()], data, bytes);
  warpBarrier(w);
}
const void *warpPeek(unsigned lane) { return myWarp().slot[lane % 32]; }
void warpEnd() { warpBarrier(myWarp()); }

unsigned short floatToBf16(float x) {
  uint32_t u = bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return 0x7fc0; // NaN
  u += 0x7fffu + ((u >> 16) & 1u); // round to nearest even
  return (unsigned short)(u >> 16);
}
unsigned short floatToF16(float x) {
  _Float16 h = (_Float16)x;
  unsigned short r;
  std::memcpy(&r, &h, 2);
  return r;
}
float bf16ToFloat(unsigned short h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float f16ToFloat(unsigned short h) {
  _Float16 f;
  std::memcpy(&f, &h, 2);
  return (float)f;
}

void cpAsync(void *dst, const void *src, int bytes) {
  Fiber &f = B.fibers[B.cur];
  unsigned char *d = static_cast<unsigned char *>(dst);
  if (d < B.smem.data() || d + 16 > B.smem.data() + B.smem.size() ||
      (d - B.smem.data()) % 16 != 0)
    fail("cp.async: destination " + std::to_string(d - B.smem.data()) +
         " is not a 16-byte aligned chunk of shared memory");
  PendingCopy c{d, {}, f.committed};
  std::memcpy(c.data, src, size_t(bytes)); // the rest stays zero
  f.copies.push_back(c);
}
void cpCommit() { ++B.fibers[B.cur].committed; }
void cpWait(int keepNewest) {
  Fiber &f = B.fibers[B.cur];
  // Groups below `limit` complete; copies not yet committed stay too.
  const unsigned limit = f.committed >= unsigned(keepNewest) ? f.committed - unsigned(keepNewest) : 0;
  std::vector<PendingCopy> left;
  for (const PendingCopy &c : f.copies) {
    if (c.group < limit)
      std::memcpy(c.dst, c.data, 16);
    else
      left.push_back(c);
  }
  f.copies.swap(left);
}

void ldmatrix(unsigned *r, int count, bool trans, const void *p) {
  const unsigned char *base = B.smem.data(), *end = base + B.smem.size();
  const unsigned char *mine = static_cast<const unsigned char *>(p);
  const unsigned lane = laneId();
  // Lanes 0..8*count-1 give the rows; the others' addresses are ignored.
  if (lane < unsigned(8 * count) &&
      (mine < base || mine + 16 > end || (mine - base) % 16 != 0))
    fail("ldmatrix: lane " + std::to_string(lane) + " row address " +
         std::to_string(mine - base) + " is not a 16-byte aligned row of shared memory (" +
         std::to_string(B.smem.size()) + " bytes)");
  warpDeposit(&mine, sizeof mine);
  auto row = [&](int m, unsigned rIdx) -> const unsigned char * {
    const unsigned char *a;
    std::memcpy(&a, warpPeek(unsigned(8 * m) + rIdx), sizeof a);
    return a < base || a + 16 > end ? nullptr : a;
  };
  for (int m = 0; m < count; ++m) {
    unsigned short lo = 0xffff, hi = 0xffff;
    if (!trans) {
      if (const unsigned char *a = row(m, lane / 4)) {
        std::memcpy(&lo, a + (lane % 4) * 4, 2);
        std::memcpy(&hi, a + (lane % 4) * 4 + 2, 2);
      }
    } else {
      const unsigned char *a0 = row(m, 2 * (lane % 4)), *a1 = row(m, 2 * (lane % 4) + 1);
      if (a0)
        std::memcpy(&lo, a0 + (lane / 4) * 2, 2);
      if (a1)
        std::memcpy(&hi, a1 + (lane / 4) * 2, 2);
    }
    r[m] = unsigned(lo) | unsigned(hi) << 16;
  }
  warpEnd();
}

void mma16816(float *d, const unsigned *a, const unsigned *b, bool bf16) {
  unsigned regs[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  warpDeposit(regs, sizeof regs);
  auto half = [&](unsigned lane, int reg, int hi) {
    unsigned v;
    std::memcpy(&v, static_cast<const unsigned char *>(warpPeek(lane)) + 4 * reg, 4);
    unsigned short h = (unsigned short)(hi ? v >> 16 : v & 0xffffu);
    return bf16 ? bf16ToFloat(h) : f16ToFloat(h);
  };
  // PTX ISA, mma.m16n8k16 (.bf16/.f16): A row-major 16x16, B column-major
  // 16x8, C/D 16x8; group g = lane / 4, t = lane % 4.
  auto A = [&](int r, int k) {
    return half(unsigned((r % 8) * 4 + (k % 8) / 2), r / 8 + 2 * (k / 8), k % 2);
  };
  auto Bm = [&](int k, int n) {
    return half(unsigned(n * 4 + (k % 8) / 2), 4 + k / 8, k % 2);
  };
  const unsigned lane = laneId(), g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) {
    const int r = int(g) + (i >= 2 ? 8 : 0), n = int(2 * t) + i % 2;
    float acc = d[i];
    for (int k = 0; k < 16; ++k)
      acc += A(r, k) * Bm(k, n);
    d[i] = acc;
  }
  warpEnd();
}


// ---- sm_90a: mbarriers, TMA, wgmma ----
namespace {
Mbarrier &mbar(unsigned bar) {
  auto it = B.mbarriers.find(bar);
  if (it == B.mbarriers.end()) {
    fail("mbarrier at " + std::to_string(bar) + " used before mbarrier.init");
    static Mbarrier dummy;
    return dummy;
  }
  return it->second;
}
void completeIfDone(Mbarrier &m) {
  if (m.pending == 0 && m.tx == 0) {
    ++m.phase;
    m.pending = m.count;
    ++B.epoch;
  }
}
// The 128-byte swizzle: the 16-byte chunk (address bits 4-6) XOR the row
// within 8 rows of 128 bytes (bits 7-9).
unsigned swizzle128(unsigned byte) { return byte ^ (((byte >> 7) & 7u) << 4); }
unsigned short smemHalf(unsigned byte) {
  unsigned a = swizzle128(byte);
  if (a + 2 > B.smem.size()) {
    fail("wgmma reads shared byte " + std::to_string(a) + " of " +
         std::to_string(B.smem.size()));
    return 0;
  }
  unsigned short h;
  std::memcpy(&h, B.smem.data() + a, 2);
  return h;
}
struct Desc {
  unsigned start, lbo, sbo;
};
Desc decode(uint64_t d) {
  if ((d >> 62) != 1)
    fail("wgmma descriptor without the 128-byte swizzle");
  return {unsigned(d & 0x3FFF) << 4, unsigned((d >> 16) & 0x3FFF) << 4,
          unsigned((d >> 32) & 0x3FFF) << 4};
}
float toFloat(unsigned short h, bool bf16) { return bf16 ? bf16ToFloat(h) : f16ToFloat(h); }
} // namespace

void mbarInit(unsigned bar, unsigned count) {
  Mbarrier m;
  m.count = m.pending = count;
  B.mbarriers[bar] = m;
}
void mbarArrive(unsigned bar) {
  Mbarrier &m = mbar(bar);
  if (m.pending == 0)
    fail("mbarrier at " + std::to_string(bar) + ": more arrivals than its count");
  else
    --m.pending;
  completeIfDone(m);
}
void mbarExpectTx(unsigned bar, unsigned bytes) {
  mbar(bar).tx += bytes;
  mbarArrive(bar);
}
void mbarWait(unsigned bar, unsigned parity) {
  // The phase of parity `parity` has completed once the current phase's
  // parity differs from it.
  while ((mbar(bar).phase & 1u) == (parity & 1u) && B.error.empty())
    yieldToScheduler();
}

void tmaLoad(unsigned dst, const void *map, unsigned bar, int d, int l, int h, int b) {
  // The words FakeCudaDriver's cuTensorMapEncodeTiled stores: address,
  // dims[4], byte strides of dims 1..3, box[0], box[1], swizzle, element
  // bytes.
  uint64_t w[16];
  std::memcpy(w, map, sizeof w);
  const unsigned char *base = reinterpret_cast<const unsigned char *>(uintptr_t(w[0]));
  const uint64_t dims[4] = {w[1], w[2], w[3], w[4]}, strides[3] = {w[5], w[6], w[7]};
  const unsigned box0 = unsigned(w[8]), box1 = unsigned(w[9]), elem = unsigned(w[11]);
  if (w[10] != 1 || elem != 2 || box0 * elem != 128)
    fail("TMA: the emulation knows 128-byte swizzled boxes of 64 16-bit elements only");
  if (dst % 1024 != 0)
    fail("TMA: destination " + std::to_string(dst) + " is not 1024-byte aligned");
  if (dst + box1 * 128 > B.smem.size())
    fail("TMA: the box does not fit in shared memory");
  if (!B.error.empty())
    return;
  for (unsigned r = 0; r < box1; ++r)
    for (unsigned c = 0; c < box0; ++c) {
      const long long cd = (long long)d + c, cl = (long long)l + r;
      unsigned short v = 0;
      if (cd >= 0 && cl >= 0 && b >= 0 && h >= 0 && uint64_t(cd) < dims[0] &&
          uint64_t(cl) < dims[1] && uint64_t(h) < dims[2] && uint64_t(b) < dims[3])
        std::memcpy(&v, base + cd * elem + cl * strides[0] + h * strides[1] + b * strides[2], 2);
      std::memcpy(B.smem.data() + swizzle128(dst + r * 128 + c * 2), &v, 2);
    }
  Mbarrier &m = mbar(bar);
  m.tx -= (long long)box0 * box1 * elem;
  completeIfDone(m);
}

// D (64 x n, this thread's fragment) = A (64 x 16) * B^T, A and B K-major in
// shared memory: element (row, k) at start + (row / 8) SBO + (row % 8) 128
// + 2 k, swizzled.
namespace {
void runWgmmaSS(float *d, int n, uint64_t a, uint64_t b, int accumulate, bool bf16) {
  const Desc da = decode(a), db = decode(b);
  const unsigned wtid = B.fibers[B.cur].tid.x % 128, w = wtid / 32, lane = wtid % 32;
  const unsigned g = lane / 4, t = lane % 4;
  for (int nb = 0; nb < n / 8; ++nb)
    for (int r = 0; r < 4; ++r) {
      const unsigned row = 16 * w + g + 8 * (r / 2), col = 8 * nb + 2 * t + r % 2;
      float acc = accumulate ? d[4 * nb + r] : 0.f;
      for (unsigned k = 0; k < 16; ++k)
        acc += toFloat(smemHalf(da.start + (row / 8) * da.sbo + (row % 8) * 128 + 2 * k), bf16) *
               toFloat(smemHalf(db.start + (col / 8) * db.sbo + (col % 8) * 128 + 2 * k), bf16);
      d[4 * nb + r] = acc;
    }
}

// D += A (registers, the m16n8k16 A layout per warp) * B, B N-major in
// shared memory: element (k, col) at start + (col / 64) LBO + (k / 8) SBO +
// (k % 8) 128 + 2 (col % 64), swizzled.
void runWgmmaRS(float *d, int n, const unsigned *a, uint64_t b, int accumulate, bool bf16) {
  const Desc db = decode(b);
  warpDeposit(a, 16);
  const unsigned lane = laneId(), g = lane / 4, t = lane % 4;
  auto A = [&](unsigned r, unsigned k) { // r: row within the warp's 16
    unsigned v;
    std::memcpy(&v, static_cast<const unsigned char *>(
                        warpPeek((r % 8) * 4 + (k % 8) / 2)) + 4 * (r / 8 + 2 * (k / 8)), 4);
    return toFloat((unsigned short)(k % 2 ? v >> 16 : v & 0xffffu), bf16);
  };
  for (int nb = 0; nb < n / 8; ++nb)
    for (int r = 0; r < 4; ++r) {
      const unsigned row = g + 8 * (r / 2), col = 8 * nb + 2 * t + r % 2;
      float acc = accumulate ? d[4 * nb + r] : 0.f;
      for (unsigned k = 0; k < 16; ++k)
        acc += A(row, k) *
               toFloat(smemHalf(db.start + (col / 64) * db.lbo + (k / 8) * db.sbo +
                                (k % 8) * 128 + 2 * (col % 64)), bf16);
      d[4 * nb + r] = acc;
    }
  warpEnd();
}
} // namespace

void wgmmaSS(float *d, int n, uint64_t a, uint64_t b, int accumulate, bool bf16) {
  Fiber &f = B.fibers[B.cur];
  f.mmas.push_back({true, d, n, a, nullptr, b, accumulate, bf16, f.mmaCommitted});
}
void wgmmaRS(float *d, int n, const unsigned *a, uint64_t b, int accumulate, bool bf16) {
  Fiber &f = B.fibers[B.cur];
  f.mmas.push_back({false, d, n, 0, a, b, accumulate, bf16, f.mmaCommitted});
}
void wgmmaCommit() { ++B.fibers[B.cur].mmaCommitted; }
void wgmmaWait(unsigned groups) {
  Fiber &f = B.fibers[B.cur];
  // Groups committed before the `groups` newest ones complete, in order.
  std::vector<PendingMma> run, keep;
  for (const PendingMma &m : f.mmas)
    (m.group + groups < f.mmaCommitted ? run : keep).push_back(m);
  f.mmas = keep;
  for (const PendingMma &m : run) {
    if (m.ss)
      runWgmmaSS(m.d, m.n, m.a, m.b, m.accumulate, m.bf16);
    else
      runWgmmaRS(m.d, m.n, m.aRegs, m.b, m.accumulate, m.bf16);
  }
}

} // namespace attnc_emu

using namespace attnc_emu;

/// Runs `entry` (an extern "C" kernel taking attnc_cuda_args by value, and
/// attnc_tma_maps when `maps` is not null) on a grid of blocks of `threads`
/// threads with `smemBytes` of dynamic shared memory. Returns 0, or 1 with a
/// message in `error` (errorBytes long).
extern "C" int attnc_emu_launch(void *entry, unsigned gx, unsigned gy, unsigned gz,
                                unsigned threads, unsigned smemBytes, const void *args,
                                const void *maps, char *error, unsigned errorBytes) {
  using Kernel = void (*)(attnc_cuda_args);
  using TmaKernel = void (*)(attnc_cuda_args, attnc_tma_maps);
  static void *fn;
  static const attnc_cuda_args *theArgs;
  static const attnc_tma_maps *theMaps;
  fn = entry;
  theArgs = static_cast<const attnc_cuda_args *>(args);
  theMaps = static_cast<const attnc_tma_maps *>(maps);
  if (theMaps)
    B.entry = [] { reinterpret_cast<TmaKernel>(fn)(*theArgs, *theMaps); };
  else
    B.entry = [] { reinterpret_cast<Kernel>(fn)(*theArgs); };
  B.grid = {gx, gy, gz};
  B.block = {threads, 1, 1};
  B.threads = threads;
  B.error.clear();
  if (threads == 0 || threads > 1024 || threads % 32 != 0) {
    std::snprintf(error, errorBytes, "emulated launch: %u threads per block", threads);
    return 1;
  }
  B.fibers.assign(threads, Fiber());
  if (B.stacks.size() < threads)
    B.stacks.resize(threads, std::vector<char>(kStackBytes));
  B.warps.assign(threads / 32, WarpState());
  for (unsigned z = 0; z < gz && B.error.empty(); ++z)
    for (unsigned y = 0; y < gy && B.error.empty(); ++y)
      for (unsigned x = 0; x < gx && B.error.empty(); ++x) {
        B.idx = {x, y, z};
        B.smem.assign(smemBytes ? smemBytes : 16, 0xff);
        B.mbarriers.clear();
        B.named.clear();
        B.live = threads;
        B.barCount = 0;
        for (WarpState &w : B.warps)
          w.count = 0;
        for (unsigned i = 0; i < threads; ++i) {
          Fiber &f = B.fibers[i];
          f.done = false;
          f.tid = {i, 0, 0};
          f.copies.clear();
          f.committed = 0;
          f.mmas.clear();
          f.mmaCommitted = 0;
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = B.stacks[i].data();
          f.ctx.uc_stack.ss_size = kStackBytes;
          f.ctx.uc_link = &B.scheduler;
          makecontext(&f.ctx, fiberMain, 0);
        }
        while (B.live > 0 && B.error.empty()) {
          const unsigned long long before = B.epoch;
          for (unsigned i = 0; i < threads; ++i) {
            if (B.fibers[i].done)
              continue;
            B.cur = int(i);
            swapcontext(&B.scheduler, &B.fibers[i].ctx);
          }
          if (B.live > 0 && B.epoch == before)
            fail("deadlock: no barrier opened and no thread ended in block (" +
                 std::to_string(x) + ", " + std::to_string(y) + ", " +
                 std::to_string(z) + ")");
        }
      }
  if (!B.error.empty()) {
    std::snprintf(error, errorBytes, "%s", B.error.c_str());
    return 1;
  }
  return 0;
}
