//! [`MemoryStore`]: the in-memory store, with the same semantics as the encrypted redb store
//! (the account logic is shared through [`crate::Tx`]; only the backend differs). Nothing is
//! encrypted or persisted. Meant for unit tests of the crates that use the store traits.
//!
//! One mutex serializes all transactions (reads included), which gives snapshot reads and
//! atomic writes trivially. A write keeps an undo log and rolls back if its closure fails or
//! panics.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::crypto::{KeyHasher, random_key};
use crate::error::StoreError;
use crate::raw::{KeyRange, Raw, Table};
use crate::traits::{AccountStore, Store};
use crate::tx::Tx;
use crate::types::{Limits, Secret};

/// An in-memory [`Store`].
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    limits: Limits,
}

struct State {
    accounts: BTreeMap<String, Arc<AccountShared>>,
    next_ns: u64,
    tables: Vec<BTreeMap<Vec<u8>, Secret>>,
}

struct AccountShared {
    name: String,
    ns: [u8; 8],
    hasher: KeyHasher,
    deleted: AtomicBool,
}

/// A handle on one account of a [`MemoryStore`].
#[derive(Clone)]
pub struct MemoryAccount {
    inner: Arc<Inner>,
    account: Arc<AccountShared>,
}

impl MemoryStore {
    /// An empty store with default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    accounts: BTreeMap::new(),
                    next_ns: 1,
                    tables: vec![BTreeMap::new(); Table::ALL.len()],
                }),
                limits,
            }),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside a transaction rolls the state back before the guard is released, so a
        // poisoned lock still protects consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    type Account = MemoryAccount;

    fn create_account(&self, name: &str) -> Result<MemoryAccount, StoreError> {
        if name.is_empty() {
            return Err(StoreError::InvalidInput("empty account name"));
        }
        let mut st = self.inner.lock();
        if st.accounts.contains_key(name) {
            return Err(StoreError::AccountExists);
        }
        let ns = st.next_ns;
        st.next_ns += 1;
        let account = Arc::new(AccountShared {
            name: name.to_owned(),
            ns: ns.to_be_bytes(),
            hasher: KeyHasher::new(&random_key()),
            deleted: AtomicBool::new(false),
        });
        st.accounts.insert(name.to_owned(), account.clone());
        Ok(MemoryAccount {
            inner: self.inner.clone(),
            account,
        })
    }

    fn account(&self, name: &str) -> Result<Option<MemoryAccount>, StoreError> {
        let st = self.inner.lock();
        Ok(st.accounts.get(name).map(|a| MemoryAccount {
            inner: self.inner.clone(),
            account: a.clone(),
        }))
    }

    fn delete_account(&self, name: &str) -> Result<bool, StoreError> {
        let mut st = self.inner.lock();
        let Some(account) = st.accounts.remove(name) else {
            return Ok(false);
        };
        let range = KeyRange::prefix(&[]).absolute(&account.ns);
        for table in &mut st.tables {
            let keys: Vec<Vec<u8>> = table
                .range((Bound::Included(range.0.clone()), range.1.clone()))
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                table.remove(&k);
            }
        }
        account.deleted.store(true, Ordering::SeqCst);
        Ok(true)
    }

    fn list_accounts(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.inner.lock().accounts.keys().cloned().collect())
    }
}

impl MemoryAccount {
    fn run<R, E: From<StoreError>>(
        &self,
        writable: bool,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut st = self.inner.lock();
        if self.account.deleted.load(Ordering::SeqCst) {
            return Err(StoreError::AccountDeleted.into());
        }
        let raw = MemRaw {
            state: RefCell::new(&mut st),
            account: &self.account,
            writable,
            undo: RefCell::new(Vec::new()),
            committed: Cell::new(false),
        };
        let result = f(&Tx::new(&raw, self.inner.limits));
        if result.is_ok() {
            raw.committed.set(true);
        }
        // Dropping `raw` rolls back unless committed (also on panic, during unwinding).
        drop(raw);
        result
    }
}

impl AccountStore for MemoryAccount {
    fn name(&self) -> &str {
        &self.account.name
    }

    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.run(false, f)
    }

    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.run(true, f)
    }
}

type Undo = (usize, Vec<u8>, Option<Secret>);

struct MemRaw<'a, 'g> {
    state: RefCell<&'a mut MutexGuard<'g, State>>,
    account: &'a AccountShared,
    writable: bool,
    undo: RefCell<Vec<Undo>>,
    committed: Cell<bool>,
}

impl Drop for MemRaw<'_, '_> {
    fn drop(&mut self) {
        if self.committed.get() {
            return;
        }
        let mut st = self.state.borrow_mut();
        for (t, k, old) in self.undo.borrow_mut().drain(..).rev() {
            match old {
                Some(v) => st.tables[t].insert(k, v),
                None => st.tables[t].remove(&k),
            };
        }
    }
}

impl MemRaw<'_, '_> {
    fn abs(&self, key: &[u8]) -> Vec<u8> {
        [self.account.ns.as_slice(), key].concat()
    }

    fn range(&self, t: Table, range: &KeyRange, rev: bool, limit: usize) -> Vec<(Vec<u8>, Secret)> {
        let (start, end) = range.absolute(&self.account.ns);
        let st = self.state.borrow();
        let it = st.tables[t.index()].range((Bound::Included(start), end));
        let strip = |(k, v): (&Vec<u8>, &Secret)| (k[8..].to_vec(), v.clone());
        if rev {
            it.rev().take(limit).map(strip).collect()
        } else {
            it.take(limit).map(strip).collect()
        }
    }
}

impl Raw for MemRaw<'_, '_> {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Secret>, StoreError> {
        Ok(self.state.borrow().tables[t.index()]
            .get(&self.abs(key))
            .cloned())
    }

    fn put(&self, t: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if !self.writable {
            return Err(StoreError::ReadOnly);
        }
        let k = self.abs(key);
        let old = self.state.borrow_mut().tables[t.index()].insert(k.clone(), Secret::from(value));
        self.undo.borrow_mut().push((t.index(), k, old));
        Ok(())
    }

    fn remove(&self, t: Table, key: &[u8]) -> Result<bool, StoreError> {
        if !self.writable {
            return Err(StoreError::ReadOnly);
        }
        let k = self.abs(key);
        let old = self.state.borrow_mut().tables[t.index()].remove(&k);
        let existed = old.is_some();
        if existed {
            self.undo.borrow_mut().push((t.index(), k, old));
        }
        Ok(existed)
    }

    fn scan(
        &self,
        t: Table,
        range: &KeyRange,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Secret)>, StoreError> {
        Ok(self.range(t, range, rev, limit))
    }

    fn scan_keys(
        &self,
        t: Table,
        range: &KeyRange,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .range(t, range, rev, limit)
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    fn hash(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 16] {
        self.account.hasher.hash16(label, parts)
    }
}
