//! Thumbnail making under one global bound: at most `--thumbnail-decodes` images decode at once,
//! and together they reserve no more than `--thumbnail-memory`. An upload waits for its turn; an
//! image that alone would pass the budget gets no thumbnail. No HTTP and no SQL here.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::files;
use crate::metrics::ThumbnailMetrics;

/// A decode reserves this many times its decoded pixel buffer: a decoder keeps working planes
/// (a progressive JPEG's coefficients, say) beside the image it hands back.
const RESERVE_FACTOR: u64 = 2;

/// The shared bound on thumbnail decodes.
pub struct Thumbnails {
    slots: Semaphore,
    /// Free memory of the budget, in KiB.
    memory: Semaphore,
    budget_kib: u64,
    metrics: ThumbnailMetrics,
}

/// Runs `f` on the blocking pool; `None` (logged) when it fails or panics: the upload is then
/// stored without a thumbnail.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Option<T> {
    match crate::blocking::run("a thumbnail", f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::info!("no thumbnail for an upload: {e}");
            None
        }
        Err(e) => {
            tracing::warn!("a thumbnail task failed: {e}");
            None
        }
    }
}

impl Thumbnails {
    /// A bound of `decodes` at once within `budget` bytes.
    pub fn new(decodes: usize, budget: u64, metrics: ThumbnailMetrics) -> Arc<Self> {
        let budget_kib = (budget / 1024).clamp(1, u64::from(u32::MAX));
        Arc::new(Thumbnails {
            slots: Semaphore::new(decodes.max(1)),
            memory: Semaphore::new(budget_kib as usize),
            budget_kib,
            metrics,
        })
    }

    /// Makes the thumbnail of the image at `src` into `dst` when its turn comes; its MIME type,
    /// or `None` when the image cannot be decoded or would pass the budget alone.
    pub async fn make(self: &Arc<Self>, src: PathBuf, dst: PathBuf) -> Option<&'static str> {
        let probe = src.clone();
        let bytes = off_runtime(move || Ok(files::decoded_size(&probe)?)).await?;
        let need = bytes.saturating_mul(RESERVE_FACTOR).div_ceil(1024).max(1);
        if need > self.budget_kib {
            self.metrics.over_budget.inc();
            tracing::info!(
                "no thumbnail for an upload: decoding it takes {need} KiB, over the budget of {} KiB",
                self.budget_kib
            );
            return None;
        }
        let (_slot, _memory) = {
            let _waiting = crate::metrics::Held::new(&self.metrics.waiting);
            // Memory first, then a slot: a big image waiting for memory holds no slot meanwhile.
            let memory = self.memory.acquire_many(need as u32).await.ok()?;
            (self.slots.acquire().await.ok()?, memory)
        };
        let _running = crate::metrics::Held::new(&self.metrics.running);
        let limit = need * 1024;
        off_runtime(move || {
            let (bytes, mime) = files::make_thumbnail(&src, limit)?;
            std::fs::write(&dst, bytes)?;
            Ok(mime)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A 64x64 PNG in `dir`; its decode reserves 24 KiB.
    fn image(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("in.png");
        image::RgbImage::new(64, 64).save(&path).unwrap();
        path
    }

    /// Waits (at most 10 s) until `g` reads `want`.
    async fn reads(g: &prometheus_client::metrics::gauge::Gauge, want: i64) {
        for _ in 0..1000 {
            if g.get() == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the gauge reads {}, not {want}", g.get());
    }

    #[tokio::test]
    async fn a_decode_waits_for_memory_and_for_a_slot() {
        let dir = tempfile::tempdir().unwrap();
        let src = image(dir.path());
        let metrics = ThumbnailMetrics::default();
        let t = Thumbnails::new(1, 1024 * 1024, metrics.clone());
        for held in ["memory", "slot"] {
            // Arrange: everything of one resource is taken
            let dst = dir.path().join(format!("{held}.thumb"));
            let hold = match held {
                "memory" => t.memory.acquire_many(t.budget_kib as u32).await.unwrap(),
                _ => t.slots.acquire().await.unwrap(),
            };

            // Act
            let making = tokio::spawn({
                let (t, src, dst) = (t.clone(), src.clone(), dst.clone());
                async move { t.make(src, dst).await }
            });

            // Assert: it waits, made nothing, until the resource is free again
            reads(&metrics.waiting, 1).await;
            assert!(!dst.exists(), "{held}: made while waiting");
            drop(hold);
            assert_eq!(making.await.unwrap(), Some("image/jpeg"), "{held}");
            assert!(dst.exists(), "{held}");
            assert_eq!((metrics.waiting.get(), metrics.running.get()), (0, 0));
        }
    }

    #[test]
    fn the_budget_is_counted_in_kib_and_never_zero() {
        let t = Thumbnails::new(0, 100, ThumbnailMetrics::default());
        assert_eq!(t.budget_kib, 1);
        assert_eq!(t.slots.available_permits(), 1);
        let t = Thumbnails::new(2, 256 << 20, ThumbnailMetrics::default());
        assert_eq!(t.budget_kib, 256 * 1024);
    }
}
