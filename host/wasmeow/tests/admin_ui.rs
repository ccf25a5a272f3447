//! The admin web page in headless Chromium (driven over WebDriver on loopback): a session
//! waiting for a scan shows its QR, and the page flips to "connected" live when it connects.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install -y chromium
//! chromium-driver`; `scripts/test-all.sh` installs them), hence `#[ignore]` in the quick loop;
//! `scripts/test-all.sh` runs it with `--include-ignored`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake::{FakeControl, status};
use common::ui::check_page_flips;
use common::{TOKEN, start};
use hyper::Method;
use serde_json::json;
use wasmeow::admin::AdminOptions;
use wasmeow::control::SessionState;

const QR: &str = "2@ui-test-ref-7f3a9c,cHViLWtleS1vZi10aGUtc2Vzc2lvbg==,YWR2LXNlY3JldA==,\
                  aWRlbnRpdHkta2V5LWJhc2U2NA==";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver (scripts/test-all.sh installs them)"]
async fn page_shows_the_qr_then_connected_without_reload() {
    let f = Arc::new(FakeControl::new(64));
    f.put(status("phone1", SessionState::Qr, Some(QR)));
    f.put(status("other", SessionState::Connected, None));
    let srv = start(f.clone(), AdminOptions::default()).await;
    let fake = f.clone();
    let seen = check_page_flips(&srv.base(), TOKEN, "phone1", || async move {
        fake.connect("phone1");
    })
    .await;
    assert_eq!(seen.qr, QR, "the page showed the fake's QR");
    assert!(seen.flip_to_connected < Duration::from_secs(10));
    eprintln!(
        "page flip: QR image {}x{} px, connected shown {:?} after the event",
        seen.image_size.0, seen.image_size.1, seen.flip_to_connected
    );
    // The session is really connected on the API side too.
    let r = common::http::req(Method::GET, "/v1/sessions/phone1")
        .token(TOKEN)
        .send(srv.addr)
        .await;
    assert_eq!(r.json()["state"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver (scripts/test-all.sh installs them)"]
async fn page_asks_for_the_token_and_refuses_a_wrong_one() {
    let f = Arc::new(FakeControl::new(64));
    f.put(status("phone1", SessionState::Connected, None));
    let srv = start(f.clone(), AdminOptions::default()).await;
    let b = common::ui::Browser::start().await;
    b.goto(&format!("{}/", srv.base())).await;
    let login_shown = r#"return document.getElementById("login").classList.contains("shown");"#;
    b.wait_for(
        "the login form",
        Duration::from_secs(10),
        login_shown,
        json!([]),
        |v| *v == true,
    )
    .await;
    let submit = r#"
        document.getElementById("token-input").value = arguments[0];
        document.getElementById("login").requestSubmit();
        return true;"#;
    b.exec(submit, json!(["wrong-token-0123456789abcdef"]))
        .await;
    let error = r#"return document.getElementById("login").classList.contains("shown")
        ? document.getElementById("error").textContent : "";"#;
    b.wait_for(
        "the refusal",
        Duration::from_secs(10),
        error,
        json!([]),
        |v| v.as_str().is_some_and(|t| t.contains("refused")),
    )
    .await;
    b.exec(submit, json!([TOKEN])).await;
    let state = r#"const li = document.getElementById("session-phone1");
        return li ? li.dataset.state : null;"#;
    b.wait_for(
        "the session list",
        Duration::from_secs(10),
        state,
        json!([]),
        |v| *v == "connected",
    )
    .await;
    b.quit().await;
}

/// The same check against the real runtime and the simulator: an unpaired session's QR on the
/// page is the one the session shows; the simulated phone scans it (decoded from the page's own
/// image) and the page flips to "connected" live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver (scripts/test-all.sh installs them)"]
async fn page_flips_when_the_simulated_phone_scans_a_real_session() {
    use wasmeow::control::{Control, NewSession};
    use wasmeow::runtime::{Runtime, RuntimeOptions};

    let sim = wasmeow_sim::Sim::start(wasmeow_sim::SimConfig::default())
        .await
        .unwrap();
    let url = sim.ws_url().await;
    let phone = sim.create_account(None, Some("operator")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = wasmeow_store::RedbStore::open(
        tmp.path().join("s.redb"),
        &wasmeow_store::KekSource::key([5u8; 32]),
        &wasmeow_store::OpenOptions::default(),
    )
    .unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let rt = Runtime::start(
        Arc::new(store),
        RuntimeOptions {
            sessions: vec![],
            plugins: wasmeow::demo::demo_plugins(plugins, tmp.path().join("cache")),
            admission: Default::default(),
            default_rate: Default::default(),
            tweak: Some(Arc::new(|c: &mut wasmeow_session::SessionConfig| {
                c.initial_prekey_count = 60;
            })),
            load: None,
            campaigns: Vec::new(),
        },
    )
    .await
    .unwrap();
    rt.create_session(NewSession {
        name: "phone1".into(),
        server: Some(url),
        root_key: Some(hex::encode(sim.root_public_key())),
        push_name: None,
    })
    .await
    .unwrap();
    assert!(
        rt.wait_state("phone1", SessionState::Qr, Duration::from_secs(30))
            .await
    );
    let srv = start(rt.clone(), AdminOptions::default()).await;
    let (s, pn) = (sim.clone(), phone.pn.clone());
    let runtime = rt.clone();
    let seen = check_page_flips(&srv.base(), TOKEN, "phone1", || async move {
        let qr = Control::session(runtime.as_ref(), "phone1")
            .unwrap()
            .qr
            .unwrap();
        s.scan(&qr, &pn).await.expect("the phone scans the QR");
    })
    .await;
    assert!(
        seen.qr.contains("#2@") || seen.qr.starts_with("2@"),
        "a real pairing QR: {}",
        seen.qr
    );
    assert_eq!(
        Control::session(rt.as_ref(), "phone1").unwrap().state,
        SessionState::Connected
    );
    eprintln!(
        "real session: QR image {}x{} px, connected shown {:?} after the scan",
        seen.image_size.0, seen.image_size.1, seen.flip_to_connected
    );
    srv.stop().await.unwrap();
    rt.shutdown().await;
    sim.shutdown().await;
}
