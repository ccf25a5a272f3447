//! JIDs (`user[.agent][:device]@server`): parsing, printing and the invariants the wire needs.
//!
//! Contract: every [`Jid`] value can be written to the wire and read back unchanged, and its
//! [`Display`](fmt::Display) form parses back to the same value. Invalid input is a [`JidError`]
//! naming what is wrong, never a panic.
//!
//! The forms are documented on [`Jid`].

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// AD_JID domain type of `s.whatsapp.net` (phone-number users).
pub const DOMAIN_WHATSAPP: u8 = 0;
/// AD_JID domain type of `lid` (hidden user IDs).
pub const DOMAIN_LID: u8 = 1;
/// AD_JID domain type of `hosted`.
pub const DOMAIN_HOSTED: u8 = 128;
/// AD_JID domain type of `hosted.lid`.
pub const DOMAIN_HOSTED_LID: u8 = 129;

/// Why a string or a set of parts is not a valid JID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JidError {
    /// There is no `@` separating user and server.
    #[error("JID has no '@' separating user and server")]
    MissingAt,
    /// There is more than one `@`.
    #[error("JID has more than one '@'")]
    MultipleAt,
    /// Nothing follows the `@`.
    #[error("JID server is empty")]
    EmptyServer,
    /// The server part contains characters no JID server has.
    #[error(
        "JID server {0:?} is not a valid server name (expected lower-case letters, digits, '.', '-', '_')"
    )]
    InvalidServer(String),
    /// The user part contains a character that would change the meaning of the printed form.
    #[error("JID user {user:?} {reason}")]
    InvalidUser {
        /// The offending user part.
        user: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The user part has more than one `:`.
    #[error("JID has more than one ':' before the '@'")]
    MultipleColons,
    /// The text after `:` is not a decimal device number.
    #[error("JID device {0:?} is not a decimal number")]
    InvalidDevice(String),
    /// The device number does not fit the wire form of this server.
    #[error("JID device {device} is out of range for server {server} (at most {max})")]
    DeviceOutOfRange {
        /// The device number as written.
        device: u64,
        /// The largest device number the server's wire form can carry.
        max: u16,
        /// The server.
        server: String,
    },
    /// This server has no device JIDs (the wire cannot carry a device for it).
    #[error("JID server {0} does not take a device part")]
    DeviceNotAllowed(String),
    /// A device JID must name a user.
    #[error("JID has a device part but an empty user")]
    EmptyUserWithDevice,
    /// The text after `.` is not a decimal agent number.
    #[error("JID agent {0:?} is not a decimal number from 0 to 255")]
    InvalidAgent(String),
    /// The agent number is one of the reserved AD domain types (0, 1, 128, 129).
    #[error(
        "JID agent {0} is a reserved domain type (0, 1, 128 and 129 are WhatsApp, LID, hosted, hosted LID)"
    )]
    ReservedAgent(u8),
    /// An agent was given without a device: only device JIDs carry one on the wire.
    #[error("JID agent needs a device part")]
    AgentWithoutDevice,
    /// Agents only exist on `s.whatsapp.net`.
    #[error("JID server {0} does not take an agent")]
    AgentNotAllowed(String),
    /// An interop device JID is written `integrator-user:device@interop`; the integrator is missing.
    #[error("interop device JID needs an 'integrator-' prefix before the user")]
    MissingIntegrator,
    /// The interop integrator is not a decimal number from 0 to 65535.
    #[error("interop integrator {0:?} is not a decimal number from 0 to 65535")]
    InvalidIntegrator(String),
    /// An integrator was given for a server other than `interop`, or without a device.
    #[error("only interop device JIDs carry an integrator")]
    IntegratorNotAllowed,
}

