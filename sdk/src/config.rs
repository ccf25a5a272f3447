//! The plugin's configuration: its table from `bot.toml`, handed to `init` as JSON.

use serde::de::DeserializeOwned;

use crate::Error;
use crate::wit::wasmeow::bot::config as host;

/// The plugin's `bot.toml` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    value: serde_json::Value,
}

impl Config {
    /// Parses the JSON text the host passes to `init`. An empty string is an empty
    /// table.
    pub fn parse(json: &str) -> Result<Self, String> {
        if json.trim().is_empty() {
            return Ok(Config {
                value: serde_json::Value::Object(Default::default()),
            });
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("config is not JSON: {e}"))?;
        if !value.is_object() {
            return Err("config is not a JSON object".to_owned());
        }
        Ok(Config { value })
    }

    /// Fetches the table from the host at run time (the `config` capability).
    pub fn fetch() -> Result<Self, Error> {
        let json = host::get_all()?;
        Config::parse(&json).map_err(Error::Decode)
    }

    /// The value at a dotted path (`"welcome.text"`), deserialized as `T`.
    /// `Ok(None)` when the path does not exist.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, Error> {
        match self.raw(path) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| Error::Decode(format!("config `{path}`: {e}"))),
        }
    }

    /// The value at a dotted path, or `default` when it is absent or has another
    /// type.
    pub fn get_or<T: DeserializeOwned>(&self, path: &str, default: T) -> T {
        self.get(path).ok().flatten().unwrap_or(default)
    }

    /// The JSON value at a dotted path.
    pub fn raw(&self, path: &str) -> Option<&serde_json::Value> {
        path.split('.').try_fold(&self.value, |v, k| v.get(k))
    }

    /// The whole table.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn dotted_paths_and_types() {
        let c = Config::parse(r#"{"welcome":{"text":"hi {name}","max":3}}"#).unwrap();
        assert_eq!(
            c.get::<String>("welcome.text").unwrap().as_deref(),
            Some("hi {name}")
        );
        assert_eq!(c.get::<u32>("welcome.max").unwrap(), Some(3));
        assert_eq!(c.get::<u32>("welcome.missing").unwrap(), None);
        assert!(c.get::<u32>("welcome.text").is_err());
        assert_eq!(c.get_or("welcome.text", 7u32), 7);
        assert!(Config::parse("").unwrap().as_json().is_object());
        assert!(Config::parse("[1]").is_err());
        assert!(Config::parse("{").is_err());
    }
}
