//! The admin HTTP API against an in-memory fake `Control`, over real loopback HTTP.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::fake::{FakeControl, status};
use common::http::{SseReader, req};
use common::{TOKEN, qrdecode, start};
use hyper::Method;
use serde_json::json;
use wasmeow::admin::{Access, AdminOptions};
use wasmeow::control::SessionState;

const QR: &str = "2@Xk3n9Qm0ZpL8b1w+fake-ref,q8Vt1b2Zr0Q7xNf3kP5aW1s2d3f4g5h6j7k8l9=,\
                  cHViLWtleS1vZi10aGUtc2Vzc2lvbg==,YWR2LXNlY3JldA==";

fn fake() -> Arc<FakeControl> {
    let f = Arc::new(FakeControl::new(64));
    f.put(status("alice", SessionState::Qr, Some(QR)));
    f.put(status("bob", SessionState::Connected, None));
    f.put_plugin("echo");
    f
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "alice")
}

#[tokio::test]
async fn every_protected_route_needs_the_token_and_public_ones_do_not() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    for r in &srv.routes {
        let path = concrete(r.path);
        let none = req(r.method.clone(), &path).send(srv.addr).await;
        let wrong = req(r.method.clone(), &path)
            .token("test-token-0123456789abcdeX")
            .send(srv.addr)
            .await;
        match r.access {
            Access::Public => {
                assert_ne!(none.status.as_u16(), 401, "{} {path}", r.method);
                assert!(
                    none.status.is_success(),
                    "{} {path}: {}",
                    r.method,
                    none.text()
                );
            }
            Access::Bearer | Access::BearerOrQuery => {
                for resp in [&none, &wrong] {
                    resp.expect_error(401, "unauthorized");
                    assert!(
                        resp.header("www-authenticate")
                            .is_some_and(|v| v.starts_with("Bearer")),
                        "{} {path}",
                        r.method
                    );
                }
            }
        }
    }
    // Not a bearer scheme, or a token with a different length: still 401.
    req(Method::GET, "/v1/sessions")
        .header("authorization", &format!("Basic {TOKEN}"))
        .send(srv.addr)
        .await
        .expect_error(401, "unauthorized");
    req(Method::GET, "/v1/sessions")
        .token("x")
        .send(srv.addr)
        .await
        .expect_error(401, "unauthorized");
    // The right token works; the scheme name is case-insensitive.
    let ok = req(Method::GET, "/v1/sessions")
        .header("authorization", &format!("bearer {TOKEN}"))
        .send(srv.addr)
        .await;
    assert_eq!(ok.status, 200);
    // Protected routes did not run for unauthorized calls.
    f.with(|st| {
        assert!(st.sent.is_empty() && st.removed.is_empty() && st.logouts.is_empty());
        assert_eq!(st.sessions.len(), 2);
        assert_eq!(st.plugins["echo"].version, 1);
    });
    srv.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_readiness() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    assert_eq!(
        req(Method::GET, "/healthz").send(srv.addr).await.status,
        200
    );
    let r = req(Method::GET, "/readyz").send(srv.addr).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["ready"].clone()),
        (200, json!(true))
    );
    f.with(|st| st.ready = false);
    let r = req(Method::GET, "/readyz").send(srv.addr).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["ready"].clone()),
        (503, json!(false))
    );
    assert_eq!(
        req(Method::GET, "/healthz").send(srv.addr).await.status,
        200
    );
}

