//! Hot reload: watches a plugins directory and keeps the host in step with it.
//!
//! File events are debounced ([`RELOAD_DEBOUNCE`]), then each changed `NAME.wasm`
//! is (re)loaded off the event path — compiled on a blocking thread, validated
//! against the world, given a trial `init` — and swapped in atomically; a broken
//! file is rejected with a log line and the running version stays. A deleted file
//! unloads its plugin. Write plugins atomically (write elsewhere, then rename into
//! the directory); a partly written file is rejected and the completed write
//! triggers another reload.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

use crate::error::HostError;
use crate::host::{PluginHost, is_plugin_file, plugin_name};

/// Quiet time after a file event before the file is reloaded.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(50);

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PluginHost {
    /// Loads every plugin in `dir`, then watches it for new, changed and deleted
    /// `.wasm` files until the returned [`Watcher`] is dropped.
    pub async fn watch(&self, dir: &Path) -> Result<Watcher, HostError> {
        let dir = std::fs::canonicalize(dir).map_err(|source| HostError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
        let mut debouncer =
            new_debouncer(RELOAD_DEBOUNCE, move |res: DebounceEventResult| match res {
                Ok(events) => {
                    let _ = tx.send(events.into_iter().map(|e| e.path).collect());
                }
                Err(e) => tracing::warn!(error = %e, "plugin directory watcher error"),
            })
            .map_err(|e| HostError::Watch {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| HostError::Watch {
                path: dir.clone(),
                reason: e.to_string(),
            })?;

        // Load what is there now (after the watch is set up, so nothing written in
        // between is missed; a file seen twice is `Unchanged` the second time).
        self.load_dir(&dir).await?;

        let host = self.clone();
        let task = tokio::spawn(async move {
            while let Some(mut paths) = rx.recv().await {
                // Coalesce bursts that arrived while the last batch was loading.
                while let Ok(more) = rx.try_recv() {
                    paths.extend(more);
                }
                paths.sort();
                paths.dedup();
                for path in paths.into_iter().filter(|p| is_plugin_file(p)) {
                    host.sync_file(&path).await;
                }
            }
        });
        tracing::info!(dir = %dir.display(), "watching plugins directory");
        Ok(Watcher {
            _debouncer: debouncer,
            task,
        })
    }

    /// Brings one plugin in line with its file: loads it if present, unloads it
    /// if deleted (and loaded from this very file).
    async fn sync_file(&self, path: &Path) {
        let Ok(name) = plugin_name(path) else {
            tracing::warn!(path = %path.display(), "ignoring plugin file with an invalid name");
            return;
        };
        if path.exists() {
            // Failures are logged by `load_file`; the running version stays.
            let _ = self.load_file(path).await;
        } else if self.loaded_from(&name, path) {
            self.unload(&name);
        }
    }
}