/// The server (domain) part of a JID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Server {
    /// `s.whatsapp.net`: phone-number users (and the server itself, with an empty user).
    WhatsApp,
    /// `g.us`: groups.
    Group,
    /// `c.us`: legacy user server, still used in some queries.
    LegacyUser,
    /// `broadcast`: broadcast lists and `status@broadcast`.
    Broadcast,
    /// `lid`: hidden user IDs.
    Lid,
    /// `newsletter`: channels.
    Newsletter,
    /// `msgr`: Messenger users.
    Messenger,
    /// `interop`: interop users.
    Interop,
    /// `hosted`: hosted (Cloud API) phone-number users.
    Hosted,
    /// `hosted.lid`: hosted LID users.
    HostedLid,
    /// `bot`: bots.
    Bot,
    /// Any other syntactically valid server name (never one of the names above).
    Other(Box<str>),
}

impl Server {
    /// Every named server, in declaration order.
    pub const KNOWN: [Self; 11] = [
        Self::WhatsApp,
        Self::Group,
        Self::LegacyUser,
        Self::Broadcast,
        Self::Lid,
        Self::Newsletter,
        Self::Messenger,
        Self::Interop,
        Self::Hosted,
        Self::HostedLid,
        Self::Bot,
    ];

    /// The position of a named server in [`Server::KNOWN`] (`None` for [`Server::Other`]).
    pub(crate) fn known_index(&self) -> Option<u8> {
        Some(match self {
            Self::WhatsApp => 0,
            Self::Group => 1,
            Self::LegacyUser => 2,
            Self::Broadcast => 3,
            Self::Lid => 4,
            Self::Newsletter => 5,
            Self::Messenger => 6,
            Self::Interop => 7,
            Self::Hosted => 8,
            Self::HostedLid => 9,
            Self::Bot => 10,
            Self::Other(_) => return None,
        })
    }

