//! The `facerec` binary: parse the command line, set up logging, run the subcommand.

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = facerec::cli::Cli::parse();
    facerec::telemetry::init(cli.command.default_log_level());
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(facerec::cli::run(cli))
}
