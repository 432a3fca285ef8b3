use clap::Parser;
use tracer::cli::{Cli, run};

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            // One line: our errors already carry their hint.
            eprintln!("tracer: {err:#}");
            std::process::exit(1);
        }
    }
}
