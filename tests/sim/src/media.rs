//! Media: the `w:m` `media_conn` IQ and the HTTPS blob endpoint clients upload encrypted media
//! to and download it from.
//!
//! Contract (`protocol-whatsmeow.md` §2.15): `media_conn` answers
//! `<media_conn auth ttl auth_ttl max_buckets><host hostname="127.0.0.1:PORT"/></media_conn>`.
//! `POST /mms/<type>/<token>?auth=…&token=…` stores the body when `auth` is the one issued and
//! `token` is the URL-safe base64 of SHA-256(body) (the file's `fileEncSHA256`); it answers
//! `{"url", "direct_path", "handle", "object_id"}`. `GET <direct_path>…` returns the stored
//! bytes exactly; unknown paths are 404. Blobs are opaque to the server (it never sees media
//! keys), as on WhatsApp's CDN. `newsletter` uploads are accepted the same way, unencrypted.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use wasmeow_protocol::binary::Node;

use crate::iq::IqResult;
use crate::state::World;

/// Largest upload accepted (64 MiB, WhatsApp's document limit is larger but tests never need it).
pub(crate) const MAX_UPLOAD: usize = 64 << 20;

/// One stored blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Blob {
    pub mms_type: String,
    #[serde(with = "crate::util::b64")]
    pub data: Vec<u8>,
}

/// All blobs, by object id, and the upload auth token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct MediaStore {
    blobs: BTreeMap<String, Blob>,
    auth: String,
}

impl MediaStore {
    pub(crate) fn len(&self) -> usize {
        self.blobs.len()
    }
}

/// An HTTP answer from the media endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl MediaResponse {
    fn error(status: u16, text: &str) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::json!({ "error": text })
                .to_string()
                .into_bytes(),
        }
    }
}

/// Splits `/path?query` into the path and its query pairs.
fn split_query(target: &str) -> (&str, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (path, pairs)
}

/// Decodes `%XX` escapes (and `+` as space) leniently.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl World {
    fn media_auth(&mut self) -> String {
        if self.media.auth.is_empty() {
            let raw: [u8; 24] = self.rng.random();
            self.media.auth = URL_SAFE_NO_PAD.encode(raw);
        }
        self.media.auth.clone()
    }

    /// `<iq xmlns="w:m" type="set"><media_conn/></iq>`.
    pub(crate) fn iq_media_conn(&mut self) -> IqResult {
        let auth = self.media_auth();
        Ok(vec![
            Node::new("media_conn")
                .attr("auth", auth)
                .attr("ttl", "3600")
                .attr("auth_ttl", "21600")
                .attr("max_buckets", "12")
                .children([Node::new("host")
                    .attr("hostname", self.media_host.clone())
                    .attr("maxContentLengthBytes", MAX_UPLOAD.to_string())]),
        ])
    }

    /// One HTTP request to the media endpoint.
    pub(crate) fn media_http(&mut self, method: &str, target: &str, body: &[u8]) -> MediaResponse {
        let (path, query) = split_query(target);
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        match method {
            "POST" => {
                let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                let mms_type = match segments.as_slice() {
                    ["mms", kind, _token] => (*kind).to_owned(),
                    ["newsletter", kind, _token] => (*kind).to_owned(),
                    _ => return MediaResponse::error(404, "unknown upload path"),
                };
                if param("auth").as_deref() != Some(self.media_auth().as_str()) {
                    return MediaResponse::error(401, "bad auth");
                }
                if body.len() > MAX_UPLOAD {
                    return MediaResponse::error(413, "too large");
                }
                let token = param("token")
                    .unwrap_or_else(|| segments.last().copied().unwrap_or("").to_owned());
                let claimed = URL_SAFE
                    .decode(&token)
                    .or_else(|_| URL_SAFE_NO_PAD.decode(&token))
                    .or_else(|_| STANDARD.decode(&token));
                if claimed.as_deref() != Ok(&Sha256::digest(body)[..]) {
                    return MediaResponse::error(400, "token is not the SHA-256 of the body");
                }
                let object_id = hex::encode(self.rng.random::<[u8; 12]>());
                let oh = hex::encode(self.rng.random::<[u8; 8]>());
                let direct_path = format!(
                    "/v/t62.7118-24/{object_id}.enc?ccb=11-4&oh={oh}&oe=FFFFFFFF&_nc_sid=5e03e0&mms3=true"
                );
                self.media.blobs.insert(
                    object_id.clone(),
                    Blob {
                        mms_type,
                        data: body.to_vec(),
                    },
                );
                self.dirty = true;
                let json = serde_json::json!({
                    "url": format!("https://{}{}", self.media_host, direct_path),
                    "direct_path": direct_path,
                    "handle": object_id,
                    "object_id": object_id,
                });
                MediaResponse {
                    status: 200,
                    content_type: "application/json",
                    body: json.to_string().into_bytes(),
                }
            }
            "GET" | "HEAD" => {
                let Some(name) = path.strip_prefix("/v/t62.7118-24/") else {
                    return MediaResponse::error(404, "not found");
                };
                let id = name.trim_end_matches(".enc");
                match self.media.blobs.get(id) {
                    Some(blob) => MediaResponse {
                        status: 200,
                        content_type: "application/octet-stream",
                        body: if method == "HEAD" {
                            Vec::new()
                        } else {
                            blob.data.clone()
                        },
                    },
                    None => MediaResponse::error(404, "not found"),
                }
            }
            "DELETE" => MediaResponse {
                status: 200,
                content_type: "application/json",
                body: b"{}".to_vec(),
            },
            _ => MediaResponse::error(405, "method not allowed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let (path, q) = split_query("/mms/image/abc%3D?auth=x%2By&token=t&flag");
        assert_eq!(path, "/mms/image/abc%3D");
        assert_eq!(q[0], ("auth".to_owned(), "x+y".to_owned()));
        assert_eq!(q[2], ("flag".to_owned(), String::new()));
        assert_eq!(percent_decode("a%zzb%4"), "a%zzb%4");
    }
}
