//! Reads this process's usage from `/proc/self` (see the module docs for
//! why not `<procfs>/self`).

use super::{parse_self_stat_cpu_ticks, parse_self_status, ProcessSample};

/// Reads `/proc/self/status` and `/proc/self/stat` through `buf` (reused
/// across calls). A file that cannot be read leaves its fields `None`: the
/// agent's own figures are never worth failing the sample for.
pub fn read_process_sample(buf: &mut String) -> ProcessSample {
    let mut sample = ProcessSample::default();
    match crate::collectors::read_file_into(std::path::Path::new("/proc/self/status"), buf) {
        Ok(()) => sample.usage = parse_self_status(buf),
        Err(e) => tracing::debug!(error = %e, "agent: /proc/self/status unreadable"),
    }
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        return sample;
    }
    match crate::collectors::read_file_into(std::path::Path::new("/proc/self/stat"), buf) {
        Ok(()) => {
            if let Some((user, system)) = parse_self_stat_cpu_ticks(buf) {
                let hz = ticks_per_second as f64;
                sample.cpu_user_seconds = Some(user as f64 / hz);
                sample.cpu_system_seconds = Some(system as f64 / hz);
            }
        }
        Err(e) => tracing::debug!(error = %e, "agent: /proc/self/stat unreadable"),
    }
    sample
}
