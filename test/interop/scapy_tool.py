"""Builds and parses packets with scapy, an implementation independent of ours.

Reads one JSON request on stdin, writes one JSON answer on stdout.
  {"op": "build"}                       -> {name: hex}  reference packets built by scapy
  {"op": "parse", "packets": {name: hex}} -> {name: fields} what scapy reads in our bytes
  {"op": "echo_request", "src", "dst", "hlim", "id", "seq", "data": hex} -> {"packet": hex}
  {"op": "broker_clients", "iface", "broker", "clients": [...], "timeout"} -> {"replies": [...]}
Run with Debian's /usr/bin/python3 (python3-scapy).
"""
import json
import sys

from scapy.all import (ICMP, IP, UDP, TCP, IPv6, ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6PacketTooBig,
                       ICMPv6DestUnreach, ICMPv6TimeExceeded, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrSegmentRouting, Raw, raw)

LOCAL, REMOTE = "192.0.2.1", "198.51.100.1"
PEER_SITE_V4, RELAY = "198.51.100.7", "203.0.113.1"


def build():
    out = {}
    inner_6in4 = IPv6(src="2001:db8:1::1", dst="2001:db8:1::2", hlim=61, tc=0x28, fl=0x54321) / \
        ICMPv6EchoRequest(id=0x77, seq=3, data=b"scapy-built payload" * 3)
    out["inner_6in4"] = inner_6in4
    out["outer_6in4"] = IP(src=REMOTE, dst=LOCAL, ttl=64, id=4242) / inner_6in4
    big_inner = IPv6(src="2001:db8:1::1", dst="2001:db8:2::10") / UDP(sport=5000, dport=6000) / Raw(b"\xab" * 1900)
    out["inner_big"] = big_inner
    out["outer_big"] = IP(src=REMOTE, dst=LOCAL) / big_inner
    out["outer_spoofed"] = IP(src="203.0.113.66", dst=LOCAL) / inner_6in4
    inner_6to4 = IPv6(src="2002:c633:6407::1", dst="2002:c000:201::1") / TCP(sport=443, dport=50000, flags="SA")
    out["inner_6to4"] = inner_6to4
    out["outer_6to4"] = IP(src=PEER_SITE_V4, dst=LOCAL) / inner_6to4
    out["outer_6to4_spoofed"] = IP(src="203.0.113.99", dst=LOCAL) / inner_6to4
    inner_native = IPv6(src="2001:db8:5::1", dst="2002:c000:201::1") / UDP(sport=53, dport=5353) / Raw(b"hi")
    out["inner_native"] = inner_native
    out["outer_native_via_relay"] = IP(src=RELAY, dst=LOCAL) / inner_native
    out["outer_native_not_relay"] = IP(src=PEER_SITE_V4, dst=LOCAL) / inner_native
    # IPv6 packets for us to encapsulate (the TUN side)
    out["tx_6in4"] = IPv6(src="2001:db8:1::2", dst="2001:db8:ffff::9", hlim=17, tc=0xb9) / UDP(sport=1, dport=2) / Raw(b"z" * 100)
    out["tx_too_big"] = IPv6(src="2001:db8:1::2", dst="2001:db8:ffff::9") / UDP(sport=1, dport=2) / Raw(b"q" * 1500)
    out["tx_6to4_direct"] = IPv6(src="2002:c000:201::1", dst="2002:c633:6407::5") / ICMPv6EchoRequest()
    out["tx_6to4_relay"] = IPv6(src="2002:c000:201::1", dst="2001:db8:5::1") / ICMPv6EchoRequest()
    # TCP super-packets as a TUN with TSO hands them over (checksums made full here; the test
    # turns them into the kernel's partial form), one behind Hop-by-Hop + Segment Routing headers
    # whose final destination (RFC 8200 §8.1) is not the IPv6 destination
    tso_payload = bytes((i * 7) & 0xff for i in range(5000))
    tso_tcp = TCP(sport=5001, dport=40000, seq=1000, ack=777, flags="PA", window=512,
                  options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]) / Raw(tso_payload)
    out["tso_plain"] = IPv6(src="2001:db8:1::2", dst="2001:db8:1::1") / tso_tcp
    out["tso_srh"] = IPv6(src="2001:db8:1::2", dst="2001:db8:7::1") / IPv6ExtHdrHopByHop() / \
        IPv6ExtHdrSegmentRouting(addresses=["2001:db8:9::99", "2001:db8:7::1"], segleft=1) / tso_tcp
    out.update(build_6rd())
    return {k: raw(v).hex() for k, v in out.items()}


