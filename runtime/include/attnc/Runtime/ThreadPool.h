//===- ThreadPool.h - Persistent worker threads for CPU kernels -*- C++ -*-===//
//
// CPU kernels split their work (query tiles x heads x batch) with
// parallelFor. The workers persist across calls, sleep on a condition
// variable when idle (no spinning), and take chunks of the range from an
// atomic counter, so uneven tiles (masked rows, ragged ends) balance
// themselves. The calling thread works too: a pool of N threads runs N-1
// workers plus the caller.
//
// Calls from several threads are serialised; a parallelFor issued from
// inside a parallelFor body (of any pool) runs inline on the calling thread,
// which is what makes nesting deadlock-free. As with any pool of threads, a
// child process after fork() has none of the workers: it must build its own
// pool rather than use one inherited from the parent.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_THREADPOOL_H
#define ATTNC_RUNTIME_THREADPOOL_H

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace attnc::runtime {

class ThreadPool {
public:
  /// A pool of \p numThreads threads including the caller. 0 means
  /// ATTNC_NUM_THREADS if it is set to a positive integer, else
  /// std::thread::hardware_concurrency(). Counts are capped at 1024; if the
  /// system refuses to start threads, the pool runs with those it got.
  explicit ThreadPool(int numThreads = 0);
  /// Stops and joins the workers. No parallelFor may be running.
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  /// The number of threads that run a parallelFor, the caller included.
  int numThreads() const { return int(workers.size()) + 1; }

  /// Calls \p fn(begin, end) on disjoint chunks covering [0, n), in
  /// parallel, and returns when all are done. \p minChunk bounds the chunk
  /// size from below (0 picks one). \p fn must not throw.
  void parallelFor(int64_t n, const std::function<void(int64_t, int64_t)> &fn,
                   int64_t minChunk = 0);

  /// The thread count a pool built with 0 gets (see the constructor).
  static int defaultNumThreads();

  /// A process-wide pool with the default thread count, built on first use.
  static ThreadPool &global();

private:
  struct Job;
  void workerLoop();
  static void runChunks(Job &job);

  std::vector<std::thread> workers;
  std::mutex submitMutex; // serialises parallelFor callers
  std::mutex mutex;       // guards the fields below
  std::condition_variable wake;
  std::shared_ptr<Job> current;
  uint64_t generation = 0;
  bool stopping = false;
};

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_THREADPOOL_H
