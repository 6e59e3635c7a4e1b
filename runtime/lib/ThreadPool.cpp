//===- ThreadPool.cpp - Persistent worker threads for CPU kernels ---------===//
//
// One job at a time: parallelFor publishes a Job under the pool mutex, bumps
// the generation and wakes every worker. Workers and the caller claim chunks
// with fetch_add on Job::next until the range is exhausted and add what
// they ran to Job::done; whoever completes the last chunk wakes the caller.
//
// The Job is shared_ptr-owned because a worker may wake after the job has
// finished (it was slow to be scheduled): it still holds a reference, finds
// no chunk left, and never calls fn, so the caller can return (and destroy
// fn) as soon as all chunks are done, without waiting for stragglers.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <system_error>

using namespace attnc::runtime;

namespace {
/// Depth of parallelFor bodies on this thread, across all pools; a
/// parallelFor at depth > 0 runs inline.
thread_local int tlsDepth = 0;

struct DepthGuard {
  DepthGuard() { ++tlsDepth; }
  ~DepthGuard() { --tlsDepth; }
};

constexpr int kMaxThreads = 1024;
} // namespace

struct ThreadPool::Job {
  const std::function<void(int64_t, int64_t)> *fn;
  int64_t n;
  int64_t chunk;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex doneMutex;
  std::condition_variable doneCv;
};

int ThreadPool::defaultNumThreads() {
  if (const char *env = std::getenv("ATTNC_NUM_THREADS")) {
    char *end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0)
      return int(std::min<long>(v, kMaxThreads));
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : int(std::min<unsigned>(hw, kMaxThreads));
}

ThreadPool::ThreadPool(int numThreads) {
  int n =
      numThreads > 0 ? std::min(numThreads, kMaxThreads) : defaultNumThreads();
  workers.reserve(size_t(n - 1));
  for (int i = 1; i < n; ++i) {
    try {
      workers.emplace_back([this] { workerLoop(); });
    } catch (const std::system_error &) {
      break; // out of threads: run with those we have
    }
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  for (std::thread &t : workers)
    t.join();
}

ThreadPool &ThreadPool::global() {
  static ThreadPool pool(0);
  return pool;
}

void ThreadPool::runChunks(Job &job) {
  DepthGuard depth;
  while (true) {
    int64_t begin = job.next.fetch_add(job.chunk, std::memory_order_relaxed);
    if (begin >= job.n)
      return;
    int64_t end = std::min(job.n, begin + std::min(job.chunk, job.n - begin));
    (*job.fn)(begin, end);
    // acq_rel: the caller's final read of done must see every write fn made.
    if (job.done.fetch_add(end - begin, std::memory_order_acq_rel) +
            (end - begin) ==
        job.n) {
      std::lock_guard<std::mutex> lock(job.doneMutex);
      job.doneCv.notify_all();
    }
  }
}

void ThreadPool::workerLoop() {
  uint64_t seen = 0;
  while (true) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [&] { return stopping || generation != seen; });
      if (stopping)
        return;
      seen = generation;
      job = current;
    }
    if (job)
      runChunks(*job);
  }
}

void ThreadPool::parallelFor(int64_t n,
                             const std::function<void(int64_t, int64_t)> &fn,
                             int64_t minChunk) {
  if (n <= 0)
    return;
  if (workers.empty() || tlsDepth > 0 || n == 1) {
    DepthGuard depth;
    fn(0, n);
    return;
  }
  // About 8 chunks per thread: enough to even out uneven chunks, few enough
  // that the counter is not contended.
  int64_t chunk = std::max<int64_t>(1, n / (int64_t(numThreads()) * 8));
  chunk = std::max(chunk, minChunk);

  std::lock_guard<std::mutex> submit(submitMutex);
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->chunk = chunk;
  {
    std::lock_guard<std::mutex> lock(mutex);
    current = job;
    ++generation;
  }
  wake.notify_all();
  runChunks(*job);
  {
    std::unique_lock<std::mutex> lock(job->doneMutex);
    job->doneCv.wait(
        lock, [&] { return job->done.load(std::memory_order_acquire) == n; });
  }
  std::lock_guard<std::mutex> lock(mutex);
  current.reset();
}
