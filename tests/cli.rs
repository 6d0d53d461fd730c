//! The command line as users and scripts see it: `mailpipe test --json` (the stable JSON
//! form), exit codes, and config errors that name the file, line and key.

mod common;

use common::*;
use std::process::Command;

fn mailpipe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sample_path(n: u32) -> String {
    let dir = root().join("examples/maildir/new");
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|f| f.starts_with(&format!("17000000{n:02}.")))
        .unwrap();
    dir.join(name).display().to_string()
}

#[test]
fn test_command_prints_actions_and_the_outgoing_reply_as_json() {
    let wasm = plugin_path("auto-responder").display().to_string();
    let (code, out, err) = mailpipe(&[
        "test",
        &wasm,
        &sample_path(1),
        "--json",
        "--config",
        r#"addresses=["alice@example.com"]"#,
        "--config",
        "body=Away until Monday",
        "--config",
        "days=3",
        "--identity",
        "alice@example.com",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plugin"]["name"], "auto-responder");
    assert_eq!(v["plugin"]["needs"], "headers");
    assert_eq!(v["reports"][0]["status"], "applied");
    assert_eq!(v["reports"][0]["actions"][0]["action"], "reply");
    assert_eq!(v["deliveries"][0]["folder"], "INBOX");
    let o = &v["outgoing"][0];
    assert_eq!(o["kind"], "reply");
    assert_eq!(o["rcpt_to"][0], "bob@example.org");
    assert_eq!(o["mail_from"], "");
    let raw = o["raw"].as_str().unwrap();
    assert!(raw.contains("Auto-Submitted: auto-replied\r\n"), "{raw}");
    assert!(raw.contains("Away until Monday"));
}

#[test]
fn test_command_exits_1_when_the_plugin_fails() {
    let wasm = plugin_path("misbehave-trap").display().to_string();
    let (code, out, _) = mailpipe(&["test", &wasm, &sample_path(1), "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reports"][0]["status"], "failed");
    assert_eq!(v["deliveries"][0]["folder"], "INBOX", "the message is kept");
}

#[test]
fn config_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[identity]\naddress = \"alice@example.com\"\n\n[[plugin]]\nname = \"x\"\npath = \"nowhere.wasm\"\n",
    )
    .unwrap();
    let (code, _, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml:6") && err.contains("plugin.path") && err.contains("nowhere.wasm"),
        "{err}"
    );

    std::fs::write(
        &file,
        "[identity]\naddress = \"alice@example.com\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let (code, _, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml") && err.contains("line 3") && err.contains("colour"),
        "{err}"
    );

    std::fs::write(
        &file,
        "[identity]\naddress = \"alice@example.com\\r\\nBcc: x@y.z\"\n",
    )
    .unwrap();
    let (code, _, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.toml:2") && err.contains("identity.address"),
        "{err}"
    );
}

