// Rebuild the eBPF object when the linker changes (e.g. after an LLVM upgrade).
fn main() {
    if let Ok(path) = which_bpf_linker() {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn which_bpf_linker() -> Result<String, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bpf-linker"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .ok_or(())
}
