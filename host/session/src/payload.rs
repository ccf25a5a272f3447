//! The `ClientPayload` sent inside the Noise ClientFinish: registration (a device that is not
//! paired yet) or login (a paired device).
//!
//! Contract: pure builders; the fields and values are those of `protocol-whatsmeow.md` §2.4.
//! The version comes from the configuration ([`WaVersion`]), never from a constant here.

use md5::{Digest as _, Md5};
use prost::Message as _;
use wasmeow_proto::wa::client_payload::user_agent::{AppVersion, Platform, ReleaseChannel};
use wasmeow_proto::wa::client_payload::web_info::WebSubPlatform;
use wasmeow_proto::wa::client_payload::{
    ConnectReason, ConnectType, DevicePairingRegistrationData, UserAgent, WebInfo,
};
use wasmeow_proto::wa::device_props::{self, HistorySyncConfig, PlatformType};
use wasmeow_proto::wa::{ClientPayload, DeviceProps};
use wasmeow_protocol::keys::PublicKey;

use crate::config::WaVersion;

/// The part of the payload common to registration and login.
fn base(version: WaVersion) -> ClientPayload {
    let [primary, secondary, tertiary] = version.0;
    ClientPayload {
        user_agent: Some(UserAgent {
            platform: Some(Platform::Web as i32),
            app_version: Some(AppVersion {
                primary: Some(primary),
                secondary: Some(secondary),
                tertiary: Some(tertiary),
                ..Default::default()
            }),
            mcc: Some("000".into()),
            mnc: Some("000".into()),
            os_version: Some("0.1".into()),
            manufacturer: Some(String::new()),
            device: Some("Desktop".into()),
            os_build_number: Some("0.1".into()),
            release_channel: Some(ReleaseChannel::Release as i32),
            locale_language_iso_639_1: Some("en".into()),
            locale_country_iso_3166_1_alpha_2: Some("US".into()),
        }),
        web_info: Some(WebInfo {
            web_sub_platform: Some(WebSubPlatform::WebBrowser as i32),
            ..Default::default()
        }),
        connect_type: Some(ConnectType::WifiUnknown as i32),
        connect_reason: Some(ConnectReason::UserActivated as i32),
        ..Default::default()
    }
}

/// The keys a new device registers with.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// Signal registration id.
    pub registration_id: u32,
    /// Identity public key.
    pub identity: &'a PublicKey,
    /// Signed prekey id (< 2^24).
    pub signed_prekey_id: u32,
    /// Signed prekey public key.
    pub signed_prekey: &'a PublicKey,
    /// XEdDSA signature by the identity key over `05 ‖ signed prekey`.
    pub signed_prekey_signature: &'a [u8; 64],
    /// `DeviceProps.os`: the name shown on the phone.
    pub device_name: &'a str,
}

/// The payload of a device that is not paired yet.
pub fn registration(version: WaVersion, reg: &Registration<'_>) -> Vec<u8> {
    let props = DeviceProps {
        os: Some(reg.device_name.to_owned()),
        version: Some(device_props::AppVersion {
            primary: Some(0),
            secondary: Some(1),
            tertiary: Some(0),
            ..Default::default()
        }),
        platform_type: Some(PlatformType::Unknown as i32),
        require_full_sync: Some(false),
        history_sync_config: Some(HistorySyncConfig {
            storage_quota_mb: Some(10240),
            inline_initial_payload_in_e2ee_msg: Some(true),
            support_call_log_history: Some(false),
            support_bot_user_agent_chat_history: Some(true),
            support_cag_reactions_and_polls: Some(true),
            support_biz_hosted_msg: Some(true),
            support_recent_sync_chunk_message_count_tuning: Some(true),
            support_hosted_group_msg: Some(true),
            support_fbid_bot_chat_history: Some(true),
            support_message_association: Some(true),
            support_group_history: Some(false),
            thumbnail_sync_days_limit: Some(60),
            ..Default::default()
        }),
    };
    let skey_id = reg.signed_prekey_id.to_be_bytes();
    let mut p = base(version);
    p.passive = Some(false);
    p.pull = Some(false);
    p.device_pairing_data = Some(DevicePairingRegistrationData {
        e_regid: Some(reg.registration_id.to_be_bytes().to_vec().into()),
        e_keytype: Some(vec![wasmeow_protocol::keys::DJB_TYPE].into()),
        e_ident: Some(reg.identity.0.to_vec().into()),
        e_skey_id: Some(skey_id[1..].to_vec().into()),
        e_skey_val: Some(reg.signed_prekey.0.to_vec().into()),
        e_skey_sig: Some(reg.signed_prekey_signature.to_vec().into()),
        build_hash: Some(build_hash(version).to_vec().into()),
        device_props: Some(props.encode_to_vec().into()),
    });
    p.encode_to_vec()
}

/// MD5 of the dotted version string.
pub fn build_hash(version: WaVersion) -> [u8; 16] {
    Md5::digest(version.to_string().as_bytes()).into()
}

/// The payload of a paired device logging in as `user` (phone number) device `device`.
pub fn login(version: WaVersion, user: u64, device: u32, push_name: &str) -> Vec<u8> {
    let mut p = base(version);
    p.username = Some(user);
    p.device = Some(device);
    p.passive = Some(true);
    p.pull = Some(true);
    p.lid_db_migrated = Some(true);
    p.lc = Some(1);
    if !push_name.is_empty() {
        p.push_name = Some(push_name.to_owned());
    }
    p.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_hash_is_md5_of_the_dotted_version() {
        // Baileys' rc14 version and hash (interop-baileys.md §4.1).
        assert_eq!(
            hex::encode(build_hash(WaVersion([2, 3000, 1_043_857_760]))),
            "f6f65c0607a1cdffd8752b051fc95edf"
        );
    }

    #[test]
    fn registration_fields() {
        let id = PublicKey([1; 32]);
        let spk = PublicKey([2; 32]);
        let bytes = registration(
            WaVersion([2, 3000, 7]),
            &Registration {
                registration_id: 0x0102_0304,
                identity: &id,
                signed_prekey_id: 1,
                signed_prekey: &spk,
                signed_prekey_signature: &[3; 64],
                device_name: "wasmeow",
            },
        );
        let p = ClientPayload::decode(bytes.as_slice()).unwrap();
        assert_eq!(p.passive, Some(false));
        assert_eq!(p.username, None);
        let d = p.device_pairing_data.unwrap();
        assert_eq!(d.e_regid.as_deref(), Some(&[1u8, 2, 3, 4][..]));
        assert_eq!(d.e_skey_id.as_deref(), Some(&[0u8, 0, 1][..]));
        assert_eq!(d.e_keytype.as_deref(), Some(&[5u8][..]));
        let props = DeviceProps::decode(d.device_props.unwrap()).unwrap();
        assert_eq!(props.os.as_deref(), Some("wasmeow"));
        let ua = p.user_agent.unwrap();
        assert_eq!(ua.app_version.unwrap().tertiary, Some(7));
    }

    #[test]
    fn login_fields() {
        let p = ClientPayload::decode(login(WaVersion::DEFAULT, 15551234567, 3, "Bot").as_slice())
            .unwrap();
        assert_eq!(p.username, Some(15551234567));
        assert_eq!(p.device, Some(3));
        assert_eq!(p.passive, Some(true));
        assert_eq!(p.pull, Some(true));
        assert_eq!(p.push_name.as_deref(), Some("Bot"));
        assert!(p.device_pairing_data.is_none());
    }
}
