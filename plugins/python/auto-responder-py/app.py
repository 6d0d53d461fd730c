"""auto-responder-py: a vacation auto-reply for mailpipe, written in Python.

Config (the plugin's table in the host config, read as JSON):

    addresses = ["me@example.com"]   # required: answer only mail sent to one of these (To/Cc)
    days = 7                         # at most one reply per sender per N days (default 7)
    subject = "Away until Monday"    # optional; default "Auto: <original subject>"
    body = "I'm on holiday ..."      # required: the plain-text reply

Nobody gets an answer when the message comes from a list (List-* headers, Precedence
bulk/list/junk), from a program (Auto-Submitted other than "no", a bounce with Return-Path <>,
or a robot address like mailer-daemon, noreply, owner-*, *-request), or from ourselves.
"""

import fnmatch
import json
import unicodedata

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    Action_Reply,
    ConfigProblem,
    Message,
    Needs,
    PluginInfo,
    Reply,
)

ROBOTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "owner-*", "*-request")
SECONDS_PER_DAY = 86_400
HEADER_SAFE_MAX = 900  # bytes; the host refuses header values over 998


def header_safe(text: str) -> str:
    """`text` made safe as a header value (a subject, a header field's value).

    The host refuses a value with CR, LF or NUL or over 998 bytes and then voids the plugin's
    whole result, and inbound text is attacker-controlled (an encoded word can decode to
    "hi\\r\\nBcc: x@evil"). So, as `header_safe` in the Rust SDK: every control character and
    other whitespace becomes a space, runs of spaces collapse to one, the ends are trimmed, and
    text over HEADER_SAFE_MAX UTF-8 bytes is cut on a character boundary and ends with "…".
    """
    spaced = "".join(" " if c.isspace() or unicodedata.category(c) == "Cc" else c for c in text)
    value = " ".join(part for part in spaced.split(" ") if part)
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) <= HEADER_SAFE_MAX:
        return value
    ellipsis = "…"
    cut = encoded[: HEADER_SAFE_MAX - len(ellipsis.encode("utf-8"))]
    return cut.decode("utf-8", "ignore").rstrip(" ") + ellipsis


def sender(msg: Message, from_: list) -> str | None:
    """Whom the host will answer: Return-Path, else From ("" for a bounce)."""
    return_path = msg.header("Return-Path")
    if return_path is not None:
        return return_path.strip().strip("<>").strip().lower()
    return from_[0].address.lower() if from_ else None


def is_robot(address: str) -> bool:
    local_part = address.split("@")[0].lower()
    return any(fnmatch.fnmatchcase(local_part, pattern) for pattern in ROBOTS)


def is_list_or_automatic(msg: Message) -> bool:
    if any(h.name.lower().startswith("list-") for h in msg.headers()):
        return True
    if (msg.header("Precedence") or "").strip().lower() in ("bulk", "list", "junk"):
        return True
    auto_submitted = msg.header("Auto-Submitted")
    return auto_submitted is not None and auto_submitted.split(";")[0].strip().lower() != "no"


def config_problems(config) -> list[tuple[str | None, str]]:
    """What is wrong with the config, as (key, message) pairs."""
    if not isinstance(config, dict):
        return [(None, "the config must be a table")]
    problems = []
    addresses = config.get("addresses")
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        problems.append(("addresses", "must be a list of strings"))
    if not isinstance(config.get("body"), str):
        problems.append(("body", "the reply text is required"))
    days = config.get("days", 7)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        problems.append(("days", "must be a whole number >= 1"))
    return problems


def load_config() -> dict:
    try:
        config = json.loads(host.config_json())
    except ValueError as e:
        raise Err(f"config is not valid JSON: {e}")
    for key, message in config_problems(config):
        raise Err(f'config: "{key}" {message}' if key else f"config: {message}")
    return config


class WitWorld(wit_world.WitWorld):
    def info(self) -> PluginInfo:
        return PluginInfo(name="auto-responder-py", version="0.2.0", needs=Needs.HEADERS)

    def check_config(self) -> list[ConfigProblem]:
        """Called when the plugin is loaded and by `mailpipe check`: each problem is shown at
        its key's line of the config file, and the plugin is not run until it is fixed."""
        try:
            config = json.loads(host.config_json())
        except ValueError as e:
            return [ConfigProblem(key=None, message=f"not valid JSON: {e}")]
        return [ConfigProblem(key=key, message=message) for key, message in config_problems(config)]

    def on_message(self, msg: Message) -> list:
        config = load_config()
        mine = {a.lower() for a in config["addresses"]}

        # Each part of the message is read from the host when asked for.
        to_me = any(a.address.lower() in mine for a in msg.to() + msg.cc())
        from_ = msg.from_()
        who = sender(msg, from_)
        if not to_me or not who or is_list_or_automatic(msg):
            return []
        claimed = [who] + [a.address.lower() for a in from_]
        if any(a in mine or is_robot(a) for a in claimed):
            return []

        key = f"replied:{who}"
        if host.kv_get(key) is not None:
            host.log(host.LogLevel.DEBUG, f"{who} was answered recently; staying quiet")
            return []
        host.kv_set(key, b"1", config.get("days", 7) * SECONDS_PER_DAY)

        # Inbound text (an encoded word may decode to CR/LF and a fake header) or config text:
        # made header-safe, or the host would refuse the reply.
        subject = header_safe(config.get("subject") or f"Auto: {msg.subject() or ''}")
        host.log(host.LogLevel.INFO, f"sending the away note to {who}")
        return [Action_Reply(Reply(subject=subject, text=config["body"], html=None, headers=[]))]