def build_6rd():
    """The probes of ../shared/reference/linux-sit/6rd.log, against a CE configured as that Linux one
    was: local 192.0.2.2, 6rd prefix 2001:db8:a000::/36, IPv4 mask length 24, BR 203.0.113.1."""
    ce, other_ce, br = "192.0.2.2", "192.0.2.1", "203.0.113.1"
    echo = lambda i: ICMPv6EchoRequest(id=i, seq=1, data=bytes(range(56)))
    out = {}
    out["rd_inner_native"] = IPv6(src="2001:db8:99::1", dst="2001:db8:a020::1") / echo(0xd001)
    out["rd_r1_from_br"] = IP(src=br, dst=ce, id=1, flags=0) / out["rd_inner_native"]
    out["rd_r2_native_not_br"] = IP(src="198.51.100.9", dst=ce) / out["rd_inner_native"]
    out["rd_inner_ce"] = IPv6(src="2001:db8:a010::1", dst="2001:db8:a020::1") / echo(0xd003)
    out["rd_r3_from_ce"] = IP(src=other_ce, dst=ce) / out["rd_inner_ce"]
    out["rd_r4_ce_source_via_br"] = IP(src=br, dst=ce) / out["rd_inner_ce"]
    out["rd_r5_spoofed"] = IP(src=other_ce, dst=ce) / IPv6(src="2001:db8:a030::1", dst="2001:db8:a020::1") / echo(0xd005)
    out["rd_r6_not_ours"] = IP(src=other_ce, dst=ce) / IPv6(src="2001:db8:a010::1", dst="2001:db8:a030::5") / echo(0xd006)
    # what the CE's kernel hands the TUN: the replies and the R7 pings
    reply = lambda src, dst, i: IPv6(src=src, dst=dst, hlim=64) / ICMPv6EchoReply(id=i, seq=1, data=bytes(range(56)))
    out["rd_tx_reply_native"] = reply("2001:db8:a020::1", "2001:db8:99::1", 0xd001)
    out["rd_tx_reply_ce"] = reply("2001:db8:a020::1", "2001:db8:a010::1", 0xd003)
    out["rd_tx_to_absent_ce"] = IPv6(src="2001:db8:a020::1", dst="2001:db8:a030::1", hlim=64) / ICMPv6EchoRequest(id=153, seq=0, data=bytes(56))
    return out


def checksum_ok(layer_cls, pkt, field):
    """scapy recomputes a checksum when the field is None; compare with what we wrote."""
    layer = pkt[layer_cls]
    got = getattr(layer, field)
    copy = pkt.copy()
    setattr(copy[layer_cls], field, None)
    return getattr(copy.__class__(raw(copy))[layer_cls], field) == got


def parse(packets):
    result = {}
    for name, h in packets.items():
        data = bytes.fromhex(h)
        f = {}
        if data[0] >> 4 == 4:
            p = IP(data)
            f.update(version=p.version, ihl=p.ihl, tos=p.tos, len=p.len, id=p.id, flags=int(p.flags),
                     frag=p.frag, ttl=p.ttl, proto=p.proto, src=p.src, dst=p.dst,
                     ip_checksum_ok=checksum_ok(IP, p, "chksum"), ip_payload=raw(p.payload).hex())
            if IPv6 in p:
                f["inner_src"], f["inner_dst"], f["inner_hlim"] = p[IPv6].src, p[IPv6].dst, p[IPv6].hlim
            elif UDP in p:
                # Foo-over-UDP: scapy does not know the port; the payload is the IPv6 packet
                u = p[UDP]
                f.update(udp_sport=u.sport, udp_dport=u.dport, udp_len=u.len, udp_chksum=u.chksum,
                         udp_checksum_ok=u.chksum == 0 or checksum_ok(UDP, p, "chksum"),
                         udp_payload=raw(u.payload).hex())
                inner = IPv6(raw(u.payload))
                f["inner_src"], f["inner_dst"], f["inner_hlim"] = inner.src, inner.dst, inner.hlim
        else:
            p = IPv6(data)
            f.update(version=p.version, src=p.src, dst=p.dst, plen=p.plen, nh=p.nh, hlim=p.hlim, tc=p.tc)
            if TCP in p:
                t = p[TCP]
                f.update(tcp_seq=t.seq, tcp_flags=int(t.flags), tcp_checksum_ok=checksum_ok(TCP, p, "chksum"),
                         tcp_payload=raw(t.payload).hex(), srh=IPv6ExtHdrSegmentRouting in p)
            for cls, kind in ((ICMPv6PacketTooBig, "ptb"), (ICMPv6DestUnreach, "unreach"), (ICMPv6TimeExceeded, "timeexceeded")):
                if cls in p:
                    layer = p[cls]
                    f.update(icmp_kind=kind, icmp_type=layer.type, icmp_code=layer.code,
                             icmp_checksum_ok=checksum_ok(cls, p, "cksum"))
                    if kind == "ptb":
                        f["mtu"] = layer.mtu
                    # the quoted packet, as scapy dissects it
                    f["quoted"] = raw(layer.payload).hex()
        result[name] = f
    return result


def send_tunnelled(req):
    """Sends protocol-41 packets from inside a test namespace (with whatever outer source we like)."""
    from scapy.all import send
    pkt = IP(src=req["outer_src"], dst=req["outer_dst"]) / \
        IPv6(src=req["inner_src"], dst=req["inner_dst"]) / ICMPv6EchoRequest(id=req["echo_id"], seq=1)
    send(pkt, count=req.get("count", 1), inter=0.01, verbose=0)
    return {"sent": req.get("count", 1)}


