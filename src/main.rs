//! The `facerec` binary: parse the command line, set up logging, run the subcommand.
//! A configuration mistake ends the process with status 2 and one line naming the
//! setting; any other failure with status 1.

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = facerec::cli::Cli::parse();
    facerec::telemetry::init(cli.command.default_log_level());
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(facerec::cli::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The error and its causes on one line; a cause already quoted by the message before it
/// (our errors show their source) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

/// 2 for a configuration mistake anywhere in the chain, 1 otherwise.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(app) = cause.downcast_ref::<facerec::app::AppError>() {
            return app.exit_code();
        }
        if cause.is::<facerec::config::ConfigError>() {
            return 2;
        }
    }
    1
}
