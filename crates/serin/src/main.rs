#![forbid(unsafe_code)]
//! The `serin` binary: see `serin --help`.

/// jemalloc rather than the C library's allocator: it gives freed memory back to the system
/// (glibc keeps what a watch's first list allocated), its per-thread caches keep the
/// allocation-heavy JSON work of a reconcile off a shared lock, and it is the same allocator
/// whichever C library the binary is linked with (musl's own is slow).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    serin::tls::install_default();
    serin::cli::main()
}