#[tokio::test]
async fn sessions_list_get_create_remove() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let a = srv.addr;

    let list = req(Method::GET, "/v1/sessions").token(TOKEN).send(a).await;
    assert_eq!(list.status, 200);
    let names: Vec<_> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("alice"), json!("bob")]);

    let one = req(Method::GET, "/v1/sessions/alice")
        .token(TOKEN)
        .send(a)
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["state"], "qr");
    assert_eq!(one.json()["qr"], QR);
    // Not UTF-8 after percent-decoding: a JSON 400 naming the field, like any bad name.
    let m = req(Method::GET, "/v1/sessions/%FF")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(400, "invalid");
    assert!(m.starts_with("name:"), "{m}");
    req(Method::GET, "/v1/sessions/nobody")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(404, "not_found");
    let m = req(Method::GET, "/v1/sessions/bad.name")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(400, "invalid");
    assert!(m.starts_with("name:"), "{m}");

    // Create.
    let r = req(Method::POST, "/v1/sessions")
        .token(TOKEN)
        .json(&json!({ "name": "carol", "push_name": "Carol" }))
        .send(a)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/v1/sessions/carol"));
    assert_eq!(r.json()["name"], "carol");
    assert_eq!(r.json()["state"], "connecting");
    assert!(f.session_exists("carol"));
    req(Method::POST, "/v1/sessions")
        .token(TOKEN)
        .json(&json!({ "name": "carol" }))
        .send(a)
        .await
        .expect_error(409, "conflict");
    for (body, field) in [
        (json!({ "name": "" }), "name:"),
        (json!({ "name": "a".repeat(65) }), "name:"),
        (json!({ "name": "semi;colon" }), "name:"),
        (json!({ "name": "dave", "server": "http://x" }), "server:"),
        (json!({ "name": "dave", "root_key": "abc" }), "root_key:"),
        (json!({ "name": "dave", "push_name": "" }), "push_name:"),
        (json!({ "nam": "dave" }), "body:"),
        (json!(["dave"]), "body:"),
    ] {
        let m = req(Method::POST, "/v1/sessions")
            .token(TOKEN)
            .json(&body)
            .send(a)
            .await
            .expect_error(400, "invalid");
        assert!(m.starts_with(field), "{body} -> {m}");
    }
    let m = req(Method::POST, "/v1/sessions")
        .token(TOKEN)
        .raw(b"{not json".to_vec())
        .header("content-type", "application/json")
        .send(a)
        .await
        .expect_error(400, "invalid");
    assert!(m.starts_with("body:"), "{m}");
    req(Method::POST, "/v1/sessions")
        .token(TOKEN)
        .raw(b"name=dave".to_vec())
        .header("content-type", "application/x-www-form-urlencoded")
        .send(a)
        .await
        .expect_error(415, "unsupported_media_type");
    f.with(|st| st.overloaded = true);
    req(Method::POST, "/v1/sessions")
        .token(TOKEN)
        .json(&json!({ "name": "dave" }))
        .send(a)
        .await
        .expect_error(503, "overloaded");
    assert!(
        !f.session_exists("dave"),
        "refused creations change nothing"
    );

    // Remove.
    let r = req(Method::DELETE, "/v1/sessions/carol?logout=true")
        .token(TOKEN)
        .send(a)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = req(Method::DELETE, "/v1/sessions/bob")
        .token(TOKEN)
        .send(a)
        .await;
    assert_eq!(r.status, 204);
    f.with(|st| assert_eq!(st.removed, [("carol".into(), true), ("bob".into(), false)]));
    req(Method::DELETE, "/v1/sessions/carol")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(404, "not_found");
    let m = req(Method::DELETE, "/v1/sessions/alice?logout=maybe")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(400, "invalid");
    assert!(m.starts_with("logout:"), "{m}");
    assert!(f.session_exists("alice"));
}

#[tokio::test]
async fn logout_and_pair_code() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let a = srv.addr;
    let r = req(Method::POST, "/v1/sessions/bob/logout")
        .token(TOKEN)
        .send(a)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    f.with(|st| assert_eq!(st.logouts, ["bob"]));
    // Not connected any more: the runtime's refusal keeps its status.
    req(Method::POST, "/v1/sessions/bob/logout")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(503, "unavailable");
    req(Method::POST, "/v1/sessions/zed/logout")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(404, "not_found");

    let r = req(Method::POST, "/v1/sessions/alice/pair-code")
        .token(TOKEN)
        .json(&json!({ "phone": "+4915112345678" }))
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({ "code": "K7P2-9QXD" }));
    f.with(|st| {
        assert_eq!(
            st.pair_requests,
            [("alice".into(), "+4915112345678".into())]
        )
    });
    for body in [json!({ "phone": "12" }), json!({ "phone": "+49 151 123" })] {
        let m = req(Method::POST, "/v1/sessions/alice/pair-code")
            .token(TOKEN)
            .json(&body)
            .send(a)
            .await
            .expect_error(400, "invalid");
        assert!(m.starts_with("phone:"), "{m}");
    }
    let m = req(Method::POST, "/v1/sessions/alice/pair-code")
        .token(TOKEN)
        .json(&json!({}))
        .send(a)
        .await
        .expect_error(400, "invalid");
    assert!(m.contains("phone"), "{m}");
    req(Method::POST, "/v1/sessions/zed/pair-code")
        .token(TOKEN)
        .json(&json!({ "phone": "4915112345678" }))
        .send(a)
        .await
        .expect_error(404, "not_found");
    // The runtime's own `Invalid` is a 400 too.
    f.put(status("carl", SessionState::Connected, None));
    let m = req(Method::POST, "/v1/sessions/carl/pair-code")
        .token(TOKEN)
        .json(&json!({ "phone": "4915112345678" }))
        .send(a)
        .await
        .expect_error(400, "invalid");
    assert!(m.contains("already paired"), "{m}");
    assert_eq!(f.with(|st| st.pair_requests.len()), 1);
}

