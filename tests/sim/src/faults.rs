//! Fault injection: the failures a real deployment sees, on demand.
//!
//! Contract: each fault has a precise, client-visible effect.
//! - [`Kick`]: the server ends a device's stream the way WhatsApp does:
//!   `<stream:error code="515"/>` (restart required), `<stream:error code="401"><conflict
//!   type="device_removed"/></stream:error>` (logged out; the device is unlinked),
//!   `<stream:error><conflict type="replaced"/></stream:error>` (another login took over),
//!   `<stream:error code="503"/>` (service unavailable), each followed by closing the socket.
//! - Dropping a connection closes the TCP socket with no stanza and no WebSocket close frame.
//! - Delaying deliveries holds every stanza queued for a device for a fixed time; reordering
//!   holds the next `n` and then writes them in reverse order. Neither loses anything: held
//!   stanzas stay in the device's queue and are redelivered on the next login if needed.
//! - Refusing logins answers logins with `<failure reason=N/>` until a deadline.
//! - Restarting the whole server is [`crate::SimHandle::restart`].

use std::collections::HashMap;
use std::time::Duration;

use wasmeow_protocol::binary::Node;

use crate::routing::Queued;
use crate::state::{ConnCmd, DevAddr, World};
use crate::util::now_ms;

/// How the server ends a device's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kick {
    /// `stream:error code=515`: restart required; the client reconnects and logs in again.
    Restart,
    /// `stream:error code=401` + `conflict type=device_removed`: the device is unlinked.
    LoggedOut,
    /// `stream:error` + `conflict type=replaced`: another connection took over.
    Replaced,
    /// `stream:error code=503`: transient; the client should reconnect later.
    Unavailable,
}

impl Kick {
    /// The stanza that ends the stream.
    pub(crate) fn stanza(self) -> Node {
        match self {
            Self::Restart => Node::new("stream:error").attr("code", "515"),
            Self::LoggedOut => Node::new("stream:error")
                .attr("code", "401")
                .children([Node::new("conflict").attr("type", "device_removed")]),
            Self::Replaced => {
                Node::new("stream:error").children([Node::new("conflict").attr("type", "replaced")])
            }
            Self::Unavailable => Node::new("stream:error").attr("code", "503"),
        }
    }
}

/// Active faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Deliveries to these devices are held for this long.
    pub delay: HashMap<DevAddr, Duration>,
    /// Deliveries to these devices are collected in batches of this size and written reversed;
    /// the second number is how many are currently held.
    pub reorder: HashMap<DevAddr, (usize, usize)>,
    /// Logins are refused until this time (unix ms) with this failure reason.
    pub refuse_logins: Option<(u64, u16)>,
}

impl World {
    /// Applies delay/reorder faults to an entry about to be queued for `to`. Returns the
    /// number of held entries to release (reversed) when a reorder batch is complete.
    pub(crate) fn apply_delivery_faults(
        &mut self,
        to: &DevAddr,
        entry: &mut Queued,
    ) -> Option<usize> {
        if let Some(delay) = self.faults.delay.get(to) {
            entry.deliver_at_ms = now_ms() + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        }
        let (batch, held) = self.faults.reorder.get_mut(to)?;
        entry.held = true;
        *held += 1;
        if *held >= *batch {
            let release = *held;
            self.faults.reorder.remove(to);
            return Some(release);
        }
        None
    }

    /// Ends a device's stream with `kick`. Returns false if the device is not online.
    pub(crate) fn kick(&mut self, addr: &DevAddr, kick: Kick) -> bool {
        let Some(online) = self.online.remove(addr) else {
            return false;
        };
        let _ = online.tx.send(ConnCmd::Close(Some(kick.stanza())));
        if kick == Kick::LoggedOut {
            self.remove_device(addr);
        }
        if let Some(device) = self
            .accounts
            .get_mut(&addr.pn)
            .and_then(|a| a.devices.get_mut(&addr.dev))
        {
            device.queue.forget_connection();
        }
        true
    }

    /// Drops a device's socket without any goodbye. Returns false if it is not online.
    pub(crate) fn drop_connection(&mut self, addr: &DevAddr) -> bool {
        let Some(online) = self.online.remove(addr) else {
            return false;
        };
        let _ = online.tx.send(ConnCmd::Drop);
        if let Some(device) = self
            .accounts
            .get_mut(&addr.pn)
            .and_then(|a| a.devices.get_mut(&addr.dev))
        {
            device.queue.forget_connection();
        }
        true
    }

    /// Unlinks a companion device (logout or kick 401).
    pub(crate) fn remove_device(&mut self, addr: &DevAddr) {
        if addr.dev == 0 {
            return;
        }
        if let Some(account) = self.accounts.get_mut(&addr.pn) {
            account.devices.remove(&addr.dev);
            self.dirty = true;
        }
    }

    /// Whether logins are refused right now, and with which reason.
    pub(crate) fn login_refusal(&mut self) -> Option<u16> {
        let (until, reason) = self.faults.refuse_logins?;
        if now_ms() < until {
            Some(reason)
        } else {
            self.faults.refuse_logins = None;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kick_stanzas_match_whatsapp() {
        assert_eq!(Kick::Restart.stanza().attr_str("code"), Some("515"));
        let out = Kick::LoggedOut.stanza();
        assert_eq!(out.attr_str("code"), Some("401"));
        assert_eq!(
            out.child_by_tag("conflict").unwrap().attr_str("type"),
            Some("device_removed")
        );
        let replaced = Kick::Replaced.stanza();
        assert_eq!(replaced.attr_str("code"), None);
        assert_eq!(
            replaced.child_by_tag("conflict").unwrap().attr_str("type"),
            Some("replaced")
        );
    }
}
