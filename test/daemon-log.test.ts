/**
 * Issue 33: the daemon's log lines as people and programs read them. A tunnel's lines carry its
 * name once (JSON with a key twice is read differently by every parser); a tunnel going down on a
 * terminal is a short summary, while the JSON log keeps every counter.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/cli/log.js';
import { tunnelDown } from '../src/cli/program.js';
import { Counters } from '../src/encap/counters.js';
import { ManagedTunnel, type ManagedStatus } from '../src/daemon/managed-tunnel.js';

function memory(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk;
      cb();
    },
  });
  return { stream, text: () => text };
}

describe('log lines', () => {
  it('a tunnel\'s line names it once: the daemon binds the name, the tunnel does not repeat it', async () => {
    const out = memory();
    const log = createLogger('info', { tty: false, stream: out.stream }).child({ tunnel: 'he' });
    // A tunnel whose `local auto` finds a new address (127.0.0.1 is the source toward 127.0.0.1 on
    // any host, so the check only reads a route): it logs "local IPv4 changed".
    const t = Object.assign(Object.create(ManagedTunnel.prototype) as object, {
      name: 'he',
      spec: { mode: '6in4', local: 'auto', remote: '127.0.0.1' },
      running: { encapsulator: { localAddress: 0xc0000201 }, changeLocalAddress: () => undefined },
      log,
      updater: null,
      checkingLocal: false,
    }) as unknown as ManagedTunnel;
    await t.checkLocal();
    const lines = out.text().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ tunnel: 'he', from: '192.0.2.1', to: '127.0.0.1', msg: 'local IPv4 changed; tunnel follows' });
    expect(lines[0].match(/"tunnel":/g)).toHaveLength(1);
  });

  it('a tunnel going down: on a terminal its counters in one line, in JSON every counter', () => {
    const counters = new Counters();
    counters.traffic[0] = 27; // rx_packets
    counters.traffic[1] = 2496;
    counters.drops[0] = 2;
    const st = { tunnel: 'he', counters: counters.snapshot() } as ManagedStatus;
    const tty = memory();
    createLogger('info', { tty: true, stream: tty.stream }).info(tunnelDown('SIGTERM', st), 'tunnel down');
    // eslint-disable-next-line no-control-regex
    const shown = tty.text().replace(/\x1b\[[0-9;]*m/g, '').trim().split('\n');
    expect(shown).toHaveLength(2);
    expect(shown[0]).toMatch(/INFO \(\d+\): tunnel down \(SIGTERM\): rx 27 packets \/ 2496 bytes, tx 0 packets \/ 0 bytes; drops: \w+=2$/);
    expect(shown[1]).toMatch(/^\s+tunnel: "he"$/);
    const json = memory();
    createLogger('info', { tty: false, stream: json.stream }).info(tunnelDown('SIGTERM', st), 'tunnel down');
    const rec = JSON.parse(json.text());
    expect(rec).toMatchObject({ msg: 'tunnel down', signal: 'SIGTERM', tunnel: 'he' });
    expect(rec.counters).toEqual(counters.snapshot());
  });
});