def send_fou(req):
    """Sends Foo-over-UDP datagrams (ipproto 41: the IPv6 packet right after the UDP header) with
    a zero, correct or wrong UDP checksum, from any source address and port."""
    from scapy.all import L3RawSocket
    inner = IPv6(src=req["inner_src"], dst=req["inner_dst"]) / ICMPv6EchoRequest(id=req["echo_id"], seq=1)
    pkt = IP(src=req["outer_src"], dst=req["outer_dst"]) / UDP(sport=req["sport"], dport=req["dport"]) / inner
    pkt = IP(raw(pkt))  # checksum computed
    if req["csum"] == "zero":
        pkt[UDP].chksum = 0
    elif req["csum"] == "bad":
        pkt[UDP].chksum = (pkt[UDP].chksum + 1) & 0xffff or 1
    sock = L3RawSocket()
    for _ in range(req.get("count", 1)):
        sock.send(pkt)
    sock.close()
    return {"sent": req.get("count", 1), "chksum": pkt[UDP].chksum}


def send_raw(req):
    """Sends IPv4 or IPv6 packets given as hex, each `count` times, as fast as scapy can."""
    from scapy.all import send, L3RawSocket
    v4, v6 = [], []
    for item in req["packets"]:
        data = bytes.fromhex(item["hex"])
        if data[0] >> 4 == 4:
            v4.extend([IP(data)] * item.get("count", 1))
        else:
            v6.extend([IPv6(data)] * item.get("count", 1))
    if v4:
        # A raw socket lets the kernel route and resolve neighbours: scapy's own ARP would wait
        # seconds per packet for an address nobody answers for.
        sock = L3RawSocket()
        for p in v4:
            sock.send(p)
        sock.close()
    if v6:
        send(v6, verbose=0)
    return {"sent": len(v4) + len(v6)}


def echo_request(req):
    """An IPv6 ICMPv6 echo request as scapy builds it, its checksum scapy's own."""
    p = IPv6(src=req["src"], dst=req["dst"], hlim=req["hlim"]) / \
        ICMPv6EchoRequest(id=req["id"], seq=req["seq"], data=bytes.fromhex(req["data"]))
    return {"packet": raw(p).hex()}


def broker_clients(req):
    """Plays many 6in4 clients of one broker from one interface: each sends, from its own outer
    source, an echo request from its inner source to its server address; returns every protocol-41
    packet the broker sent back (outer destination, inner addresses, ICMPv6 type and id), once as
    many as there were clients arrived or the timeout passed."""
    import socket
    from scapy.all import AsyncSniffer, L3RawSocket, conf
    clients = req["clients"]
    # listening before the first send, so no reply can come back before the capture is open; read
    # while sending, into a buffer that holds every reply even if the reader falls behind
    listen = conf.L2listen(iface=req["iface"], filter="ip proto 41 and src host " + req["broker"])
    listen.ins.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    sniffer = AsyncSniffer(opened_socket=listen, count=len(clients), timeout=req.get("timeout", 60))
    sniffer.start()
    out = L3RawSocket()
    for c in clients:
        out.send(IP(src=c["outer_src"], dst=req["broker"]) /
                 IPv6(src=c["inner_src"], dst=c["inner_dst"]) / ICMPv6EchoRequest(id=c["id"], seq=1, data=b"broker"))
    out.close()
    sniffer.join()
    got = sniffer.results
    listen.close()
    replies = []
    for p in got:
        if IPv6 not in p:
            continue
        inner = p[IPv6]
        icmp = inner.payload
        echo = ICMPv6EchoReply in inner
        replies.append({"outer_dst": p[IP].dst, "inner_src": inner.src, "inner_dst": inner.dst,
                        "type": getattr(icmp, "type", None), "id": getattr(icmp, "id", None),
                        "checksum_ok": echo and checksum_ok(ICMPv6EchoReply, IPv6(raw(inner)), "cksum")})
    return {"replies": replies}


def main():
    req = json.load(sys.stdin)
    if req["op"] == "send_raw":
        json.dump(send_raw(req), sys.stdout)
        return
    if req["op"] == "send":
        json.dump(send_tunnelled(req), sys.stdout)
        return
    if req["op"] == "broker_clients":
        json.dump(broker_clients(req), sys.stdout)
        return
    if req["op"] == "send_fou":
        json.dump(send_fou(req), sys.stdout)
        return
    if req["op"] == "build":
        json.dump(build(), sys.stdout)
    elif req["op"] == "echo_request":
        json.dump(echo_request(req), sys.stdout)
    elif req["op"] == "parse":
        json.dump(parse(req["packets"]), sys.stdout)
    else:
        raise SystemExit("unknown op " + req["op"])


if __name__ == "__main__":
    main()