#[tokio::test]
async fn qr_png_and_text_encode_the_current_code() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let a = srv.addr;
    let r = req(Method::GET, "/v1/sessions/alice/qr.png")
        .token(TOKEN)
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let (w, h, decoded) = qrdecode::decode_png(&r.body);
    assert_eq!(decoded, QR);
    assert_eq!(w, h);
    assert_eq!(w % wasmeow::qr::PNG_MODULE_PX, 0);
    let modules = (w / wasmeow::qr::PNG_MODULE_PX) as usize - 2 * wasmeow::qr::QUIET_ZONE;
    assert_eq!(
        (modules - 17) % 4,
        0,
        "a QR side is 17 + 4·version modules, got {modules}"
    );

    let r = req(Method::GET, "/v1/sessions/alice/qr")
        .token(TOKEN)
        .send(a)
        .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["code"], QR);
    assert_eq!(qrdecode::decode_terminal(j["ascii"].as_str().unwrap()), QR);

    // A new QR replaces the old one.
    f.with(|st| st.sessions.get_mut("alice").unwrap().qr = Some("2@rotated".into()));
    let r = req(Method::GET, "/v1/sessions/alice/qr.png")
        .token(TOKEN)
        .send(a)
        .await;
    assert_eq!(qrdecode::decode_png(&r.body).2, "2@rotated");

    for path in ["/v1/sessions/bob/qr.png", "/v1/sessions/bob/qr"] {
        let m = req(Method::GET, path)
            .token(TOKEN)
            .send(a)
            .await
            .expect_error(404, "no_qr");
        assert!(m.contains("connected"), "{m}");
    }
    for path in ["/v1/sessions/zed/qr.png", "/v1/sessions/zed/qr"] {
        req(Method::GET, path)
            .token(TOKEN)
            .send(a)
            .await
            .expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn send_message_validates_and_forwards() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let a = srv.addr;
    let send = |name: &str, body: serde_json::Value| {
        req(Method::POST, &format!("/v1/sessions/{name}/messages"))
            .token(TOKEN)
            .json(&body)
            .send(a)
    };
    let r = send(
        "bob",
        json!({ "chat": "15551234567@s.whatsapp.net", "text": "hi there" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("3EB0"));
    f.with(|st| {
        assert_eq!(
            st.sent,
            [(
                "bob".into(),
                "15551234567@s.whatsapp.net".into(),
                "hi there".into()
            )]
        );
    });
    let max = "é".repeat(65_536 / 2);
    assert_eq!(
        send("bob", json!({ "chat": "1203630001@g.us", "text": max }))
            .await
            .status,
        200
    );

    for (body, field) in [
        (json!({ "chat": "15551234567", "text": "x" }), "chat:"),
        (json!({ "chat": "@s.whatsapp.net", "text": "x" }), "chat:"),
        (json!({ "chat": "a@b@c", "text": "x" }), "chat:"),
        (
            json!({ "chat": "15551234567@s.whatsapp.net", "text": "" }),
            "text:",
        ),
        (
            json!({ "chat": "15551234567@s.whatsapp.net", "text": "x".repeat(65_537) }),
            "text:",
        ),
        (json!({ "chat": "15551234567@s.whatsapp.net" }), "body:"),
        (
            json!({ "chat": "15551234567@s.whatsapp.net", "text": "x", "extra": 1 }),
            "body:",
        ),
    ] {
        let m = send("bob", body.clone()).await.expect_error(400, "invalid");
        assert!(m.starts_with(field), "{body} -> {m}");
    }
    // Over the body limit (256 KiB by default).
    let huge = json!({ "chat": "15551234567@s.whatsapp.net", "text": "x".repeat(300 * 1024) });
    send("bob", huge).await.expect_error(413, "too_large");
    // The runtime's refusals.
    send(
        "alice",
        json!({ "chat": "15551234567@s.whatsapp.net", "text": "x" }),
    )
    .await
    .expect_error(503, "unavailable");
    send(
        "zed",
        json!({ "chat": "15551234567@s.whatsapp.net", "text": "x" }),
    )
    .await
    .expect_error(404, "not_found");
    assert_eq!(
        f.with(|st| st.sent.len()),
        2,
        "refused sends change nothing"
    );
}

#[tokio::test]
async fn plugins_metrics_and_fallbacks() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let a = srv.addr;
    let r = req(Method::GET, "/v1/plugins").token(TOKEN).send(a).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["name"], "echo");
    let r = req(Method::POST, "/v1/plugins/echo/reload")
        .token(TOKEN)
        .send(a)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], 2);
    req(Method::POST, "/v1/plugins/broken/reload")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(500, "internal");
    req(Method::POST, "/v1/plugins/nope/reload")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(404, "not_found");
    req(Method::POST, "/v1/plugins/no%20pe/reload")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(400, "invalid");

    f.with(|st| st.metrics = "# TYPE wasmeow_up gauge\nwasmeow_up 1\n".into());
    let r = req(Method::GET, "/metrics").token(TOKEN).send(a).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert_eq!(r.text(), "# TYPE wasmeow_up gauge\nwasmeow_up 1\n");

    req(Method::GET, "/v2/nothing")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(404, "no_route");
    req(Method::PUT, "/v1/sessions")
        .token(TOKEN)
        .send(a)
        .await
        .expect_error(405, "method_not_allowed");

    let page = req(Method::GET, "/").send(a).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text();
    assert!(html.contains("id=\"sessions\"") && html.contains("id=\"live\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained, no CDN"
    );
}

