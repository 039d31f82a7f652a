#!/usr/bin/env python3
"""Turns the captures of scripts/fuzz-seeds.sh into fuzz inputs (fuzz/corpus/<target>/).

Input formats are those of src/fuzzing/: engine targets take `flags | records` with records
`tag u8 | len u16 | body`; a "sealed" record carries an IKE message in plaintext (exchange,
flags, message ID, inner payload chain) that the harness protects with the keys of the SA it
holds. strongSwan's encrypted messages are decrypted here with ipsecgw's key log, so the
harness can replay what strongSwan said inside SAs the fuzzer never saw.
"""
import argparse
import glob
import hashlib
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

try:  # 3DES moved to the "decrepit" module in newer releases of cryptography
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:
    TripleDES = algorithms.TripleDES

STRONGSWAN = "192.0.2.2"
BIRD = "10.10.30.254"
# Engine harness flags and record tags (src/fuzzing/engine.rs).
STAGE_INIT, STAGE_UP = 1, 2
COOKIES = 0x10
RAW, SEALED, TIME, OP = 0, 1, 2, 3
NATT, FIXUP = 0x08, 0x20
OP_REKEY_CHILD, OP_REKEY_IKE, OP_TERMINATE = 1, 2, 3
EXCH_INIT, EXCH_AUTH, EXCH_CHILD, EXCH_INFO = 34, 35, 36, 37
PT_SK = 46


def rec(tag, body):
    return bytes([tag]) + struct.pack(">H", len(body)) + body


