//! Multi-uprobe links (`BPF_TRACE_UPROBE_MULTI`, Linux 6.6+): one link attaches a program
//! at many file offsets of one file, each with its own cookie, limited by the kernel to
//! one process. Attaching and detaching thousands of offsets costs one system call each
//! way instead of a perf event (and an RCU grace period, ~0.1 s here) per offset, and the
//! pid filter is resolved in the caller's own PID namespace, so a tracer inside a
//! container names its target by the pid it sees.
//!
//! aya 0.14 has no multi-uprobe support: the program is loaded here with the
//! `BPF_TRACE_UPROBE_MULTI` attach type from aya-obj's relocated instructions (maps
//! created by aya), and links are made with `BPF_LINK_CREATE`.
use std::{
    collections::HashSet,
    ffi::CString,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd},
    path::Path,
};

use aya::{Ebpf, maps::Map};
use aya_obj::generated::{
    bpf_attach_type::BPF_TRACE_UPROBE_MULTI, bpf_attr, bpf_cmd, bpf_insn,
    bpf_prog_type::BPF_PROG_TYPE_KPROBE,
};

use super::{
    ProbeError,
    error::{Cause, not_permitted},
};

/// A loaded program, ready to be linked.
pub struct MultiProgram {
    fd: OwnedFd,
}

/// One attached link; closing it detaches every offset it holds.
pub struct MultiLink {
    _fd: OwnedFd,
    pub offsets: usize,
}

/// The fd of a map aya created, for relocating the program's map references.
fn map_fd(map: &Map) -> Option<RawFd> {
    let data = match map {
        Map::Array(m)
        | Map::HashMap(m)
        | Map::LruHashMap(m)
        | Map::PerCpuArray(m)
        | Map::PerCpuHashMap(m)
        | Map::RingBuf(m)
        | Map::Unsupported(m) => m,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}

fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<RawFd> {
    // SAFETY: `attr` is a fully initialised bpf_attr that lives across the call; the
    // kernel reads at most size_of::<bpf_attr>() bytes of it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret as RawFd)
    }
}

impl MultiProgram {
    /// Loads program `name` of `object` as a multi-uprobe program, its map references
    /// pointing at the maps `ebpf` created from the same object.
    pub fn load(object: &[u8], ebpf: &Ebpf, name: &str) -> Result<MultiProgram, ProbeError> {
        let broken = |e: Cause| ProbeError::Object { source: e };
        let mut obj = aya_obj::Object::parse(object).map_err(|e| broken(e.into()))?;
        let mut fds = Vec::new();
        for map_name in obj.maps.keys() {
            let fd = ebpf
                .map(map_name)
                .and_then(map_fd)
                .ok_or_else(|| broken(format!("map {map_name} was not created").into()))?;
            fds.push((map_name.clone(), fd));
        }
        let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
        let maps = obj.maps.clone();
        let relocations = fds
            .iter()
            .filter_map(|(n, fd)| Some((n.as_str(), *fd, maps.get(n)?)));
        obj.relocate_maps(relocations, &text_sections)
            .map_err(|e| broken(e.into()))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| broken(e.into()))?;
        let program = obj
            .programs
            .get(name)
            .ok_or_else(|| broken(format!("program {name} missing from the object").into()))?;
        let function = obj
            .functions
            .get(&program.function_key())
            .ok_or_else(|| broken(format!("program {name} has no code").into()))?;
        let fd = load_insns(&function.instructions, name)?;
        Ok(MultiProgram { fd })
    }

    /// `r0 = 0; exit`, for checking what the kernel supports.
    pub fn trivial() -> Result<MultiProgram, ProbeError> {
        // SAFETY: all-zero is a valid instruction; the fields are set below.
        let mut mov: bpf_insn = unsafe { std::mem::zeroed() };
        mov.code = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 0
        let mut exit: bpf_insn = unsafe { std::mem::zeroed() };
        exit.code = 0x95; // BPF_JMP | BPF_EXIT
        Ok(MultiProgram {
            fd: load_insns(&[mov, exit], "tracer_check")?,
        })
    }

    /// Attaches at `offsets` of `binary` (one cookie each), only in process `pid` as this
    /// tracer's PID namespace numbers it.
    pub fn attach(
        &self,
        binary: &Path,
        offsets: &[u64],
        cookies: &[u64],
        pid: u32,
    ) -> std::io::Result<MultiLink> {
        use std::os::unix::ffi::OsStrExt;
        let path = CString::new(binary.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: all-zero is a valid bpf_attr.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing the link_create member of the union we just zeroed.
        unsafe {
            let link = &mut attr.link_create;
            link.__bindgen_anon_1.prog_fd = self.fd.as_raw_fd() as u32;
            link.attach_type = BPF_TRACE_UPROBE_MULTI as u32;
            let multi = &mut link.__bindgen_anon_3.uprobe_multi;
            multi.path = path.as_ptr() as u64;
            multi.offsets = offsets.as_ptr() as u64;
            multi.cookies = cookies.as_ptr() as u64;
            multi.cnt = offsets.len() as u32;
            multi.pid = pid;
        }
        let fd = sys_bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)?;
        Ok(MultiLink {
            // SAFETY: the kernel just returned this fd to us.
            _fd: unsafe { OwnedFd::from_raw_fd(fd) },
            offsets: offsets.len(),
        })
    }
}

/// Loads `insns` as program `name`. A refusal is loaded again with a verifier log, which
/// the error keeps (and writes to `$TRACER_VERIFIER_LOG` when set).
fn load_insns(insns: &[bpf_insn], name: &str) -> Result<OwnedFd, ProbeError> {
    let license = c"GPL";
    let try_load = |log: Option<&mut Vec<u8>>| {
        // SAFETY: all-zero is a valid bpf_attr.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing the prog-load member of the union we just zeroed.
        unsafe {
            let load = &mut attr.__bindgen_anon_3;
            load.prog_type = BPF_PROG_TYPE_KPROBE as u32;
            load.expected_attach_type = BPF_TRACE_UPROBE_MULTI as u32;
            load.insns = insns.as_ptr() as u64;
            load.insn_cnt = insns.len() as u32;
            load.license = license.as_ptr() as u64;
            for (dst, src) in load.prog_name.iter_mut().zip(name.bytes().take(15)) {
                *dst = src as libc::c_char;
            }
            if let Some(log) = log {
                load.log_level = 1;
                load.log_buf = log.as_mut_ptr() as u64;
                load.log_size = log.len() as u32;
            }
        }
        sys_bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
    };
    let first = match try_load(None) {
        // SAFETY: the kernel just returned this fd to us.
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(e) => e,
    };
    // EPERM is the capability check, made before the verifier runs: no log to get.
    if first.raw_os_error() == Some(libc::EPERM) {
        return Err(not_permitted("load eBPF programs", first));
    }
    let mut log = vec![0u8; 1 << 20];
    if let Ok(fd) = try_load(Some(&mut log)) {
        // SAFETY: as above.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end]).into_owned();
    if let Some(path) = std::env::var_os("TRACER_VERIFIER_LOG") {
        // Best effort: the refusal is the error to report, not a failure to keep its log.
        let _ = std::fs::write(path, &log);
    }
    // EACCES is also how the verifier refuses a program; without a log it was not the verifier.
    if first.raw_os_error() == Some(libc::EACCES) && log.trim().is_empty() {
        return Err(not_permitted("load eBPF programs", first));
    }
    Err(ProbeError::Verifier {
        program: name.to_string(),
        source: first,
        log,
    })
}
