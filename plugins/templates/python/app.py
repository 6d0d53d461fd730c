"""{{name}}: a mailpipe plugin. Files messages whose subject contains a word into a folder
and flags them; leaves every other message alone.

Config (its [plugin.config] table in the mailpipe config, or --config KEY=VALUE in
`mailpipe test`):

    word = "invoice"      # case-insensitive; default "invoice"
    folder = "Invoices"   # created when missing; default "Invoices"

Types: `./build.sh` writes the generated bindings to .bindings/ (point your editor's extra
path there); the contract itself is wit/plugin.wit (`mailpipe wit --contract 0.2`).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    Action,
    Action_AddFlags,
    Action_FileInto,
    ConfigProblem,
    FolderTarget,
    Message,
    Needs,
    PluginInfo,
)

KEYS = {"word", "folder"}
_config = None


def problems(raw: dict) -> list[ConfigProblem]:
    """What is wrong with the config; each problem names its key."""
    found = [
        ConfigProblem(key=key, message="unknown key (known: word, folder)")
        for key in sorted(set(raw) - KEYS)
    ]
    for key in ("word", "folder"):
        if key in raw and not isinstance(raw[key], str):
            found.append(ConfigProblem(key=key, message="must be text"))
    return found


def load_config() -> dict:
    """The config, parsed once per instance (the host reuses instances between messages)."""
    global _config
    if _config is None:
        raw = json.loads(host.config_json())
        for p in problems(raw):
            raise Err(f"config: `{p.key}`: {p.message}")
        _config = {"word": raw.get("word", "invoice"), "folder": raw.get("folder", "Invoices")}
    return _config


class WitWorld(wit_world.WitWorld):
    def info(self) -> PluginInfo:
        # Only headers: the host does not decode bodies for this plugin.
        return PluginInfo(name="{{name}}", version="0.1.0", needs=Needs.HEADERS)

    def check_config(self) -> list[ConfigProblem]:
        """Called when the plugin is loaded and by `mailpipe check`, which shows each problem
        at its key's line of the config file; a plugin with problems is not run."""
        return problems(json.loads(host.config_json()))

    def on_message(self, msg: Message) -> list[Action]:
        """Called once per message; raise Err("why") to report an error (the message is then
        kept unchanged). Any other exception is reported with its traceback. Each part of the
        message is read from the host when asked for (here: the subject)."""
        config = load_config()
        subject = (msg.subject() or "").lower()
        if not config["word"] or config["word"].lower() not in subject:
            return []
        host.log(host.LogLevel.INFO, f"filing into {config['folder']}")
        return [
            Action_FileInto(FolderTarget(folder=config["folder"], create=True)),
            Action_AddFlags(["$Invoice"]),
        ]
