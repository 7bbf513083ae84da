/**
 * OpenWrt UCI /etc/config/network (netifd's 6in4.sh, 6rd.sh and 6to4.sh protocol handlers):
 * `config interface 'wan6'` with `option proto '6in4'` (peeraddr, ip6addr, ip6prefix, ipaddr,
 * ttl, tos, mtu, defaultroute, tunnelid, username, password/updatekey), `proto '6rd'` (peeraddr,
 * ip6prefix, ip6prefixlen, ip4prefixlen) or `proto '6to4'`. The password or update key is a secret:
 * it becomes an ImportedSecret and is never written into the configuration.
 */
import { ImportedSecret, ImportError, integerAt, ipv4At, ipv6PrefixAt, nameAt, SitDraft, tosAt, ttlAt, tunnelNameOf, type SourceRef } from './draft.js';
import type { ParsedInput } from './shell.js';

interface Section {
  type: string;
  name: string;
  from: SourceRef;
  options: Array<{ key: string; value: string; list: boolean; from: SourceRef }>;
}

/** One UCI value: 'single quoted', "double quoted", or a bare word. */
function value(rest: string, from: SourceRef): string {
  const m = /^'([^']*)'$|^"((?:[^"\\]|\\.)*)"$|^(\S+)$/s.exec(rest.trim());
  if (!m) throw ImportError.at(from, 'not a UCI value (quote it: \'value\')');
  return m[1] ?? m[2]?.replace(/\\(.)/gs, '$1') ?? m[3];
}

const COMMON = ['proto', 'ipaddr', 'tunlink', 'defaultroute', 'ttl', 'tos', 'mtu', 'metric', 'sourcerouting', 'auto', 'disabled', 'force_link', 'delegate', 'zone', 'peerdns', 'dns'];
const KEYS: Record<string, ReadonlySet<string>> = {
  '6in4': new Set([...COMMON, 'peeraddr', 'ip6addr', 'ip6prefix', 'tunnelid', 'username', 'password', 'updatekey']),
  '6rd': new Set([...COMMON, 'peeraddr', 'ip6prefix', 'ip6prefixlen', 'ip4prefixlen']),
  '6to4': new Set([...COMMON, 'adv_interface', 'adv_subnet', 'adv_valid_lifetime', 'adv_preferred_lifetime']),
};
const SECRET_KEYS = new Set(['password', 'updatekey']);
const NOT_CARRIED = new Set(['tunlink', 'metric', 'sourcerouting', 'auto', 'disabled', 'force_link', 'delegate', 'zone', 'peerdns', 'dns', 'adv_interface', 'adv_subnet', 'adv_valid_lifetime', 'adv_preferred_lifetime']);

