//! Signals to a [`CancellationToken`]: the first SIGINT/SIGTERM asks for a graceful stop
//! (finish and settle what is in flight), a second one exits at once (unsettled messages
//! return to the queue when the connection drops).

use tokio_util::sync::CancellationToken;

/// Starts listening for signals; the token is cancelled on the first one.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: finishing images in flight (send again to exit at once)");
        cancel.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now; unacknowledged messages will be redelivered");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("cannot install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
