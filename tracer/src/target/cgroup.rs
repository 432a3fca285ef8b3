//! Which container a process runs in, as far as `/proc/PID/cgroup` says.

/// A short container hint from a process's cgroup lines (`hierarchy`, controllers, path):
/// the runtime and the first 12 characters of the container id when the path has one
/// (`docker:0123456789ab`, `containerd:...`, `kubepods:...`, `podman:...`, `crio:...`),
/// otherwise the cgroup path; `None` for the root cgroup.
///
/// The cgroup v2 path is used when it is not `/`; on a v1 or hybrid host whose v2 path is
/// `/`, the first v1 hierarchy that places the process below its root.
pub fn container_hint<'a>(
    groups: impl IntoIterator<Item = (u32, &'a [String], &'a str)>,
) -> Option<String> {
    let mut v1 = None;
    for (hierarchy, controllers, path) in groups {
        if path == "/" || path.is_empty() {
            continue;
        }
        if hierarchy == 0 && controllers.is_empty() {
            return Some(shorten(path));
        }
        if v1.is_none() {
            v1 = Some(path);
        }
    }
    v1.map(shorten)
}

/// Runtime-prefixed component names and the runtime they stand for.
const PREFIXES: &[(&str, &str)] = &[
    ("cri-containerd-", "containerd"),
    ("docker-", "docker"),
    ("libpod-", "podman"),
    ("crio-", "crio"),
];

fn shorten(path: &str) -> String {
    let under = |word: &str| path.split('/').any(|c| c.starts_with(word));
    for component in path.split('/').rev() {
        let name = component.strip_suffix(".scope").unwrap_or(component);
        let (runtime, id) = PREFIXES
            .iter()
            .find_map(|(prefix, runtime)| Some((*runtime, name.strip_prefix(prefix)?)))
            .unwrap_or(("", name));
        if !is_container_id(id) {
            continue;
        }
        let runtime = if under("kubepods") {
            "kubepods"
        } else if !runtime.is_empty() {
            runtime
        } else if under("docker") {
            "docker"
        } else if under("libpod") {
            "podman"
        } else if under("containerd") {
            "containerd"
        } else {
            // An id of a runtime we do not know by name: keep the path around it.
            return path.to_string();
        };
        return format!("{runtime}:{}", &id[..12]);
    }
    path.to_string()
}

/// Container ids are 64 hex digits (docker, containerd, podman, cri-o).
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";

    fn hint(lines: &[&str]) -> Option<String> {
        let parsed: Vec<(u32, Vec<String>, String)> = lines
            .iter()
            .map(|l| {
                let mut it = l.splitn(3, ':');
                let h = it.next().unwrap().parse().unwrap();
                let c = it.next().unwrap();
                let controllers = if c.is_empty() {
                    vec![]
                } else {
                    c.split(',').map(str::to_string).collect()
                };
                (h, controllers, it.next().unwrap().to_string())
            })
            .collect();
        container_hint(
            parsed
                .iter()
                .map(|(h, c, p)| (*h, c.as_slice(), p.as_str())),
        )
    }

    #[test]
    fn runtimes_are_named_with_a_short_id() {
        let short = &ID[..12];
        let cases = [
            (format!("0::/system.slice/docker-{ID}.scope"), "docker"),
            (format!("0::/docker/{ID}"), "docker"),
            (
                format!(
                    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podab12.slice/cri-containerd-{ID}.scope"
                ),
                "kubepods",
            ),
            (format!("0::/kubepods/besteffort/podab12/{ID}"), "kubepods"),
            (
                format!("0::/system.slice/containerd.service/cri-containerd-{ID}.scope"),
                "containerd",
            ),
            (
                format!("0::/machine.slice/libpod-{ID}.scope/container"),
                "podman",
            ),
            (format!("0::/crio-{ID}.scope"), "crio"),
        ];
        for (line, runtime) in cases {
            assert_eq!(hint(&[&line]), Some(format!("{runtime}:{short}")), "{line}");
        }
    }

    #[test]
    fn other_paths_are_kept_and_the_root_is_none() {
        assert_eq!(hint(&["0::/"]), None);
        assert_eq!(
            hint(&["0::/user.slice/user-0.slice/session-3.scope"]),
            Some("/user.slice/user-0.slice/session-3.scope".into())
        );
        // An unknown runtime's id: the path, not a guessed runtime.
        let p = format!("/dagger/{ID}");
        assert_eq!(hint(&[&format!("0::{p}")]), Some(p));
        // Hybrid host: v2 at the root, a v1 hierarchy below it.
        assert_eq!(
            hint(&["9:name=systemd:/", "4:memory:/process_api/9a1e", "0::/"]),
            Some("/process_api/9a1e".into())
        );
        // v2 wins over v1 when both place the process.
        assert_eq!(
            hint(&["4:memory:/a", &format!("0::/docker/{ID}")]),
            Some(format!("docker:{}", &ID[..12]))
        );
    }
}
