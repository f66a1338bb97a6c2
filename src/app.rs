//! One function per subcommand: turn the parsed options into the library's
//! configuration, run it, report. Errors carry their exit status.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use synack::framing::Framing;
use synack::serve::{self, EventKind};

use crate::cli::{Cli, CloseArg, Command, FramingArg, LabArgs, ServeArgs};

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
        Command::Serve(ref args) => serve(&cli, args),
    }
}

/// `synack serve`: options → `serve::Config`, bind, stop on SIGINT and
/// SIGTERM, run; one line per event on stdout (with `-q` only the
/// listening line, errors and the summary).
fn serve(cli: &Cli, args: &ServeArgs) -> Result<ExitCode> {
    let mut config = serve::Config::new(args.addr);
    config.reuse_address = !args.no_reuseaddr;
    config.backlog = args.backlog;
    config.max_clients = args.max_clients as usize;
    config.max_connections = args.count;
    config.reply = match (&args.reply, args.echo) {
        (_, true) => serve::Reply::Echo,
        (Some(text), false) => serve::Reply::Text(text.clone().into_bytes()),
        (None, false) => serve::Reply::Text(serve::DEFAULT_REPLY.as_bytes().to_vec()),
    };
    config.framing = args.framing.map(|f| match f {
        FramingArg::LengthPrefix => Framing::LengthPrefix,
        FramingArg::JsonHeader => Framing::JsonHeader,
    });
    config.close = match args.close {
        CloseArg::First => serve::CloseMode::First,
        CloseArg::AfterPeer => serve::CloseMode::AfterPeer,
    };
    config.linger0 = args.linger0;
    config.idle_timeout = args.idle_timeout;
    config.grace = args.grace;
    config.kernel_view = if cli.quiet {
        serve::KernelView::Off
    } else {
        serve::KernelView::Full
    };

    let quiet = cli.quiet;
    let sink: serve::Sink = Arc::new(move |event: &serve::Event| {
        let wanted = !quiet
            || matches!(
                event.kind,
                EventKind::Listening { .. }
                    | EventKind::Stopped { .. }
                    | EventKind::ClientError { .. }
                    | EventKind::AcceptError { .. }
            );
        if wanted {
            // A closed stdout must not stop the server.
            let _ = writeln!(io::stdout().lock(), "{}", serve::format_event(event));
        }
    });
    let server = serve::Server::bind(config, sink)?;
    serve::stop_on_signals(server.stopper())
        .context("installing the SIGINT and SIGTERM handlers")?;
    server.run();
    Ok(ExitCode::SUCCESS)
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
