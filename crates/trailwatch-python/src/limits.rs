//! Resource limits of a worker process, set from the outside with prlimit(2) before the worker
//! is told to load user code (the workspace forbids `unsafe`, which a `pre_exec` hook needs).

/// Caps the worker's address space at `memory_mb` MB (RLIMIT_AS: allocations past it fail with
/// `MemoryError` in Python) and disables core dumps.
#[cfg(target_os = "linux")]
pub(crate) fn apply(pid: Option<u32>, memory_mb: u32) -> std::io::Result<()> {
    use rustix::process::{Pid, Resource, Rlimit, prlimit};
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("the worker has no pid (it already exited)"))?;
    let bytes = u64::from(memory_mb) * 1024 * 1024;
    let limit = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    prlimit(Some(pid), Resource::As, limit(bytes))?;
    prlimit(Some(pid), Resource::Core, limit(0))?;
    Ok(())
}

/// Elsewhere there is no prlimit: the runtime refuses to start (see `PythonRuntime::start`).
#[cfg(not(target_os = "linux"))]
pub(crate) fn apply(_pid: Option<u32>, _memory_mb: u32) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "memory limits need Linux (prlimit); the Python runtime is not available here",
    ))
}
