//! One function per subcommand: turn the parsed options into the library's
//! configuration, run it, report. Errors carry their exit status.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use std::path::PathBuf;
use synack::framing::Framing;
use synack::lab::{self, LabConfig, Offer};
use synack::net::outfile;
use synack::report::Style;
use synack::server::{self, ServerEvent};
use synack::session::{Narration, Output, RunFailure};

use crate::cli::{
    Cli, CloseArg, Closer, ColorChoice, Command, ConnectArgs, ConnectClose, FramingArg,
    InspectArgs, LabArgs, ServeArgs, Side, WatchArgs,
};
use synack::client::faults::Teardown;
use synack::lab::scenario;

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
        Command::Inspect(ref args) => inspect(&cli, args),
        Command::Serve(ref args) => serve(&cli, args),
        Command::Connect(ref args) => connect(&cli, args),
        Command::Watch(ref args) => watch(&cli, args),
        Command::Completions(ref args) => completions(args.shell),
        Command::Man(ref args) => man(args.command.as_deref()),
    }
}

/// `synack completions SHELL`: the completion script, generated from the
/// same clap definitions the parser uses, so it never goes stale.
fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = crate::help::command();
    clap_complete::generate(shell, &mut cmd, "synack", &mut io::stdout().lock());
    Ok(ExitCode::SUCCESS)
}

/// `synack man [COMMAND]`: synack(1) or synack-COMMAND(1) in roff, from
/// the clap definitions.
fn man(command: Option<&str>) -> Result<ExitCode> {
    let mut cmd = crate::help::command();
    // Built, subcommands carry their page names (synack-lab) and usage.
    cmd.build();
    let cmd = match command {
        None => cmd,
        Some(name) => cmd
            .find_subcommand(name)
            .cloned()
            .with_context(|| format!("no manual page for {name}"))?,
    };
    let page = clap_mangen::Man::new(cmd);
    let mut out = io::stdout().lock();
    page.render(&mut out).context("writing the manual page")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `synack serve`: options → `server::Config`, bind, stop on SIGINT,
/// SIGTERM and SIGHUP, run; one line per event on stdout (with `-q` only the
/// listening line, errors and the summary), or with `--json` one JSON line
/// per event (every event; `-q` still leaves the kernel's view out).
fn serve(cli: &Cli, args: &ServeArgs) -> Result<ExitCode> {
    let mut config = server::Config::new(args.addr);
    config.reuse_address = !args.no_reuseaddr;
    config.backlog = args.backlog;
    config.max_clients = args.max_clients as usize;
    config.max_connections = args.count;
    config.reply = match (&args.reply, args.echo) {
        (_, true) => server::Reply::Echo,
        (Some(text), false) => server::Reply::Text(text.clone().into_bytes()),
        (None, false) => server::Reply::Text(server::DEFAULT_REPLY.as_bytes().to_vec()),
    };
    config.framing = args.framing.map(framing);
    config.close = match args.close {
        CloseArg::First => server::CloseMode::First,
        CloseArg::AfterPeer => server::CloseMode::AfterPeer,
    };
    config.linger0 = args.linger0;
    config.idle_timeout = args.idle_timeout;
    config.grace = args.grace;
    config.max_message = args.max_message;
    config.memory_budget = args.memory_budget;
    config.kernel_view = if cli.quiet {
        server::KernelView::Off
    } else {
        server::KernelView::Full
    };

    let quiet = cli.quiet;
    let json = args.json;
    let sink: server::Sink = Arc::new(move |event: &server::Event| {
        if json {
            let _ = writeln!(io::stdout().lock(), "{}", server::format_json(event));
            return;
        }
        let wanted = !quiet
            || matches!(
                event.kind,
                ServerEvent::Listening { .. }
                    | ServerEvent::Stopped { .. }
                    | ServerEvent::Failed { .. }
                    | ServerEvent::Refused { .. }
                    | ServerEvent::Forced
                    | ServerEvent::AcceptError { .. }
            );
        if wanted {
            // A closed stdout must not stop the server.
            let _ = writeln!(io::stdout().lock(), "{}", server::format_event(event));
        }
    });
    // Caught before the bind: a signal while the server starts is held
    // until the server can stop on it (exit 0 with the summary).
    let signals = server::catch_stop_signals()
        .context("installing the SIGINT, SIGTERM and SIGHUP handlers")?;
    let server = server::Server::bind(config, sink)?;
    signals
        .stop(server.stopper())
        .context("starting the signal thread")?;
    server.run();
    Ok(ExitCode::SUCCESS)
}

/// `--framing`, for `serve` and `lab` alike.
fn framing(arg: FramingArg) -> Framing {
    match arg {
        FramingArg::LengthPrefix => Framing::LengthPrefix,
        FramingArg::JsonHeader => Framing::JsonHeader,
    }
}

fn output(cli: &Cli, json: bool) -> Output {
    if json {
        return Output::Json;
    }
    if cli.quiet {
        return Output::Quiet;
    }
    Output::Text(Style {
        verbose: cli.verbose > 0,
        color: use_color(cli),
    })
}

/// The signals that end a run: Ctrl-C (SIGINT), `kill` (SIGTERM), a closed
/// terminal (SIGHUP), Ctrl-\\ (SIGQUIT). Each only sets `flag`, which the
/// client loop and the server thread watch, so the run unwinds: the pcap
/// is flushed and connect's guard removed. `which` keeps the signal's
/// number for the message. Every one of them exits 130, the status the
/// README promises for an interrupted lab or connect.
struct Stop {
    flag: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Stop {
    fn install() -> Result<Stop> {
        let flag = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            // Actions run in the order registered: the number is stored
            // before the flag is seen.
            signal_hook::flag::register_usize(signal, Arc::clone(&which), signal as usize)
                .context("installing the signal handler")?;
            signal_hook::flag::register(signal, Arc::clone(&flag))
                .context("installing the signal handler")?;
        }
        Ok(Stop { flag, which })
    }

    /// "SIGHUP" and so on, for the signal that stopped the run.
    fn signal_name(&self) -> &'static str {
        let number = self.which.load(Ordering::SeqCst) as i32;
        nix::sys::signal::Signal::try_from(number).map_or("a signal", |s| s.as_str())
    }
}