    /// Parses a server name. Known names map to their variant; other names made of lower-case
    /// ASCII letters, digits, `.`, `-` and `_` become [`Server::Other`].
    pub fn parse(name: &str) -> Result<Self, JidError> {
        Ok(match name {
            "s.whatsapp.net" => Self::WhatsApp,
            "g.us" => Self::Group,
            "c.us" => Self::LegacyUser,
            "broadcast" => Self::Broadcast,
            "lid" => Self::Lid,
            "newsletter" => Self::Newsletter,
            "msgr" => Self::Messenger,
            "interop" => Self::Interop,
            "hosted" => Self::Hosted,
            "hosted.lid" => Self::HostedLid,
            "bot" => Self::Bot,
            "" => return Err(JidError::EmptyServer),
            other => {
                let valid = other.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
                });
                if !valid {
                    return Err(JidError::InvalidServer(other.to_owned()));
                }
                Self::Other(other.into())
            }
        })
    }

    /// The server name as written after the `@`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::WhatsApp => "s.whatsapp.net",
            Self::Group => "g.us",
            Self::LegacyUser => "c.us",
            Self::Broadcast => "broadcast",
            Self::Lid => "lid",
            Self::Newsletter => "newsletter",
            Self::Messenger => "msgr",
            Self::Interop => "interop",
            Self::Hosted => "hosted",
            Self::HostedLid => "hosted.lid",
            Self::Bot => "bot",
            Self::Other(name) => name,
        }
    }

    /// The AD_JID domain type of this server, if device JIDs on it are written as `AD_JID`.
    pub fn ad_domain(&self) -> Option<u8> {
        match self {
            Self::WhatsApp => Some(DOMAIN_WHATSAPP),
            Self::Lid => Some(DOMAIN_LID),
            Self::Hosted => Some(DOMAIN_HOSTED),
            Self::HostedLid => Some(DOMAIN_HOSTED_LID),
            _ => None,
        }
    }

    /// The server an AD_JID domain byte stands for; any other byte is an agent on
    /// `s.whatsapp.net`.
    #[cfg(test)]
    pub(crate) fn from_ad_domain(domain: u8) -> Self {
        match domain {
            DOMAIN_LID => Self::Lid,
            DOMAIN_HOSTED => Self::Hosted,
            DOMAIN_HOSTED_LID => Self::HostedLid,
            _ => Self::WhatsApp,
        }
    }

    /// The largest device number this server's wire form carries, if it takes devices.
    pub fn max_device(&self) -> Option<u16> {
        match self {
            Self::WhatsApp | Self::Lid | Self::Hosted | Self::HostedLid => Some(u8::MAX.into()),
            Self::Messenger | Self::Interop => Some(u16::MAX),
            _ => None,
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Server {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, JidError> {
        Self::parse(s)
    }
}

/// A WhatsApp JID.
///
/// Forms (protocol-whatsmeow.md §2.5):
///
/// | form | example | wire |
/// |---|---|---|
/// | user JID | `15551234567@s.whatsapp.net`, `1203634@g.us`, `status@broadcast` | `JID_PAIR` |
/// | server JID (empty user) | `@s.whatsapp.net`, `@g.us` | `JID_PAIR` with `LIST_EMPTY` user |
/// | device ("AD") JID | `15551234567:3@s.whatsapp.net`, `1234:0@lid`, `77:2@hosted` | `AD_JID` |
/// | device JID with agent | `15551234567.5:3@s.whatsapp.net` | `AD_JID`, domain byte 5 |
/// | Messenger device JID | `100042:7@msgr` | `FB_JID` |
/// | interop device JID | `12-abc:7@interop` (`integrator-user:device`) | `INTEROP_JID` |
///
/// A device part is only allowed where the wire can carry it: on `s.whatsapp.net`, `lid`,
/// `hosted` and `hosted.lid` (one byte, so at most 255) and on `msgr` / `interop` (two bytes).
/// `:0` is kept: `1:0@s.whatsapp.net` is an `AD_JID` with device 0 while `1@s.whatsapp.net` is a
/// `JID_PAIR`; they are different values (compare [`Jid::to_non_ad`] results for identity).
///
/// The agent (`.5`) only exists on `s.whatsapp.net` device JIDs: it is the `AD_JID` domain byte
/// when that byte is not one of the reserved domain types 0 (WhatsApp), 1 (LID), 128 (hosted)
/// and 129 (hosted LID). Baileys writes agents as `user_agent`; we follow whatsmeow's `user.agent`
/// and treat `_` as an ordinary user character.
///
/// ```
/// use wasmeow_protocol::binary::{Jid, Server};
///
/// let jid: Jid = "15551234567:3@s.whatsapp.net".parse()?;
/// assert_eq!(jid.user(), "15551234567");
/// assert_eq!(jid.device(), 3);
/// assert_eq!(jid.server(), &Server::WhatsApp);
/// assert_eq!(jid.to_non_ad().to_string(), "15551234567@s.whatsapp.net");
/// assert_eq!(jid.signal_address(), "15551234567:3");
/// assert_eq!("1234:2@lid".parse::<Jid>()?.signal_address(), "1234_1:2");
/// assert!("a@b@c".parse::<Jid>().is_err());
/// # Ok::<(), wasmeow_protocol::binary::JidError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    user: String,
    server: Server,
    agent: u8,
    device: Option<u16>,
    integrator: u16,
}

impl Jid {
    /// A JID without a device part. The user may be empty (a server JID).
    pub fn new(user: impl Into<String>, server: Server) -> Result<Self, JidError> {
        let user = user.into();
        validate_user(&user, &server)?;
        Ok(Self {
            user,
            server,
            agent: 0,
            device: None,
            integrator: 0,
        })
    }

    /// The server JID (`@server`, empty user) of `server`.
    pub fn server_jid(server: Server) -> Self {
        Self {
            user: String::new(),
            server,
            agent: 0,
            device: None,
            integrator: 0,
        }
    }

    /// This JID with a device part (an "AD" JID). Fails if the server takes no devices, the
    /// device does not fit the server's wire form, or the user is empty.
    pub fn with_device(mut self, device: u16) -> Result<Self, JidError> {
        check_device(u64::from(device), &self.server)?;
        if self.user.is_empty() {
            return Err(JidError::EmptyUserWithDevice);
        }
        self.device = Some(device);
        Ok(self)
    }

    /// This JID with an agent (only on `s.whatsapp.net`, only with a device, 0/1/128/129 are
    /// reserved domain types).
    pub fn with_agent(mut self, agent: u8) -> Result<Self, JidError> {
        if self.server != Server::WhatsApp {
            return Err(JidError::AgentNotAllowed(self.server.to_string()));
        }
        if matches!(
            agent,
            DOMAIN_WHATSAPP | DOMAIN_LID | DOMAIN_HOSTED | DOMAIN_HOSTED_LID
        ) {
            return Err(JidError::ReservedAgent(agent));
        }
        if self.device.is_none() {
            return Err(JidError::AgentWithoutDevice);
        }
        self.agent = agent;
        Ok(self)
    }

    /// This interop device JID with an integrator number.
    pub fn with_integrator(mut self, integrator: u16) -> Result<Self, JidError> {
        if self.server != Server::Interop || self.device.is_none() {
            return Err(JidError::IntegratorNotAllowed);
        }
        self.integrator = integrator;
        Ok(self)
    }

    /// Parses `user[.agent][:device]@server` (and `integrator-user:device@interop`).
    pub fn parse(s: &str) -> Result<Self, JidError> {
        let parts = JidParts::parse(s)?;
        Ok(Self {
            user: parts.user.to_owned(),
            server: parts.server.into_owned(),
            agent: parts.agent,
            device: parts.device,
            integrator: parts.integrator,
        })
    }

    /// Builds a JID from already-split parts read off the wire, applying the same checks as
    /// [`Jid::parse`].
    /// Builds a JID from parts that already passed [`check_wire_parts`].
    pub(crate) fn from_checked_parts(
        user: String,
        server: Server,
        agent: u8,
        device: Option<u16>,
        integrator: u16,
    ) -> Self {
        Self {
            user,
            server,
            agent,
            device,
            integrator,
        }
    }

    /// The user part (empty for a server JID). Never contains `@` or `:`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The device number, 0 when there is no device part (the primary device).
    pub fn device(&self) -> u16 {
        self.device.unwrap_or(0)
    }

    /// Whether the JID has an explicit device part (`:n`, also `:0`), i.e. is an "AD" JID.
    pub fn is_ad(&self) -> bool {
        self.device.is_some()
    }

    /// The raw agent (0 when none).
    pub fn agent(&self) -> u8 {
        self.agent
    }

    /// The interop integrator (0 unless this is an interop device JID).
    pub fn integrator(&self) -> u16 {
        self.integrator
    }

    /// The AD_JID domain type: the agent on `s.whatsapp.net` (0 if none), 1 on `lid`, 128 on
    /// `hosted`, 129 on `hosted.lid`, 0 elsewhere.
    pub fn domain_type(&self) -> u8 {
        match self.server {
            Server::WhatsApp => self.agent,
            _ => self.server.ad_domain().unwrap_or(DOMAIN_WHATSAPP),
        }
    }

    /// The same user without device, agent and integrator.
    pub fn to_non_ad(&self) -> Self {
        Self {
            user: self.user.clone(),
            server: self.server.clone(),
            agent: 0,
            device: None,
            integrator: 0,
        }
    }

    /// Whether this is a group (`g.us`) JID.
    pub fn is_group(&self) -> bool {
        self.server == Server::Group
    }

    /// Whether this is a broadcast JID (including `status@broadcast`).
    pub fn is_broadcast(&self) -> bool {
        self.server == Server::Broadcast
    }

    /// Whether this is `status@broadcast`.
    pub fn is_status_broadcast(&self) -> bool {
        self.server == Server::Broadcast && self.user == "status"
    }

    /// Whether this is a server JID (empty user).
    pub fn is_server_jid(&self) -> bool {
        self.user.is_empty()
    }

    /// The Signal address name: the user, suffixed `_<domain>` when the domain type is not 0
    /// (`1234_1` for a LID, `77_128` for hosted).
    pub fn signal_address_user(&self) -> Cow<'_, str> {
        match self.domain_type() {
            0 => Cow::Borrowed(&self.user),
            domain => Cow::Owned(format!("{}_{domain}", self.user)),
        }
    }

    /// The Signal address string `name:device` (device 0 when there is no device part).
    pub fn signal_address(&self) -> String {
        format!("{}:{}", self.signal_address_user(), self.device())
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.server == Server::Interop && self.device.is_some() {
            write!(f, "{}-", self.integrator)?;
        }
        f.write_str(&self.user)?;
        if self.agent != 0 {
            write!(f, ".{}", self.agent)?;
        }
        if let Some(device) = self.device {
            write!(f, ":{device}")?;
        }
        write!(f, "@{}", self.server)
    }
}

