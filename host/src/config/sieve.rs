//! `sieve = "FILE"` in a `[[plugin]]`: the built-in Sieve interpreter runs that script. The
//! host reads the script, and the scripts beside it that `include` may name, into the table
//! the interpreter gets (`script`, `script_name`, `includes`, `global_includes`): the plugin
//! has no file system, and a changed script is a changed configuration (a new fingerprint,
//! picked up on reload).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest script (and included script) read, in bytes: the interpreter's own limit.
pub const MAX_SCRIPT_BYTES: u64 = 1 << 20;
/// Most scripts read from one folder for `include`.
pub const MAX_INCLUDES: usize = 256;

/// Keys of the interpreter's table that the host fills in; a config may not set them.
const HOST_KEYS: &[&str] = &["script", "script_name", "includes", "global_includes"];

/// `~/x` is the user's home; other relative paths are relative to `base` (the config's folder).
pub fn resolve_script(base: &Path, text: &str) -> PathBuf {
    match (text.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => base.join(text),
    }
}

/// Whether `path` is a Sieve script rather than a component: named `.sieve` / `.siv`, or a
/// file that does not start with the wasm magic number.
pub fn is_sieve_script(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("sieve") || x.eq_ignore_ascii_case("siv"))
    {
        return true;
    }
    if path.extension().is_some_and(|x| x == "wasm") {
        return false;
    }
    let mut head = [0u8; 4];
    match std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)) {
        Ok(()) => &head != b"\0asm",
        Err(_) => false,
    }
}

fn read_script(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(format!(
            "{} is larger than {MAX_SCRIPT_BYTES} bytes",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

/// The `.sieve` scripts of `dir` by name (file name without `.sieve`), except `skip`.
fn scripts_in(dir: &Path, skip: Option<&Path>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sieve") && Some(p.as_path()) != skip)
        .collect();
    paths.sort();
    if paths.len() > MAX_INCLUDES {
        return Err(format!(
            "{} holds more than {MAX_INCLUDES} .sieve scripts",
            dir.display()
        ));
    }
    for p in paths {
        let Some(name) = p.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        out.insert(name, read_script(&p)?);
    }
    Ok(out)
}

/// The interpreter's table: `table` (the `[plugin.config]` keys, e.g. `addresses`) with the
/// script and what it may include. `global_dir` in the table names the folder of
/// `include :global` scripts.
pub fn sieve_table(script: &Path, table: serde_json::Value) -> Result<serde_json::Value, String> {
    let serde_json::Value::Object(mut map) = table else {
        return Err("the plugin's config must be a table".into());
    };
    if let Some(k) = HOST_KEYS.iter().find(|k| map.contains_key(**k)) {
        return Err(format!(
            "`{k}` is filled in by mailpipe from `sieve = \"FILE\"`; remove it"
        ));
    }
    let text = read_script(script)?;
    let dir = script.parent().unwrap_or(Path::new("."));
    let includes = scripts_in(dir, Some(script))?;
    let global = match map.remove("global_dir") {
        None => BTreeMap::new(),
        Some(serde_json::Value::String(d)) => scripts_in(&resolve_script(dir, &d), None)?,
        Some(_) => return Err("`global_dir` must be a folder name".into()),
    };
    map.insert("script".into(), text.into());
    map.insert("script_name".into(), script.display().to_string().into());
    map.insert(
        "includes".into(),
        serde_json::to_value(includes).unwrap_or_default(),
    );
    map.insert(
        "global_includes".into(),
        serde_json::to_value(global).unwrap_or_default(),
    );
    Ok(serde_json::Value::Object(map))
}

/// Compiles `text` (an account's script called `name`) as its Sieve step will, with the
/// account's other scripts for `include :personal` and `global` for `include :global`; the
/// error names the script, line and column. Nothing is stored or run.
pub fn check_script(
    name: &str,
    text: &str,
    personal: &BTreeMap<String, String>,
    global: &BTreeMap<String, String>,
) -> Result<(), String> {
    let opts = mailpipe_sieve::Options::with_includes(personal, global);
    mailpipe_sieve::compile(text, &opts)
        .map(|_| ())
        .map_err(|e| e.display_in(name))
}

/// The scripts `include :global` finds in the accounts' Sieve step (`global_dir` of the
/// `account_sieve = true` plugin), if the config has one.
pub fn account_global_includes(config: &super::Config) -> BTreeMap<String, String> {
    config
        .plugins
        .iter()
        .find(|p| p.kind == super::PluginKind::AccountSieve)
        .and_then(|p| serde_json::from_value(p.config["global_includes"].clone()).ok())
        .unwrap_or_default()
}

/// The Sieve extensions the interpreter supports, space-separated (ManageSieve's `SIEVE`).
pub fn extensions() -> String {
    mailpipe_sieve::CAPABILITIES.join(" ")
}

/// The interpreter's table for `account_sieve = true`: `table` with an empty script in place
/// of the one each account's active script will take (`pipeline::account_sieve` fills in the
/// account's script and its other scripts as `:personal` includes, per account and version).
pub fn account_table(base: &Path, table: serde_json::Value) -> Result<serde_json::Value, String> {
    let serde_json::Value::Object(mut map) = table else {
        return Err("the plugin's config must be a table".into());
    };
    if let Some(k) = HOST_KEYS.iter().find(|k| map.contains_key(**k)) {
        return Err(format!(
            "`{k}` is filled in by mailpipe from each account's active script; remove it"
        ));
    }
    let global = match map.remove("global_dir") {
        None => BTreeMap::new(),
        Some(serde_json::Value::String(d)) => scripts_in(&resolve_script(base, &d), None)?,
        Some(_) => return Err("`global_dir` must be a folder name".into()),
    };
    map.insert("script".into(), "".into());
    map.insert("script_name".into(), "account".into());
    map.insert("includes".into(), serde_json::json!({}));
    map.insert(
        "global_includes".into(),
        serde_json::to_value(global).unwrap_or_default(),
    );
    Ok(serde_json::Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_script_and_its_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.sieve"), "keep;").unwrap();
        std::fs::write(dir.path().join("lib.sieve"), "discard;").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let t = sieve_table(
            &dir.path().join("main.sieve"),
            serde_json::json!({"addresses": ["me@example.com"]}),
        )
        .unwrap();
        assert_eq!(t["script"], "keep;");
        assert_eq!(t["includes"]["lib"], "discard;");
        assert!(t["includes"].get("main").is_none());
        assert_eq!(t["addresses"][0], "me@example.com");
        let e = sieve_table(
            &dir.path().join("main.sieve"),
            serde_json::json!({"script": "x"}),
        );
        assert!(e.unwrap_err().contains("filled in by mailpipe"));
        let e = sieve_table(&dir.path().join("missing.sieve"), serde_json::json!({}));
        assert!(e.unwrap_err().contains("cannot read"));
    }
}
