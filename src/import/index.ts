/**
 * `tun6in4 import` as a library: recognise what a kernel-sit configuration was written for
 * (a broker's shell block, systemd-networkd, ifupdown, netplan, OpenWrt UCI), read its tunnels,
 * and write the tun6in4 configuration that runs the same tunnels as commented TOML.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fchownSync, fsyncSync, lstatSync, openSync, renameSync, rmSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { checkDaemonConfigText, type ConfigCheck } from '../daemon/check.js';
import { escapeText, FORMAT_NAMES, hasNonText, ImportError, type ImportedSecret, type ImportFormat, type Note, type SitDraft, type SourceRef } from './draft.js';
import { assignLanAddresses, emitTunnel, renderToml } from './emit.js';
import { parseIfupdown } from './ifupdown.js';
import { parseNetplan } from './netplan.js';
import { parseNetworkd } from './networkd.js';
import { parseShell, type ParsedInput } from './shell.js';
import { parseUci } from './uci.js';

export { FORMAT_NAMES, ImportError, ImportedSecret, type ImportFormat, type Note, type SourceRef } from './draft.js';

export const IMPORT_FORMATS = Object.keys(FORMAT_NAMES) as readonly ImportFormat[];

export interface ImportInput {
  /** Names the input in comments and errors (`-` or `stdin` for standard input). */
  file: string;
  text: string;
}

export interface ImportOptions {
  /** Skip detection: every input is in this format. */
  format?: ImportFormat;
  /**
   * Where the broker update key will be written (`--key-file`). With it the update is enabled and
   * the configuration names this file; without it the update is written as a comment to fill in.
   * The library does not write the file: see writeKeyFile.
   */
  keyFile?: string;
  /**
   * The IPv4 addresses of the host the configuration is for (the CLI passes this host's). A 6in4
   * local the host does not hold (1:1 NAT: the broker knows the public IPv4) becomes "auto", with a
   * comment naming it; without this the import is a pure conversion.
   */
  hostAddresses?: readonly string[];
}

export interface ImportedTunnel {
  name: string;
  /** Where the source declares it. */
  from: SourceRef;
  /** Its options as the configuration holds them. */
  options: Record<string, unknown>;
  /** What was not carried over, and why (also in the TOML as comments). */
  notes: Note[];
  /** The broker update key or password the source held; it is in no other field and not in `toml`. */
  secret?: ImportedSecret;
  /** Whether `[tunnels.NAME.update]` is live in the TOML (a key file was named). */
  updateEnabled: boolean;
  /** The source's 6in4 local IPv4, not among hostAddresses, so written as "auto". */
  localNotHere?: { value: string; from: SourceRef };
}

export interface ImportResult {
  /** The format of each input, in order. */
  formats: Array<{ file: string; format: ImportFormat }>;
  /** The configuration file: TOML with a comment on each value's origin. */
  toml: string;
  /** The same configuration as an object (what parseDaemonConfig takes). */
  config: { tunnels: Record<string, Record<string, unknown>> };
  tunnels: ImportedTunnel[];
  /** Notes on the input as a whole (lines about no tunnel in particular). */
  notes: Note[];
}

