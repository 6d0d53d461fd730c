"""{{name}}: a mailpipe plugin. Files messages whose subject contains a word into a folder
and flags them; leaves every other message alone.

Config (its [plugin.config] table in the mailpipe config, or --config KEY=VALUE in
`mailpipe test`):

    word = "invoice"      # case-insensitive; default "invoice"
    folder = "Invoices"   # created when missing; default "Invoices"

Types: `./build.sh` writes the generated bindings to .bindings/ (point your editor's extra
path there); the contract itself is wit/plugin.wit (`mailpipe wit`).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    Action,
    Action_AddFlags,
    Action_FileInto,
    FolderTarget,
    Message,
    Needs,
    PluginInfo,
)

KEYS = {"word", "folder"}
_config = None


def load_config() -> dict:
    """The config, parsed once per instance (the host reuses instances between messages)."""
    global _config
    if _config is None:
        raw = json.loads(host.config_json())
        unknown = sorted(set(raw) - KEYS)
        if unknown:
            raise Err(f"config: unknown key {unknown[0]!r} (known: word, folder)")
        word = raw.get("word", "invoice")
        folder = raw.get("folder", "Invoices")
        if not isinstance(word, str) or not isinstance(folder, str):
            raise Err("config: word and folder must be text")
        _config = {"word": word, "folder": folder}
    return _config


class WitWorld(wit_world.WitWorld):
    def info(self) -> PluginInfo:
        # Only headers: the host does not decode bodies for this plugin.
        return PluginInfo(name="{{name}}", version="0.1.0", needs=Needs.HEADERS)

    def on_message(self, msg: Message) -> list[Action]:
        """Called once per message; raise Err("why") to report an error (the message is then
        kept unchanged). Any other exception is reported with its traceback."""
        config = load_config()
        subject = (msg.subject or "").lower()
        if not config["word"] or config["word"].lower() not in subject:
            return []
        host.log(host.LogLevel.INFO, f"filing into {config['folder']}")
        return [
            Action_FileInto(FolderTarget(folder=config["folder"], create=True)),
            Action_AddFlags(["$Invoice"]),
        ]