export function parseUci(file: string, text: string, into: ParsedInput): void {
  const sections: Section[] = [];
  let current: Section | null = null;
  text.split(/\r?\n/).forEach((raw, i) => {
    const from = { file, line: i + 1 };
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    // `s`: a line may hold a character JavaScript counts as a line end (\r, U+2028); only \n ends it
    const m = /^(\S+)\s*(.*)$/s.exec(line)!;
    const [, word, rest] = m;
    if (word === 'package') return;
    if (word === 'config') {
      const cm = /^(\S+)(?:\s+(.+))?$/s.exec(rest);
      if (!cm) throw ImportError.at(from, 'config without a section type; write config TYPE \'NAME\'');
      current = { type: cm[1], name: cm[2] ? nameAt(value(cm[2], from), from, `config ${cm[1]}: the name`) : '', from, options: [] };
      sections.push(current);
      return;
    }
    if (word === 'option' || word === 'list') {
      if (!current) throw ImportError.at(from, `${word} before any "config" line; put it under its section`);
      const om = /^(\S+)\s+(.+)$/s.exec(rest);
      if (!om) throw ImportError.at(from, `${word} without a name and a value; write ${word} NAME 'VALUE'`);
      current.options.push({ key: om[1], value: value(om[2], from), list: word === 'list', from });
      return;
    }
    throw ImportError.at(from, `"${word}": not a UCI line (config, option, list); remove it`);
  });

  for (const s of sections) {
    const proto = s.options.filter((o) => o.key === 'proto').pop();
    if (s.type !== 'interface' || !proto || !KEYS[proto.value]) {
      if (s.type === 'interface') for (const o of s.options.filter((x) => x.key === 'ip6addr' && x.value.includes(':'))) into.lan.push({ prefix: ipv6PrefixAt(o.value, o.from, 'ip6addr'), dev: s.name, from: o.from });
      continue;
    }
    const mode = proto.value as '6in4' | '6rd' | '6to4';
    const opt = (k: string) => s.options.filter((o) => o.key === k).pop();
    // netifd names the interface <proto>-<section>
    const dev = `${mode}-${s.name}`;
    const d = new SitDraft(dev, tunnelNameOf(s.name), s.from, 'uci');
    d.mode = mode;
    for (const o of s.options) {
      if (!KEYS[mode].has(o.key)) throw ImportError.at(o.from, `option ${o.key}: not an option of proto '${mode}' that tun6in4 import understands; remove the line or write that part by hand`);
      if (NOT_CARRIED.has(o.key)) d.note(o.from, `${o.key} '${o.value}': netifd's own setting; nothing to carry over`);
    }
    const local = opt('ipaddr');
    if (local) d.local = { value: ipv4At(local.value, local.from, 'ipaddr'), from: local.from };
    const peer = opt('peeraddr');
    if (peer && mode === '6in4') d.remote = { value: ipv4At(peer.value, peer.from, 'peeraddr'), from: peer.from };
    if (peer && mode === '6rd') d.relay = { value: ipv4At(peer.value, peer.from, 'peeraddr'), from: peer.from };
    const ttl = opt('ttl');
    if (ttl) d.ttl = { value: ttlAt(ttl.value, ttl.from), from: ttl.from };
    const tos = opt('tos');
    if (tos) d.tos = { value: tosAt(tos.value, tos.from), from: tos.from };
    const mtu = opt('mtu');
    if (mtu) d.mtu = { value: integerAt(mtu.value, mtu.from, 'mtu', 68, 65535), from: mtu.from };
    const dr = opt('defaultroute');
    d.defaultRouteFlag = dr ? { value: dr.value !== '0', from: dr.from } : { value: true, from: s.from };
    if (mode === '6in4') {
      const a = opt('ip6addr');
      if (a) d.addresses.push({ value: ipv6PrefixAt(a.value, a.from, 'ip6addr'), from: a.from });
      for (const p of s.options.filter((o) => o.key === 'ip6prefix')) d.routed.push({ value: ipv6PrefixAt(p.value, p.from, 'ip6prefix'), from: p.from });
      const id = opt('tunnelid');
      if (id) d.update.tunnelId = { value: nameAt(id.value, id.from, 'option tunnelid'), from: id.from };
      const user = opt('username');
      if (user) d.update.username = { value: nameAt(user.value, user.from, 'option username'), from: user.from };
      const key = opt('updatekey') ?? opt('password');
      if (key) d.update.secret = new ImportedSecret(key.value, key.from, key.key);
      if (opt('updatekey') && opt('password')) d.note(opt('password')!.from, 'password: updatekey is given too and is the one used for the update');
    } else if (mode === '6rd') {
      const p = opt('ip6prefix');
      const len = opt('ip6prefixlen');
      if (!p || !len) throw ImportError.at(s.from, `proto '6rd' needs ip6prefix and ip6prefixlen (the ISP's 6rd prefix); add ${!p ? 'ip6prefix' : 'ip6prefixlen'}`);
      const prefixLen = integerAt(len.value, len.from, 'ip6prefixlen', 1, 64);
      d.sixrdPrefix = { value: ipv6PrefixAt(`${p.value.replace(/\/\d+$/, '')}/${prefixLen}`, p.from, 'ip6prefix'), from: p.from };
      const v4 = opt('ip4prefixlen');
      if (v4) d.ipv4MaskLen = { value: integerAt(v4.value, v4.from, 'ip4prefixlen', 0, 31), from: v4.from };
    }
    // netifd's 6to4.sh sends everything else to the 192.88.99.1 anycast relay
    if (mode === '6to4') d.gateway = { value: '::192.88.99.1', from: s.from };
    for (const o of s.options) if (SECRET_KEYS.has(o.key)) o.value = '';
    into.drafts.push(d);
  }
}
