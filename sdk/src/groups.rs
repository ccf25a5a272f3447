//! Group management (the `groups` capability; admin actions need `group-admin`).

pub use crate::wit::wasmeow::bot::groups::{
    GroupInfo, Participant, ParticipantOutcome, ParticipantRole, add_participants, create,
    demote_participants, info, invite_link, join, leave, promote_participants, remove_participants,
    revoke_invite_link, set_announce, set_description, set_locked, set_subject,
};

use crate::time::same_user;

impl GroupInfo {
    /// The role of `user` in this group, if they are a member. Device suffixes
    /// (`user:3@server`) are ignored.
    pub fn role_of(&self, user: &str) -> Option<ParticipantRole> {
        self.participants
            .iter()
            .find(|p| same_user(&p.user, user))
            .map(|p| p.role)
    }

    /// Whether `user` is an admin (or the owner) of this group.
    pub fn is_admin(&self, user: &str) -> bool {
        matches!(
            self.role_of(user),
            Some(ParticipantRole::Admin | ParticipantRole::Owner)
        )
    }
}
