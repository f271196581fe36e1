//! The process's runtime: one actix System on a multi-threaded tokio runtime, so that tonic
//! servers and the store run on tokio's workers while actors run on their arbiters. Callers
//! outside this crate never see actix.

use std::future::Future;

/// Runs `main` to completion inside the actix System, on `worker_threads` tokio workers, then
/// stops the System (and with it every arbiter thread).
pub fn block_on<F: Future>(worker_threads: usize, main: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .enable_all()
        .thread_name("nsm-worker")
        .build()?;
    let system = actix_rt::System::with_tokio_rt(move || runtime);
    Ok(system.block_on(async move {
        let output = main.await;
        actix_rt::System::current().stop();
        output
    }))
}
