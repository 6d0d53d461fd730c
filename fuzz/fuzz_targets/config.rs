// Property: parsing any UTF-8 text as the TOML config (`Config::parse`, the function
// `Config::load` uses after reading the file) and as `--config KEY=VALUE` overrides
// (`parse_overrides`, one pair per line) never panics; an error always names the config file.
// Nothing is read or run: passwords are only resolved when connecting, and the paths the
// config names are only looked at, relative to a directory that does not exist.
// Input: the config text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mailpipe::config::{parse_overrides, Config};

const FILE: &str = "/nonexistent/mailpipe-fuzz/mailpipe.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(Path::new(FILE), text) {
        Ok(config) => {
            assert_eq!(config.file, Path::new(FILE));
            assert!(!config.identity.address.is_empty());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(FILE), "error without the file name: {msg}");
        }
    }
    let pairs: Vec<String> = text.lines().take(64).map(str::to_string).collect();
    let _ = parse_overrides(&pairs);
});