impl FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, JidError> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Jid {
    type Error = JidError;
    fn try_from(s: &str) -> Result<Self, JidError> {
        Self::parse(s)
    }
}

/// The checks [`Jid::parse`] applies, for parts read off the wire. Returns the integrator to
/// store (kept only on interop device JIDs).
pub(crate) fn check_wire_parts(
    user: &[u8],
    server: &Server,
    agent: u8,
    device: Option<u16>,
    integrator: u16,
) -> Result<u16, JidError> {
    validate_user_bytes(user, server)?;
    check_wire_rest(user.is_empty(), server, agent, device, integrator)
}

/// The checks of [`check_wire_parts`] after the user's characters (which the caller has found
/// valid, e.g. with [`user_is_clean`]): device range, agent rules, integrator.
#[inline]
pub(crate) fn check_wire_rest(
    user_is_empty: bool,
    server: &Server,
    agent: u8,
    device: Option<u16>,
    integrator: u16,
) -> Result<u16, JidError> {
    if let Some(device) = device {
        check_device(u64::from(device), server)?;
        if user_is_empty {
            return Err(JidError::EmptyUserWithDevice);
        }
    }
    if agent != 0 {
        if *server != Server::WhatsApp {
            return Err(JidError::AgentNotAllowed(server.to_string()));
        }
        if matches!(agent, DOMAIN_LID | DOMAIN_HOSTED | DOMAIN_HOSTED_LID) {
            return Err(JidError::ReservedAgent(agent));
        }
        if device.is_none() {
            return Err(JidError::AgentWithoutDevice);
        }
    }
    Ok(if *server == Server::Interop && device.is_some() {
        integrator
    } else {
        0
    })
}

