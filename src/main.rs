//! The `perseus` binary: parses the command line, runs it, maps errors to exit codes.

mod cli;

use clap::Parser;
use perseus::error::exit;
use tokio_util::sync::CancellationToken;

fn main() {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            on_signal.cancel();
        });
        match cli::dispatch(cli, stop.clone()).await {
            Ok(()) => exit::OK,
            Err(e) => {
                let code = e
                    .downcast_ref::<perseus::Error>()
                    .map_or(exit::FAILURE, |e| e.exit_code());
                eprintln!("perseus: {e:#}");
                code
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