#[tokio::test]
async fn openapi_matches_router() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let r = req(Method::GET, "/openapi.json")
        .token(TOKEN)
        .send(srv.addr)
        .await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            // Public routes say so; protected ones inherit the bearer requirement.
            let public = op.get("security") == Some(&json!([]));
            let route = srv
                .routes
                .iter()
                .find(|r| r.path == path && r.method.as_str() == method.to_uppercase());
            if let Some(route) = route {
                assert_eq!(public, route.access == Access::Public, "{method} {path}");
            }
        }
    }
    let registered: BTreeSet<_> = srv
        .routes
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, registered, "OpenAPI paths vs router");
    // And every documented operation is served (not the fallback), checked on the wire.
    for (method, path) in &documented {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let resp = if path == "/v1/events" {
            // A stream: only look at the status.
            let resp = req(m, path).token(TOKEN).open(srv.addr).await;
            assert_eq!(resp.status(), 200);
            continue;
        } else {
            req(m, &concrete(path)).token(TOKEN).send(srv.addr).await
        };
        if !resp.body.is_empty() && resp.header("content-type") == Some("application/json") {
            let code = resp.json()["code"].clone();
            assert!(
                code != "no_route" && code != "method_not_allowed",
                "{method} {path}: {code}"
            );
        }
    }
}

#[tokio::test]
async fn sse_streams_events_in_order_and_filters() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let mut all = SseReader::new(
        req(Method::GET, "/v1/events")
            .token(TOKEN)
            .open(srv.addr)
            .await,
    );
    let mut only_bob = SseReader::new(
        req(Method::GET, "/v1/events?session=bob")
            .token(TOKEN)
            .open(srv.addr)
            .await,
    );
    assert_eq!(
        f.receivers(),
        2,
        "both streams subscribed before their headers arrived"
    );
    for i in 0..5 {
        let who = if i % 2 == 0 { "alice" } else { "bob" };
        f.emit(who, "message", json!({ "n": i }));
    }
    f.emit("alice", "qr", json!({ "code": "2@x" }));
    for i in 0..5 {
        let (event, data) = all.next_event().await.unwrap();
        assert_eq!(event, "message");
        assert_eq!(data["data"]["n"], i);
        assert_eq!(data["session"], if i % 2 == 0 { "alice" } else { "bob" });
        assert_eq!(data["at_ms"], 1_700_000_000_000u64);
    }
    assert_eq!(all.next_event().await.unwrap().0, "qr");
    for i in [1, 3] {
        let (_, data) = only_bob.next_event().await.unwrap();
        assert_eq!(
            (data["session"].clone(), data["data"]["n"].clone()),
            (json!("bob"), json!(i))
        );
    }
    // The stream ends when the runtime goes away... not here: the fake lives. A bad filter is 400.
    req(Method::GET, "/v1/events?session=a.b")
        .token(TOKEN)
        .send(srv.addr)
        .await
        .expect_error(400, "invalid");
    req(Method::GET, "/v1/events?bogus=1")
        .token(TOKEN)
        .send(srv.addr)
        .await
        .expect_error(400, "invalid");
}

