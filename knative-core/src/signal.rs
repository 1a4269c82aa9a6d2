//! The shutdown signal every long-running component of the platform stops on.

/// Completes when the process is asked to stop: SIGTERM (what the kubelet sends) or Ctrl-C.
///
/// Never panics: when SIGTERM cannot be watched (it can only fail when the signal driver cannot
/// be set up), a warning says so and only Ctrl-C is waited for.
///
/// ```no_run
/// # async fn serve_until(_: impl std::future::Future<Output = ()>) {}
/// # async fn example() {
/// serve_until(knative_core::signal::shutdown()).await;
/// # }
/// ```
pub async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
