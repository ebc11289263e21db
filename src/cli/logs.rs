//! `facerec logs [PATTERN]`: prints the `logs` exchange live, like the seed's listener.

use super::connection_args::BrokerArgs;
use crate::app;
use crate::log_lines::escape;

/// Print worker progress lines as they are published.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Binding pattern, e.g. `*.worker.info` or `worker-7.#` [default: every line]
    #[arg(default_value = "#")]
    pub pattern: String,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// Runs until interrupted.
pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let settings = args.broker.settings(&app::hostname(None), 1, 20)?;
    let mut tail = app::log_tail(&settings, &args.pattern).await?;
    eprintln!("listening on exchange {:?} for {:?} (Ctrl-C to stop)", settings.logs_exchange, args.pattern);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            next = tail.next() => match next {
                Some(Ok((key, line))) => println!("{key}: {}", escape(&String::from_utf8_lossy(&line))),
                Some(Err(e)) => anyhow::bail!("connection lost: {e}"),
                None => break,
            },
        }
    }
    tail.close().await;
    Ok(())
}
