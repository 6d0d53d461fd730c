//! Why this file exists: every plugin reads its table from the host's config file; this turns
//! the JSON the host hands over into the plugin's own `serde` struct with a readable error.

use serde::de::DeserializeOwned;

use crate::bindings::mailpipe::plugin::host;

/// Parse the plugin's configuration table into `T`.
///
/// Use `#[serde(default)]` for optional keys and `#[serde(deny_unknown_fields)]` to catch typos.
pub fn config<T: DeserializeOwned>() -> Result<T, String> {
    let json = host::config_json();
    serde_json::from_str(&json).map_err(|e| format!("invalid plugin configuration: {e}"))
}

/// The configuration as untyped JSON, for plugins that only peek at a key or two.
pub fn config_value() -> Result<serde_json::Value, String> {
    config()
}

/// One top-level configuration key, when it is a string.
pub fn config_string(key: &str) -> Option<String> {
    host::config_string(key)
}

/// Parse the configuration into `T` once per plugin instance and keep it: the host reuses an
/// instance from message to message (the configuration never changes during its life), so
/// this saves parsing the JSON on every call. Expands to a `Result<&'static T, String>`.
///
/// ```ignore
/// let config: &Config = mailpipe_plugin::config_once!(Config)?;
/// ```
#[macro_export]
macro_rules! config_once {
    ($t:ty) => {{
        static CONFIG: ::std::sync::OnceLock<::std::result::Result<$t, ::std::string::String>> =
            ::std::sync::OnceLock::new();
        CONFIG
            .get_or_init($crate::config::<$t>)
            .as_ref()
            .map_err(|e| e.clone())
    }};
}

/// Parse the configuration into `T` for `Plugin::check_config`: a problem names the key it is
/// about when serde does ("unknown field `subjet`", "missing field `body`"), so that
/// `mailpipe check` can point at its line.
pub fn config_checked<T: DeserializeOwned>() -> Result<T, crate::ConfigProblem> {
    serde_json::from_str(&host::config_json()).map_err(|e| problem_of(&e.to_string()))
}

fn problem_of(error: &str) -> crate::ConfigProblem {
    // serde_json adds " at line L column C" of the JSON the host made: not the user's file.
    let message = error.split(" at line ").next().unwrap_or(error).to_string();
    let key = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string);
    crate::ConfigProblem { key, message }
}

#[cfg(test)]
mod tests {
    #[test]
    fn problems_name_their_key_and_not_the_json_position() {
        let p = super::problem_of(
            "unknown field `subjet`, expected one of `subject`, `body` at line 1 column 9",
        );
        assert_eq!(p.key.as_deref(), Some("subjet"));
        assert_eq!(
            p.message,
            "unknown field `subjet`, expected one of `subject`, `body`"
        );
        let p = super::problem_of("invalid type: string \"x\", expected u64 at line 1 column 3");
        assert_eq!(p.key, None);
        assert_eq!(p.message, "invalid type: string \"x\", expected u64");
    }
}