fn validate_user(user: &str, server: &Server) -> Result<(), JidError> {
    validate_user_bytes(user.as_bytes(), server)
}

/// A parsed JID whose user part borrows from the input: lets the encoder check a string for
/// JID-ness without allocating.
#[derive(Debug)]
pub(crate) struct JidParts<'a> {
    pub(crate) user: &'a str,
    pub(crate) server: Cow<'a, Server>,
    pub(crate) agent: u8,
    pub(crate) device: Option<u16>,
    pub(crate) integrator: u16,
}

impl<'a> JidParts<'a> {
    pub(crate) fn parse(s: &'a str) -> Result<Self, JidError> {
        let (user_part, server) = s.split_once('@').ok_or(JidError::MissingAt)?;
        if server.contains('@') {
            return Err(JidError::MultipleAt);
        }
        let server = parse_server_borrowed(server)?;
        let (mut user, device) = match user_part.split_once(':') {
            Some((_, device)) if device.contains(':') => return Err(JidError::MultipleColons),
            Some((user, device)) => (user, Some(device)),
            None => (user_part, None),
        };
        let device = match device {
            Some(text) => {
                let value =
                    parse_decimal(text).ok_or_else(|| JidError::InvalidDevice(text.to_owned()))?;
                Some(check_device(value, &server)?)
            }
            None => None,
        };
        let mut agent = 0;
        if *server == Server::WhatsApp
            && let Some((name, agent_text)) = user.split_once('.')
        {
            let value = parse_decimal(agent_text)
                .and_then(|v| u8::try_from(v).ok())
                .ok_or_else(|| JidError::InvalidAgent(agent_text.to_owned()))?;
            if matches!(
                value,
                DOMAIN_WHATSAPP | DOMAIN_LID | DOMAIN_HOSTED | DOMAIN_HOSTED_LID
            ) {
                return Err(JidError::ReservedAgent(value));
            }
            if device.is_none() {
                return Err(JidError::AgentWithoutDevice);
            }
            agent = value;
            user = name;
        }
        let mut integrator = 0;
        if *server == Server::Interop && device.is_some() {
            let (prefix, name) = user.split_once('-').ok_or(JidError::MissingIntegrator)?;
            integrator = parse_decimal(prefix)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| JidError::InvalidIntegrator(prefix.to_owned()))?;
            user = name;
        }
        validate_user(user, &server)?;
        if device.is_some() && user.is_empty() {
            return Err(JidError::EmptyUserWithDevice);
        }
        Ok(Self {
            user,
            server,
            agent,
            device,
            integrator,
        })
    }
}

