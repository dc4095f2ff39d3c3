//! The `gateway` binary: parse the command line, set up logging, hand over to
//! the library, turn the outcome into an exit code. Nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use gateway::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let args = Cli::parse();
    let format = if args.log_json {
        gateway::logging::LogFormat::Json
    } else {
        args.log_format
    };
    gateway::logging::init(&args.log, format, "bms-gateway");
    // Bus tasks wait on sockets and timers; one thread carries hundreds of
    // devices, keeps the footprint small and the CPU cost low.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async move {
        match args.command {
            Command::Check {
                config,
                verbose,
                strict,
            } => cli::check(&config, verbose, strict),
            Command::Run(a) => cli::run(a).await,
            Command::Read(a) => cli::read(a).await,
            Command::Scan(a) => cli::scan(a).await,
            Command::Simulate(a) => cli::simulate(a).await,
            Command::Demo(a) => cli::demo(a).await,
            Command::Tickets(a) => cli::tickets(a).await,
            Command::Maintenance(a) => cli::maintenance(a).await,
            Command::Status(a) => cli::status(a),
            Command::Backup(a) => cli::backup(&a),
            Command::Restore(a) => cli::restore(&a),
            Command::Report(a) => cli::report(a),
            Command::Oncall(a) => cli::oncall(a),
            Command::Alerts(a) => cli::alerts(a).await,
            Command::DeadLetters(a) => cli::dead_letters(&a),
            Command::Profile(a) => cli::profile(&a),
            Command::Write(a) => cli::write(a).await,
            Command::Writes(a) => cli::writes(a),
        }
    });
    ExitCode::from(code)
}
