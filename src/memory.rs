//! Process memory housekeeping.

/// Hands the heap's free pages back to the system (glibc keeps them by default): memory
/// allocated only for a while (loading models, reading the face cache from Redis) would
/// otherwise count in the worker's RSS for good.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; it touches no live data.
    unsafe {
        libc::malloc_trim(0);
    }
}
