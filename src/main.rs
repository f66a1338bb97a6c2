//! The `synack` binary: parse the command line, set up logging, run, and
//! map the outcome to an exit status (0 ok, 1 the connection or analysis
//! failed, 2 usage or environment errors).

use std::process::ExitCode;

use clap::Parser;

mod app;
mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    app::init_logging(&cli);
    match app::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if app::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("synack: {err:#}");
            app::exit_code_for(&err)
        }
    }
}
