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

    let sim = wasmeow_sim::Sim::start(wasmeow_sim::SimConfig::default())
        .await
        .unwrap();
    let url = sim.ws_url().await;
    let phone = sim.create_account(None, Some("operator")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (rt, _store) =
        common::runtime::start(tmp.path(), [5; 32], common::runtime::options(tmp.path())).await;
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

/// What the page shows of one session: its state, which action buttons are enabled, the
/// pairing code box, the confirmation, and the error line.
const ROW_SCRIPT: &str = r#"
const s = arguments[0];
const li = document.getElementById("session-" + s);
const on = id => { const b = document.getElementById(id + "-" + s); return !!b && !b.disabled; };
const code = document.getElementById("code-" + s);
const confirm = document.getElementById("confirm-" + s);
const strong = code ? code.querySelector("strong") : null;
return {
  present: !!li,
  state: li ? li.dataset.state : null,
  pair: on("pair"),
  logout: on("logout"),
  remove: on("remove"),
  code: code && !code.hidden && strong ? strong.textContent : null,
  confirm: !!confirm && !confirm.hidden,
  qr: !!document.getElementById("qr-" + s),
  error: document.getElementById("error").textContent,
  live: document.getElementById("live").dataset.live,
  add: !document.getElementById("add-form").hidden,
};
"#;

/// The page's buttons against the real runtime and the simulator: add a session from the page
/// (it appears, offering a QR), request a pairing code from the page (the code is shown), have
/// the simulated phone enter that code (the page flips to connected), log out from the page
/// (a fresh QR), then remove it after a cancelled and a confirmed confirmation. A refused
/// action shows the API's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver (scripts/test-all.sh installs them)"]
async fn page_buttons_add_pair_by_code_log_out_and_remove_a_real_session() {
    use wasmeow::control::Control;
    use wasmeow_store::Store as _;

    let sim = wasmeow_sim::Sim::start(wasmeow_sim::SimConfig::default())
        .await
        .unwrap();
    let url = sim.ws_url().await;
    let phone = sim.create_account(None, Some("operator")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (rt, store) =
        common::runtime::start(tmp.path(), [6; 32], common::runtime::options(tmp.path())).await;
    let srv = start(rt.clone(), AdminOptions::default()).await;
    let b = common::ui::Browser::start().await;
    b.goto(&format!("{}/#token={TOKEN}", srv.base())).await;
    let row = |name: &'static str| json!([name]);
    let limit = Duration::from_secs(30);
    b.wait_for("the live page", limit, ROW_SCRIPT, row("web1"), |v| {
        v["live"] == "true" && v["add"] == true && v["present"] == false
    })
    .await;

    // Add a session from the page; it appears and offers a QR.
    b.type_into("#add-name", "web1").await;
    b.click("#add-more > summary").await;
    b.type_into("#add-server", &url).await;
    b.type_into("#add-root-key", &hex::encode(sim.root_public_key()))
        .await;
    b.click("#add-button").await;
    let v = b
        .wait_for(
            "the new session offering a QR",
            limit,
            ROW_SCRIPT,
            row("web1"),
            |v| v["state"] == "qr" && v["qr"] == true,
        )
        .await;
    assert_eq!(
        (v["pair"].clone(), v["logout"].clone(), v["remove"].clone()),
        (json!(true), json!(false), json!(true)),
        "pairing code and remove offered, log out not (unpaired): {v}"
    );
    assert_eq!(
        Control::session(rt.as_ref(), "web1").map(|s| s.state),
        Some(SessionState::Qr)
    );
    // A refused action shows the API's reason: the name is taken.
    b.type_into("#add-name", "web1").await;
    b.click("#add-button").await;
    b.wait_for(
        "the conflict message",
        limit,
        ROW_SCRIPT,
        row("web1"),
        |v| {
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("web1") && e.contains("already exists"))
        },
    )
    .await;
    assert_eq!(rt.sessions().len(), 1);

    // Request a pairing code from the page.
    b.click("#pair-web1").await;
    b.type_into("#pair-phone-web1", &format!("+{}", phone.pn))
        .await;
    b.click("#pair-submit-web1").await;
    let v = b
        .wait_for(
            "the pairing code",
            Duration::from_secs(60),
            ROW_SCRIPT,
            row("web1"),
            |v| v["code"].is_string(),
        )
        .await;
    // WASMEOW_UI_SCREENSHOTS=<dir> keeps screenshots of the page with the code and connected.
    let shots = std::env::var_os("WASMEOW_UI_SCREENSHOTS").map(std::path::PathBuf::from);
    if let Some(dir) = &shots {
        b.screenshot(&dir.join("buttons-pair-code.png")).await;
    }
    let code = v["code"].as_str().unwrap().to_owned();
    let bare: String = code.chars().filter(|c| *c != '-').collect();
    assert!(
        bare.len() == 8 && bare.chars().all(|c| c.is_ascii_alphanumeric()),
        "an 8-character code: {code:?}"
    );
    assert_eq!(
        Control::session(rt.as_ref(), "web1").and_then(|s| s.pair_code),
        Some(code.clone()),
        "the code the session asked the server for"
    );
    // The simulated phone enters it; the page flips to connected and offers log out.
    let jid = sim
        .enter_pairing_code(&phone.pn, &code)
        .await
        .expect("the phone accepts the code");
    let v = b
        .wait_for(
            "connected",
            Duration::from_secs(60),
            ROW_SCRIPT,
            row("web1"),
            |v| v["state"] == "connected" && v["logout"] == true,
        )
        .await;
    assert_eq!(
        (v["code"].clone(), v["qr"].clone()),
        (json!(null), json!(false))
    );
    assert_eq!(v["pair"], false, "no pairing code for a paired session");
    if let Some(dir) = &shots {
        b.click("#remove-web1").await;
        b.screenshot(&dir.join("buttons-connected-confirm.png"))
            .await;
        b.click("#remove-no-web1").await;
    }
    assert!(jid.starts_with(&phone.pn), "{jid}");
    assert_eq!(sim.devices(&phone.pn).unwrap().len(), 2);

    // Log out from the page: unlinked at the phone, a fresh QR on the page.
    b.click("#logout-web1").await;
    b.wait_for(
        "a fresh QR after logging out",
        limit,
        ROW_SCRIPT,
        row("web1"),
        |v| v["state"] == "qr" && v["qr"] == true && v["logout"] == false,
    )
    .await;
    // The server unlinks just after answering the logout (the simulator 50 ms later).
    let deadline = std::time::Instant::now() + limit;
    while sim.devices(&phone.pn).unwrap().len() != 1 {
        assert!(std::time::Instant::now() < deadline, "unlinked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(Control::session(rt.as_ref(), "web1").unwrap().jid.is_none());

    // Remove: cancelling keeps it; confirming removes it and its store account.
    b.click("#remove-web1").await;
    b.wait_for("the confirmation", limit, ROW_SCRIPT, row("web1"), |v| {
        v["confirm"] == true
    })
    .await;
    b.click("#remove-no-web1").await;
    b.wait_for(
        "the cancelled confirmation",
        limit,
        ROW_SCRIPT,
        row("web1"),
        |v| v["confirm"] == false && v["present"] == true,
    )
    .await;
    assert!(Control::session(rt.as_ref(), "web1").is_some());
    b.click("#remove-web1").await;
    b.click("#remove-yes-web1").await;
    b.wait_for("the row gone", limit, ROW_SCRIPT, row("web1"), |v| {
        v["present"] == false
    })
    .await;
    assert!(Control::session(rt.as_ref(), "web1").is_none());
    assert!(store.account("web1").unwrap().is_none());
    b.quit().await;
    srv.stop().await.unwrap();
    rt.shutdown().await;
    sim.shutdown().await;
}
