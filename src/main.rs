//! The `synack` binary: parse the command line, set up logging, run, and
//! map the outcome to an exit status (0 ok, 1 the connection or analysis
//! failed, 2 usage or environment errors).

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::FromArgMatches;

mod app;
mod cli;
mod help;

/// The command line, with the full help of `help.rs`.
fn parse() -> Result<cli::Cli, clap::Error> {
    let mut cmd = help::command();
    let matches = cmd.try_get_matches_from_mut(std::env::args_os())?;
    cli::Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut cmd))
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(err) => {
            // A usage error under --json still ends the JSON lines with an
            // error object; --help and --version print as usual.
            if err.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                app::json_error(err.exit_code() as u8, &err.kind().to_string());
            }
            err.exit()
        }
    };
    app::init_logging(&cli);
    let json = app::wants_json(&cli);
    match app::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if app::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let message = app::message(&err);
            eprintln!("synack: {message}");
            let code = app::exit_status_for(&err);
            if json {
                app::json_error(code, &message);
            }
            ExitCode::from(code)
        }
    }
}
