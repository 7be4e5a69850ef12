//! The `chinwag` binary: parses the command line and hands over to the library.

/// jemalloc keeps the many small, long-lived allocations of idle streams compact: measured with
/// the load tool, about 15 KiB of resident memory per idle SSE stream against 16-17 with glibc's
/// allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts (`_RJEM_MALLOC_CONF` in the environment overrides
/// them): one arena instead of four per core, and freed pages returned after 1 s instead of 10 s.
/// Stalled clients then grow the server by about a third less, with no loss of throughput
/// (measured in docs/operations.md, "Memory the allocator keeps").
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf = MallocConf(c"narenas:1,dirty_decay_ms:1000".as_ptr());

/// A C string in a static: jemalloc reads the symbol as a `const char *`.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points at a string literal, which lives as long as the program and is never written.
unsafe impl Sync for MallocConf {}

fn main() -> std::process::ExitCode {
    chinwag::cli::main()
}
