//! Why this file exists: `account_sieve = true` runs each account's active Sieve script from
//! the state store (`mailpipe sieve`, ManageSieve), issue 23. A change takes effect on the
//! next message without a restart: per message only the version of the account's scripts is
//! read (one small point read of the store); the set itself is read, and the built-in
//! interpreter loaded, only when that version is new to this process. What a version gave is
//! kept, failures included (a script that cannot load is not loaded again per message). The
//! configured plugin itself (an empty script) runs for mail of no account or of an account
//! without an active script: it decides nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::plugin::LoadedPlugin;

use super::Pipeline;

/// What a version of an account's scripts gave: the interpreter running its active script
/// with the label naming it, none (no active script), or why it cannot run.
type Outcome = Result<Option<(Arc<LoadedPlugin>, String)>, String>;

/// Interpreters loaded per (plugin, account), with the version of the account's scripts
/// they were loaded for: two `account_sieve` steps keep their own settings and state.
#[derive(Default)]
pub struct AccountScripts {
    loaded: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_key: HashMap<PluginAccount, Entry>,
    /// Counts uses, to find the least recently used entry.
    clock: u64,
}

struct Entry {
    version: u64,
    outcome: Outcome,
    used: u64,
}

/// (plugin name, account name).
type PluginAccount = (String, String);

/// Interpreters kept at most; beyond, the least recently used one goes.
const MAX_KEPT: usize = 1024;

impl AccountScripts {
    fn get(&self, plugin: &str, account: &str, version: u64) -> Option<Outcome> {
        let mut kept = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        kept.clock += 1;
        let clock = kept.clock;
        let e = kept
            .by_key
            .get_mut(&(plugin.to_string(), account.to_string()))
            .filter(|e| e.version == version)?;
        e.used = clock;
        Some(e.outcome.clone())
    }

    fn keep(&self, plugin: &str, account: &str, version: u64, outcome: Outcome) {
        let key = (plugin.to_string(), account.to_string());
        let mut kept = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if kept.by_key.len() >= MAX_KEPT && !kept.by_key.contains_key(&key) {
            let oldest = kept
                .by_key
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                kept.by_key.remove(&k);
            }
        }
        kept.clock += 1;
        let used = kept.clock;
        kept.by_key.insert(
            key,
            Entry {
                version,
                outcome,
                used,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .len()
    }
}

impl Pipeline {
    /// The interpreter running `message_key`'s account's active script, with the label that
    /// names the script and its version in the decision record; None when there is none.
    pub(super) async fn account_sieve(
        &self,
        configured: &LoadedPlugin,
        message_key: &str,
    ) -> Outcome {
        let (Some(account), Some(store)) = (
            crate::model::key::account_of_key(message_key),
            self.store.as_ref(),
        ) else {
            return Ok(None);
        };
        let cannot_read = |e: crate::state::StateError| {
            format!("cannot read the Sieve scripts of account {account}: {e}")
        };
        let version = store.scripts_version(account).map_err(cannot_read)?;
        if version == 0 {
            return Ok(None);
        }
        if let Some(kept) = self.account_scripts.get(&configured.name, account, version) {
            return kept;
        }
        let set = store.scripts_load(account).map_err(cannot_read)?;
        let outcome = self.load_active(configured, account, &set).await;
        // Kept under the version read with the set (a change in between is seen next time).
        self.account_scripts
            .keep(&configured.name, account, set.version, outcome.clone());
        outcome
    }

    /// The interpreter for `set`'s active script (None when none is active).
    async fn load_active(
        &self,
        configured: &LoadedPlugin,
        account: &str,
        set: &crate::state::scripts::ScriptSet,
    ) -> Outcome {
        let Some(active) = set.active() else {
            return Ok(None);
        };
        let note = format!(
            "Sieve script {:?} version {} of account {account}",
            active.name, active.version
        );
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
        Ok(Some((Arc::new(loaded), note)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_interpreter_goes_first_and_failures_are_kept() {
        let kept = AccountScripts::default();
        for i in 0..MAX_KEPT {
            kept.keep("rules", &format!("a{i}"), 1, Ok(None));
        }
        // a0 is used again: a1 is now the oldest.
        assert!(kept.get("rules", "a0", 1).is_some());
        kept.keep("rules", "new", 1, Err("does not compile".into()));
        assert_eq!(kept.len(), MAX_KEPT);
        assert!(kept.get("rules", "a0", 1).is_some());
        assert!(kept.get("rules", "a1", 1).is_none());
        assert!(matches!(
            kept.get("rules", "new", 1),
            Some(Err(e)) if e == "does not compile"
        ));
        // Another version of the scripts is not what was kept.
        assert!(kept.get("rules", "new", 2).is_none());
        // Nor another plugin's.
        assert!(kept.get("other", "a0", 1).is_none());
    }
}
