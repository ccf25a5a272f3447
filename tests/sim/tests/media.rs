//! `media_conn` and the HTTPS blob endpoint, over TLS that trusts only the sim's test CA.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::Client;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wasmeow_protocol::binary::Node;
use wasmeow_sim::{Sim, SimConfig};

/// One HTTP/1.1 request over TLS; returns (status, body).
async fn https(
    host: &str,
    ca_pem: &str,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let ip = host.rsplit_once(':').unwrap().0;
    let name = ServerName::try_from(ip.to_owned()).unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS with the sim's CA");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nOrigin: https://web.whatsapp.com\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_conn_upload_and_download() {
    let sim = Sim::start(SimConfig {
        wss_port: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let info = sim.info().await;
    let a = sim.create_account(None, None).unwrap();
    let creds = sim.provision_companion(&a.pn).unwrap();
    let (mut c, _) = Client::login(&sim, &creds).await.unwrap();
    let answer = c
        .iq(Node::new("iq")
            .attr("to", common::server())
            .attr("type", "set")
            .attr("xmlns", "w:m")
            .children([Node::new("media_conn")]))
        .await;
    let conn = answer.child_by_tag("media_conn").unwrap();
    let auth = conn.attr_str("auth").unwrap().to_owned();
    let host = conn
        .child_by_tag("host")
        .unwrap()
        .attr_str("hostname")
        .unwrap()
        .to_owned();
    assert_eq!(host, info.media_host);

    let blob: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
    let token = base64::engine::general_purpose::URL_SAFE.encode(Sha256::digest(&blob));
    let target = format!("/mms/image/{token}?auth={auth}&token={token}");
    let (status, body) = https(&host, &info.ca_pem, "POST", &target, &blob).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let direct_path = json["direct_path"].as_str().unwrap().to_owned();
    assert!(
        json["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("https://{host}/"))
    );

    let (status, body) = https(
        &host,
        &info.ca_pem,
        "GET",
        &format!("{direct_path}&hash={token}&mms-type=image&__wa-mms="),
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, blob, "the exact bytes come back");
    assert_eq!(sim.stats().media_blobs, 1);

    // Refusals: wrong auth, a token that is not the body's hash, an unknown path.
    let (status, _) = https(
        &host,
        &info.ca_pem,
        "POST",
        &format!("/mms/image/{token}?auth=nope&token={token}"),
        &blob,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = https(&host, &info.ca_pem, "POST", &target, b"other bytes").await;
    assert_eq!(status, 400);
    let (status, _) = https(
        &host,
        &info.ca_pem,
        "GET",
        "/v/t62.7118-24/0000.enc?x=1",
        b"",
    )
    .await;
    assert_eq!(status, 404);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