/// Whether to colour stdout: `--color always|never`, or for `auto` the
/// conventions anstream follows (NO_COLOR when non-empty turns colour off,
/// CLICOLOR_FORCE turns it on, CLICOLOR=0 off, else a terminal that is not
/// TERM=dumb). The one place that decides, for every command.
fn use_color(cli: &Cli) -> bool {
    match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            anstream::AutoStream::choice(&io::stdout()) != anstream::ColorChoice::Never
        }
    }
}

/// The lab's output files: the capture (its default name follows
/// `--pcapng`), the server side and the Mermaid file, all different.
fn lab_files(args: &LabArgs) -> Result<(PathBuf, Narration)> {
    let pcap = args.write.clone().unwrap_or_else(|| {
        PathBuf::from(if args.pcapng {
            "synack-lab.pcapng"
        } else {
            "synack-lab.pcap"
        })
    });
    // Never pcapng under a .pcap name: the name would say one format and
    // the bytes another.
    if args.pcapng && pcap.extension().is_some_and(|ext| ext == "pcap") {
        anyhow::bail!(
            "--pcapng writes pcapng, but -w {} names a pcap file: name it {} (a .pcapng name \
             alone is enough), or drop --pcapng",
            pcap.display(),
            pcap.with_extension("pcapng").display()
        );
    }
    distinct_outputs(
        &pcap,
        &[
            ("--server-side", &args.server_side),
            ("--mermaid", &args.mermaid),
        ],
    )?;
    let narration = Narration {
        pcapng: args.pcapng,
        ladder: args.ladder,
        mermaid: args.mermaid.clone(),
        explain: args.explain,
        color: false,
    };
    Ok((pcap, narration))
}

