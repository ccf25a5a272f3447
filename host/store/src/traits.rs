//! The store traits.
//!
//! - [`Store`]: a file (or memory) holding many accounts; create, open, list and delete them.
//! - [`AccountStore`]: a `Clone + Send + Sync` handle on one account with explicit
//!   transactions, [`AccountStore::read`] (a consistent snapshot) and [`AccountStore::write`]
//!   (all-or-nothing).
//! - One trait per kind of state ([`IdentityStore`], [`SessionStore`], [`PreKeyStore`], ...).
//!   Each is implemented by [`Tx`] (the operations inside a transaction) and by every
//!   [`AccountStore`] handle, where each read runs in its own read transaction and each write
//!   commits on its own. Group writes that must be atomic (ratchet state + dedupe id + inbound
//!   message) in one [`AccountStore::write`].
//!
//! All calls are synchronous and short; async callers run them on blocking threads. Inside a
//! read transaction every write method fails with [`StoreError::ReadOnly`].

use crate::error::StoreError;
use crate::tx::Tx;
use crate::types::{
    DeviceCredentials, DeviceList, PreKey, Queue, QueueItem, Secret, SignalAddress,
};

/// A store holding any number of accounts (one account = one WhatsApp session, i.e. one linked
/// device, and everything it persists).
pub trait Store: Send + Sync {
    /// The handle type of one account.
    type Account: AccountStore;

    /// Creates an empty account; [`StoreError::AccountExists`] if the name is taken.
    fn create_account(&self, name: &str) -> Result<Self::Account, StoreError>;

    /// A handle on an existing account, or `None`.
    fn account(&self, name: &str) -> Result<Option<Self::Account>, StoreError>;

    /// The existing account, or a new empty one.
    fn open_or_create_account(&self, name: &str) -> Result<Self::Account, StoreError> {
        match self.account(name)? {
            Some(a) => Ok(a),
            None => self.create_account(name),
        }
    }

    /// Deletes an account and every record it owns, atomically; whether it existed. Existing
    /// handles then fail with [`StoreError::AccountDeleted`]. The encrypted store also destroys
    /// the account's data key (crypto-shredding; see `DESIGN.md`).
    fn delete_account(&self, name: &str) -> Result<bool, StoreError>;

    /// The names of all accounts, sorted.
    fn list_accounts(&self) -> Result<Vec<String>, StoreError>;
}

