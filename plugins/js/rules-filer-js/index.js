// rules-filer-js: files and flags messages by simple rules, counting matches per rule in the KV store.
//
// Config (the plugin's [plugin.config] table, read as JSON); every matching rule acts, in order:
//   rules = [ { name = "rust", folder = "Lists/rust", flags = ["$Label1"],
//               header = "List-Id", contains = "rust", from = "*@example.com" } ]
// Conditions (all given ones must hold, at least one per rule; case-insensitive):
//   header          the message has a field of that name (with `contains`: whose value contains it)
//   from            a From address matches the pattern (`*` any run of characters, `?` one)
// Actions (at least one): folder (file-into, create = true unless `create = false`), flags (add-flags).
// State: key "count:<rule name>" holds how many messages the rule matched, as a decimal string.
import { log, configJson, kvGet, kvSet } from 'mailpipe:plugin/host@0.1.0';

const KEYS = new Set(['name', 'folder', 'create', 'flags', 'header', 'contains', 'from']);

export function info() {
  return { name: 'rules-filer-js', version: '0.1.0', needs: 'headers' };
}

// Thrown strings become `err(...)`; other exceptions are turned into strings here, so a bug
// is reported as an error (not a trap) by every JS backend, with where it happened.
export function onMessage(msg) {
  try {
    return fileMessage(msg, loadRules());
  } catch (e) {
    throw typeof e === 'string' ? e : `internal error: ${describe(e)}`;
  }
}

// An exception on one line: its message and its innermost stack frames (file:line:column).
function describe(e) {
  const frames = String(e?.stack ?? '')
    .split('\n')
    .map((line) => line.trim().replace(/^at /, ''))
    .filter(Boolean)
    .slice(0, 4);
  return frames.length ? `${e} (at ${frames.join(' ← ')})` : String(e);
}

function loadRules() {
  let config;
  try {
    config = JSON.parse(configJson());
  } catch (e) {
    throw `config is not JSON: ${e.message}`;
  }
  const rules = config.rules ?? [];
  if (!Array.isArray(rules)) throw 'config: `rules` must be a list of tables';
  const checked = rules.map((rule, i) => checkRule(rule, `rules[${i}]`));
  const names = checked.map((r) => r.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw `config: two rules are named "${dup}" (names key the match counters)`;
  return checked;
}

function checkRule(rule, where) {
  if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) throw `${where}: not a table`;
  for (const key of Object.keys(rule)) {
    if (!KEYS.has(key)) throw `${where}: unknown key \`${key}\``;
  }
  const str = (key) => {
    if (rule[key] !== undefined && (typeof rule[key] !== 'string' || rule[key] === '')) {
      throw `${where}: \`${key}\` must be a non-empty string`;
    }
    return rule[key];
  };
  const name = str('name'), folder = str('folder'), header = str('header');
  const contains = str('contains'), from = str('from');
  if (name === undefined || name.length > 200) throw `${where}: \`name\` is required (at most 200 characters)`;
  const flags = rule.flags ?? [];
  if (!Array.isArray(flags) || !flags.every((f) => typeof f === 'string')) {
    throw `rule "${name}": \`flags\` must be a list of strings`;
  }
  if (rule.create !== undefined && typeof rule.create !== 'boolean') throw `rule "${name}": \`create\` must be true or false`;
  if (contains !== undefined && header === undefined) throw `rule "${name}": \`contains\` needs \`header\``;
  if (header === undefined && from === undefined) throw `rule "${name}": needs a condition (\`header\` or \`from\`)`;
  if (folder === undefined && flags.length === 0) throw `rule "${name}": needs an action (\`folder\` or \`flags\`)`;
  return {
    name, folder, flags, create: rule.create ?? true,
    header: header?.toLowerCase(), contains: contains?.toLowerCase(), from: from && globToRegExp(from),
  };
}

// "*@example.com" -> /^.*@example\.com$/i
function globToRegExp(glob) {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function matches(rule, msg) {
  if (rule.header !== undefined) {
    const values = msg.headers.filter((h) => h.name.toLowerCase() === rule.header).map((h) => h.value.toLowerCase());
    if (!values.some((v) => rule.contains === undefined || v.includes(rule.contains))) return false;
  }
  return rule.from === undefined || msg.from.some((a) => rule.from.test(a.address));
}

function fileMessage(msg, rules) {
  const actions = [];
  for (const rule of rules) {
    if (!matches(rule, msg)) continue;
    if (rule.folder !== undefined) actions.push({ tag: 'file-into', val: { folder: rule.folder, create: rule.create } });
    if (rule.flags.length > 0) actions.push({ tag: 'add-flags', val: rule.flags });
    const count = bump(`count:${rule.name}`);
    log('info', `rule "${rule.name}" matched (${count} so far)`);
  }
  return actions;
}

// `text` made safe as a header value (a subject, a set-header/add-header value, a reply subject),
// as `header_safe` in the Rust SDK. The host refuses a value with CR, LF or NUL or over 998 bytes
// and then voids the plugin's whole result, and message text is attacker-controlled (an encoded
// word can decode to "hi\r\nBcc: x@evil"). Every control character and other whitespace becomes
// a space, runs of spaces collapse to one, the ends are trimmed, and text over HEADER_SAFE_MAX
// UTF-8 bytes is cut on a character boundary and ends with "…". This plugin only files and flags
// (folder names and flags are checked by the host on their own), so it puts no text into a
// header; use this in a plugin copied from it as soon as it does.
const HEADER_SAFE_MAX = 900;
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/g;

function headerSafe(text) {
  const value = String(text).replace(CONTROL_OR_SPACE, ' ').replace(/^ | $/g, '');
  const chars = [...value]; // code points
  const size = (ch) => { const cp = ch.codePointAt(0); return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; };
  if (chars.reduce((n, ch) => n + size(ch), 0) <= HEADER_SAFE_MAX) return value;
  let out = '', bytes = 0;
  for (const ch of chars) {
    if (bytes + size(ch) > HEADER_SAFE_MAX - 3) break; // 3: the UTF-8 size of "…"
    out += ch;
    bytes += size(ch);
  }
  return out.replace(/ $/, '') + '…';
}

// Counters are decimal ASCII; no TextEncoder needed (QuickJS has none).
function bump(key) {
  const old = kvGet(key); // none is `undefined` (StarlingMonkey) or `null` (QuickJS)
  const n = (old == null ? 0 : Number(String.fromCharCode(...old)) || 0) + 1;
  kvSet(key, Uint8Array.from(String(n), (c) => c.charCodeAt(0)), null);
  return n;
}