#[tokio::test]
async fn sse_accepts_the_token_in_the_query_only_there() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let enc = TOKEN.replace('-', "%2D");
    let mut s = SseReader::new(
        req(Method::GET, &format!("/v1/events?token={enc}"))
            .open(srv.addr)
            .await,
    );
    f.emit("alice", "authenticated", json!({}));
    assert_eq!(s.next_event().await.unwrap().0, "authenticated");
    req(Method::GET, "/v1/events?token=wrong-token-0123456789abc")
        .send(srv.addr)
        .await
        .expect_error(401, "unauthorized");
    req(Method::GET, &format!("/v1/sessions?token={TOKEN}"))
        .send(srv.addr)
        .await
        .expect_error(401, "unauthorized");
}

// Single-threaded on purpose: nothing polls the server's stream while the test broadcasts, so
// the subscriber really falls behind the 4-slot channel.
#[tokio::test(flavor = "current_thread")]
async fn sse_reports_lag_instead_of_dropping_silently() {
    let f = Arc::new(FakeControl::new(4));
    let srv = start(f.clone(), AdminOptions::default()).await;
    let mut s = SseReader::new(
        req(Method::GET, "/v1/events")
            .token(TOKEN)
            .open(srv.addr)
            .await,
    );
    for i in 0..20 {
        f.emit("alice", "message", json!({ "n": i }));
    }
    match s.next().await.unwrap() {
        common::http::Sse::Event { event, data } => {
            assert_eq!(event, "lagged");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&data).unwrap(),
                json!({ "missed": 16 })
            );
        }
        other => panic!("expected lagged, got {other:?}"),
    }
    for i in 16..20 {
        let (event, data) = s.next_event().await.unwrap();
        assert_eq!(
            (event.as_str(), data["data"]["n"].clone()),
            ("message", json!(i))
        );
    }
}

#[tokio::test]
async fn sse_sends_keep_alive_comments() {
    let f = fake();
    let opts = AdminOptions {
        keep_alive: Duration::from_millis(100),
        ..AdminOptions::default()
    };
    let srv = start(f.clone(), opts).await;
    let mut s = SseReader::new(
        req(Method::GET, "/v1/events")
            .token(TOKEN)
            .open(srv.addr)
            .await,
    );
    assert_eq!(
        s.next().await.unwrap(),
        common::http::Sse::Comment("keep-alive".into())
    );
    f.emit("bob", "disconnected", json!({ "reason": "x" }));
    assert_eq!(s.next_event().await.unwrap().0, "disconnected");
}

#[tokio::test]
async fn serve_shuts_down_gracefully() {
    let f = fake();
    let srv = start(f.clone(), AdminOptions::default()).await;
    let addr = srv.addr;
    assert_eq!(req(Method::GET, "/healthz").send(addr).await.status, 200);
    // Open event streams end at shutdown instead of holding it up.
    let mut events = SseReader::new(req(Method::GET, "/v1/events").token(TOKEN).open(addr).await);
    let started = std::time::Instant::now();
    tokio::time::timeout(
        wasmeow::admin::SHUTDOWN_GRACE + Duration::from_secs(5),
        srv.stop(),
    )
    .await
    .expect("serve returns after shutdown")
    .unwrap();
    assert!(
        started.elapsed() < wasmeow::admin::SHUTDOWN_GRACE,
        "no wait for the grace period"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    assert_eq!(events.next().await, None, "the dropped stream ends");
}
