//! The `perseus` binary: parses the command line, runs it, maps errors to exit codes.

mod bench;
mod cli;

use perseus::error::exit;
use tokio_util::sync::CancellationToken;

fn main() {
    let cli = cli::parse();
    if let Some(a) = cli.disk_layer() {
        let code = match perseus::disk::serve(&a.backing, &a.mount, &a.socket) {
            Ok(()) => exit::OK,
            Err(e) => {
                cli::say(e.to_string());
                e.exit_code()
            }
        };
        std::process::exit(code);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let at_once = cli.stops_at_once();
    let on_interrupt = cli.on_interrupt();
    let code = runtime.block_on(async {
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .expect("SIGINT handler");
            // The first signal stops the command, which cleans up after itself; a second one
            // aborts at once, leaving whatever was not removed yet to `perseus down`.
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if at_once {
                cli::say("interrupted".into());
                std::process::exit(exit::INTERRUPTED);
            }
            cli::say(on_interrupt.into());
            on_signal.cancel();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            cli::say("aborted: some of the lab may be left; perseus status shows it, perseus down --lab NAME removes it".into());
            std::process::exit(exit::INTERRUPTED);
        });
        match cli::dispatch(cli, stop.clone()).await {
            Ok(()) => exit::OK,
            Err(e) => {
                let code = e
                    .downcast_ref::<perseus::Error>()
                    .map_or(exit::FAILURE, |e| e.exit_code());
                cli::say(format!("{e:#}"));
                code
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
