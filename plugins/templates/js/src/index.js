// @ts-check
// {{name}}: a mailpipe plugin. Files messages whose subject contains a word into a folder and
// flags them; leaves every other message alone.
//
// Config (its [plugin.config] table in the mailpipe config, or --config KEY=VALUE in
// `mailpipe test`):
//   word = "invoice"      case-insensitive; default "invoice"
//   folder = "Invoices"   created when missing; default "Invoices"
//
// The types come from types/mailpipe-plugin.d.ts (`mailpipe wit --contract 0.1 --typescript`): `npm run
// check` type-checks this file, and your editor shows them as you type.
import { log, configJson } from 'mailpipe:plugin/host@0.1.0';

/** @typedef {import('mailpipe:plugin/types@0.1.0').Message} Message */
/** @typedef {import('mailpipe:plugin/types@0.1.0').Action} Action */
/** @typedef {import('mailpipe:plugin/types@0.1.0').PluginInfo} PluginInfo */

const KEYS = new Set(['word', 'folder']);

/** @returns {PluginInfo} */
export function info() {
  // Only headers: the host does not decode bodies for this plugin.
  return { name: '{{name}}', version: '0.1.0', needs: 'headers' };
}

/**
 * Called once per message. Return actions; throw a string to report an error (the message is
 * then kept unchanged and the failure recorded).
 * @param {Message} msg
 * @returns {Action[]}
 */
export function onMessage(msg) {
  try {
    const config = loadConfig();
    const subject = (msg.subject ?? '').toLowerCase();
    if (config.word === '' || !subject.includes(config.word.toLowerCase())) return [];
    log('info', `filing into ${config.folder}`);
    return [
      { tag: 'file-into', val: { folder: config.folder, create: true } },
      { tag: 'add-flags', val: ['$Invoice'] },
    ];
  } catch (e) {
    // A bug becomes an error with its place, not a bare trap.
    throw typeof e === 'string' ? e : describe(e);
  }
}

/** @type {{ word: string, folder: string } | undefined} */
let cached;

/** The config, parsed once per instance (the host reuses instances from message to message). */
function loadConfig() {
  if (cached) return cached;
  const raw = JSON.parse(configJson());
  for (const key of Object.keys(raw)) {
    if (!KEYS.has(key)) throw `config: unknown key \`${key}\` (known: word, folder)`;
  }
  const word = raw.word ?? 'invoice';
  const folder = raw.folder ?? 'Invoices';
  if (typeof word !== 'string' || typeof folder !== 'string') throw 'config: word and folder must be text';
  cached = { word, folder };
  return cached;
}

/**
 * An exception on one line: its message and its innermost stack frames (file:line:column).
 * @param {any} e
 */
function describe(e) {
  const frames = String(e?.stack ?? '')
    .split('\n')
    .map((line) => line.trim().replace(/^at /, ''))
    .filter(Boolean)
    .slice(0, 4);
  return frames.length ? `${e} (at ${frames.join(' ← ')})` : String(e);
}