#[test]
fn check_reports_a_typo_in_a_plugins_own_table_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_file(dir.path());
    let (code, out, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": ok, 4 plugin(s)"), "{out}");

    // `adresses` for `addresses` in the vacation plugin's table (line 58 of the demo).
    let text = demo_toml(dir.path());
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("addresses = "))
        .unwrap();
    std::fs::write(&file, text.replacen("addresses = ", "adresses = ", 1)).unwrap();
    let (code, out, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let expected = format!("demo.toml:{line}: plugin vacation: `adresses`: ");
    assert!(out.contains(&expected), "{expected} in {out}");
    assert!(out.contains("unknown field `adresses`"), "{out}");
    // The position in the JSON the host generated is not shown: it is not the user's file.
    assert!(!out.contains("column"), "{out}");
    // The other plugins are fine and not blamed.
    assert!(
        !out.contains("plugin filer") && !out.contains("plugin tagger"),
        "{out}"
    );
    // The vacation plugin (contract 0.2) said so when loaded: `run` refuses to start, at the
    // same line, and decides no message with the broken table.
    let (code, out, err) = mailpipe(&["run", "--once", "-c", file.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains(&expected), "{expected} in {err}");
    assert!(
        !dir.path().join("mail").exists() && !dir.path().join("outbox").exists(),
        "nothing was delivered or sent"
    );
}

#[test]
fn plaintext_to_a_remote_server_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acct.toml");
    let account = |extra: &str| {
        format!(
            "[[account]]\nname = \"work\"\naddress = \"me@example.com\"\n[account.imap]\nhost = \"imap.example.com\"\ntls = \"none\"\n{extra}username = \"me\"\npassword_command = \"pass show mail\"\n"
        )
    };
    std::fs::write(&file, account("")).unwrap();
    let (code, _, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("acct.toml:5")
            && err.contains("account.imap.tls")
            && err.contains("clear text"),
        "{err}"
    );
    assert!(
        !err.contains("pass show"),
        "nothing about the password source leaks: {err}"
    );
    // With the explicit opt-in the config is accepted (no plugins, nothing to load).
    std::fs::write(&file, account("allow_insecure = true\n")).unwrap();
    let (code, out, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 plugin(s)"), "{out}");
}

#[test]
fn check_loads_the_demo_config() {
    let (code, out, err) = mailpipe(&[
        "check",
        "-c",
        root().join("examples/demo.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4 plugin(s)"), "{out}");
    for p in ["filer", "tagger", "vacation", "forward-boss"] {
        assert!(out.contains(p), "{out}");
    }
}

/// A Maildir `src` of 3,000 messages in a temporary directory: enough that their JSON lines
/// overflow a pipe long before a command ends.
fn big_maildir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cur = dir.path().join("src/cur");
    std::fs::create_dir_all(&cur).unwrap();
    std::fs::create_dir_all(dir.path().join("src/new")).unwrap();
    for i in 0..3000 {
        std::fs::write(
            cur.join(format!("{i}.eml")),
            format!("From: a{i}@example.net\r\nSubject: pipe {i} {}\r\nMessage-ID: <{i}@x>\r\n\r\nhi\r\n", "x".repeat(200)),
        )
        .unwrap();
    }
    dir
}

/// Runs mailpipe with `args`, reads one line of its output and closes the pipe, like
/// `| head -1`: the command must end quietly, as a filter whose reader left (141).
fn reader_goes_away(args: &[&std::ffi::OsStr]) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // stdout is closed here.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert_eq!(
        out.status.code(),
        Some(141),
        "ended like a filter whose reader left: {err}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let dir = big_maildir();
    let config = dir.path().join("m.toml");
    std::fs::write(
        &config,
        "[identity]\naddress = \"me@example.com\"\n[offline]\nsource = \"src\"\nmailstore = \"mail\"\noutbox = \"out\"\n",
    )
    .unwrap();
    let os = std::ffi::OsStr::new;
    reader_goes_away(&[
        os("run"),
        os("--once"),
        os("--json"),
        os("-c"),
        config.as_os_str(),
    ]);
}

/// `mailpipe test DIR --json | head -1` too (issue 27): the same Maildir through one plugin.
#[test]
fn a_reader_that_goes_away_ends_test_quietly() {
    let dir = big_maildir();
    let wasm = plugin_path("noop");
    let src = dir.path().join("src");
    let os = std::ffi::OsStr::new;
    reader_goes_away(&[os("test"), wasm.as_os_str(), src.as_os_str(), os("--json")]);
}

