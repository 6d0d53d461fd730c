//! Every account of a config (its file's, its accounts directory's, its accounts table's)
//! and the pipelines their plugin overrides call for: what every job over accounts starts
//! from (the IMAP and POP3 workers, the delivery steps), below all of them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{AccountConfig, Config};
use crate::pipeline::Pipeline;
use crate::plugin::Clock;
use crate::state::Store;

/// Every account of `config`: those of its file, then those of its accounts directory and of
/// the accounts table (`rows`: id, text). A file or row that cannot be used is logged (file,
/// line, what is wrong) and left out.
pub fn all_accounts(config: &Config, rows: &[(String, String)]) -> Vec<AccountConfig> {
    let (files, errors) = config.account_files_and_rows(rows);
    for e in errors {
        tracing::error!("{e}; this account is left out until the file is fixed");
    }
    let mut accounts = config.accounts.clone();
    accounts.extend(files.into_iter().map(|f| f.account));
    accounts
}

/// The pipelines of a config: the config's own, and one per distinct set of per-account
/// plugin overrides.
pub struct Pipelines {
    config: Config,
    store: Arc<Store>,
    base: Arc<Pipeline>,
    overridden: HashMap<String, Arc<Pipeline>>,
}

impl Pipelines {
    pub async fn new(config: &Config, store: Arc<Store>) -> anyhow::Result<Pipelines> {
        let base = Arc::new(
            super::setup::build_pipeline(config, Some(store.clone()), Clock::System).await?,
        );
        Ok(Pipelines {
            config: config.clone(),
            store,
            base,
            overridden: HashMap::new(),
        })
    }

    pub fn base(&self) -> &Arc<Pipeline> {
        &self.base
    }

    /// The pipeline for `account`: the shared one, or one with its plugin keys put in (an
    /// error when a plugin rejects the result: that account cannot run).
    pub async fn for_account(&mut self, account: &AccountConfig) -> anyhow::Result<Arc<Pipeline>> {
        if account.plugin_overrides.is_empty() {
            return Ok(self.base.clone());
        }
        let key = serde_json::to_string(&account.plugin_overrides)?;
        if let Some(p) = self.overridden.get(&key) {
            return Ok(p.clone());
        }
        let mut config = self.config.clone();
        for p in &mut config.plugins {
            if let Some(over) = account.plugin_overrides.get(&p.name) {
                p.config = crate::config::merged(&p.config, over);
            }
        }
        let pipeline =
            super::setup::build_pipeline(&config, Some(self.store.clone()), Clock::System)
                .await
                .map_err(|e| anyhow::anyhow!("account {}: its plugin keys: {e:#}", account.name))?;
        let pipeline = Arc::new(pipeline);
        self.overridden.insert(key, pipeline.clone());
        Ok(pipeline)
    }
}

/// The rows of the accounts table (id, text) when the config reads accounts from it.
pub fn account_rows(config: &Config, store: &Store) -> anyhow::Result<Vec<(String, String)>> {
    if !config.accounts_settings.table {
        return Ok(Vec::new());
    }
    Ok(store.account_rows()?)
}
