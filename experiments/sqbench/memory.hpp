#pragma once
// How much memory a cell needs, estimated from its plan before anything is allocated, and the limits the
// cells of a run must fit in. A cell that cannot fit is refused with exit status 2 before any work, instead
// of dying of std::bad_alloc (or the OOM killer) hours into a sweep and leaving a half-done results folder.
//
// A cell's estimate is sqb::describe's: lib/src/cell.cpp lists the terms of a distribution cell's,
// lib/src/task/memory.cpp a task cell's and what the task cells of a run share (sqb::task::shared_memory).
//
// With --jobs J the J largest cells of the run may be in flight at once, so their estimates add up. The sum
// plus the process itself (16 MiB; a run of tiny cells peaks at 9 MiB resident here) must fit in the physical
// limit (max_memory, else MemAvailable from /proc/meminfo) and the cgroup limit (memory.max; what Slurm
// enforces), and plus the address space the process reserves besides its data (256 MiB + 64 MiB per extra
// job: libraries, thread stacks, malloc arenas) in the address-space limit (RLIMIT_AS, what `ulimit -v`
// sets).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "plan.hpp"

namespace sqbench {

/// One cell's estimated peak in bytes, and the terms it adds up (for the message).
using sqb::MemoryEstimate;

/// Estimates a cell's peak memory (see above). Throws sqb::Error for a kmeans_optimal block whose split table
/// would exceed the spec's max_table_gib (the strategy would refuse it only when the cell runs).
/// With threads > 1 up to that many blocks are designed at once, each with its own workspace.
MemoryEstimate estimate_cell_memory(const Plan& plan, const Cell& cell, int threads = 1);

/// A limit and where it comes from ("MemAvailable in /proc/meminfo", "max_memory = 8G", ...).
struct MemoryLimit {
  std::uint64_t bytes = 0;
  std::string source;
};

struct MemoryLimits {
  std::optional<MemoryLimit> physical;       ///< max_memory, else the machine's available memory
  std::optional<MemoryLimit> cgroup;         ///< the cgroup's memory.max (v2) or memory.limit_in_bytes (v1)
  std::optional<MemoryLimit> address_space;  ///< RLIMIT_AS (soft), when set
};

/// The limits that apply to this process, with `config.max_memory` as the physical limit when given.
MemoryLimits memory_limits(const Config& config);

/// Bytes the process needs besides its cells: resident, and reserved address space with `jobs` workers.
inline constexpr std::uint64_t kProcessBytes = 16ull << 20;
std::uint64_t address_space_overhead(int jobs);

/// Refuses the run (sqb::Error naming the cell, its estimate and the limit) when the cells `cells` (indices
/// into plan.cells: the ones this run will compute) cannot fit: one alone, or the `jobs` largest together.
/// Returns the estimate of the `jobs` largest together (what context.json records).
std::uint64_t check_memory(const Config& config, const Plan& plan, const std::vector<std::size_t>& cells,
                           int jobs, const MemoryLimits& limits, int threads = 1);

/// This process's peak resident memory so far (VmHWM in /proc/self/status: the current program image only, so
/// not what a large parent held before exec), or 0 when unknown.
std::uint64_t peak_resident_bytes();

using sqb::format_bytes;  ///< "7.45 GiB", "512 MiB", "900 B"

}  // namespace sqbench
