//! An in-memory [`Control`] whose state the test changes directly, recording what the admin
//! API asked of it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::broadcast;
use wasmeow::control::{
    Control, ControlError, HostEvent, NewSession, PluginInfo, Sent, SessionState, SessionStatus,
};

#[derive(Debug, Default)]
pub struct FakeState {
    pub sessions: BTreeMap<String, SessionStatus>,
    pub plugins: BTreeMap<String, PluginInfo>,
    pub ready: bool,
    pub overloaded: bool,
    pub pair_code: String,
    pub metrics: String,
    /// (session, chat, text) of every accepted send.
    pub sent: Vec<(String, String, String)>,
    /// (session, logout) of every removal.
    pub removed: Vec<(String, bool)>,
    pub logouts: Vec<String>,
    pub pair_requests: Vec<(String, String)>,
}

pub struct FakeControl {
    pub state: Mutex<FakeState>,
    events: broadcast::Sender<HostEvent>,
}

pub fn status(name: &str, state: SessionState, qr: Option<&str>) -> SessionStatus {
    SessionStatus {
        name: name.to_owned(),
        state,
        jid: (state == SessionState::Connected).then(|| "15550001111:3@s.whatsapp.net".into()),
        qr: qr.map(str::to_owned),
        pair_code: None,
        reason: None,
        outbox_depth: 0,
    }
}

impl FakeControl {
    /// A fake with no sessions, ready, whose event channel holds `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity);
        Self {
            state: Mutex::new(FakeState {
                ready: true,
                pair_code: "K7P2-9QXD".into(),
                metrics: "# TYPE wasmeow_sessions gauge\nwasmeow_sessions 0\n".into(),
                ..FakeState::default()
            }),
            events,
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn put(&self, s: SessionStatus) {
        self.with(|st| st.sessions.insert(s.name.clone(), s));
    }

    pub fn put_plugin(&self, name: &str) {
        self.with(|st| {
            st.plugins.insert(
                name.into(),
                PluginInfo {
                    name: name.into(),
                    version: 1,
                    health: "running".into(),
                    handled: 0,
                    failures: 0,
                },
            )
        });
    }

    /// Broadcasts an event; returns the number of receivers.
    pub fn emit(&self, session: &str, event: &str, data: serde_json::Value) -> usize {
        self.events
            .send(HostEvent {
                session: session.into(),
                event: event.into(),
                at_ms: 1_700_000_000_000,
                data,
            })
            .unwrap_or(0)
    }

    pub fn receivers(&self) -> usize {
        self.events.receiver_count()
    }

    /// Moves a session to `connected` and announces it, as a real runtime does after a scan.
    pub fn connect(&self, name: &str) {
        self.with(|st| {
            let s = st.sessions.get_mut(name).expect("no such fake session");
            s.state = SessionState::Connected;
            s.qr = None;
            s.jid = Some("15550001111:3@s.whatsapp.net".into());
        });
        self.emit(
            name,
            "authenticated",
            serde_json::json!({ "jid": "15550001111:3@s.whatsapp.net" }),
        );
    }

    fn not_found(name: &str) -> ControlError {
        ControlError::NotFound(format!("session {name:?}"))
    }
}

#[async_trait]
impl Control for FakeControl {
    fn sessions(&self) -> Vec<SessionStatus> {
        self.with(|st| st.sessions.values().cloned().collect())
    }

    fn session(&self, name: &str) -> Option<SessionStatus> {
        self.with(|st| st.sessions.get(name).cloned())
    }

    async fn create_session(&self, spec: NewSession) -> Result<SessionStatus, ControlError> {
        let s = self.with(|st| {
            if st.overloaded {
                return Err(ControlError::Overloaded(
                    "memory above high-water mark".into(),
                ));
            }
            if st.sessions.contains_key(&spec.name) {
                return Err(ControlError::Conflict(format!("session {:?}", spec.name)));
            }
            let s = status(&spec.name, SessionState::Connecting, None);
            st.sessions.insert(spec.name.clone(), s.clone());
            Ok(s)
        })?;
        self.emit(&s.name, "session_added", serde_json::Value::Null);
        Ok(s)
    }

    async fn remove_session(&self, name: &str, logout: bool) -> Result<(), ControlError> {
        self.with(|st| {
            st.sessions
                .remove(name)
                .ok_or_else(|| Self::not_found(name))?;
            st.removed.push((name.into(), logout));
            Ok(())
        })?;
        self.emit(name, "session_removed", serde_json::Value::Null);
        Ok(())
    }

    async fn logout(&self, name: &str) -> Result<(), ControlError> {
        self.with(|st| {
            let s = st
                .sessions
                .get_mut(name)
                .ok_or_else(|| Self::not_found(name))?;
            if s.state != SessionState::Connected {
                return Err(ControlError::Unavailable("not connected".into()));
            }
            s.state = SessionState::Qr;
            s.jid = None;
            s.qr = Some("2@fresh-after-logout".into());
            st.logouts.push(name.into());
            Ok(())
        })?;
        self.emit(name, "logged_out", serde_json::Value::Null);
        Ok(())
    }

    async fn pair_code(&self, name: &str, phone: &str) -> Result<String, ControlError> {
        self.with(|st| {
            let s = st.sessions.get(name).ok_or_else(|| Self::not_found(name))?;
            if s.state == SessionState::Connected {
                return Err(ControlError::Invalid(
                    "name: the session is already paired".into(),
                ));
            }
            st.pair_requests.push((name.into(), phone.into()));
            Ok(st.pair_code.clone())
        })
    }

    async fn send_text(&self, name: &str, chat: &str, text: &str) -> Result<Sent, ControlError> {
        self.with(|st| {
            let s = st.sessions.get(name).ok_or_else(|| Self::not_found(name))?;
            if s.state != SessionState::Connected {
                return Err(ControlError::Unavailable(format!(
                    "session {name:?} is not connected"
                )));
            }
            st.sent.push((name.into(), chat.into(), text.into()));
            Ok(Sent {
                id: format!("3EB0{:016X}", st.sent.len()),
            })
        })
    }

    fn plugins(&self) -> Vec<PluginInfo> {
        self.with(|st| st.plugins.values().cloned().collect())
    }

    async fn reload_plugin(&self, name: &str) -> Result<PluginInfo, ControlError> {
        self.with(|st| {
            if name == "broken" {
                return Err(ControlError::Internal(
                    "the plugin file is unreadable".into(),
                ));
            }
            let p = st
                .plugins
                .get_mut(name)
                .ok_or_else(|| ControlError::NotFound(format!("plugin {name:?}")))?;
            p.version += 1;
            Ok(p.clone())
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<HostEvent> {
        self.events.subscribe()
    }

    fn metrics(&self) -> String {
        self.with(|st| st.metrics.clone())
    }

    fn ready(&self) -> bool {
        self.with(|st| st.ready)
    }
}

impl FakeControl {
    pub fn session_exists(&self, name: &str) -> bool {
        self.with(|st| st.sessions.contains_key(name))
    }
}