/// A handle on one account. Cheap to clone; safe to share between threads.
pub trait AccountStore: Clone + Send + Sync + 'static {
    /// The account's name.
    fn name(&self) -> &str;

    /// Runs `f` on a consistent snapshot. Writes inside fail with [`StoreError::ReadOnly`].
    fn read<R, E: From<StoreError>>(&self, f: impl FnOnce(&Tx<'_>) -> Result<R, E>)
    -> Result<R, E>;

    /// Runs `f` in a write transaction and commits it if `f` returns `Ok` (durably, before this
    /// returns); if `f` fails or panics nothing it wrote is kept. Writers are serialized: inside
    /// `f`, use only `tx` (a nested write through any handle of the same store deadlocks).
    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E>;
}

/// Declares the per-kind traits and implements each for every [`AccountStore`] handle: `read`
/// methods run in a read transaction, `write` methods in their own write transaction.
macro_rules! account_traits {
    ($(
        $(#[$tmeta:meta])*
        pub trait $Trait:ident {
            $(
                $(#[$mmeta:meta])*
                $kind:ident fn $name:ident(&self $(, $arg:ident : $ty:ty)* $(,)?) -> $ret:ty;
            )*
        }
    )*) => {$(
        $(#[$tmeta])*
        pub trait $Trait {
            $(
                $(#[$mmeta])*
                fn $name(&self $(, $arg: $ty)*) -> $ret;
            )*
        }

        impl<A: AccountStore> $Trait for A {
            $(
                fn $name(&self $(, $arg: $ty)*) -> $ret {
                    account_traits!(@call $kind, self, $name, ($($arg),*))
                }
            )*
        }
    )*};
    (@call read, $self:ident, $name:ident, ($($arg:ident),*)) => {
        $self.read::<_, StoreError>(|tx| tx.$name($($arg),*))
    };
    (@call write, $self:ident, $name:ident, ($($arg:ident),*)) => {
        $self.write::<_, StoreError>(|tx| tx.$name($($arg),*))
    };
}

account_traits! {
    /// Peers' identity keys (the trust store), by Signal address.
    pub trait IdentityStore {
        /// Stores (or replaces) the identity public key of `addr`.
        write fn put_identity(&self, addr: &SignalAddress, key: &[u8; 32]) -> Result<(), StoreError>;
        /// The identity public key of `addr`.
        read fn get_identity(&self, addr: &SignalAddress) -> Result<Option<[u8; 32]>, StoreError>;
        /// Trust on first use: `true` if no key is stored for `addr` or the stored key equals
        /// `key`; `false` if a different key is stored.
        read fn is_trusted_identity(&self, addr: &SignalAddress, key: &[u8; 32]) -> Result<bool, StoreError>;
        /// Removes the identity of `addr`; whether it existed.
        write fn delete_identity(&self, addr: &SignalAddress) -> Result<bool, StoreError>;
        /// Removes the identities of every device of user `name`; how many.
        write fn delete_all_identities(&self, name: &str) -> Result<usize, StoreError>;
    }

    /// Signal sessions (opaque session records), by address `name.device`.
    pub trait SessionStore {
        /// The session record with `addr`.
        read fn get_session(&self, addr: &SignalAddress) -> Result<Option<Secret>, StoreError>;
        /// Whether a session with `addr` exists.
        read fn has_session(&self, addr: &SignalAddress) -> Result<bool, StoreError>;
        /// Stores (or replaces) the session record with `addr`.
        write fn put_session(&self, addr: &SignalAddress, record: &[u8]) -> Result<(), StoreError>;
        /// Removes the session with `addr`; whether it existed.
        write fn delete_session(&self, addr: &SignalAddress) -> Result<bool, StoreError>;
        /// Removes the sessions with every device of user `name`; how many.
        write fn delete_all_sessions(&self, name: &str) -> Result<usize, StoreError>;
        /// The sessions with every device of user `name`, by device number.
        read fn sessions_of(&self, name: &str) -> Result<Vec<(SignalAddress, Secret)>, StoreError>;
    }

    /// One-time prekeys. Ids are allocated by the store, increase from 1 and stay below 2^24.
    pub trait PreKeyStore {
        /// Allocates `count` new ids, calls `generate(id)` for each to build the record, stores
        /// them (not uploaded) and returns them.
        write fn gen_prekeys(&self, count: u32, generate: &mut dyn FnMut(u32) -> Secret) -> Result<Vec<PreKey>, StoreError>;
        /// Up to `count` prekeys that are not uploaded yet, lowest id first, generating new ones
        /// with `generate` if fewer exist.
        write fn get_or_gen_prekeys(&self, count: u32, generate: &mut dyn FnMut(u32) -> Secret) -> Result<Vec<PreKey>, StoreError>;
        /// The prekey `id`.
        read fn get_prekey(&self, id: u32) -> Result<Option<PreKey>, StoreError>;
        /// Removes prekey `id` (after a peer used it); whether it existed.
        write fn remove_prekey(&self, id: u32) -> Result<bool, StoreError>;
        /// Marks every prekey with an id up to and including `up_to` as uploaded.
        write fn mark_prekeys_uploaded(&self, up_to: u32) -> Result<(), StoreError>;
        /// How many stored prekeys are marked uploaded.
        read fn uploaded_prekey_count(&self) -> Result<u32, StoreError>;
    }

    /// Signed prekeys (opaque records), by id.
    pub trait SignedPreKeyStore {
        /// Stores (or replaces) signed prekey `id`.
        write fn put_signed_prekey(&self, id: u32, record: &[u8]) -> Result<(), StoreError>;
        /// Signed prekey `id`.
        read fn get_signed_prekey(&self, id: u32) -> Result<Option<Secret>, StoreError>;
        /// Removes signed prekey `id`; whether it existed.
        write fn remove_signed_prekey(&self, id: u32) -> Result<bool, StoreError>;
        /// The ids of all stored signed prekeys, ascending.
        read fn signed_prekey_ids(&self) -> Result<Vec<u32>, StoreError>;
    }

    /// Group sender keys (opaque records), by group and sender address.
    pub trait SenderKeyStore {
        /// Stores (or replaces) the sender key of `sender` in `group`.
        write fn put_sender_key(&self, group: &str, sender: &SignalAddress, record: &[u8]) -> Result<(), StoreError>;
        /// The sender key of `sender` in `group`.
        read fn get_sender_key(&self, group: &str, sender: &SignalAddress) -> Result<Option<Secret>, StoreError>;
        /// Removes the sender key of `sender` in `group`; whether it existed.
        write fn delete_sender_key(&self, group: &str, sender: &SignalAddress) -> Result<bool, StoreError>;
        /// Removes every sender key of `group`; how many.
        write fn delete_group_sender_keys(&self, group: &str) -> Result<usize, StoreError>;
    }

    /// This device's credentials, one record.
    pub trait DeviceStore {
        /// Stores (or replaces) the credentials.
        write fn put_device(&self, creds: &DeviceCredentials) -> Result<(), StoreError>;
        /// The credentials, if stored.
        read fn get_device(&self) -> Result<Option<DeviceCredentials>, StoreError>;
        /// Removes the credentials; whether they existed.
        write fn delete_device(&self) -> Result<bool, StoreError>;
    }

    /// The LID ↔ phone-number mapping. Both sides are unique: mapping a LID to a new phone
    /// number (or a phone number to a new LID) replaces the old pair.
    pub trait LidStore {
        /// Records that `lid` (user part) belongs to phone number `pn` (user part).
        write fn put_lid_mapping(&self, lid: &str, pn: &str) -> Result<(), StoreError>;
        /// The phone number of `lid`.
        read fn get_pn_for_lid(&self, lid: &str) -> Result<Option<String>, StoreError>;
        /// The LID of phone number `pn`.
        read fn get_lid_for_pn(&self, pn: &str) -> Result<Option<String>, StoreError>;
        /// Removes the pair containing `lid`; whether it existed.
        write fn delete_lid_mapping(&self, lid: &str) -> Result<bool, StoreError>;
    }

    /// Cached device lists, per user, with the time they were fetched.
    pub trait DeviceListStore {
        /// Stores (or replaces) the device list of `user`.
        write fn put_device_list(&self, user: &str, list: &DeviceList) -> Result<(), StoreError>;
        /// The cached device list of `user`.
        read fn get_device_list(&self, user: &str) -> Result<Option<DeviceList>, StoreError>;
        /// Removes the cached list of `user`; whether it existed.
        write fn delete_device_list(&self, user: &str) -> Result<bool, StoreError>;
    }

    /// Message dedupe ids: a bounded, expiring set (see [`crate::Limits`]). When a new id would
    /// exceed the capacity the oldest are dropped; ids older than the maximum age (measured
    /// against `now_ms`) are dropped on the next `mark_seen`.
    pub trait DedupeStore {
        /// Records `id`; `true` if it is new, `false` if it was already seen (a duplicate).
        write fn mark_seen(&self, id: &str, now_ms: u64) -> Result<bool, StoreError>;
        /// Whether `id` is in the set.
        read fn is_seen(&self, id: &str) -> Result<bool, StoreError>;
    }

    /// Recently sent messages, kept to answer retry receipts; bounded (oldest dropped first).
    pub trait RecentSentStore {
        /// Stores (or replaces) the message `msg_id` sent to `chat`.
        write fn put_recent_sent(&self, chat: &str, msg_id: &str, payload: &[u8]) -> Result<(), StoreError>;
        /// The message `msg_id` sent to `chat`, if still kept.
        read fn get_recent_sent(&self, chat: &str, msg_id: &str) -> Result<Option<Secret>, StoreError>;
        /// Removes the message; whether it was kept.
        write fn delete_recent_sent(&self, chat: &str, msg_id: &str) -> Result<bool, StoreError>;
    }

    /// Ordered persistent queues ([`Queue::Outbox`], [`Queue::Inbound`]): push at the tail,
    /// peek from the head, ack to remove, requeue to move an entry to the tail.
    pub trait QueueStore {
        /// Appends `payload`; its id.
        write fn queue_push(&self, queue: Queue, payload: &[u8]) -> Result<u64, StoreError>;
        /// Up to `max` entries from the head, in order, without removing them.
        read fn queue_peek(&self, queue: Queue, max: usize) -> Result<Vec<QueueItem>, StoreError>;
        /// Removes entry `id`; whether it existed.
        write fn queue_ack(&self, queue: Queue, id: u64) -> Result<bool, StoreError>;
        /// Moves entry `id` to the tail with `attempts + 1`; its new id, or `None` if absent.
        write fn queue_requeue(&self, queue: Queue, id: u64) -> Result<Option<u64>, StoreError>;
        /// The number of entries.
        read fn queue_len(&self, queue: Queue) -> Result<u64, StoreError>;
    }

    /// Key-value storage for plugins, one keyspace per plugin.
    pub trait PluginKvStore {
        /// The value at `key` of `plugin`.
        read fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Secret>, StoreError>;
        /// Sets `key` of `plugin` to `value`.
        write fn kv_set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), StoreError>;
        /// Removes `key` of `plugin`; whether it existed.
        write fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError>;
        /// The entries of `plugin` whose key starts with `prefix`, sorted by key.
        read fn kv_list(&self, plugin: &str, prefix: &str) -> Result<Vec<(String, Secret)>, StoreError>;
        /// Atomically: if the current value equals `expected` (`None`: absent), replace it with
        /// `new` (`None`: delete) and return `true`; otherwise change nothing and return `false`.
        write fn kv_compare_and_swap(&self, plugin: &str, key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, StoreError>;
    }

    /// Scheduler and campaign state: opaque job records by id.
    pub trait JobStore {
        /// Stores (or replaces) job `id`.
        write fn put_job(&self, id: &str, data: &[u8]) -> Result<(), StoreError>;
        /// Job `id`.
        read fn get_job(&self, id: &str) -> Result<Option<Secret>, StoreError>;
        /// Removes job `id`; whether it existed.
        write fn delete_job(&self, id: &str) -> Result<bool, StoreError>;
        /// All jobs, sorted by id.
        read fn list_jobs(&self) -> Result<Vec<(String, Secret)>, StoreError>;
    }
}
