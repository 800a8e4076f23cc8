/* ----------------------------------------------------------------------
   tfpot::BlockCache: see tfpot_block_cache.h
------------------------------------------------------------------------- */

#include "tfpot_block_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstring>
#include <new>

namespace tfpot {

BlockCache &BlockCache::install()
{
  // never destroyed: tensors freed during process exit still return their blocks here
  static BlockCache *cache = [] {
    auto *c = new BlockCache();
    c10::SetCPUAllocator(c, /*priority=*/1);
    return c;
  }();
  return *cache;
}

// n rounded up to one of 8 sizes per power of two (at most 12.5% slack)
std::size_t BlockCache::rounded(std::size_t n)
{
  std::size_t top = 1;
  while (top <= n / 2) top <<= 1;    // largest power of two <= n
  const std::size_t step = top / 8;
  return (n + step - 1) / step * step;
}

c10::DataPtr BlockCache::allocate(std::size_t n)
{
  if (n < MIN_CACHED) return c10::GetDefaultCPUAllocator()->allocate(n);
  const std::size_t size = rounded(n);
  void *ptr = take(size);
  if (ptr == nullptr) ptr = c10::alloc_cpu(size);
  return {ptr, new Block{ptr, size}, &BlockCache::release, c10::Device(c10::DeviceType::CPU)};
}

void BlockCache::copy_data(void *dest, const void *src, std::size_t count) const
{
  default_copy_data(dest, src, count);
}

void BlockCache::release(void *block)
{
  auto *b = static_cast<Block *>(block);
  install().put(b->ptr, b->size);
  delete b;
}

void *BlockCache::take(std::size_t size)
{
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_.find(size);
  if (it == free_.end()) return nullptr;
  void *ptr = it->second.ptr;
  free_.erase(it);
  cached_ -= size;
  return ptr;
}

void BlockCache::put(void *ptr, std::size_t size)
{
  std::lock_guard<std::mutex> lock(mutex_);
  free_.emplace(size, Cached{ptr, step_});
  cached_ += size;
}

void BlockCache::end_step()
{
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = free_.begin(); it != free_.end();) {
    if (it->second.step < step_) {
      c10::free_cpu(it->second.ptr);
      cached_ -= it->first;
      it = free_.erase(it);
    } else {
      ++it;
    }
  }
  ++step_;
}

std::size_t BlockCache::cached_bytes() const
{
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}

}    // namespace tfpot
