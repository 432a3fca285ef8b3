//! Reading another process's memory without stopping it: `process_vm_readv` (no ptrace
//! attach, no writes). The process keeps running, so anything read may be torn or stale;
//! callers validate what they read and treat failures as "unknown", never as fatal.

use std::io;

/// Largest single read: bounds the buffer and keeps one failing page from hiding the rest.
const MAX_CHUNK: usize = 1 << 20;
/// iovecs per `process_vm_readv` call (the kernel's IOV_MAX is 1024).
const IOV_BATCH: usize = 1024;

pub struct Memory {
    pid: libc::pid_t,
}

impl Memory {
    pub fn new(pid: u32) -> Memory {
        Memory {
            pid: pid as libc::pid_t,
        }
    }

    /// Reads `buf.len()` bytes at `addr`; fails unless every byte was read.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        for (i, chunk) in buf.chunks_mut(MAX_CHUNK).enumerate() {
            let at = addr
                .checked_add((i * MAX_CHUNK) as u64)
                .ok_or_else(|| io::Error::other("address overflow"))?;
            let local = libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            };
            let remote = libc::iovec {
                iov_base: at as *mut libc::c_void,
                iov_len: chunk.len(),
            };
            // SAFETY: `local` describes memory we own for the duration of the call; the remote
            // iovec is only interpreted by the kernel in the target's address space.
            let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n as usize != chunk.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("short read at {at:#x}"),
                ));
            }
        }
        Ok(())
    }

    /// Fails when the kernel refuses to let this tracer read the process at all, tried on
    /// one byte at `addr` (somewhere mapped): every later read would fail the same way, and
    /// a snapshot would only say it found nothing readable. Other errors are left to the reads.
    pub fn check_access(&self, addr: u64) -> Result<(), super::TargetError> {
        let pid = self.pid as u32;
        match self.read(addr, &mut [0u8; 1]) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                Err(super::TargetError::NoSuchPid(pid))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                let missing =
                    crate::privileges::missing(&[crate::privileges::Capability::SysPtrace]);
                if missing.is_empty() {
                    return Err(super::TargetError::MemoryRefused { pid, source: e });
                }
                Err(super::TargetError::NotPermitted(
                    crate::privileges::MissingCapabilities {
                        action: format!("read the memory of process {pid}"),
                        missing,
                        refusal: Some(e.into()),
                    },
                ))
            }
            _ => Ok(()),
        }
    }

    pub fn u64(&self, addr: u64) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads many equally sized records in few system calls (one iovec pair per record).
    /// Returns one result per address: `None` where the record could not be read entirely
    /// (the kernel stops a batch at the first unreadable record; the rest is retried).
    pub fn read_many(&self, addrs: &[u64], size: usize) -> Vec<Option<Vec<u8>>> {
        if size == 0 {
            return vec![Some(Vec::new()); addrs.len()];
        }
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(addrs.len());
        let mut buf = vec![0u8; size * IOV_BATCH.min(addrs.len().max(1))];
        let mut start = 0;
        while start < addrs.len() {
            let batch = &addrs[start..(start + IOV_BATCH).min(addrs.len())];
            let local: Vec<libc::iovec> = buf
                .chunks_mut(size)
                .take(batch.len())
                .map(|c| libc::iovec {
                    iov_base: c.as_mut_ptr().cast(),
                    iov_len: size,
                })
                .collect();
            let remote: Vec<libc::iovec> = batch
                .iter()
                .map(|&a| libc::iovec {
                    iov_base: a as *mut libc::c_void,
                    iov_len: size,
                })
                .collect();
            // SAFETY: every local iovec points into `buf`, alive and unaliased during the call.
            let n = unsafe {
                libc::process_vm_readv(
                    self.pid,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            let complete = if n < 0 { 0 } else { n as usize / size };
            for rec in buf.chunks(size).take(complete.min(batch.len())) {
                out.push(Some(rec.to_vec()));
            }
            if complete < batch.len() {
                // The record at `complete` failed (or was partial): skip it, go on after it.
                out.push(None);
                start += complete + 1;
            } else {
                start += batch.len();
            }
        }
        out
    }
}

/// Difference between where the executable is mapped and where it was linked: 0 for the usual
/// non-PIE Go binary; for PIE, the start of the mapping of file offset 0 minus the lowest
/// PT_LOAD address (Go links PIE at 0).
pub fn load_bias(pid: u32, lowest_vaddr: u64) -> io::Result<u64> {
    let process = procfs::process::Process::new(pid as i32).map_err(super::io_error)?;
    let exe = process.exe().map_err(super::io_error)?;
    let maps = process.maps().map_err(super::io_error)?;
    let start = maps.iter().find_map(|m| match &m.pathname {
        procfs::process::MMapPath::Path(path) if *path == exe && m.offset == 0 => Some(m.address.0),
        _ => None,
    });
    Ok(start.map_or(0, |s| s.wrapping_sub(lowest_vaddr & !0xfff)))
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of Go's `nanotime`, which `g.waitsince` uses.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dynamic loader's own bias for the main program and its lowest PT_LOAD address.
    fn loader_view() -> (u64, u64) {
        unsafe extern "C" fn first(
            info: *mut libc::dl_phdr_info,
            _size: usize,
            data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: the loader passes a valid info for the main program first, and
            // `data` is the (u64, u64) the caller gave.
            unsafe {
                let info = &*info;
                let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
                let lowest = phdrs
                    .iter()
                    .filter(|p| p.p_type == libc::PT_LOAD)
                    .map(|p| p.p_vaddr)
                    .min()
                    .unwrap_or(0);
                *(data as *mut (u64, u64)) = (info.dlpi_addr, lowest);
            }
            1
        }
        let mut view = (0u64, 0u64);
        // SAFETY: the callback writes only through the pointer to `view`.
        unsafe { libc::dl_iterate_phdr(Some(first), &mut view as *mut _ as *mut libc::c_void) };
        view
    }

    #[test]
    fn the_load_bias_is_where_the_loader_put_this_program() {
        let (bias, lowest) = loader_view();
        assert_eq!(load_bias(std::process::id(), lowest).unwrap(), bias);
    }
}
