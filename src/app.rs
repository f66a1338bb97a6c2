//! One function per subcommand: turn the parsed options into the library's
//! configuration, run it, report. Errors carry their exit status.

use std::io;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, LabArgs};

/// Logging goes to stderr; the narration is the product and goes to stdout.
pub fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0 | 1) => log::LevelFilter::Warn,
        (false, 2) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("SYNACK_LOG")
        .format_timestamp(None)
        .init();
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Lab(ref args) => lab(&cli, args),
    }
}

fn lab(_cli: &Cli, _args: &LabArgs) -> Result<ExitCode> {
    anyhow::bail!("the lab is not wired up yet")
}

/// Exit status 1 for a connection or analysis that failed, 2 for the rest.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|cause| cause.is::<synack::Failed>()) {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    }
}

/// A closed stdout (`synack … | head`) is not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
