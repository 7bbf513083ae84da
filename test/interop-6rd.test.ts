/**
 * 6rd against implementations we did not write. The CE here is configured as the Linux sit 6rd CE
 * of ../shared/reference/linux-sit/6rd.log was (local 192.0.2.2, 6rd prefix 2001:db8:a000::/36,
 * 6rd-relay_prefix 192.0.2.0/24, BR 203.0.113.1, ttl 64, pmtudisc); scapy builds that log's
 * probes, we decapsulate them, and scapy and tshark read what we send back. Each probe's outcome
 * is Linux's, but for R2 (see the test).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { DROP_REASONS, Encapsulator, Verdict } from '../src/index.js';
import { scapy, tshark } from './helpers/external.js';
import { runTunnel } from './helpers/tunnels.js';

let ref: Record<string, string>;
const hex = (name: string) => Buffer.from(ref[name], 'hex');
interface Parsed {
  [k: string]: string | number | boolean;
}

/** The Linux CE of the reference log; option 212 would read "24 36 2001:db8:a000:: 203.0.113.1". */
const linuxLike = () => new Encapsulator({ mode: '6rd', local: '192.0.2.2', sixrdDhcp: '24 36 2001:db8:a000:: 203.0.113.1', pmtu: 'dynamic' });

const run = runTunnel;

beforeAll(() => {
  ref = scapy<Record<string, string>>({ op: 'build' });
});

describe('6rd: scapy builds the reference probes, we decapsulate', () => {
  it('6RD-4: R1 (native source from the BR) and R3 (a CE embedding its outer IPv4) come out byte for byte', () => {
    const t = linuxLike();
    expect(run(t, 'decap', hex('rd_r1_from_br')).bytes).toEqual(hex('rd_inner_native'));
    expect(run(t, 'decap', hex('rd_r3_from_ce')).bytes).toEqual(hex('rd_inner_ce'));
  });

  it('6RD-4/6RD-5: R4, R5 and R6 are dropped as Linux drops them, each counted by its reason', () => {
    const t = linuxLike();
    const reason = (name: string) => {
      const { r } = run(t, 'decap', hex(name));
      expect(r.verdict, name).toBe(Verdict.Drop);
      return DROP_REASONS[r.reason];
    };
    expect(reason('rd_r4_ce_source_via_br')).toBe('rx_6rd_spoofed_source');
    expect(reason('rd_r5_spoofed')).toBe('rx_6rd_spoofed_source');
    expect(reason('rd_r6_not_ours')).toBe('rx_6rd_not_our_prefix');
  });

  it('6RD-4: R2, a native source from an IPv4 other than the BR, is dropped (Linux accepts it: our stricter default)', () => {
    const t = linuxLike();
    expect(DROP_REASONS[run(t, 'decap', hex('rd_r2_native_not_br')).r.reason]).toBe('rx_6rd_not_from_relay');
  });
});

describe('6rd: we encapsulate, scapy and tshark read it as Linux sent it', () => {
  let ours: Record<string, Buffer>;
  let parsed: Record<string, Parsed>;

  beforeAll(() => {
    const t = linuxLike();
    ours = {
      reply_native: run(t, 'encap', hex('rd_tx_reply_native')).bytes,
      reply_ce: run(t, 'encap', hex('rd_tx_reply_ce')).bytes,
      to_absent_ce: run(t, 'encap', hex('rd_tx_to_absent_ce')).bytes,
    };
    parsed = scapy<Record<string, Parsed>>({ op: 'parse', packets: Object.fromEntries(Object.entries(ours).map(([k, v]) => [k, v.toString('hex')])) });
  });

  it('6RD-3: R1\'s reply goes to the BR, R3\'s straight to the CE, R7\'s ping to the CE its destination embeds (192.0.2.3)', () => {
    // the reference: "192.0.2.2 > 203.0.113.1 ttl 64 DF=1 len=124 | proto 41", and so on
    const linux = { version: 4, ihl: 5, src: '192.0.2.2', ttl: 64, flags: 2, frag: 0, len: 124, proto: 41, ip_checksum_ok: true };
    expect(parsed.reply_native).toMatchObject({ ...linux, dst: '203.0.113.1', inner_src: '2001:db8:a020::1', inner_dst: '2001:db8:99::1', inner_hlim: 64 });
    expect(parsed.reply_ce).toMatchObject({ ...linux, dst: '192.0.2.1', inner_dst: '2001:db8:a010::1' });
    expect(parsed.to_absent_ce).toMatchObject({ ...linux, dst: '192.0.2.3', inner_dst: '2001:db8:a030::1' });
    expect(parsed.reply_native.ip_payload).toBe(ref.rd_tx_reply_native);
  });

  it('tshark dissects them with no malformed packet, no bad checksum, no warning', () => {
    const names = Object.keys(ours);
    const frames = tshark(Object.values(ours), ['ip.dst', 'ip.checksum.status', 'icmpv6.checksum.status', '_ws.malformed', '_ws.expert.severity', '_ws.expert.message'], ['ip.check_checksum:TRUE']);
    expect(frames).toHaveLength(names.length);
    frames.forEach((f, i) => {
      const where = `${names[i]}: ${f['_ws.expert.message']}`;
      expect(f['_ws.malformed'], where).toBe('');
      expect(f['ip.checksum.status'], where).not.toContain('0');
      expect(f['icmpv6.checksum.status'], where).not.toContain('0');
      for (const s of f['_ws.expert.severity'].split(';').filter(Boolean)) expect(Number(s), where).toBeLessThan(6291456);
    });
    expect(frames.map((f) => f['ip.dst'])).toEqual(['203.0.113.1', '192.0.2.1', '192.0.2.3']);
  });
});
