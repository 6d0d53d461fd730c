//! `mailpipe auth ACCOUNT`: the one-time OAuth2 authorisation of an account. The user signs
//! in at the provider (device code on any device, or a browser on this machine), and the
//! refresh token that comes back is stored for the account (mode 0600); from then on
//! mailpipe renews access tokens by itself. `--import` stores a refresh token another tool
//! obtained, read from standard input so it never shows in the process list.

use anyhow::{bail, Context};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use mailpipe::config::Config;
use mailpipe::model::credentials::TokenSource;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Flow {
    /// Show a code to enter at the provider's page, on any device.
    Device,
    /// Open the provider's page in a browser on this machine; it sends the answer back to a
    /// listener on 127.0.0.1.
    Browser,
}

pub async fn run(
    config: &Path,
    account: &str,
    flow: Option<Flow>,
    import: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let Some(a) = config.accounts.iter().find(|a| a.name == account) else {
        bail!(
            "no account {account:?} in {}; accounts: {}",
            config.file.display(),
            config
                .accounts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let Some(tokens) = a
        .imap
        .as_ref()
        .and_then(|s| s.oauth2.clone())
        .or_else(|| a.smtp.as_ref().and_then(|s| s.oauth2.clone()))
    else {
        bail!("account {account} does not use OAuth2 (no [account.oauth2] table)");
    };
    let TokenSource::Refresh(client) = &tokens.source else {
        bail!(
            "account {account} gets its tokens from token_command: there is nothing to authorise"
        );
    };
    if import {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the refresh token from standard input")?;
        if text.trim().is_empty() {
            bail!("no refresh token on standard input");
        }
        tokens.import_refresh_token(&text).await?;
    } else {
        let show = |text: &str| println!("{text}");
        match flow.unwrap_or(if client.device_url.is_some() {
            Flow::Device
        } else {
            Flow::Browser
        }) {
            Flow::Device => tokens.authorize_device(show).await?,
            Flow::Browser => {
                let hint = a
                    .imap
                    .as_ref()
                    .and_then(|s| s.username.clone())
                    .unwrap_or_else(|| a.address.clone());
                tokens.authorize_browser(&hint, show).await?
            }
        }
    }
    println!(
        "account {account}: authorised; the refresh token is stored in {}",
        client.token_file.display()
    );
    Ok(ExitCode::SUCCESS)
}