/** Which format a text is in; throws ImportError naming its first line when none fits. */
export function detectFormat(text: string, file = '-'): ImportFormat {
  const lines = text.split(/\r?\n/);
  // One line at a time: over the whole text (the m flag) a leading \s* ran across every blank
  // line after each line start, quadratic in blank lines.
  const some = (pattern: RegExp) => lines.some((l) => pattern.test(l));
  if (/\.(netdev|network)$/.test(file) || some(/^\s*\[(NetDev|Network|Match|Tunnel|Route|Address|Link)\]\s*$/)) return 'networkd';
  if (/\.ya?ml$/.test(file) || some(/^network\s*:\s*$/)) return 'netplan';
  if (some(/^\s*config\s+\S+/) && some(/^\s*(option|list)\s+\S+/)) return 'uci';
  if (some(/^\s*iface\s+\S+/)) return 'ifupdown';
  if (some(/^\s*(\$\s+)?((sudo|doas)\s+)?(\S*\/)?(ip|ifconfig|route|modprobe)\s/)) return 'shell';
  const first = lines.findIndex((l) => l.trim() && !/^\s*[#;]/.test(l));
  throw new ImportError(file, first < 0 ? 1 : first + 1, `not a configuration tun6in4 import recognises: ${Object.values(FORMAT_NAMES).join('; ')} (give --format if it is one of them)`);
}

/** Imports one text (a file, or a paste on standard input). */
export function importConfig(text: string, format?: ImportFormat, options: Omit<ImportOptions, 'format'> & { file?: string } = {}): ImportResult {
  return importFiles([{ file: options.file ?? '-', text }], { ...options, format });
}

/**
 * Imports several inputs into one configuration: the .netdev and .network files of systemd-networkd
 * are read together, so a tunnel and its addresses may come from different files.
 */
export function importFiles(inputs: ImportInput[], options: ImportOptions = {}): ImportResult {
  if (options.format !== undefined && !IMPORT_FORMATS.includes(options.format)) {
    throw new ImportError(inputs[0]?.file ?? '-', 1, `format "${options.format}" is not known; use one of ${IMPORT_FORMATS.join(', ')}`);
  }
  if (options.keyFile !== undefined && hasNonText(options.keyFile)) {
    throw new Error(`--key-file "${escapeText(options.keyFile)}": the path holds a control or invisible formatting character, and the configuration names it; give a plain path`);
  }
  const formats = inputs.map((i) => ({ file: i.file, format: options.format ?? detectFormat(i.text, i.file) }));
  const parsed: ParsedInput = { drafts: [], lan: [], notes: [], fouPorts: [] };
  const networkd = inputs.filter((_, k) => formats[k].format === 'networkd');
  if (networkd.length) parseNetworkd(networkd, parsed);
  inputs.forEach((input, k) => {
    const f = formats[k].format;
    if (f === 'shell') parseShell(input.file, input.text, parsed);
    else if (f === 'ifupdown') parseIfupdown(input.file, input.text, parsed);
    else if (f === 'netplan') parseNetplan(input.file, input.text, parsed);
    else if (f === 'uci') parseUci(input.file, input.text, parsed);
  });
  if (!parsed.drafts.length) {
    const first = inputs[0];
    throw new ImportError(first?.file ?? '-', 1, 'no sit tunnel (6in4, 6to4 or 6rd) found in the input; nothing to import');
  }
  const names = new Set<string>();
  for (const d of parsed.drafts) {
    if (names.has(d.name)) throw ImportError.at(d.from, `a second tunnel named "${d.name}"; rename one of them`);
    names.add(d.name);
  }
  assignLanAddresses(parsed.drafts, parsed.lan, parsed.notes);
  oneDefaultRoute(parsed.drafts);
  fouReceivers(parsed);
  const withKeys = parsed.drafts.filter((d) => d.update.secret && d.update.tunnelId && d.update.username);
  if (options.keyFile && withKeys.length > 1) {
    throw ImportError.at(withKeys[1].update.secret!.from, `a second tunnel with a broker update key, and --key-file names one file; import the tunnels one at a time, each with its own --key-file`);
  }
  const lineOf = lineLookup(inputs);
  const emitted = parsed.drafts.map((d) => emitTunnel(d, lineOf(d.from), { keyFile: options.keyFile, hostAddresses: options.hostAddresses }));
  const header = [
    'tun6in4 configuration written by `tun6in4 import` from:',
    ...formats.map((f) => `  ${f.file}: ${FORMAT_NAMES[f.format]}`),
    'Each value names the line it came from; what could not be carried over is a comment saying why.',
    'Check it with `tun6in4 check -c FILE`; run it with `tun6in4 up -c FILE`.',
  ];
  const toml = renderToml(header, emitted, parsed.notes);
  return {
    formats,
    toml,
    config: { tunnels: Object.fromEntries(emitted.map((t) => [t.name, t.options])) },
    tunnels: emitted.map((t) => ({ name: t.name, from: t.from, options: t.options, notes: t.notes, secret: t.secret, updateEnabled: t.updateEnabled, localNotHere: t.localNotHere })),
    notes: parsed.notes,
  };
}

/**
 * The kernel lets two sit devices carry a default each (by metric); tun6in4 installs both at the
 * same metric, and one interface's default should win plainly, so the first keeps it.
 */
function oneDefaultRoute(drafts: SitDraft[]): void {
  const carrying = drafts.filter((d) => (d.defaultRouteFlag ? d.defaultRouteFlag.value : !!d.defaultRoute));
  for (const d of carrying.slice(1)) {
    const from = (d.defaultRouteFlag ?? d.defaultRoute)!.from;
    d.defaultRouteFlag = { value: false, from };
    d.note(from, `${carrying[0].dev} already carries the IPv6 default route; tun6in4 gives it to one tunnel, so this one gets defaultRoute = false (set it on the one you want)`);
  }
}

/** The kernel receives FOU on a separate `fou` port; tun6in4 binds encapPort (default encapDport) itself. */
function fouReceivers(parsed: ParsedInput): void {
  for (const d of parsed.drafts.filter((x) => x.encapDport)) {
    const port = parsed.fouPorts[0];
    if (!port) {
      d.note(d.encapDport!.from, `no Foo-over-UDP receiver (ip fou add port … ipproto 41) in the input: tun6in4 receives on encapDport ${d.encapDport!.value}`);
    } else if (port.value !== d.encapDport!.value) {
      d.encapPort = port;
    }
    if (parsed.fouPorts.length > 1) d.note(parsed.fouPorts[1].from, 'several Foo-over-UDP receivers in the input; the first is the tunnel\'s encapPort');
  }
  const used = parsed.drafts.some((x) => x.encapDport);
  if (!used) for (const p of parsed.fouPorts) parsed.notes.push({ from: p.from, text: 'a Foo-over-UDP receiver, but no sit tunnel with encap fou uses it' });
}

function lineLookup(inputs: ImportInput[]): (r: SourceRef) => string {
  const byFile = new Map(inputs.map((i) => [i.file, i.text.split(/\r?\n/)]));
  return (r) => (byFile.get(r.file)?.[r.line - 1] ?? '').trim().replace(/\s+/g, ' ').slice(0, 120);
}

/**
 * Writes an update key to `path` for the daemon to read: the key and a newline, nothing else.
 * The file is replaced, never written through: the key goes to a new file in the same directory
 * (created exclusively, so nothing planted there is followed) that is then renamed over `path`.
 * Whoever can write that directory cannot make root's import send the key elsewhere with a
 * symlink, and the daemon reads the old key or the new, never half of one. A symlink at `path` is
 * refused rather than replaced (the daemon reads a key only as itself, so it is a mistake or a
 * plant, and either way someone should look). An existing file is replaced: re-running import
 * after the broker's key changed is how the key gets updated. The new file is mode 0600, or 0640
 * with the old file's group when the old one was exactly group-readable (root:tun6in4 0640, the
 * service user's way); owned by whoever runs import.
 */
export function writeKeyFile(path: string, secret: ImportedSecret): { replaced: boolean; mode: number } {
  let old: Stats | undefined;
  try {
    old = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (old?.isSymbolicLink()) throw new Error(`${path} is a symbolic link, and import writes a key file only as itself (as the daemon reads it); remove the link (rm ${path}) or name the real file`);
  if (old && !old.isFile()) throw new Error(`${path} is not a regular file; name a file`);
  let mode = old !== undefined && (old.mode & 0o077) === 0o040 ? 0o640 : 0o600;
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    try {
      if (mode === 0o640) {
        try {
          fchownSync(fd, -1, old!.gid);
        } catch (e) {
          // not root and not in that group: the key stays the owner's alone
          if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
          mode = 0o600;
        }
      }
      fchmodSync(fd, mode);
      writeSync(fd, `${secret.reveal()}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (e) {
    rmSync(temporary, { force: true });
    throw e;
  }
  return { replaced: old !== undefined, mode };
}

/**
 * Runs an import's configuration through `tun6in4 check`'s checks as the text it printed, in
 * memory. Key files it names must exist already (see writeKeyFile).
 */
export function checkImported(result: ImportResult): ConfigCheck {
  return checkDaemonConfigText(result.toml, 'toml', 'imported.toml');
}
