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
// attnc_emu_launch is what test/unit/FakeCudaDriver.cpp calls for a kernel
// that is not its own: it finds the entry in this library by name.
//
//===----------------------------------------------------------------------===//
#include "CudaEmu.h"
#include "attnc/Runtime/CudaABI.h"

#include <ucontext.h>

#include <cstdio>
#include <string>
#include <vector>

namespace attnc_emu {
namespace {

struct PendingCopy {
  unsigned char *dst;
  unsigned char data[16];
  unsigned group;
};

struct Fiber {
  ucontext_t ctx;
  Dim3 tid;
  bool done = false;
  std::vector<PendingCopy> copies; // cp.async not yet waited for
  unsigned committed = 0;          // cp.async groups committed so far
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
  ucontext_t scheduler;
  int cur = -1;
  unsigned barCount = 0, barGen = 0;
  unsigned long long epoch = 0; // bumped whenever a barrier opens or a fiber ends
  void (*entry)(const attnc_cuda_args &) = nullptr;
  const attnc_cuda_args *args = nullptr;
  std::string error;
};

Block B;
constexpr size_t kStackBytes = 256 * 1024;

void yieldToScheduler() { swapcontext(&B.fibers[B.cur].ctx, &B.scheduler); }

void fiberMain() {
  B.entry(*B.args);
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

} // namespace attnc_emu

using namespace attnc_emu;

/// Runs `entry` (an extern "C" kernel taking attnc_cuda_args by value) on a
/// grid of blocks of `threads` threads with `smemBytes` of dynamic shared
/// memory. Returns 0, or 1 with a message in `error` (errorBytes long).
extern "C" int attnc_emu_launch(void *entry, unsigned gx, unsigned gy, unsigned gz,
                                unsigned threads, unsigned smemBytes,
                                const void *args, char *error, unsigned errorBytes) {
  using Kernel = void (*)(attnc_cuda_args);
  static Kernel kernel;
  kernel = reinterpret_cast<Kernel>(entry);
  B.entry = [](const attnc_cuda_args &a) { kernel(a); };
  B.args = static_cast<const attnc_cuda_args *>(args);
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