/// For plugin authors' CI: a whole Maildir, a message on stdin, the plugin as configured in a
/// real config (`-c CONFIG --plugin NAME`), and `--expect` checks that fail the command.
#[test]
fn test_runs_a_configured_plugin_on_a_maildir_and_stdin_with_expectations() {
    let demo = root().join("examples/demo.toml");
    let demo = demo.to_str().unwrap();
    let maildir = root().join("examples/maildir");
    // Every message of the Maildir, one JSON object per line.
    let (code, out, err) = mailpipe(&[
        "test",
        "-c",
        demo,
        "--plugin",
        "filer",
        maildir.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 14);
    let folders: Vec<String> = lines
        .iter()
        .flat_map(|v| {
            v["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["folder"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        folders.iter().any(|f| f == "Finance/Invoices"),
        "the demo's own rules: {folders:?}"
    );

    // One message on stdin, checked.
    let invoice = ["cur", "new"]
        .iter()
        .flat_map(|d| std::fs::read_dir(maildir.join(d)).unwrap().flatten())
        .map(|e| e.path())
        .find(|p| {
            String::from_utf8_lossy(&std::fs::read(p).unwrap()).contains("Subject: Your invoice")
        })
        .expect("the demo's invoice");
    let run = |expect: &[&str]| {
        let mut args = vec!["test", "-c", demo, "--plugin", "filer", "-"];
        for e in expect {
            args.extend(["--expect", e]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let raw = std::fs::read(&invoice).unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&raw).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = run(&["folder=Finance/Invoices", "flag=$Invoice", "ok", "no-reply"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["folder=Lists", "reply"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("expected folder=Lists") && text.contains("2 expectation(s) not met"),
        "{text}"
    );
    let (code, text) = run(&["folder"]);
    assert_eq!(code, Some(1));
    assert!(text.contains("unknown check"), "{text}");

    // A malformed TOML value is an error, not a string.
    let (code, _, err) = mailpipe(&[
        "test",
        "-c",
        demo,
        "--plugin",
        "filer",
        maildir.to_str().unwrap(),
        "--config",
        "rules=[{name=\"x\"",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not valid TOML"), "{err}");
    let (code, _, err) = mailpipe(&[
        "test",
        "-c",
        demo,
        "--plugin",
        "nosuch",
        maildir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no [[plugin]] named \"nosuch\"") && err.contains("filer"),
        "{err}"
    );
}

/// Logs: levels (-v, -q), JSON lines with the plugin's own log lines as events carrying the
/// plugin and message id, on stderr; results stay on stdout.
#[test]
fn logs_have_levels_fields_and_a_json_form() {
    let run = |extra: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let file = demo_file(dir.path());
        let mut args = vec!["run", "--once", "--json", "-c", file.to_str().unwrap()];
        args.extend(extra);
        let (code, out, err) = mailpipe(&args);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 14, "decisions on stdout: {out}");
        err
    };
    let err = run(&["-v", "--log-format", "json"]);
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let matched = events
        .iter()
        .find(|e| e["plugin"] == "filer" && e["level"] == "DEBUG")
        .unwrap_or_else(|| panic!("the filer's debug lines: {err}"));
    assert!(
        matched["message_id"]
            .as_str()
            .is_some_and(|m| m.contains('@')),
        "{matched}"
    );
    assert!(matched["timestamp"].is_string());
    assert!(events
        .iter()
        .any(|e| e["message"] == "plugin loaded" && e["plugin"] == "vacation"));

    let err = run(&[]);
    assert!(err.contains(" INFO ") && !err.contains("DEBUG"), "{err}");
    let err = run(&["-q"]);
    assert!(!err.contains(" INFO "), "{err}");
}

/// `run --metrics ADDR`: Prometheus text with messages, plugin call latency and the outbox;
/// a health check.
#[test]
fn metrics_and_health_are_served_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_file(dir.path());
    // A free port below the kernel's ephemeral range (32768 and up): a port the kernel hands
    // out for `:0` can be given again to an outgoing connection (of a test's PostgreSQL
    // session, say) before mailpipe binds it, and the run then fails to listen.
    let port = (20_000 + (std::process::id() % 5_000) as u16..30_000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args([
            "run",
            "--interval",
            "1",
            "--metrics",
            &format!("127.0.0.1:{port}"),
            "-c",
        ])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = get("/metrics").unwrap_or_default();
        if metrics.contains("mailpipe_messages_processed_total{account=\"offline\"} 14") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let health = get("/healthz").unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        metrics.contains("mailpipe_messages_processed_total{account=\"offline\"} 14"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE mailpipe_plugin_call_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailpipe_plugin_call_seconds_count{plugin=\"vacation\"} 14"),
        "{metrics}"
    );
    assert!(metrics.contains("mailpipe_outbox_sent_total"), "{metrics}");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

/// A polling run (no --once) on a Maildir: mail that arrives while it runs is processed on
/// the next pass, by the plugins loaded once at start.
#[test]
fn a_polling_offline_run_processes_mail_that_arrives_later() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(inbox.join(sub)).unwrap();
    }
    let sample = root().join("examples/maildir/new/1700000005.M5P100.demo");
    std::fs::copy(&sample, inbox.join("new/1.first")).unwrap();
    let text = demo_toml(dir.path()).replace(
        &format!("{:?}", root().join("examples/maildir")),
        &format!("{inbox:?}"),
    );
    let file = dir.path().join("poll.toml");
    std::fs::write(&file, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["run", "--interval", "1", "--json", "-q", "-c"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let next = || rx.recv_timeout(std::time::Duration::from_secs(20));
    let first = next();
    // The second message arrives after the first pass.
    let mut second = std::fs::read(&sample).unwrap();
    second.splice(0..0, b"Message-ID: <later@example.org>\r\n".iter().copied());
    std::fs::write(inbox.join("new/2.later"), second).unwrap();
    let later = next();
    let _ = child.kill();
    let _ = child.wait();
    let first = first.expect("the first pass reports the first message");
    assert!(first.contains("1.first"), "{first}");
    let later = later.expect("a later pass picks up the new message");
    assert!(later.contains("2.later"), "{later}");
}

#[test]
fn the_contract_ships_with_the_binary() {
    let (code, out, _) = mailpipe(&["wit"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        std::fs::read_to_string(root().join("wit/v0.4/plugin.wit")).unwrap()
    );
    let (code, out, _) = mailpipe(&["wit", "--contract", "0.3"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        std::fs::read_to_string(root().join("wit/v0.3/plugin.wit")).unwrap()
    );
    let (code, out, _) = mailpipe(&["wit", "--contract", "0.2"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        std::fs::read_to_string(root().join("wit/v0.2/plugin.wit")).unwrap()
    );
    let (code, out, _) = mailpipe(&["wit", "--contract", "0.1"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        std::fs::read_to_string(root().join("wit/v0.1/plugin.wit")).unwrap()
    );
    let (code, _, err) = mailpipe(&["wit", "--contract", "0.7"]);
    assert_ne!(code, 0);
    assert!(err.contains("0.1.0, 0.2.0, 0.3.0, 0.4.0"), "{err}");
}

/// Sieve's reject refuses a message only at delivery (`--delivery`); after delivery it is a
/// run-time error and the message is kept.
#[test]
fn sieve_reject_refuses_at_delivery_and_is_an_error_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = d.join("rules.sieve");
    std::fs::write(
        &script,
        "require \"reject\";\nif header :contains \"subject\" \"lottery\" { reject \"No lotteries, thank you.\"; }\n",
    )
    .unwrap();
    let msg = d.join("m.eml");
    std::fs::write(&msg, "From: luck@example.net\r\nTo: me@example.com\r\nSubject: You won the lottery\r\nMessage-ID: <l@x>\r\n\r\nClaim.\r\n").unwrap();
    let (s, m) = (script.to_str().unwrap(), msg.to_str().unwrap());
    let (code, out, err) = mailpipe(&["test", "--delivery", s, m, "--json", "--expect", "refuse"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["refused"]["reason"], "No lotteries, thank you.", "{v}");
    assert_eq!(v["deliveries"], serde_json::json!([]), "{v}");
    assert_eq!(v["discarded"], false, "refused is not discarded: {v}");
    let (code, out, err) = mailpipe(&["test", s, m, "--expect", "keep"]);
    assert_eq!(code, 1, "the plugin failed: {out}{err}");
    assert!(
        out.contains("-> INBOX") && out.contains("cannot refuse mail that was already delivered"),
        "{out}{err}"
    );
}

#[test]
fn explain_shows_what_each_plugin_decided_for_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = demo_file(dir.path());
    let cfg = file.to_str().unwrap();
    let (code, _, err) = mailpipe(&["run", "--once", "-q", "-c", cfg]);
    assert_eq!(code, 0, "{err}");
    let invoice = ["cur", "new"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root().join("examples/maildir").join(d))
                .unwrap()
                .flatten()
        })
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
        .find(|m| m.contains("Subject: Your invoice"))
        .unwrap();
    let id = invoice
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap()
        .trim()
        .to_string();
    let (code, out, err) = mailpipe(&["explain", "-c", cfg, &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("filer: file-into Finance/Invoices"), "{out}");
    assert!(out.contains("went to: [\"Finance/Invoices\"]"), "{out}");
    let (code, out, _) = mailpipe(&["explain", "-c", cfg, &id, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["deliveries"][0], "Finance/Invoices");
    let (code, _, err) = mailpipe(&["explain", "-c", cfg, "<nobody@nowhere>"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no message with Message-ID <nobody@nowhere>"),
        "{err}"
    );
    // A config that cannot be read says why, once.
    let (code, _, err) = mailpipe(&["check", "-c", "/nonexistent/mailpipe.toml"]);
    assert_eq!(code, 2);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn completions_man_page_and_help_for_every_option() {
    let (code, out, _) = mailpipe(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("mailpipe") && out.contains("--retry-failed"),
        "{}",
        &out[..out.len().min(500)]
    );
    let (code, out, _) = mailpipe(&["man"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(".ie") || out.contains(".TH mailpipe"),
        "{}",
        &out[..out.len().min(300)]
    );
    // Every option of every command has a description in --help.
    for cmd in ["run", "check", "test", "auth", "status", "explain"] {
        let (code, out, _) = mailpipe(&[cmd, "--help"]);
        assert_eq!(code, 0);
        let lines: Vec<&str> = out.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start().as_bytes();
            let option = t.starts_with(b"--")
                || (t.len() > 2 && t[0] == b'-' && t[1].is_ascii_alphabetic() && t[2] == b',');
            if !option {
                continue;
            }
            // The description is beside the option, or on the next line (long help).
            let described = line.trim().contains("  ")
                || lines
                    .get(i + 1)
                    .is_some_and(|n| !n.trim().is_empty() && !n.trim_start().starts_with('-'));
            assert!(
                described,
                "mailpipe {cmd} --help: no description: {line:?}\n{out}"
            );
        }
    }
}

/// `check` reads every account file of `[accounts] dir`: it counts the good ones and names a
/// broken one with its line, and fails.
#[test]
fn check_names_a_broken_account_file_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts.d");
    std::fs::create_dir(&accounts).unwrap();
    let account = |name: &str, address: &str| {
        format!(
            "[account]\nname = \"{name}\"\naddress = \"{address}\"\n[account.imap]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"{name}\"\npassword_env = \"PW\"\n"
        )
    };
    std::fs::write(accounts.join("bob.toml"), account("bob", "bob@example.com")).unwrap();
    let file = dir.path().join("demo.toml");
    std::fs::write(
        &file,
        demo_toml(dir.path()) + "\n[accounts]\ndir = \"accounts.d\"\n",
    )
    .unwrap();
    let (code, out, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 account file(s) in"), "{out}");

    std::fs::write(
        accounts.join("carol.toml"),
        account("carol", "carol at example"),
    )
    .unwrap();
    let (code, out, err) = mailpipe(&["check", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("carol.toml:3: `account.address`"),
        "{out}{err}"
    );
}

/// A state store that cannot grow (a full disk; here the file size limit, which fails writes
/// the same way without needing a small file system) stops the run with an error that names
/// the store's file, and loses nothing: the next run, with room, completes every message once.
#[test]
fn a_state_store_that_cannot_be_written_says_where_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Plugins compiled once by a run with room, so the limited run writes only its state
    // and its mail.
    let warm = tempfile::tempdir().unwrap();
    let (code, out, err) = mailpipe(&[
        "run",
        "-c",
        demo_file(warm.path()).to_str().unwrap(),
        "--once",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::os::unix::fs::symlink(
        warm.path().join("state/compiled"),
        dir.path().join("state/compiled"),
    )
    .unwrap();
    // The embedded store, named: the suite's PostgreSQL pass must not move it to the server.
    let file = dir.path().join("demo.toml");
    std::fs::write(
        &file,
        demo_toml(dir.path()).replacen("[state]\n", "[state]\nbackend = \"embedded\"\n", 1),
    )
    .unwrap();
    // 88 KiB: the store opens (its empty file is smaller) but cannot take the first commits.
    let limited = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 88; exec {} run -c {} --once",
            env!("CARGO_BIN_EXE_mailpipe"),
            file.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&limited.stderr);
    assert_ne!(limited.status.code(), Some(0), "{err}");
    let store = dir.path().join("state/state.redb");
    assert!(
        err.contains(&format!("state store {}: cannot write:", store.display())),
        "the error names the file: {err}"
    );
    let (code, out, err) = mailpipe(&["run", "-c", file.to_str().unwrap(), "--once", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let mail: Vec<_> = files_under(&dir.path().join("mail"))
        .into_iter()
        .filter(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|n| n == "cur" || n == "new")
        })
        .collect();
    assert_eq!(mail.len(), 14, "every message stored once: {mail:#?}");
}

/// A Sieve script runs through the built-in interpreter with `mailpipe test`, and a broken one
/// is refused by `check` and `test` with the script's line and column (as sievec says them)
/// and the line of the config that names it.
#[test]
fn sieve_scripts_run_and_their_errors_point_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("rules.sieve");
    std::fs::write(
        &good,
        "require [\"fileinto\", \"imap4flags\"];\nif header :contains \"subject\" \"invoice\" {\n  addflag \"$Bill\";\n  fileinto \"Bills\";\n}\n",
    )
    .unwrap();
    let msg = d.join("m.eml");
    std::fs::write(&msg, "From: shop@example.net\r\nTo: me@example.com\r\nSubject: Your invoice\r\nMessage-ID: <i@x>\r\n\r\nPay.\r\n").unwrap();
    let (code, out, err) = mailpipe(&[
        "test",
        good.to_str().unwrap(),
        msg.to_str().unwrap(),
        "--json",
        "--expect",
        "folder=Bills",
        "--expect",
        "flag=$Bill",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plugin"]["name"], "sieve");
    assert_eq!(
        v["plugin"]["needs"], "headers",
        "no body test: headers only"
    );

    let bad = d.join("bad.sieve");
    std::fs::write(
        &bad,
        "require \"fileinto\";\nif true {\n  fileinto :copy \"A\";\n}\n",
    )
    .unwrap();
    let (code, out, err) = mailpipe(&["test", bad.to_str().unwrap(), msg.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("bad.sieve:3:12: error: :copy requires the \"copy\" extension"),
        "{err}"
    );
    for d2 in ["in/new", "in/cur"] {
        std::fs::create_dir_all(d.join(d2)).unwrap();
    }
    let config = d.join("mailpipe.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = \"{}\"\n[offline]\nsource = \"in\"\nmailstore = \"out\"\noutbox = \"ob\"\n[identity]\naddress = \"me@example.com\"\n\n[[plugin]]\nname = \"rules\"\nsieve = \"bad.sieve\"\n",
            d.join("state").display()
        ),
    )
    .unwrap();
    let (code, out, err) = mailpipe(&["check", "-c", config.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    let all = out + &err;
    assert!(
        all.contains("mailpipe.toml:12: plugin rules: `sieve`:")
            && all.contains("bad.sieve:3:12: error"),
        "{all}"
    );
    // A missing script is a config error at the line of `sieve`.
    std::fs::remove_file(&bad).unwrap();
    let (code, out, err) = mailpipe(&["check", "-c", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!((out + &err).contains("mailpipe.toml:12"), "missing script");
}

#[test]
fn sieve_scripts_of_an_account_are_imported_checked_activated_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("mailpipe.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = \"{}\"\n\n[[account]]\nname = \"alice\"\naddress = \"alice@example.org\"\n[account.imap]\nhost = \"127.0.0.1\"\nport = 1\ntls = \"none\"\nusername = \"alice\"\npassword_env = \"UNUSED\"\n",
            d.join("state").display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let rules = d.join("rules.sieve");
    let text = "require [\"fileinto\"];\nif header :contains \"subject\" \"invoice\" { fileinto \"Bills\"; }\n";
    std::fs::write(&rules, text).unwrap();
    let broken = d.join("broken.sieve");
    std::fs::write(
        &broken,
        "require \"fileinto\";\nif true {\n  fileinto \"A\"\n}\n",
    )
    .unwrap();

    let (code, _, err) = mailpipe(&[
        "sieve",
        "import",
        "-c",
        c,
        "alice",
        rules.to_str().unwrap(),
        "--activate",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stored rules"), "{err}");
    // A script the interpreter refuses is not stored; the error names its line.
    let (code, _, err) = mailpipe(&[
        "sieve",
        "import",
        "-c",
        c,
        "alice",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken:4:1: error:"), "{err}");
    let (code, out, err) = mailpipe(&["sieve", "list", "-c", c, "alice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["rules  84 bytes  version 1  active"],
        "{out}"
    );
    // Export gives back the very text.
    let (code, out, _) = mailpipe(&["sieve", "export", "-c", c, "alice"]);
    assert_eq!((code, out.as_str()), (0, text));
    // The active script cannot be deleted; an unknown account or a hostile name is refused.
    let (code, _, err) = mailpipe(&["sieve", "delete", "-c", c, "alice", "rules"]);
    assert!(code != 0 && err.contains("is the active script"), "{err}");
    let (code, _, err) = mailpipe(&["sieve", "import", "-c", c, "bob", rules.to_str().unwrap()]);
    assert!(
        code != 0 && err.contains("no account named \"bob\""),
        "{err}"
    );
    let (code, _, err) = mailpipe(&[
        "sieve",
        "import",
        "-c",
        c,
        "alice",
        rules.to_str().unwrap(),
        "--name",
        "../x",
    ]);
    assert!(code != 0 && err.contains("invalid script name"), "{err}");
    // Deactivate, rename, delete: nothing left.
    for args in [
        vec!["sieve", "activate", "-c", c, "alice", "--none"],
        vec!["sieve", "rename", "-c", c, "alice", "rules", "old"],
        vec!["sieve", "delete", "-c", c, "alice", "old"],
    ] {
        let (code, _, err) = mailpipe(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (code, out, err) = mailpipe(&["sieve", "list", "-c", c, "alice"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("no Sieve scripts"), "{err}");
}

/// Silent nothing is no answer (issue 27): a file that is no message is refused by `test`
/// unless forced; a source that holds nothing is said so by `run`.
#[test]
fn no_message_and_an_empty_source_are_said_so() {
    let wasm = plugin_path("noop").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("a.out");
    let mut bytes = b"\x7fELF\x02\x01\x01\0\0\0".to_vec();
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&binary, &bytes).unwrap();
    let (code, _, err) = mailpipe(&["test", &wasm, binary.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not look like a message"), "{err}");
    let (code, _, err) = mailpipe(&["test", &wasm, binary.to_str().unwrap(), "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("anyway"), "{err}");
    // A real message is not refused.
    let (code, _, err) = mailpipe(&["test", &wasm, &sample_path(1)]);
    assert_eq!(code, 0, "{err}");
    // Nor malformed and hostile mail (no header, NUL bytes, 8-bit, bare CR): the differential
    // corpus, every message of it.
    for e in std::fs::read_dir(root().join("tests/sieve/messages")).unwrap() {
        let p = e.unwrap().path();
        let raw = std::fs::read(&p).unwrap();
        assert!(
            mailpipe::message::looks_like_message(&raw),
            "{}",
            p.display()
        );
    }
    assert!(!mailpipe::message::looks_like_message(&bytes));

    for (what, make_maildir, said) in [
        ("empty Maildir", true, "the Maildir is empty"),
        ("no Maildir", false, "not a Maildir"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        if make_maildir {
            std::fs::create_dir_all(src.join("cur")).unwrap();
            std::fs::create_dir_all(src.join("new")).unwrap();
        }
        std::fs::write(src.join("notes.txt"), "not mail").unwrap();
        let config = d.path().join("m.toml");
        std::fs::write(
            &config,
            "[identity]\naddress = \"me@example.com\"\n[offline]\nsource = \"src\"\nmailstore = \"mail\"\noutbox = \"out\"\n",
        )
        .unwrap();
        let (code, _, err) = mailpipe(&["run", "--once", "-c", config.to_str().unwrap()]);
        assert_eq!(code, 0, "{what}: {err}");
        assert!(
            err.contains("nothing to read") && err.contains(said),
            "{what}: {err}"
        );
    }
}

/// A second process on an embedded store another one holds gets a sentence, not redb's words
/// (on PostgreSQL, which several processes share, it simply runs).
#[test]
fn a_store_in_use_is_said_so_with_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("src/cur")).unwrap();
    std::fs::create_dir_all(d.path().join("src/new")).unwrap();
    let config = d.path().join("m.toml");
    std::fs::write(
        &config,
        "[identity]\naddress = \"me@example.com\"\n[offline]\nsource = \"src\"\nmailstore = \"mail\"\noutbox = \"out\"\n",
    )
    .unwrap();
    let mut holder = Command::new(env!("CARGO_BIN_EXE_mailpipe"))
        .args(["run", "-c"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.path().join("holder.log")).unwrap())
        .spawn()
        .unwrap();
    // The holder's first pass has run (it says the source is empty): it has the store.
    for _ in 0..100 {
        let log = std::fs::read_to_string(d.path().join("holder.log")).unwrap_or_default();
        if log.contains("nothing to read") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, _, said) = mailpipe(&["run", "--once", "-c", config.to_str().unwrap()]);
    let _ = holder.kill();
    let _ = holder.wait();
    if std::env::var_os("MAILPIPE_TEST_STATE_POSTGRES").is_some() {
        // The suites' pass on PostgreSQL (scripts/test.sh): a shared store serves both.
        assert_eq!(code, 0, "{said}");
        return;
    }
    assert_eq!(code, 2, "{said}");
    assert!(
        said.contains("is another mailpipe, e.g. a daemon, using it?"),
        "{said}"
    );
}

/// `mailpipe --version` names the commit it was built from (issue 27).
#[test]
fn version_names_the_commit() {
    let (code, out, _) = mailpipe(&["--version"]);
    assert_eq!(code, 0);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        // Built from this checkout (a commit made since the build would differ: rebuild).
        Some(h) => assert!(out.contains(&format!("(commit {h})")), "{out} vs {h}"),
        None => assert!(out.contains("(commit unknown)"), "{out}"),
    }
}