def pcap_packets(path):
    """(linktype, frame) of each packet of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    end = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(end + "I", data[20:24])[0]
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack(end + "I", data[pos + 8:pos + 12])[0]
        yield linktype, data[pos + 16:pos + 16 + incl]
        pos += 16 + incl


def ip_of(linktype, frame):
    """The IPv4/IPv6 packet inside a frame, or None."""
    if linktype == 1:  # Ethernet
        return frame[14:] if frame[12:14] in (b"\x08\x00", b"\x86\xdd") else None
    if linktype == 113:  # Linux cooked
        return frame[16:]
    if linktype == 276:  # Linux cooked v2
        return frame[20:]
    return frame  # raw IP (TUN)


def ipv4(pkt):
    """(src, dst, proto, payload) of an IPv4 packet."""
    if not pkt or pkt[0] >> 4 != 4:
        return None
    ihl = (pkt[0] & 15) * 4
    total = struct.unpack(">H", pkt[2:4])[0]
    src = ".".join(str(b) for b in pkt[12:16])
    dst = ".".join(str(b) for b in pkt[16:20])
    return src, dst, pkt[9], pkt[ihl:total]


def ike_messages(path):
    """(src, dst port, IKE message) and (src, ESP packet) from the underlay capture."""
    ike, esp = [], []
    for lt, frame in pcap_packets(path):
        p = ipv4(ip_of(lt, frame))
        if not p or p[2] != 17:
            continue
        src, _, _, udp = p
        sport, dport = struct.unpack(">HH", udp[:4])
        payload = udp[8:]
        if 4500 in (sport, dport):
            if payload == b"\xff":
                continue
            if payload[:4] != b"\0\0\0\0":
                esp.append((src, payload))
                continue
            payload = payload[4:]
        ike.append((src, dport, payload))
    return ike, esp


def tcp_streams(path, port):
    """The reassembled payload of each direction of each TCP connection on `port`."""
    segs = {}
    for lt, frame in pcap_packets(path):
        p = ipv4(ip_of(lt, frame))
        if not p or p[2] != 6:
            continue
        src, dst, _, tcp = p
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        if port not in (sport, dport):
            continue
        data = tcp[(tcp[12] >> 4) * 4:]
        if data:
            segs.setdefault((src, sport, dst, dport), {}).setdefault(seq, data)
    streams = {}
    for key, by_seq in segs.items():
        out, nxt = b"", None
        for seq in sorted(by_seq):
            data = by_seq[seq]
            if nxt is not None and seq < nxt:
                data = data[nxt - seq:]
            out += data
            nxt = max(nxt or 0, seq + len(by_seq[seq]))
        streams[key] = out
    return streams


def inner_packets(path):
    for lt, frame in pcap_packets(path):
        pkt = ip_of(lt, frame)
        if pkt and pkt[0] >> 4 in (4, 6):
            yield pkt


def read_keylog(path):
    """(spi_i, spi_r) -> keys, from ipsecgw's IPSECGW_KEYLOG (Wireshark's ikev2 table)."""
    keys = {}
    if not os.path.exists(path):
        return keys
    for line in open(path):
        f = [x.strip().strip('"') for x in line.strip().split(",")]
        if len(f) < 8:
            continue
        spi = (bytes.fromhex(f[0]), bytes.fromhex(f[1]))
        keys[spi] = dict(ei=bytes.fromhex(f[2]), er=bytes.fromhex(f[3]), encr=f[4],
                         ai=bytes.fromhex(f[5]), ar=bytes.fromhex(f[6]), integ=f[7])
    return keys


def sk_payload(msg):
    """(offset of the SK payload, type of its first inner payload), or None."""
    nxt, pos = msg[16], 28
    while nxt not in (0, PT_SK) and pos + 4 <= len(msg):
        nxt, length = msg[pos], struct.unpack(">H", msg[pos + 2:pos + 4])[0]
        pos += max(length, 4)
    if nxt != PT_SK or pos + 4 > len(msg):
        return None
    return pos, msg[pos]


def decrypt(msg, keys):
    """(exchange, flags, msg_id, first inner payload, inner chain) of an SK message."""
    sk = sk_payload(msg)
    k = keys.get((msg[0:8], msg[8:16]))
    if not sk or not k:
        return None
    at, first = sk
    from_initiator = msg[19] & 0x08
    ek = k["ei"] if from_initiator else k["er"]
    body = msg[at + 4:]
    try:
        if "GCM" in k["encr"]:
            key, salt = ek[:-4], ek[-4:]
            iv, ct = body[:8], body[8:]
            plain = AESGCM(key).decrypt(salt + iv, ct, msg[:at + 4])
        else:
            icv = 16 if "SHA2_256" in k["integ"] else 12
            if "3DES" in k["encr"]:
                alg, bl = TripleDES(ek), 8
            else:
                alg, bl = algorithms.AES(ek), 16
            iv, ct = body[:bl], body[bl:len(body) - icv]
            d = Cipher(alg, modes.CBC(iv)).decryptor()
            plain = d.update(ct) + d.finalize()
    except Exception:
        return None
    inner = plain[:len(plain) - plain[-1] - 1]
    return msg[18], msg[19], struct.unpack(">I", msg[20:24])[0], first, inner


def sealed(d):
    exch, flags, msg_id, first, inner = d
    return bytes([exch, flags]) + struct.pack(">I", msg_id) + bytes([first]) + inner


class Out:
    def __init__(self, root):
        self.root = root
        self.count = {}

    def add(self, target, data):
        d = os.path.join(self.root, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
        self.count[target] = self.count.get(target, 0) + 1


def ike_seeds(out, ike, keys):
    for _, _, m in ike:
        out.add("ike_decode", m)
    swan = [(port, m) for src, port, m in ike if src == STRONGSWAN and len(m) >= 28]
    is_resp = lambda m: m[19] & 0x20
    for i, (_, _, m) in enumerate(ike):
        d = decrypt(m, keys) if sk_payload(m) else None
        suite = bytes([i % 8])
        if d:
            s = sealed(d)
            out.add("ike_sk", suite + b"\x01" + s[:7] + struct.pack(">H", len(d[4])) + d[4])
            out.add("ike_sk", suite + b"\x02" + s[:7] + struct.pack(">H", len(d[4])) + d[4]
                    + b"\x00\x05\x01")
        sk = sk_payload(m)
        if sk and i % 4 == 0:
            out.add("ike_sk", suite + b"\x00" + bytes([sk[1]]) + struct.pack(">H", sk[0]) + m)
    inits = [m for _, m in swan if m[18] == EXCH_INIT and not is_resp(m)]
    init_resps = [m for _, m in swan if m[18] == EXCH_INIT and is_resp(m)]
    for m in inits:
        # What the socket readers screen before the engine sees it.
        out.add("cookie_gate", m)
        auth = [(p, a) for p, a in swan if a[18] == EXCH_AUTH and a[:8] == m[:8]]
        seed = bytes([0]) + rec(RAW, m)
        for p, a in auth[:1]:
            seed += rec(RAW | FIXUP | (NATT if p == 4500 else 0), a)
        out.add("ike_responder", seed)
        out.add("ike_responder", bytes([COOKIES]) + rec(RAW, m))
        for p, a in auth[:1]:
            d = decrypt(a, keys)
            if d:
                out.add("ike_responder", bytes([STAGE_INIT]) + rec(SEALED | FIXUP, sealed(d)))
    for m in init_resps:
        seed = bytes([0]) + rec(RAW | FIXUP, m)
        for p, a in swan:
            if a[18] == EXCH_AUTH and is_resp(a) and a[:8] == m[:8]:
                d = decrypt(a, keys)
                if d:
                    seed += rec(SEALED | FIXUP | (NATT if p == 4500 else 0), sealed(d))
                break
        out.add("ike_initiator", seed)
    # Inside the established SA: strongSwan's requests, and its answers to our requests.
    session = {False: bytes([STAGE_UP]), True: bytes([STAGE_UP])}
    for p, m in swan:
        if m[18] not in (EXCH_CHILD, EXCH_INFO):
            continue
        d = decrypt(m, keys)
        if not d:
            continue
        r = rec(SEALED | FIXUP, sealed(d))
        if not is_resp(m):
            for target in ("ike_responder", "ike_initiator"):
                out.add(target, bytes([STAGE_UP]) + r)
            session[False] += r
            session[True] += r
            continue
        ops = [OP_REKEY_CHILD, OP_REKEY_IKE] if m[18] == EXCH_CHILD else [OP_TERMINATE]
        for op in ops:
            for target in ("ike_responder", "ike_initiator"):
                out.add(target, bytes([STAGE_UP]) + rec(OP, bytes([op])) + r)
        if m[18] == EXCH_INFO:  # also as the answer to a DPD after 31 s
            out.add("ike_responder", bytes([STAGE_UP]) + rec(TIME, struct.pack(">H", 31)) + r)
    out.add("ike_responder", session[False])
    out.add("ike_initiator", bytes([STAGE_UP | 1 << 2]) + session[True][1:])


def bgp_messages(stream):
    pos = 0
    while pos + 19 <= len(stream):
        n = struct.unpack(">H", stream[pos + 16:pos + 18])[0]
        if n < 19:
            break
        yield stream[pos:pos + n]
        pos += n


def bgp_seeds(out, streams):
    bird = [s for (src, *_), s in streams.items() if src == BIRD]
    ours = [s for (src, *_), s in streams.items() if src != BIRD]
    for s in bird + ours:
        for m in bgp_messages(s):
            out.add("bgp_decode", b"\x01" + m)
            if m[18] == 2:  # UPDATE, also with 2-octet AS numbers
                out.add("bgp_decode", b"\x00" + m)
    for s in bird:
        msgs = list(bgp_messages(s))
        if not msgs:
            continue
        after_open = b"".join(m for m in msgs[1:] if m[18] != 1)
        out.add("bgp_session", b"\x00\x00" + s)  # BIRD's own OPEN first
        out.add("bgp_session", b"\x02\x07" + s)  # passive, 7-byte chunks
        out.add("bgp_session", b"\x04\x13" + s)  # time passes between 19-byte chunks
        out.add("bgp_session", b"\x01\x00" + after_open)
        out.add("bgp_session", b"\x09\x00" + after_open)  # max-prefix 2
        out.add("bgp_session", b"\x11\x00" + after_open)  # 2-octet AS numbers


def sel(proto, sp, ep, start, end):
    ip = lambda a: bytes(int(x) for x in a.split("."))
    return bytes([0, proto]) + struct.pack(">HH", sp, ep) + ip(start) + ip(end)


def flow_and_esp_seeds(out, packets, esp):
    selectors = b"\x02" + sel(0, 0, 65535, "0.0.0.0", "255.255.255.255") + \
        sel(6, 179, 179, "10.10.30.254", "10.10.30.254")
    kept, seen = [], set()
    for pkt in packets:
        kind = (pkt[0] >> 4, pkt[9] if pkt[0] >> 4 == 4 else pkt[6], len(pkt) > 200)
        if kind not in seen:
            seen.add(kind)
            kept.append(pkt)
            out.add("flow", selectors + pkt)
    inner = kept[0] if kept else bytes([0x45] + [0] * 19)
    for suite in range(8):
        for esn in (0, 1):
            seal = lambda seq, nh=4, at=0, xor=0, pkt=inner: rec(
                1, struct.pack(">QBHB", seq, nh, at, xor) + pkt)
            seed = bytes([suite, esn | 2 << 1]) + seal(1) + seal(2) + seal(1) + seal(70)
            seed += seal((1 << 32) + 3 if esn else 0xfffffff0) + seal(5, xor=1, at=9)
            if esp:
                seed += rec(0, esp[suite % len(esp)][1])
            out.add("esp_decap", seed)


def text_seeds(out, configs, responses):
    for path in configs:
        out.add("config", open(path, "rb").read())
    for req in ('{"version":1,"command":"status"}', '{"version":1,"command":"initiate","name":"gw"}',
                '{"version":1,"command":"terminate","name":"gw"}',
                '{"version":1,"command":"rekey","name":"gw","ike":true}',
                '{"version":1,"command":"bgp","name":"gw"}', '{"version":2,"command":"status"}'):
        out.add("control", req.encode() + b"\n")
    if os.path.exists(responses):
        for line in open(responses, "rb"):
            if len(line) < 8192:
                out.add("control", line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="capture folder of fuzz-seeds.sh")
    ap.add_argument("--out", required=True, help="corpus root (fuzz/corpus)")
    ap.add_argument("--configs", required=True, help="folder of example configs")
    ap.add_argument("extra_configs", nargs="*")
    a = ap.parse_args()
    out = Out(a.out)
    keys = read_keylog(os.path.join(a.dir, "keys.log"))
    ike, esp = ike_messages(os.path.join(a.dir, "ike.pcap"))
    ike_seeds(out, ike, keys)
    tun = os.path.join(a.dir, "tun.pcap")
    bgp_seeds(out, tcp_streams(tun, 179))
    flow_and_esp_seeds(out, inner_packets(tun), esp)
    configs = glob.glob(os.path.join(a.configs, "**", "*.toml"), recursive=True)
    text_seeds(out, configs + a.extra_configs, os.path.join(a.dir, "control.responses"))
    decrypted = sum(1 for _, _, m in ike if sk_payload(m) and decrypt(m, keys))
    print(f"fuzz-seeds: {len(ike)} IKE messages ({decrypted} decrypted), {len(esp)} ESP packets")
    for t, n in sorted(out.count.items()):
        print(f"  {t}: {n} seeds written")


if __name__ == "__main__":
    main()
