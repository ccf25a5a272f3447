//! Logging into the host's log (the `log` capability). Errors (e.g. `denied`) are
//! ignored: logging never fails a plugin.

use crate::wit::wasmeow::bot::log::{Level, log};

/// Logs at trace level.
pub fn trace(message: &str) {
    let _ = log(Level::Trace, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    let _ = log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    let _ = log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    let _ = log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    let _ = log(Level::Error, message);
}

/// `info!("x = {x}")`: formats and logs at info level.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::info(&::std::format!($($t)*)) };
}

/// `warn!(..)`: formats and logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::warn(&::std::format!($($t)*)) };
}

/// `error!(..)`: formats and logs at error level.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::error(&::std::format!($($t)*)) };
}

/// `debug!(..)`: formats and logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log::debug(&::std::format!($($t)*)) };
}
