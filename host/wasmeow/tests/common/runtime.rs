//! Starting the real runtime for a test: an encrypted store in a temporary folder, the example
//! plugins embedded in the binary, and a small prekey batch (the simulator answers fast).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmeow::runtime::{Runtime, RuntimeOptions};
use wasmeow_store::{KekSource, OpenError, OpenOptions, RedbStore};

/// Runtime options for `dir`: no sessions or campaigns, the embedded example plugins copied to
/// `dir/plugins` (compile cache in `dir/cache`), default limits, 60 prekeys per session.
pub fn options(dir: &Path) -> RuntimeOptions {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (name, bytes) in wasmeow::demo::EMBEDDED_PLUGINS {
        std::fs::write(plugins.join(format!("{name}.wasm")), bytes).unwrap();
    }
    RuntimeOptions {
        sessions: Vec::new(),
        plugins: wasmeow::demo::demo_plugins(plugins, dir.join("cache")),
        admission: Default::default(),
        default_rate: Default::default(),
        tweak: Some(Arc::new(|c: &mut wasmeow_session::SessionConfig| {
            c.initial_prekey_count = 60;
        })),
        load: None,
        campaigns: Vec::new(),
    }
}

/// Opens (or creates) `dir/host.redb` under `key` and starts a runtime on it. A runtime that was
/// just shut down in the same process releases the file once its last tasks end, so opening
/// retries for a while.
pub async fn start(
    dir: &Path,
    key: [u8; 32],
    opts: RuntimeOptions,
) -> (Arc<Runtime>, Arc<RedbStore>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let store = loop {
        match RedbStore::open(
            dir.join("host.redb"),
            &KekSource::key(key),
            &OpenOptions::default(),
        ) {
            Ok(s) => break Arc::new(s),
            Err(OpenError::AlreadyOpen) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("store opens: {e:?}"),
        }
    };
    let rt = Runtime::start(store.clone(), opts)
        .await
        .expect("runtime starts");
    (rt, store)
}