/// [`Server::KNOWN`] as a static, so known servers can be borrowed for `'static`.
pub(crate) static KNOWN_SERVERS: [Server; 11] = Server::KNOWN;

/// Known servers are matched without allocating; only [`Server::Other`] owns its name.
fn parse_server_borrowed(name: &str) -> Result<Cow<'static, Server>, JidError> {
    if let Some(known) = KNOWN_SERVERS.iter().find(|s| s.as_str() == name) {
        return Ok(Cow::Borrowed(known));
    }
    Server::parse(name).map(Cow::Owned)
}

/// A non-empty run of ASCII digits, as a number (saturating far above any valid range).
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn check_device(device: u64, server: &Server) -> Result<u16, JidError> {
    let max = server
        .max_device()
        .ok_or_else(|| JidError::DeviceNotAllowed(server.to_string()))?;
    if device > u64::from(max) {
        return Err(JidError::DeviceOutOfRange {
            device,
            max,
            server: server.to_string(),
        });
    }
    // In range of `max`, which is at most u16::MAX.
    Ok(device as u16)
}

/// Bytes a user part never contains: `@` and `:`, plus `.` on `s.whatsapp.net` (index 1).
static USER_FORBIDDEN: [[bool; 256]; 2] = {
    let mut tables = [[false; 256]; 2];
    tables[0][b'@' as usize] = true;
    tables[0][b':' as usize] = true;
    tables[1][b'@' as usize] = true;
    tables[1][b':' as usize] = true;
    tables[1][b'.' as usize] = true;
    tables
};

/// Whether `user` is a valid user part on `server` (what [`check_wire_parts`] checks first).
#[inline]
pub(crate) fn user_is_clean(user: &[u8], server: &Server) -> bool {
    let forbidden = &USER_FORBIDDEN[usize::from(*server == Server::WhatsApp)];
    !user.iter().any(|&b| forbidden[usize::from(b)])
}

