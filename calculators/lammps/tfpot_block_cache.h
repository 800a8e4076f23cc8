/* -*- c++ -*- ----------------------------------------------------------
   A CPU allocator for libtorch that keeps large blocks between MD steps.

   Every force evaluation builds and frees the autograd graphs of all model
   stages: hundreds of MB to GB in blocks far above glibc's mmap threshold.
   glibc hands such blocks back to the kernel at free(), and the next step
   page-faults every page in again (zero-filled by the kernel): measured 31% of
   a 4000-atom step. This allocator serves blocks of at least MIN_CACHED bytes
   from a cache of freed blocks (sizes rounded up to 8 steps per power of two,
   so that a block fits the same tensor of the next step when the edge count
   changes a little). At the end of each step (end_step) it frees the cached
   blocks that the step did not reuse, so it holds at most the blocks of one
   step. Smaller blocks go to the default allocator.

   The price is memory: a step allocates and frees blocks of many sizes, and a
   cached block serves only its own size class, so the blocks of one step add
   up to more than the default allocator's peak (measured on one force
   evaluation: +40% per atom in float64, +75% in float32). Hence the switch
   `pair_style tfpot memory_reuse no`.
------------------------------------------------------------------------- */

#ifndef TFPOT_BLOCK_CACHE_H
#define TFPOT_BLOCK_CACHE_H

#include <c10/core/Allocator.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace tfpot {

class BlockCache final : public c10::Allocator {
 public:
  static constexpr std::size_t MIN_CACHED = std::size_t(1) << 20;    // 1 MiB

  // the process-wide instance, installed as libtorch's CPU allocator on first use
  static BlockCache &install();

  c10::DataPtr allocate(std::size_t n) override;
  void copy_data(void *dest, const void *src, std::size_t count) const override;

  // free the cached blocks that were not reused since the previous call
  void end_step();

  std::size_t cached_bytes() const;

 private:
  struct Cached {
    void *ptr;
    std::uint64_t step;    // end_step() count when it was freed
  };
  struct Block {
    void *ptr;
    std::size_t size;
  };

  static std::size_t rounded(std::size_t n);
  static void release(void *block);
  void *take(std::size_t size);
  void put(void *ptr, std::size_t size);

  mutable std::mutex mutex_;
  std::multimap<std::size_t, Cached> free_;    // by size
  std::size_t cached_ = 0;    // bytes in free_
  std::uint64_t step_ = 0;
};

}    // namespace tfpot

#endif
