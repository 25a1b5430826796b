//! The one timeout helper of the smol shell (tokio has `tokio::time::timeout`).

use std::future::Future;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;

/// `Some(output)` unless `d` passes first.
pub async fn timeout<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        Timer::after(d).await;
        None
    })
    .await
}