/// Every output file is a file of its own: `-w`'s and each of `more` that
/// was given. By the file, not its spelling (`x.pcap` and `./x.pcap` are
/// one); the run checks again by (device, inode) once the files are open.
fn distinct_outputs(pcap: &PathBuf, more: &[(&str, &Option<PathBuf>)]) -> Result<()> {
    let mut seen = vec![("-w", pcap)];
    for (flag, path) in more {
        if let Some(path) = path {
            let same = seen.iter().find(|(_, p)| outfile::same_output(p, path));
            if let Some((other, other_path)) = same {
                anyhow::bail!(
                    "{flag} {} is also the file of {other} {}: give each output its own file",
                    path.display(),
                    other_path.display()
                );
            }
            seen.push((flag, path));
        }
    }
    Ok(())
}

/// What the client offers in its SYN: today's Linux defaults unless a
/// flag says otherwise. Usage errors (exit status 2) for combinations
/// that cannot be said on the wire.
fn offer(cli: &Cli, args: &LabArgs) -> Result<Offer> {
    let default = Offer::default();
    let wscale = if args.no_wscale {
        None
    } else {
        args.wscale.or(default.wscale)
    };
    let window = args.window.unwrap_or(default.window);
    if window > u32::from(u16::MAX) && wscale.is_none() {
        anyhow::bail!(
            "--window {window} needs window scaling: without it the 16-bit window field says \
             at most 65535 (drop --no-wscale, or ask for 65535 or less)"
        );
    }
    if let Some(shift) = wscale {
        if window >> shift > u32::from(u16::MAX) {
            anyhow::bail!(
                "--window {window} does not fit the 16-bit window field with --wscale {shift} \
                 (at most {}): ask for a larger --wscale",
                u32::from(u16::MAX) << shift
            );
        }
    }
    let explain = cli.verbose > 0
        || args.mss.is_some()
        || args.wscale.is_some()
        || args.no_wscale
        || args.sack
        || args.no_sack
        || args.timestamps
        || args.no_timestamps
        || args.window.is_some();
    Ok(Offer {
        // The link's MTU less the IP and TCP headers, as Linux announces.
        mss: args.mss.unwrap_or(if args.ipv6 {
            synack::lab::IPV6_MSS
        } else {
            default.mss
        }),
        wscale,
        sack: !args.no_sack,
        timestamps: !args.no_timestamps,
        window,
        explain,
    })
}

