//! The `loupe` binary: parses the command line and the environment, then hands
//! over to the library. Errors end as one line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOC: store::alloc::Allocator = store::alloc::Allocator;

fn main() -> ExitCode {
    store::alloc::tune();
    let cli = loupe::cli::Cli::parse();
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    loupe::init_logging(&env);
    match loupe::run(cli, env) {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("loupe: error: {e}");
            }
            ExitCode::from(1)
        }
    }
}
