/**
 * The manual against the command it describes. Every `tun6in4 <command> --flag …` written in the
 * README or docs/ names a command and flags the CLI has (so a renamed flag fails here, not in a
 * reader's shell), and the `tun6in4 check` transcript of docs/operating.md is replayed against the
 * real command, line for line, and the `tun6in4 show` transcript's file against what the daemon's
 * writer makes of the same configuration (test/show.test.ts runs `show` against a daemon). Every
 * name a code block imports from the package is exported, current, by the entry it names.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli/program.js';
import { daemonConfigToFile, formatDaemonConfig, loadDaemonConfig } from '../src/daemon/config.js';
import { ENTRIES, publicNames, type Entry } from './helpers/exports.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/tun6in4.js');
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = (doc: string) => readFileSync(join(ROOT, doc), 'utf8');

interface Invocation {
  doc: string;
  command: string;
  /** What follows the command (a sub-command's name first, if it has one). */
  rest: string;
  flags: string[];
  /** Written as a command (a `$` prompt, a shell block, a code span), not a word in prose or output. */
  asCommand: boolean;
}

/** Shell lines of fenced blocks (continuations joined) and the code spans of the prose. */
function snippets(doc: string): Array<{ code: string; shell: boolean }> {
  const out: Array<{ code: string; shell: boolean }> = [];
  const prose: string[] = [];
  let fence: string | null = null;
  let pending = '';
  for (const line of text(doc).split('\n')) {
    const open = /^```(\w*)/.exec(line);
    if (open) {
      fence = fence === null ? open[1] : null;
      continue;
    }
    if (fence === null) {
      prose.push(line);
      continue;
    }
    const joined = pending + line;
    if (joined.endsWith('\\')) {
      pending = joined.slice(0, -1) + ' ';
      continue;
    }
    pending = '';
    out.push({ code: joined, shell: fence === 'sh' || joined.startsWith('$ ') });
  }
  for (const m of prose.join('\n').matchAll(/`([^`]+)`/g)) out.push({ code: m[1].replace(/\n/g, ' '), shell: true });
  return out;
}

function invocations(doc: string): Invocation[] {
  const found: Invocation[] = [];
  for (const { code, shell } of snippets(doc)) {
    for (const m of code.matchAll(/(^|\$ |npx |sudo |[\s;(&|])tun6in4 ([a-z][a-z0-9-]*)(?=\s|$)([^;|&>#]*)/g)) {
      const asCommand = shell && (m.index === 0 || m[1] === '$ ' || m[1] === 'npx ' || m[1] === 'sudo ' || /[;&|(]\s*$/.test(code.slice(0, m.index + m[1].length)));
      found.push({ doc, command: m[2], rest: m[3], flags: [...m[3].matchAll(/(?:^|[\s[])(--[a-z0-9][a-z0-9-]*)/g)].map((f) => f[1]), asCommand });
    }
    for (const m of code.matchAll(/npm run (lab) -- ([^;|&>#]*)/g)) {
      found.push({ doc, command: m[1], rest: m[2], flags: [...m[2].matchAll(/(?:^|\s)(--[a-z0-9][a-z0-9-]*)/g)].map((f) => f[1]), asCommand: true });
    }
  }
  return found;
}

describe('the commands written in the README and docs/', () => {
  const program = buildProgram();
  const commands = new Map(program.commands.map((c) => [c.name(), new Set([...c.options.map((o) => o.long), '--help'])]));
  // a command with sub-commands (`broker add`): each sub-command's flags are its own
  const subcommands = new Map(program.commands.flatMap((c) => c.commands.map((s) => [`${c.name()} ${s.name()}`, new Set([...s.options.map((o) => o.long), '--help'])] as const)));
  for (const [name, flags] of subcommands) commands.set(name, flags);
  const all = DOCS.flatMap(invocations).map((i) => {
    const sub = /^\s*([a-z][a-z0-9-]*)/.exec(i.rest)?.[1];
    return sub !== undefined && subcommands.has(`${i.command} ${sub}`) ? { ...i, command: `${i.command} ${sub}` } : i;
  });

  it('are found (the scan reads the manual)', () => {
    const checked = all.filter((i) => commands.has(i.command));
    expect(checked.length).toBeGreaterThan(60);
    for (const c of ['run', 'up', 'check', 'show', 'status', 'trace', 'doctor', 'import', 'lab', 'build-native']) {
      expect(checked.some((i) => i.command === c), c).toBe(true);
    }
  });

  it('name a command the CLI has', () => {
    const unknown = all.filter((i) => i.asCommand && !commands.has(i.command)).map((i) => `${i.doc}: tun6in4 ${i.command}`);
    expect(unknown).toEqual([]);
  });

  it('use only flags their command defines', () => {
    const wrong = all
      .filter((i) => commands.has(i.command))
      .flatMap((i) => i.flags.filter((f) => !commands.get(i.command)!.has(f)).map((f) => `${i.doc}: tun6in4 ${i.command} ${f}`));
    expect([...new Set(wrong)]).toEqual([]);
  });
});

describe('the library as the README and docs/ write it', () => {
  /** Each fenced code block's text, with the language it is marked as. */
  const blocks = (doc: string) => [...text(doc).matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)].map((m) => ({ lang: m[1], code: m[2] }));

  it('every name a code block imports from tun6in4, tun6in4/engine or tun6in4/testing is exported there, not deprecated', () => {
    const entries = publicNames();
    const wrong: string[] = [];
    let seen = 0;
    for (const doc of DOCS) {
      for (const { code } of blocks(doc)) {
        const imports = [
          ...code.matchAll(/import\s+(?:type\s+)?\{([^}]*)\}\s+from\s+'([^']+)'/g),
          ...code.matchAll(/const\s+\{([^}]*)\}\s*=\s*require\('([^']+)'\)/g),
        ];
        for (const [, names, from] of imports) {
          if (!(from in ENTRIES)) {
            if (from.startsWith('tun6in4')) wrong.push(`${doc}: no entry '${from}'`);
            continue;
          }
          for (const raw of names.split(',').map((n) => n.trim()).filter(Boolean)) {
            const name = raw.replace(/^type\s+/, '').split(/\s+as\s+|\s*:\s*/)[0];
            const found = entries[from as Entry].find((n) => n.name === name);
            seen++;
            if (!found) wrong.push(`${doc}: ${from} does not export ${name}`);
            else if (found.deprecated !== null) wrong.push(`${doc}: ${from}'s ${name} is deprecated (${found.deprecated})`);
          }
        }
      }
    }
    expect(seen).toBeGreaterThan(15);
    expect(wrong).toEqual([]);
  });

  it('CHANGELOG.md names every deprecated name of tun6in4, and docs/library.md each one that moved to tun6in4/engine, as it is exported there', () => {
    const changelog = text('CHANGELOG.md');
    const deprecated = publicNames().tun6in4.filter((n) => n.deprecated !== null);
    expect(deprecated.filter((n) => !changelog.includes(`\`${n.name}\``)).map((n) => n.name)).toEqual([]);
    const moved = /^- To `tun6in4\/engine`: ([\s\S]*?)^- /m.exec(text('docs/library.md'))?.[1] ?? '';
    const listed = [...moved.matchAll(/`(\w+)`/g)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThan(40);
    const engine = new Set(publicNames()['tun6in4/engine'].map((n) => n.name));
    expect(listed.filter((n) => !engine.has(n))).toEqual([]);
  });
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const anchor = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');

describe('links between the README and docs/', () => {
  it('point at files that exist, and at headings those files have', () => {
    const broken: string[] = [];
    let seen = 0;
    for (const doc of DOCS) {
      for (const m of text(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
        const [path, hash] = m[1].split('#');
        if (/^[a-z]+:/.test(path)) continue;
        seen++;
        const target = path === '' ? doc : join(doc.includes('/') ? 'docs' : '', path);
        let body: string;
        try {
          body = readFileSync(join(ROOT, target), 'utf8');
        } catch {
          broken.push(`${doc}: ${m[1]} (no such file)`);
          continue;
        }
        if (hash !== undefined && !body.split('\n').some((l) => /^#{1,6} /.test(l) && anchor(l.replace(/^#+ /, '')) === hash)) {
          broken.push(`${doc}: ${m[1]} (no such heading)`);
        }
      }
    }
    expect(seen).toBeGreaterThan(15);
    expect(broken).toEqual([]);
  });
});

describe('docs/operating.md: the `check` and `show` transcripts, replayed', () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-docs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // The scratch directory stands for /etc/tun6in4 and the control group root for tun6in4, as the
  // text above the transcript says.
  const ETC = '/etc/tun6in4';
  const example = text('examples/he-tunnel.toml').replaceAll(`${ETC}/he.key`, join(dir, 'he.key')).replace('group = "tun6in4"', 'group = "root"');

  it('prints what the transcript shows, command by command', () => {
    const doc = text('docs/operating.md');
    const block = /```\n(\$ tun6in4 check -c tun6in4\.toml\n[\s\S]*?)```/.exec(doc);
    expect(block, 'the check transcript').not.toBeNull();
    const steps: Array<{ command: string; output: string[] }> = [];
    for (const line of block![1].trimEnd().split('\n')) {
      if (line.startsWith('$ ')) steps.push({ command: line.slice(2), output: [] });
      else steps.at(-1)!.output.push(line);
    }
    expect(steps.length).toBe(4);

    writeFileSync(join(dir, 'he.key'), 'not-a-real-key\n', { mode: 0o600 });
    writeFileSync(join(dir, 'tun6in4.toml'), example, { mode: 0o600 });
    writeFileSync(join(dir, 'bad.toml'), example.replace(/^mtu = 1480/m, 'mtu = 9000'), { mode: 0o600 });
    writeFileSync(join(dir, 'broken.toml'), '[tunnels.he]\nmode = "6in4\n', { mode: 0o600 });
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin/tun6in4'), `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`);
    chmodSync(join(dir, 'bin/tun6in4'), 0o755);

    for (const { command, output } of steps) {
      const r = spawnSync('bash', ['-c', `{ ${command.replaceAll(ETC, dir)}; } 2>&1`], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` },
      });
      const shown = r.stdout.trimEnd().replaceAll(dir, ETC).replace('group root)', 'group tun6in4)');
      expect(shown.split('\n'), command).toEqual(output);
    }
  });

  it('show prints the configuration the way the transcript does', () => {
    const doc = text('docs/operating.md');
    const block = /```\n\$ tun6in4 show\n([\s\S]*?)```/.exec(doc);
    expect(block, 'the show transcript').not.toBeNull();
    const lines = block![1].trimEnd().split('\n');
    const comments = lines.filter((l) => l.startsWith('# ')).map((l) => l.slice(2));
    expect(comments.length).toBe(3);
    writeFileSync(join(dir, 'show.toml'), example, { mode: 0o600 });
    const file = daemonConfigToFile(loadDaemonConfig(join(dir, 'show.toml')));
    const shown = formatDaemonConfig(file, 'toml', comments).trimEnd().replaceAll(dir, ETC).replace('group = "root"', 'group = "tun6in4"');
    expect(shown.split('\n')).toEqual(lines);
  });
});

describe('getting tun6in4 on the PATH', () => {
  // The units run `/usr/bin/env tun6in4` and the 6rd hooks `tun6in4` from the DHCP client's PATH:
  // every page or file that installs one, and the README's Install section, says how it gets there.
  const CONTRIB = readdirSync(join(ROOT, 'contrib')).filter((f) => !f.endsWith('.json')).map((f) => `contrib/${f}`);
  const installsOrCalls = /\/etc\/systemd\/system\/|\/usr\/share\/tun6in4\/|dhclient-exit-hooks\.d|\/usr\/bin\/env tun6in4|tun6in4 on PATH/;

  it('is said wherever a unit or hook is installed or calls it: npm install -g tun6in4', () => {
    const files = [...DOCS, ...CONTRIB].filter((f) => installsOrCalls.test(text(f)));
    expect(files).toEqual(expect.arrayContaining(['docs/systemd.md', 'docs/tunnels.md', 'contrib/tun6in4.service', 'contrib/tun6in4@.service', 'contrib/tun6in4-6rd']));
    expect(files.filter((f) => !text(f).includes('npm install -g tun6in4'))).toEqual([]);
  });

  it('is said in the README\'s Install section', () => {
    const install = /^## Install\n([\s\S]*?)^## /m.exec(text('README.md'))?.[1] ?? '';
    expect(install).toMatch(/npm install -g tun6in4/);
  });
});