fn lab(cli: &Cli, args: &LabArgs) -> Result<ExitCode> {
    let (pcap, mut narration) = lab_files(args)?;
    // JSON carries the ladder as plain text.
    narration.color = use_color(cli) && !args.json;
    let data = if args.data.is_empty() {
        vec![b"hello".to_vec()]
    } else {
        args.data.iter().map(|d| d.clone().into_bytes()).collect()
    };
    if args.count.is_some() && data.len() > 1 {
        anyhow::bail!(
            "--count times one write per cycle: give --data once (the kernel's client in the \
             benchmark sends one write too)"
        );
    }
    if args.ipv6 && args.count.is_some() {
        anyhow::bail!(
            "--count is not built over IPv6 yet (the benchmark's kernel client is IPv4): leave \
             out -6, or --count"
        );
    }
    if args.sticky && data.len() < 2 {
        anyhow::bail!(
            "--sticky needs at least two application writes to join: give --data twice or more \
             (e.g. --sticky --data hello --data world)"
        );
    }
    let total: usize = data.iter().map(Vec::len).sum();
    if args.sticky && total > synack::server::READ_BUF_LEN {
        // Measured (Linux 6.18): the server's receive buffer (tcp_rmem's
        // default, 131072 bytes) lets the window close near 94 KB while the
        // application does not read, so 2×120 KB could never all be queued.
        anyhow::bail!(
            "--sticky: the writes total {total} bytes, but the sticky server waits for all of \
             them and then takes them in one recv() of at most {max} bytes; while it waits, \
             its receive buffer fills and its window closes (near 94 KB with Linux's default \
             131072-byte buffer). Give at most {max} bytes in all, or leave out --sticky to \
             see the server read as the data arrives",
            max = synack::server::READ_BUF_LEN
        );
    }
    let cfg = LabConfig {
        port: args.port,
        data,
        sticky: args.sticky,
        framing: args.framing.map(framing),
        udp: args.udp,
        ipv6: args.ipv6,
        offer: offer(cli, args)?,
        reply: args.reply.clone().into_bytes(),
        time_wait: args.time_wait,
        timeout: args.timeout,
        quickack: !args.delayed_ack,
        server_closes_first: args.close == Closer::Server,
        refused: args.refused,
        isn: args.isn,
        teardown: match (args.abort, args.half_close, args.close) {
            (Some(Side::Client), _, _) => Teardown::AbortClient,
            (Some(Side::Server), _, _) => Teardown::AbortServer,
            (None, true, _) => Teardown::HalfClose,
            (None, false, Closer::Simultaneous) => Teardown::Simultaneous,
            (None, false, Closer::Client | Closer::Server) => Teardown::Fin,
        },
        drops: args.drop.clone().unwrap_or_default(),
        pcap,
        output: output(cli, args.json),
        narration,
        server_side: args.server_side.clone(),
    };
    // Combinations that cannot run as described are usage errors (exit 2).
    scenario::check(&cfg.scenario_options()).map_err(|why| anyhow::anyhow!("{why}"))?;
    let stop = Stop::install()?;
    if let Some(count) = args.count {
        return bench(&cfg, count as usize, &stop);
    }
    let result = lab::run(&cfg, Arc::clone(&stop.flag));
    exit_of_run(result, &stop, &cfg.pcap)
}

/// How a run of `lab` or `connect` ends: 0 when the exchange completed, 1
/// when the connection failed, 130 when a signal stopped it (the capture
/// holds every frame up to there), 2 for everything else (a failed stdout
/// says the capture is whole).
fn exit_of_run<T, E>(result: Result<T, E>, stop: &Stop, pcap: &std::path::Path) -> Result<ExitCode>
where
    E: RunFailure + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(err) if err.is_interrupted() => {
            eprintln!(
                "synack: {err} ({}); {} holds every frame up to here",
                stop.signal_name(),
                pcap.display()
            );
            Ok(ExitCode::from(130))
        }
        Err(err) if err.is_connection_failure() => {
            Err(synack::Failed(format!("{err} (the capture is in {})", pcap.display())).into())
        }
        Err(err) if err.is_stdout() => Ok(stdout_failed(&err.into(), pcap)),
        Err(err) => Err(err.into()),
    }
}