fn validate_user_bytes(user: &[u8], server: &Server) -> Result<(), JidError> {
    if user_is_clean(user, server) {
        return Ok(());
    }
    let reason = if user.contains(&b'@') {
        "contains '@'"
    } else if user.contains(&b':') {
        "contains ':' (a device part belongs after the user)"
    } else {
        "contains '.' (on s.whatsapp.net a '.' introduces the agent)"
    };
    Err(JidError::InvalidUser {
        user: String::from_utf8_lossy(user).into_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Jid {
        Jid::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn user_jids_on_every_known_server() {
        for server in Server::KNOWN {
            let text = format!("12345@{server}");
            let jid = p(&text);
            assert_eq!(jid.user(), "12345");
            assert_eq!(jid.server(), &server);
            assert!(!jid.is_ad());
            assert_eq!(jid.to_string(), text);
        }
    }

    #[test]
    fn server_jid_has_empty_user() {
        let jid = p("@s.whatsapp.net");
        assert!(jid.is_server_jid());
        assert_eq!(jid, Jid::server_jid(Server::WhatsApp));
        assert_eq!(jid.to_string(), "@s.whatsapp.net");
        assert_eq!(p("@g.us").server(), &Server::Group);
    }

    #[test]
    fn device_jids_and_domain_types() {
        let cases = [
            ("15551234567:3@s.whatsapp.net", 0, "15551234567:3"),
            ("1234:2@lid", 1, "1234_1:2"),
            ("77:9@hosted", 128, "77_128:9"),
            ("88:1@hosted.lid", 129, "88_129:1"),
            ("1:0@s.whatsapp.net", 0, "1:0"),
            ("1:255@lid", 1, "1_1:255"),
        ];
        for (text, domain, address) in cases {
            let jid = p(text);
            assert!(jid.is_ad());
            assert_eq!(jid.domain_type(), domain, "{text}");
            assert_eq!(jid.signal_address(), address, "{text}");
            assert_eq!(jid.to_string(), text, "display round trip");
            assert_eq!(p(&jid.to_string()), jid);
        }
        let plain = p("15551234567@s.whatsapp.net");
        assert_eq!(plain.signal_address(), "15551234567:0");
        assert_eq!(p("15551234567:3@s.whatsapp.net").to_non_ad(), plain);
        assert_ne!(p("1:0@s.whatsapp.net"), p("1@s.whatsapp.net"), ":0 is kept");
    }

    #[test]
    fn agent_form() {
        let jid = p("1555.5:3@s.whatsapp.net");
        assert_eq!((jid.user(), jid.agent(), jid.device()), ("1555", 5, 3));
        assert_eq!(jid.domain_type(), 5);
        assert_eq!(jid.signal_address(), "1555_5:3");
        assert_eq!(jid.to_string(), "1555.5:3@s.whatsapp.net");
        assert_eq!(jid.to_non_ad().to_string(), "1555@s.whatsapp.net");
        assert_eq!(
            Jid::parse("1.5@s.whatsapp.net"),
            Err(JidError::AgentWithoutDevice)
        );
        assert_eq!(
            Jid::parse("1.1:2@s.whatsapp.net"),
            Err(JidError::ReservedAgent(1))
        );
        assert_eq!(
            Jid::parse("1.128:2@s.whatsapp.net"),
            Err(JidError::ReservedAgent(128))
        );
        assert_eq!(
            Jid::parse("1.256:2@s.whatsapp.net"),
            Err(JidError::InvalidAgent("256".into()))
        );
        assert_eq!(
            Jid::parse("1.x:2@s.whatsapp.net"),
            Err(JidError::InvalidAgent("x".into()))
        );
        // Elsewhere a '.' is part of the user.
        assert_eq!(p("a.b@g.us").user(), "a.b");
    }

    #[test]
    fn messenger_and_interop() {
        let fb = p("100042:700@msgr");
        assert_eq!((fb.user(), fb.device()), ("100042", 700));
        let interop = p("12-abc-d:65535@interop");
        assert_eq!(
            (interop.integrator(), interop.user(), interop.device()),
            (12, "abc-d", 65535)
        );
        assert_eq!(interop.to_string(), "12-abc-d:65535@interop");
        assert_eq!(p("abc@interop").user(), "abc", "no device, no integrator");
        assert_eq!(
            Jid::parse("abc:1@interop"),
            Err(JidError::MissingIntegrator)
        );
        assert_eq!(
            Jid::parse("x-abc:1@interop"),
            Err(JidError::InvalidIntegrator("x".into()))
        );
        assert_eq!(
            Jid::parse("70000-abc:1@interop"),
            Err(JidError::InvalidIntegrator("70000".into()))
        );
    }

    #[test]
    fn other_servers_are_accepted_if_well_formed() {
        assert_eq!(p("x@call").server(), &Server::Other("call".into()));
        assert_eq!(
            Server::parse("s.whatsapp.net"),
            Ok(Server::WhatsApp),
            "never Other for a known name"
        );
        assert_eq!(
            Jid::parse("x@Bad Server"),
            Err(JidError::InvalidServer("Bad Server".into()))
        );
    }

    #[test]
    fn junk_is_a_typed_error() {
        assert_eq!(Jid::parse("a@b@c"), Err(JidError::MultipleAt));
        assert_eq!(Jid::parse("123"), Err(JidError::MissingAt));
        assert_eq!(Jid::parse("123@"), Err(JidError::EmptyServer));
        assert_eq!(
            Jid::parse("123:x@s.whatsapp.net"),
            Err(JidError::InvalidDevice("x".into()))
        );
        assert_eq!(
            Jid::parse("123:@s.whatsapp.net"),
            Err(JidError::InvalidDevice(String::new()))
        );
        assert_eq!(
            Jid::parse("123:-1@s.whatsapp.net"),
            Err(JidError::InvalidDevice("-1".into()))
        );
        assert_eq!(
            Jid::parse("1:2:3@s.whatsapp.net"),
            Err(JidError::MultipleColons)
        );
        assert_eq!(
            Jid::parse("123:256@s.whatsapp.net"),
            Err(JidError::DeviceOutOfRange {
                device: 256,
                max: 255,
                server: "s.whatsapp.net".into()
            })
        );
        assert_eq!(
            Jid::parse("123:65536@msgr"),
            Err(JidError::DeviceOutOfRange {
                device: 65536,
                max: 65535,
                server: "msgr".into()
            })
        );
        assert_eq!(
            Jid::parse("123:99999999999999999999999@lid"),
            Err(JidError::InvalidDevice("99999999999999999999999".into()))
        );
        assert_eq!(
            Jid::parse("123:1@g.us"),
            Err(JidError::DeviceNotAllowed("g.us".into()))
        );
        assert_eq!(
            Jid::parse(":1@s.whatsapp.net"),
            Err(JidError::EmptyUserWithDevice)
        );
        assert!(matches!(
            Jid::parse("1.2.3@s.whatsapp.net"),
            Err(JidError::InvalidAgent(_))
        ));
        assert!(matches!(
            Jid::new("a.b", Server::WhatsApp),
            Err(JidError::InvalidUser { .. })
        ));
        assert!(matches!(
            Jid::new("a:b", Server::Group),
            Err(JidError::InvalidUser { .. })
        ));
        // Errors name what is wrong.
        let message = Jid::parse("123:256@s.whatsapp.net")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("256") && message.contains("255"),
            "{message}"
        );
    }

    #[test]
    fn builders_enforce_the_same_rules() {
        let jid = Jid::new("1", Server::WhatsApp)
            .unwrap()
            .with_device(3)
            .unwrap()
            .with_agent(9)
            .unwrap();
        assert_eq!(jid, p("1.9:3@s.whatsapp.net"));
        assert!(
            Jid::new("1", Server::Group)
                .unwrap()
                .with_device(1)
                .is_err()
        );
        assert!(
            Jid::new("1", Server::Lid)
                .unwrap()
                .with_device(256)
                .is_err()
        );
        assert!(
            Jid::new("1", Server::Lid)
                .unwrap()
                .with_device(1)
                .unwrap()
                .with_agent(5)
                .is_err()
        );
        assert!(
            Jid::new("1", Server::WhatsApp)
                .unwrap()
                .with_agent(5)
                .is_err(),
            "agent needs a device"
        );
        let interop = Jid::new("u", Server::Interop)
            .unwrap()
            .with_device(2)
            .unwrap()
            .with_integrator(7)
            .unwrap();
        assert_eq!(interop, p("7-u:2@interop"));
        assert!(
            Jid::new("u", Server::Interop)
                .unwrap()
                .with_integrator(7)
                .is_err()
        );
    }

    #[test]
    fn known_index_matches_the_known_list() {
        for (i, server) in Server::KNOWN.iter().enumerate() {
            assert_eq!(server.known_index(), Some(i as u8));
            assert_eq!(&KNOWN_SERVERS[i], server);
        }
        assert_eq!(Server::parse("call").unwrap().known_index(), None);
    }

    #[test]
    fn predicates() {
        assert!(p("1203@g.us").is_group());
        assert!(p("status@broadcast").is_status_broadcast());
        assert!(p("123@broadcast").is_broadcast());
        assert!(!p("123@broadcast").is_status_broadcast());
        assert!(!p("1@s.whatsapp.net").is_group());
    }
}
