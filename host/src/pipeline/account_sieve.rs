//! Why this file exists: `account_sieve = true` runs each account's active Sieve script from
//! the state store (`mailpipe sieve`; ManageSieve next), issue 23. A change takes effect on
//! the next message without a restart: the account's scripts are read once per message (one
//! point read of the store) and the built-in interpreter is loaded per account and version of
//! its scripts, kept while that version is current. The configured plugin itself (an empty
//! script) runs for mail of no account or of an account without an active script: it decides
//! nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::plugin::LoadedPlugin;

use super::Pipeline;

/// Interpreters loaded per (plugin, account), with the version of the account's scripts
/// they were loaded for: two `account_sieve` steps keep their own settings and state.
#[derive(Default)]
pub struct AccountScripts {
    loaded: Mutex<HashMap<PluginAccount, (u64, Arc<LoadedPlugin>)>>,
}

/// (plugin name, account name).
type PluginAccount = (String, String);

/// Interpreters kept at most; beyond, the cache starts over.
const MAX_KEPT: usize = 1024;

impl AccountScripts {
    fn get(&self, plugin: &str, account: &str, version: u64) -> Option<Arc<LoadedPlugin>> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded
            .get(&(plugin.to_string(), account.to_string()))
            .filter(|(v, _)| *v == version)
            .map(|(_, p)| p.clone())
    }

    fn keep(&self, account: &str, version: u64, plugin: Arc<LoadedPlugin>) {
        let key = (plugin.name.to_string(), account.to_string());
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.len() >= MAX_KEPT && !loaded.contains_key(&key) {
            loaded.clear();
        }
        loaded.insert(key, (version, plugin));
    }
}

impl Pipeline {
    /// The interpreter running `message_key`'s account's active script, with the label that
    /// names the script and its version in the decision record; None when there is none.
    pub(super) async fn account_sieve(
        &self,
        configured: &LoadedPlugin,
        message_key: &str,
    ) -> Result<Option<(Arc<LoadedPlugin>, String)>, String> {
        let (Some(account), Some(store)) = (
            crate::model::key::account_of_key(message_key),
            self.store.as_ref(),
        ) else {
            return Ok(None);
        };
        let set = store
            .scripts_load(account)
            .map_err(|e| format!("cannot read the Sieve scripts of account {account}: {e}"))?;
        let Some(active) = set.active() else {
            return Ok(None);
        };
        let note = format!(
            "Sieve script {:?} version {} of account {account}",
            active.name, active.version
        );
        if let Some(p) = self
            .account_scripts
            .get(&configured.name, account, set.version)
        {
            return Ok(Some((p, note)));
        }
        let mut settings = configured.settings.clone();
        if let serde_json::Value::Object(map) = &mut settings.config {
            let includes: serde_json::Map<String, serde_json::Value> = set
                .others(&active.name)
                .into_iter()
                .map(|(name, text)| (name, text.into()))
                .collect();
            map.insert("script".into(), active.text.clone().into());
            map.insert("script_name".into(), active.name.clone().into());
            map.insert("includes".into(), includes.into());
        }
        let loaded = self
            .runtime
            .load(&settings, self.store.clone())
            .await
            .map_err(|e| format!("{note} cannot be loaded: {e}"))?;
        if let Some(problem) = loaded.config_problems.first() {
            return Err(format!("{note} does not compile: {}", problem.message));
        }
        let loaded = Arc::new(loaded);
        self.account_scripts
            .keep(account, set.version, loaded.clone());
        Ok(Some((loaded, note)))
    }
}