/// `synack lab --count N`: the table, also of the cycles done when a
/// signal stopped the run (exit 130). On a terminal, stderr shows how far
/// it got.
fn bench(cfg: &LabConfig, count: usize, stop: &Stop) -> Result<ExitCode> {
    let mut progress = Progress::new(count);
    let flag = Arc::clone(&stop.flag);
    let report = lab::bench::run(cfg, count, flag, &mut |done| progress.show(done));
    progress.clear();
    let report = report?;
    if matches!(cfg.output, Output::Json) {
        let mut out = io::stdout().lock();
        for line in report.json_lines() {
            writeln!(out, "{line}")?;
        }
    } else {
        println!("{}", report.render());
    }
    if report.interrupted {
        eprintln!(
            "synack: interrupted ({}) after {} of {count} cycles; {} holds every frame up to here",
            stop.signal_name(),
            report.count,
            cfg.pcap.display()
        );
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// `cycle N/M` on stderr, rewritten in place at most every
/// [`Progress::EVERY`], only when stderr is a terminal.
struct Progress {
    total: usize,
    /// When the line was last written; None when there is no terminal.
    shown: Option<Option<std::time::Instant>>,
}

impl Progress {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(200);

    fn new(total: usize) -> Progress {
        Progress {
            total,
            shown: io::IsTerminal::is_terminal(&io::stderr()).then_some(None),
        }
    }

    fn show(&mut self, done: usize) {
        let Some(last) = self.shown.as_mut() else {
            return;
        };
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now - at < Self::EVERY) && done < self.total {
            return;
        }
        *last = Some(now);
        let mut err = io::stderr().lock();
        let _ = write!(err, "\rcycle {done}/{}", self.total);
        let _ = err.flush();
    }

    /// Erases the line before the table is printed.
    fn clear(&mut self) {
        if let Some(Some(_)) = self.shown {
            let _ = write!(io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// Stdout failed but the capture was written whole: one sentence that says
/// both, exit status 2; a closed pipe (`| head`) is no error.
fn stdout_failed(err: &anyhow::Error, pcap: &std::path::Path) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let reason = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<io::Error>())
        .map_or_else(|| err.to_string(), ToString::to_string);
    eprintln!(
        "synack: writing the narration to stdout failed ({reason}); the capture {} holds the \
         whole run",
        pcap.display()
    );
    ExitCode::from(2)
}

/// `synack connect`: exit 0 when the exchange completed, 1 when the server
/// refused, reset, stayed silent or was unreachable, 2 when synack could
/// not run, 130 when a signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) stopped it.
fn connect(cli: &Cli, args: &ConnectArgs) -> Result<ExitCode> {
    use synack::connect::{self, CloseMode, ConnectConfig};
    let cfg = ConnectConfig {
        target: args.target,
        data: args.data.iter().map(|d| d.clone().into_bytes()).collect(),
        close: match (args.close, args.expect_reply) {
            (ConnectClose::Client, Some(bytes)) => CloseMode::AfterReply(bytes as usize),
            (ConnectClose::Client, None) => CloseMode::Client,
            (_, Some(_)) => anyhow::bail!("--expect-reply goes with --close client only"),
            (ConnectClose::Server, None) => CloseMode::Server,
            (ConnectClose::Abort, None) => CloseMode::Abort,
        },
        timeout: args.timeout,
        time_wait: args.time_wait,
        iface: args.iface.clone(),
        source: args.source,
        let_kernel_rst: args.let_kernel_rst,
        isn: args.isn,
        pcap: args.write.clone(),
        output: output(cli, args.json),
        narration: Narration {
            // A `.pcapng` name alone asks for the comments.
            pcapng: false,
            ladder: args.ladder,
            mermaid: args.mermaid.clone(),
            explain: args.explain,
            // JSON carries the ladder as plain text.
            color: use_color(cli) && !args.json,
        },
    };
    connect::check_times(cfg.close, cfg.timeout, cfg.time_wait).map_err(anyhow::Error::msg)?;
    distinct_outputs(&cfg.pcap, &[("--mermaid", &cfg.narration.mermaid)])?;
    // The handlers go in before the guard's rule: a signal then only sets
    // the flag, the client loop returns, and the rule is removed.
    let stop = Stop::install()?;
    let result = connect::run(&cfg, Arc::clone(&stop.flag));
    exit_of_run(result, &stop, &cfg.pcap)
}

/// Files larger than this get a progress bar (on a terminal).
const PROGRESS_BAR_FROM_BYTES: u64 = 100_000_000;

/// `synack inspect`: every file in turn, each connection printed as it
/// ends (in every mode), the file's totals after its connections; exit 0
/// when all were read whole, 1 when one was cut or damaged (its report is
/// still printed), 2 when one could not be opened or is not a capture.
fn inspect(cli: &Cli, args: &InspectArgs) -> Result<ExitCode> {
    use std::io::IsTerminal;
    use synack::capture::analyze::{self, Options};
    use synack::capture::reader::CaptureReader;
    use synack::inspect_report::{self as report, ConnectionEvent, FileEvent, Style};

    let style = Style {
        color: use_color(cli),
    };
    let ladder = !(args.json || args.summary || args.no_ladder || cli.quiet);
    let table = !(args.json || args.summary);
    let options = Options {
        ladder,
        idle_timeout_ns: u64::try_from(args.idle_timeout.as_nanos()).unwrap_or(u64::MAX),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut worst: Option<anyhow::Error> = None;
    let mut cut: Option<anyhow::Error> = None;
    let mut total = report::SummaryEvent::new();
    for path in &args.files {
        let stdin = path.as_os_str() == "-";
        let name = if stdin {
            synack::capture::reader::STDIN_NAME.to_string()
        } else {
            path.display().to_string()
        };
        let mut waiting = || {
            eprintln!("synack: {name}: waiting for a writer on this FIFO (Ctrl-C to stop)");
        };
        let opened = if stdin {
            CaptureReader::stdin()
        } else {
            CaptureReader::open_waiting(path, &mut waiting)
        };
        let reader = match opened {
            Ok(reader) => reader,
            Err(err) => {
                if let Some(prev) = worst.replace(anyhow::Error::new(err)) {
                    eprintln!("synack: {}", message(&prev));
                }
                continue;
            }
        };
        let size = (!stdin)
            .then(|| std::fs::metadata(path).ok())
            .flatten()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        let bar = match size {
            Some(len) if len > PROGRESS_BAR_FROM_BYTES && io::stderr().is_terminal() => {
                let bar = indicatif::ProgressBar::new(len);
                if let Ok(look) = indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                ) {
                    bar.set_style(look.progress_chars("=> "));
                }
                bar.set_message(name.clone());
                Some(bar)
            }
            _ => None,
        };
        let mut headed = false;
        let mut write_err: Option<anyhow::Error> = None;
        // Each connection is written and flushed as it ends: read from a
        // pipe (`tcpdump -U -w - | synack inspect -`), it shows at once,
        // and nothing but the live connections is held.
        let mut print = |c: synack::capture::analyze::ConnectionReport| -> Result<()> {
            let mut text = String::new();
            if args.json {
                text = report::json_line(&ConnectionEvent::new(&name, &c))?;
                text.push('\n');
            } else if args.summary {
                text = report::summary_line(&name, &c);
                text.push('\n');
            } else {
                if !headed {
                    headed = true;
                    text.push_str(&report::table_head());
                }
                text.push_str(&report::table_row(&c));
                if ladder {
                    text.push_str(&report::ladder(&c, style));
                    text.push('\n');
                }
            }
            match &bar {
                Some(bar) => {
                    bar.suspend(|| out.write_all(text.as_bytes()).and_then(|()| out.flush()))
                }
                None => out.write_all(text.as_bytes()).and_then(|()| out.flush()),
            }?;
            Ok(())
        };
        let summary = analyze::run_with_progress(
            reader,
            options,
            &mut |c| {
                if write_err.is_none() {
                    if let Err(e) = print(c) {
                        write_err = Some(e);
                    }
                }
            },
            &mut |offset| {
                if let Some(bar) = &bar {
                    bar.set_position(offset);
                }
            },
        );
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        if let Some(e) = write_err {
            return Err(e);
        }
        total.add(&summary);
        if args.json {
            writeln!(
                out,
                "{}",
                report::json_line(&FileEvent::new(&name, &summary))?
            )?;
        } else if table {
            write!(out, "{}", report::file_totals(&name, &summary))?;
        } else {
            for w in &summary.warnings {
                writeln!(out, "{name}: warning: {w}")?;
            }
        }
        out.flush()?;
        if let Some(err) = summary.error {
            let failed = anyhow::Error::new(synack::Failed(err.to_string()));
            if let Some(prev) = cut.replace(failed) {
                eprintln!("synack: {}", message(&prev));
            }
        }
    }
    match (worst, cut) {
        (Some(err), Some(other)) => {
            eprintln!("synack: {}", message(&other));
            Err(err)
        }
        (Some(err), None) | (None, Some(err)) => Err(err),
        (None, None) => {
            if args.json {
                writeln!(out, "{}", report::json_line(&total)?)?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `synack watch`: the kernel filter from --port/--host, the capture
/// file, then the live loop until a signal (exit 0, with a summary).
fn watch(cli: &Cli, args: &WatchArgs) -> Result<ExitCode> {
    use synack::capture::writer::{CaptureWriter, Format, Interface};
    use synack::watch::{self, live, render};

    let iface = match &args.iface {
        Some(name) => name.clone(),
        None => live::default_iface()?,
    };
    let filter = live::filter(&args.port, &args.host, args.udp);
    let filter_text = live::filter_text(&args.port, &args.host, args.udp);
    // The handlers go in first: a signal during the set-up still ends the
    // run cleanly.
    let stop = Stop::install()?;
    let mut link = live::open(&iface, &filter)?;
    let mut capture = match &args.write {
        Some(path) => {
            let out = outfile::create("-w", path)?;
            let description = format!("synack watch on {iface}: {filter_text}");
            let writer = CaptureWriter::new(
                io::BufWriter::new(out.file),
                Format::for_path(path, false),
                &Interface {
                    name: iface.clone(),
                    description,
                },
            )
            .with_context(|| format!("writing {}", path.display()))?;
            Some(writer)
        }
        None => None,
    };
    let options = watch::Options {
        udp: args.udp,
        ladder: args.ladder,
        explain: args.explain,
        comments: capture.as_ref().is_some_and(CaptureWriter::keeps_comments),
    };
    let style = render::TextStyle {
        color: use_color(cli) && !args.json,
        ladder: args.ladder,
    };
    let json = args.json;
    let quiet = cli.quiet;
    // Printed once the capture is open: from here on no frame is missed.
    // Under --json stdout holds JSON only, so the line goes to stderr.
    let to = args
        .write
        .as_ref()
        .map_or(String::new(), |p| format!(", writing {}", p.display()));
    let ready = format!("watching {iface} ({filter_text}){to}; Ctrl-C to stop");
    if json {
        eprintln!("synack: {ready}");
    } else if !quiet {
        println!("{ready}");
    }
    let mut emit = |event: &watch::Event| -> io::Result<()> {
        let mut out = io::stdout().lock();
        if json {
            writeln!(out, "{}", render::json(event, args.ladder))
        } else if !quiet || matches!(event, watch::Event::End(_)) {
            writeln!(out, "{}", render::text(event, style))
        } else {
            Ok(())
        }
    };
    let result = live::run(
        &mut link,
        &iface,
        watch::Watch::new(options),
        capture.as_mut(),
        &stop.flag,
        &mut emit,
    );
    let summary = match result {
        Ok(summary) => summary,
        Err(live::WatchError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS)
        }
        Err(err) => return Err(err.into()),
    };
    let mut out = io::stdout().lock();
    let line = if json {
        render::summary_json(&summary)
    } else {
        render::summary_text(&summary)
    };
    writeln!(out, "{line}")?;
    out.flush()?;
    if let Some(path) = &args.write {
        if !json {
            eprintln!("synack: {} holds every frame seen", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An error and its causes as one line, each said once: a cause whose
/// text an outer message already carries is not repeated (`{:#}` would
/// print `No space left…: No space left…`).
pub fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Exit status 1 for a connection or analysis that failed, 2 for the rest.
pub fn exit_status_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<synack::Failed>()) {
        1
    } else {
        2
    }
}

/// Whether the command prints JSON lines (`--json`).
pub fn wants_json(cli: &Cli) -> bool {
    match &cli.command {
        Command::Lab(args) => args.json,
        Command::Connect(args) => args.json,
        Command::Inspect(args) => args.json,
        Command::Serve(args) => args.json,
        Command::Watch(args) => args.json,
        Command::Completions(_) | Command::Man(_) => false,
    }
}

/// The last JSON line of a run that failed: `{"event": "error", "exit": N,
/// "message": …}` on stdout (the human message still goes to stderr).
pub fn json_error(exit: u8, message: &str) {
    let line = serde_json::json!({ "event": "error", "exit": exit, "message": message });
    let _ = writeln!(io::stdout().lock(), "{line}");
}

/// A closed stdout (`synack … | head`) is not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
