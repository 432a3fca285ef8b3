//! Telling the debugging guide's two engines apart by their command lines.
//!
//! `dagger call engine-dev ...` runs the dev engine under test nested inside the released
//! engine: both are `/usr/local/bin/dagger-engine` with comm `dagger-engine`. The inner one
//! is started by the engine-dev toolchain with `--network-name dagger-dev` (plus `--addr`
//! sockets and `--debugaddr 0.0.0.0:6060`); the outer one carries none of that.

/// The network name the engine-dev toolchain gives the inner dev engine.
pub const INNER_NETWORK_NAME: &str = "dagger-dev";

/// The engine flags that locate an engine, as found on its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineFlags {
    /// `--network-name`.
    pub network_name: Option<String>,
    /// Every `--addr`, in order.
    pub addrs: Vec<String>,
    /// `--debugaddr` (pprof and the debug routes).
    pub debugaddr: Option<String>,
}

/// Which of the guide's engines a Dagger engine process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The dev engine under test (`--network-name dagger-dev`).
    Inner,
    /// Any other engine: the released one that runs the dev engine, or a lone engine.
    Outer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inner => "inner",
            Role::Outer => "outer",
        }
    }
}

impl EngineFlags {
    /// Scans every argument (after `argv[0]`) for the three flags, in the forms the engine's
    /// flag parser accepts: one or two dashes, the value after `=` or as the next argument.
    pub fn parse(argv: &[String]) -> EngineFlags {
        let mut flags = EngineFlags::default();
        let mut i = 1;
        while i < argv.len() {
            let arg = &argv[i];
            i += 1;
            let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (body, None),
            };
            if !matches!(name, "network-name" | "addr" | "debugaddr") {
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => match argv.get(i) {
                    Some(next) => {
                        i += 1;
                        next.clone()
                    }
                    None => continue,
                },
            };
            match name {
                "network-name" => flags.network_name = Some(value),
                "addr" => flags.addrs.push(value),
                _ => flags.debugaddr = Some(value),
            }
        }
        flags
    }

    /// The inner dev engine's mark: `--network-name dagger-dev`.
    pub fn is_inner(&self) -> bool {
        self.network_name.as_deref() == Some(INNER_NETWORK_NAME)
    }

    /// The role of a process with these flags, if it is a Dagger engine at all.
    pub fn role(&self, is_engine: bool) -> Option<Role> {
        match (is_engine, self.is_inner()) {
            (false, _) => None,
            (true, true) => Some(Role::Inner),
            (true, false) => Some(Role::Outer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_inner_dev_engine_is_told_apart_from_the_outer_one() {
        // toolchains/engine-dev: the inner engine's command line after the entrypoint's exec.
        let inner = EngineFlags::parse(&argv(
            "/usr/local/bin/dagger-engine --config /etc/dagger/engine.toml \
             --addr unix:///run/dagger-engine.sock --addr tcp://0.0.0.0:1234 \
             --network-name dagger-dev --network-cidr 10.88.0.0/16 --debugaddr 0.0.0.0:6060",
        ));
        assert_eq!(
            inner,
            EngineFlags {
                network_name: Some("dagger-dev".into()),
                addrs: vec![
                    "unix:///run/dagger-engine.sock".into(),
                    "tcp://0.0.0.0:1234".into()
                ],
                debugaddr: Some("0.0.0.0:6060".into()),
            }
        );
        assert_eq!(inner.role(true), Some(Role::Inner));

        // The released engine the CLI starts in its container, and the persistent dev
        // engine of ./hack/dev (not nested, no dagger-dev network).
        let outer = EngineFlags::parse(&argv(
            "/usr/local/bin/dagger-engine --config /etc/dagger/engine.toml --debug",
        ));
        assert_eq!(outer, EngineFlags::default());
        assert_eq!(outer.role(true), Some(Role::Outer));
        let persistent = EngineFlags::parse(&argv(
            "/usr/local/bin/dagger-engine --extra-debug --debugaddr=0.0.0.0:6060",
        ));
        assert_eq!(persistent.debugaddr.as_deref(), Some("0.0.0.0:6060"));
        assert_eq!(persistent.role(true), Some(Role::Outer));

        // Not an engine: no role, whatever its flags.
        assert_eq!(inner.role(false), None);
    }

    #[test]
    fn flag_forms_and_edge_cases() {
        let f = EngineFlags::parse(&argv(
            "e -network-name=dagger-dev -addr=a --addr b --debugaddr",
        ));
        assert!(f.is_inner());
        assert_eq!(f.addrs, ["a", "b"]);
        assert_eq!(f.debugaddr, None, "a flag missing its value is ignored");

        // Another network name is not the dev engine; argv[0] is never a flag.
        assert!(!EngineFlags::parse(&argv("e --network-name dagger-prod")).is_inner());
        assert!(!EngineFlags::parse(&argv("--network-name=dagger-dev")).is_inner());
        // A value that looks like a flag is still the value.
        let f = EngineFlags::parse(&argv("e --addr --network-name dagger-dev"));
        assert_eq!(f.addrs, ["--network-name"]);
        assert!(!f.is_inner());
    }
}
