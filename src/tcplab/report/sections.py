"""The report's sections, worded from the packets: counts, frame numbers and flags come from
the captures, so a different run gives a different — still true — report.

:func:`demo_report` builds the course report's eight sections from the demo's captures
and run facts; :func:`capture_report` builds a shorter analysis of any captures a
student brings (``tcplab report``). Both are pure: captures in (already analyzed, see
:mod:`tcplab.report.facts`), a :class:`~tcplab.report.model.Report` out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tcplab.report.blocks import (
    anatomy_blocks,
    frames_text,
    head_and_tail,
    list_excerpt,
    option_meaning,
    option_names,
    plural,
)
from tcplab.report.facts import (
    CaptureFacts,
    completeness_names,
    completeness_text,
    flags_text,
    tcp_options,
)
from tcplab.report.model import (
    Block,
    Code,
    Figure,
    Image,
    Items,
    Notice,
    Paragraph,
    Part,
    Ref,
    Report,
    Section,
    Table,
    para,
)
from tcplab.report.run import RunFacts

#: What the report's two called-out status codes mean (RFC 9110).
STATUS_MEANING = {
    201: "201 Created (RFC 9110 §15.3.2): the request made a new resource; the response names it",
    304: "304 Not Modified (RFC 9110 §15.4.5): the client's cached copy is still current, so no "
         "body is sent — the browser uses the copy it has",
}


@dataclass
class _Findings:
    items: list[Paragraph] = field(default_factory=list)

    def add(self, section: str, text: str) -> None:
        self.items.append(para(text + " ", Ref(section, f"(§{section[1:]})")))


# ------------------------------------------------------------------------------ helpers


def _data(cf: CaptureFacts) -> list[dict]:
    return [d for d in cf.packets if d.get("tcp.len")]


def _resets(cf: CaptureFacts) -> list[dict]:
    return [d for d in cf.packets if d.get("tcp.flags.reset")]


def _retrans(cf: CaptureFacts) -> list[dict]:
    return [d for d in cf.packets if d.get("tcp.analysis.retransmission")]


def _completeness(cf: CaptureFacts) -> list[int]:
    return sorted({c.completeness for c in cf.conversations})


def _decode(value: int) -> str:
    seen = completeness_names(value)
    missing = [n for n in ("SYN", "SYN-ACK", "ACK", "DATA", "FIN", "RST") if n not in seen]
    return (f"{completeness_text(value)}: seen {', '.join(seen) or 'nothing'}"
            + (f"; not seen {', '.join(missing)}" if missing else ""))


def _flag_counts(packets: list[dict]) -> str:
    counts = Counter(f"[{flags_text(int(d.get('tcp.flags', 0) or 0))}]" for d in packets)
    return ", ".join(f"{flag} ×{n}" for flag, n in counts.most_common())


def _short(value: int) -> str:
    """``Complete (31): SYN SYN-ACK ACK DATA FIN`` — for table cells."""
    return (f"{completeness_text(value).split(',')[0].split(' (')[0]} ({value}): "
            + " ".join(completeness_names(value)))


def _conv_table(cf: CaptureFacts, caption: str) -> Table:
    rows = tuple((str(c.stream), c.endpoint_a, c.endpoint_b, str(c.packets_ab + c.packets_ba),
                  _short(c.completeness), cf.verdict(c)) for c in cf.conversations[:40])
    return Table(("Stream", "A (client)", "B", "Packets", "Completeness", "Verdict"), rows,
                 caption, mono=(0, 1, 2, 3))


def _notes_items(cf: CaptureFacts, topics: tuple[str, ...] | None = None, limit: int = 8) -> Items:
    notes = [n for n in cf.notes if topics is None or n.topic in topics][:limit]
    return Items(tuple(para(cf.safe(n.text)) for n in notes))


def _only(frames: list[int]) -> str:
    """The display filter that keeps exactly ``frames``, as a reader would type it."""
    return "-Y 'frame.number in {" + ", ".join(map(str, frames)) + "}'"


def _pair(cf: CaptureFacts, d: dict) -> dict | None:
    """The segment right after ``d`` in its stream from the other side (its answer)."""
    stream, src = d.get("tcp.stream"), cf.endpoint(d, "src")
    for e in cf.packets[cf.packets.index(d) + 1:]:
        if e.get("tcp.stream") == stream and cf.endpoint(e, "src") != src:
            return e
    return None


# ------------------------------------------------------------------------------ part 1


def _s1_input(run: RunFacts, stream: CaptureFacts | None, found: _Findings) -> Section:
    from tcplab.report.facts import csv_messages

    s = Section("s1", "1. The input: the CSV scenario")
    if run.csv is None:
        s.blocks.append(Notice("No CSV was given for this report."))
        return s
    msgs = csv_messages(run.csv)
    apps = Counter(m.src_app for m in msgs)
    protocols = Counter(m.app_protocol for m in msgs)
    s.blocks.append(para(
        f"{run.csv.name} holds {plural(len(msgs), 'message')} "
        f"({', '.join(f'{p} {n}' for p, n in protocols.most_common())}) between "
        f"{plural(len(apps), 'participant')}: "
        + ", ".join(f"{a} sends {n}" for a, n in apps.most_common()) + "."))
    if stream is not None and stream.conversations:
        c = stream.conversations[0]
        s.blocks.append(para(
            f"Encapsulated as a TCP conversation ({stream.name}), the client is {c.endpoint_a} and "
            f"the server {c.endpoint_b}: {plural(len(stream.conversations), 'TCP connection')}, "
            f"{plural(len(stream.packets), 'packet')}."))
    if stream is None:
        return s
    h = stream.http
    s.blocks.append(Table(("Method", "Requests"),
                          tuple((m, str(n)) for m, n in h.requests_by_method.most_common()),
                          f"HTTP methods ({plural(h.requests, 'request')}, read back from "
                          f"{stream.name})", mono=(1,)))
    s.blocks.append(Table(("Status", "Responses"),
                          tuple((f"{code} {h.phrases.get(code, '')}", str(n))
                                for code, n in sorted(h.responses_by_code.items())),
                          f"Status codes ({plural(h.responses, 'response')})", mono=(1,)))
    called = []
    for code in (201, 304):
        pairs = [p for p in h.pairs if p.code == code]
        if not pairs:
            continue
        p = pairs[0]
        msg = f"message no. {p.response_msg_id}" if p.response_msg_id else "a response"
        req = (f"{p.request.method} {stream.safe(p.request.uri)}"
               + (f" (message no. {p.request.msg_id}, frame {p.request.frame})"
                  if p.request.msg_id else f" (frame {p.request.frame})"))
        called.append(para(f"{msg} (frame {p.response_frame}) is {code} {p.phrase}, the answer to "
                           f"{req}, {p.elapsed * 1000:.1f} ms later. {STATUS_MEANING[code]}."
                           + (f" {len(pairs) - 1} more response(s) carry {code}."
                              if len(pairs) > 1 else "")))
    if called:
        s.blocks.append(para("The messages the course report calls out, found by their content:"))
        s.blocks.append(Items(tuple(called)))
    top = h.responses_by_code.most_common(1)
    if top:
        found.add("s1", f"The scenario's {h.requests} requests ({', '.join(f'{m} {n}' for m, n in h.requests_by_method.most_common())}) "
                  f"get {h.responses} responses, {top[0][1]} of them {top[0][0]} "
                  f"{h.phrases.get(top[0][0], '')}.")
    return s


def _s2_encapsulation(frame: CaptureFacts | None, stream: CaptureFacts | None,
                      found: _Findings) -> Section:
    s = Section("s2", "2. Encapsulation, layer by layer")
    if frame is None or not frame.packets:
        s.blocks.append(Notice("The one-packet capture of the report's message was not made."))
        return s
    d = frame.packets[0]
    payload = bytes(d.get("tcp.payload", b"")).decode("utf-8", "replace")
    s.blocks.append(para(
        f"The course report follows one message down the stack: “{frame.safe(payload)}”, its "
        f"frame 351. RawTCPTransport builds it here again ({frame.name}); its bytes are the "
        "report's, so every value below can be checked against the report's capture."))
    if stream is not None:
        blog = [r for r in stream.http.pairs if r.request.uri == "/blog"]
        if blog:
            r = blog[0].request
            s.blocks.append(para(
                f"In the full conversation ({stream.name}) the same request is frame {r.frame}"
                + (f" (message no. {r.msg_id})" if r.msg_id else "") + ", with the HTTP headers "
                "the CSV gives it."))
    s.blocks += anatomy_blocks(frame, d, "frame351", "the report's frame 351")
    workings = frame.checksums(d)
    if workings and all(w.correct for w in workings):
        found.add("s2", "The report's frame 351 is rebuilt byte for byte; both checksums ("
                  + ", ".join(f"{w.what} 0x{w.result:04x}" for w in workings)
                  + ") are correct and worked by hand.")
    return s


def _s3_experiment(cf: CaptureFacts | None, live: bool, found: _Findings) -> Section:
    s = Section("s3", "3. The report's experiment: lone PSH+ACK segments")
    if cf is None:
        s.blocks.append(Notice("No capture of the report's experiment was made."))
        return s
    data, resets, retrans = _data(cf), _resets(cf), _retrans(cf)
    if not live:
        s.blocks.append(Notice(
            f"Live injection skipped: this section shows the synthesized capture {cf.name} "
            "instead. No kernel received those packets, so it holds no RSTs. Run sudo make "
            "demo to inject them on loopback and capture the kernel's answers."))
    s.blocks.append(para(
        f"{cf.name}: {plural(len(cf.packets), 'packet')}, {plural(len(data), 'data segment')} "
        f"({_flag_counts(data)}), {plural(len(resets), 'RST')}, "
        f"{plural(len(retrans), 'segment')} tagged [TCP Retransmission]."))
    s.blocks.append(list_excerpt(cf, cf.packets[:12], f"Packet list, first {min(12, len(cf.packets))} "
                                 f"of {len(cf.packets)} frames (tcplab analyze {cf.name})"))
    sample = next((d for d in retrans if d.get("tcp.len")), data[0] if data else None)
    if sample is not None:
        s.blocks.append(Code(cf.detail(sample), f"Detail of data frame {sample['frame.number']}"))
        answer = _pair(cf, sample)
        if answer is not None and answer.get("tcp.flags.reset"):
            s.blocks.append(Code(cf.detail(answer), f"Detail of frame {answer['frame.number']}, "
                                 "the RST that answers it"))
    if cf.conversations:
        first = cf.conversations[0]
        frames = [d["frame.number"] for d in cf.packets if d.get("tcp.stream") == first.stream][:12]
        s.blocks.append(Figure("experiment-flow", cf.flow_svg(first.stream, frames,
                                                              id_prefix="f3-"),
                               f"Flow graph of TCP stream {first.stream}, frames "
                               f"{frames[0]}–{frames[-1]} (tcplab analyze {cf.name} "
                               f"{_only(frames)} --flow {first.stream} --flow-svg flow.svg)"))
    # Why PSH+ACK
    syns = [d for d in cf.packets if d.get("tcp.flags.syn")]
    pa = [d for d in data if int(d.get("tcp.flags", 0)) & 0x18 == 0x18]
    why = [para(
        f"Why PSH+ACK: {len(pa)} of the {len(data)} data segments carry flags 0x018 [PSH, ACK] "
        f"and the capture holds {plural(len(syns), 'SYN')}. No three-way handshake was made: "
        "each segment poses as part of a conversation already open. ACK says the "
        "acknowledgment field is valid (here it is "
        f"{', '.join(sorted({str(d.get('tcp.ack_raw')) for d in pa})[:3]) or '—'}, raw); PSH asks the "
        "receiver to pass the data to the application at once.")]
    seqs = sorted({int(d.get("tcp.seq_raw", 0)) for d in data})
    if retrans:
        why.append(para(
            f"Why every repeat is a “retransmission”: the data segments use raw sequence "
            f"number{'s' if len(seqs) > 1 else ''} {', '.join(map(str, seqs[:4]))} "
            f"(Wireshark shows Seq=1). TCP numbers bytes, so a segment that starts at a number "
            "already sent in that direction repeats data: Wireshark tags frames "
            f"{frames_text([d['frame.number'] for d in retrans])} [TCP Retransmission]."))
    if resets:
        gaps = []
        for r in resets:
            idx = cf.packets.index(r)
            if idx:
                gaps.append(r["frame.time_relative"] - cf.packets[idx - 1]["frame.time_relative"])
        avg = sum(gaps) / len(gaps) * 1e6 if gaps else 0.0
        why.append(para(
            f"Why the RSTs: {plural(len(resets), 'RST')} (frames "
            f"{frames_text([d['frame.number'] for d in resets])}), each about {avg:.0f} µs after "
            "the segment it answers. No socket owns a connection for these segments: nothing "
            "listens on the port, and even a listener would find no connection, because none "
            "was opened. RFC 9293 §3.10.7.1 says a segment for a connection in the CLOSED "
            "state is answered with a reset, which the kernel does each time."))
        found.add("s3", f"Injected live, {plural(len(data), 'hand-built data segment')} drew "
                  f"{plural(len(resets), 'RST')} from the kernel, and {len(retrans)} were tagged "
                  "[TCP Retransmission] because they reuse one sequence number.")
    elif data:
        found.add("s3", f"In the report's style every message is a lone [PSH, ACK] segment with "
                  f"raw seq {seqs[0]}; {len(retrans)} of {len(data)} are tagged "
                  "[TCP Retransmission].")
    for value in _completeness(cf):
        why.append(para(f"Conversation completeness {value} decoded: {_decode(value)}. "
                        "Wireshark calls a conversation complete only with the handshake and a "
                        "FIN or RST."))
    s.blocks.append(Items(tuple(why)))
    s.blocks.append(para("What tcplab analyze --explain says about this capture:"))
    s.blocks.append(_notes_items(cf, limit=6))
    return s


def _honest_one(cf: CaptureFacts, label: str, name: str) -> list[Block]:
    blocks: list[Block] = []
    chosen, which = head_and_tail(cf, 10, 4)
    blocks.append(list_excerpt(cf, chosen, f"{label}: packet list, {which}"))
    if cf.conversations:
        c = cf.conversations[0]
        ids = [d["frame.number"] for d in cf.packets if d.get("tcp.stream") == c.stream]
        frames = ids[:7] + ids[-4:] if len(ids) > 11 else ids
        blocks.append(Figure(f"{name}-flow", cf.flow_svg(c.stream, frames, id_prefix=f"{name}-"),
                             f"{label}: handshake, first data and ACKs, then the FIN teardown of "
                             f"stream {c.stream} (frames {frames_text(frames, 12)})"))
        blocks.append(_conv_table(cf, f"{label}: TCP conversations"))
    pairs = cf.http.pairs[:12]
    if pairs:
        rows = tuple((str(p.request.frame), f"{p.request.method} {cf.safe(p.request.uri)}",
                      str(p.response_frame), f"{p.code} {p.phrase}", f"{p.elapsed * 1000:.3f}")
                     for p in pairs)
        blocks.append(Table(("Request frame", "Request", "Response frame", "Status", "ms"), rows,
                            f"{label}: HTTP request/response pairs, first {len(pairs)} of "
                            f"{cf.http.pairs_total}", mono=(0, 2, 4)))
    return blocks


def _s4_honest(replay: CaptureFacts | None, stream: CaptureFacts | None, live: bool,
               found: _Findings) -> Section:
    s = Section("s4", "4. The honest version: a real TCP conversation")
    s.blocks.append(para(
        "The same CSV, carried the way TCP is meant to be used: a three-way handshake opens "
        "each connection, every byte is numbered and acknowledged, and FIN closes it."))
    if replay is None:
        s.blocks.append(Notice(
            "Live replay skipped (no root): only the synthesized stream is shown. Run sudo "
            "make demo to replay the CSV over the kernel's TCP and capture it."))
    for cf, label, name in ((replay, "Replay over the kernel's TCP", "replay"),
                            (stream, "Synthesized stream", "stream")):
        if cf is None:
            continue
        vals = _completeness(cf)
        sub = Section(f"s4-{name}", label)
        sub.blocks.append(para(
            f"{cf.name}: {plural(len(cf.packets), 'packet')} in "
            f"{plural(len(cf.conversations), 'conversation')}, {plural(len(_resets(cf)), 'RST')}, "
            f"{plural(len(_retrans(cf)), 'retransmission tag')}; completeness "
            + "; ".join(f"{v} — {_decode(v)}" for v in vals) + "."))
        sub.blocks += _honest_one(cf, label, name)
        s.subsections.append(sub)
        if 31 in vals:
            found.add("s4", f"{label}: {cf.name} is one complete conversation (completeness 31: "
                      f"SYN, SYN-ACK, ACK, DATA, FIN) with {len(_resets(cf))} RSTs and "
                      f"{len(_retrans(cf))} retransmission tags.")
    return s


def _wireshark_view(cf: CaptureFacts) -> str:
    data, resets, retrans = _data(cf), _resets(cf), _retrans(cf)
    syn = any(d.get("tcp.flags.syn") for d in cf.packets)
    parts = []
    parts.append("handshake, data, FIN" if syn else "data with no handshake")
    if resets:
        parts.append(f"{len(resets)} RSTs" + (" (one per data segment)"
                                              if len(resets) == len(data) else ""))
    if retrans:
        parts.append(f"{len(retrans)} black [TCP Retransmission] lines")
    return "; ".join(parts)


def _s5_comparison(captures: list[tuple[str, CaptureFacts]], found: _Findings) -> Section:
    s = Section("s5", "5. The three captures side by side")
    rows = []
    for label, cf in captures:
        rows.append((label, cf.name, str(len(cf.packets)), str(len(_resets(cf))),
                     str(len(_retrans(cf))),
                     ", ".join(f"{v} ({completeness_text(v).split(' (')[0]})"
                               for v in _completeness(cf)), _wireshark_view(cf)))
    s.blocks.append(Table(("Capture", "File", "Packets", "RSTs", "Retrans.",
                           "Completeness", "What a Wireshark user sees"), tuple(rows),
                          "Retrans.: segments tagged [TCP Retransmission]", mono=(1, 2, 3, 4)))
    return s


# ------------------------------------------------------------------------------ part 2


def _s6_session(run: RunFacts, found: _Findings) -> Section:
    s = Section("s6", "6. The chat session: five users, scenarios A–F")
    chat = run.chat
    if chat is None:
        s.blocks.append(Notice("The chat part was not run."))
        return s
    s.blocks.append(para(
        f"A tcplab chat server listened on 127.0.0.1:{chat.port}; "
        f"{plural(len(chat.users), 'user')} logged in: {', '.join(chat.users)}. Each scenario "
        "below shows what was done and the lines that user's CLI client (tcplab client) "
        "printed."))
    ok = [sc for sc in chat.scenarios if sc.ok]
    for sc in chat.scenarios:
        mark = "as expected" if sc.ok else "NOT as expected"
        s.blocks.append(Code("\n".join(sc.transcript),
                             f"{sc.letter}. {sc.title} — {sc.action} ({sc.user}'s screen; {mark})"))
    if chat.gui_images:
        for name, path in chat.gui_images:
            s.blocks.append(Image(f"gui-{name}", str(path), f"Desktop GUI: {name}"))
    else:
        s.blocks.append(Notice(f"No GUI screenshots: {chat.gui_note}"))
    found.add("s6", f"{len(ok)} of {len(chat.scenarios)} chat scenarios behaved as the course "
              "report describes" + ("." if len(ok) == len(chat.scenarios) else
                                    f"; not: {', '.join(sc.letter for sc in chat.scenarios if not sc.ok)}."))
    return s


def _first_line(d: dict) -> str:
    raw = bytes(d.get("tcp.payload", b""))
    return raw.split(b"\n", 1)[0].decode("utf-8", "replace")


def _nicknames(cf: CaptureFacts, port: int) -> dict[int, str]:
    """stream → nickname: the first line a client sends that is not a ``/command`` is its
    login (the chat protocol; the client may switch options such as ``/codes on`` first)."""
    out: dict[int, str] = {}
    for d in cf.packets:
        s = d.get("tcp.stream")
        if s is None or s in out or not d.get("tcp.len") or d.get("tcp.dstport") != port:
            continue
        for raw in bytes(d.get("tcp.payload", b"")).split(b"\n"):
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if line and not line.startswith("/"):
                out[s] = line
                break
    return out


def _s7_wire(cf: CaptureFacts | None, run: RunFacts, found: _Findings) -> Section:
    s = Section("s7", "7. The chat on the wire")
    chat = run.chat
    if chat is None:
        s.blocks.append(Notice("The chat part was not run."))
        return s
    if cf is None:
        s.blocks.append(Notice(
            "Chat capture skipped: capturing on loopback needs root. Run sudo make demo for "
            "the handshake, the relayed message and the FIN/RST teardown taken from live packets."))
        return s
    port = chat.port
    nicks = _nicknames(cf, port)
    stream_of = {v: k for k, v in reversed(list(nicks.items()))}
    s.blocks.append(para(
        f"{cf.name}: {plural(len(cf.packets), 'packet')} on port {port} in "
        f"{plural(len(cf.conversations), 'TCP connection')}, one per client: "
        + ", ".join(f"stream {k} = {cf.safe(v)}" for k, v in nicks.items()) + "."))
    s.blocks.append(_conv_table(cf, "The chat's TCP conversations"))
    sender, target, text = chat.message or ("Alice", "isabelleeee", "")
    a_stream = stream_of.get(sender)
    t_stream = stream_of.get(target)
    # The handshake of the sender's connection.
    if a_stream is not None:
        hs = [d for d in cf.packets if d.get("tcp.stream") == a_stream][:3]
        if hs and hs[0].get("tcp.flags.syn"):
            syn = hs[0]
            sub = Section("s7-handshake", f"The three-way handshake of {cf.safe(sender)}'s client")
            sub.blocks.append(para(
                f"Frames {', '.join(str(d['frame.number']) for d in hs)}: "
                + "; ".join(f"{cf.endpoint(d, 'src')} → {cf.endpoint(d, 'dst')} "
                            f"[{flags_text(int(d['tcp.flags']))}] raw seq {d.get('tcp.seq_raw')}"
                            for d in hs)
                + ". Each side picks a random initial sequence number and the other acknowledges "
                "it plus one; then data can flow."))
            sub.blocks.append(para(f"The SYN's options: {option_meaning(tcp_options(syn))}."))
            sub.blocks.append(list_excerpt(cf, hs, "The handshake in the packet list"))
            s.subsections.append(sub)
            found.add("s7-handshake", f"{cf.safe(sender)}'s connection opens with SYN, SYN-ACK, "
                      f"ACK in frames {', '.join(str(d['frame.number']) for d in hs)}.")
    # The relay.
    relay = _relay(cf, a_stream, t_stream, port, target, text)
    if relay:
        msg, ack, fwd, fack = relay
        sub = Section("s7-relay", f"A message followed: {cf.safe(sender)} → {cf.safe(target)}")
        names = {cf.endpoint(msg, "src"): f"{sender} (sender)",
                 cf.endpoint(msg, "dst"): "server",
                 cf.endpoint(fwd, "dst"): f"{target} (recipient)"}
        frames = sorted(d["frame.number"] for d in relay if d is not None)
        opts = tcp_options(msg)
        sub.blocks.append(para(
            f"Frame {msg['frame.number']}: {cf.safe(sender)}'s client sends "
            f"“{cf.safe(_first_line(msg))}” to the server as one [{flags_text(int(msg['tcp.flags']))}] "
            f"segment of {msg['tcp.len']} bytes (stream {msg['tcp.stream']})"
            + (f"; frame {ack['frame.number']}: the server's [{flags_text(int(ack['tcp.flags']))}] "
               f"acknowledges it (Ack={ack.get('tcp.ack')}"
               + (", together with later bytes" if ack.get("tcp.ack") != msg.get("tcp.nxtseq")
                  else "") + ")" if ack else "")
            + f". Frame {fwd['frame.number']}: the server sends “{cf.safe(_first_line(fwd))}” to "
            f"{cf.safe(target)} on its own connection (stream {fwd['tcp.stream']}), "
            f"{fwd['tcp.len']} bytes"
            + (f"; frame {fack['frame.number']}: {cf.safe(target)}'s client acknowledges it "
               f"(Ack={fack.get('tcp.ack')})" if fack else "") + "."))
        sub.blocks.append(Figure("chat-relay", cf.ladder_svg(
            [msg["tcp.stream"], fwd["tcp.stream"]], frames, names=names,
            title=f"{sender} → server → {target}: one message over two TCP connections",
            id_prefix="f7-"),
            f"Three lanes, two TCP streams: frames {', '.join(map(str, frames))} "
            f"(tcplab analyze {cf.name} {_only(frames)} --flow-svg relay.svg --streams "
            f"{msg['tcp.stream']},{fwd['tcp.stream']})"))
        if opts:
            thl = int(msg.get("tcp.hdr_len", 20))
            sub.blocks.append(para(
                f"TCP options on these segments: {option_names(opts)} — the header "
                f"is {thl} bytes, {thl - 20} of them options. {option_meaning(opts)}."))
        s.subsections.append(sub)
        found.add("s7-relay", f"One chat message crosses two TCP connections: frame "
                  f"{msg['frame.number']} to the server, frame {fwd['frame.number']} from the "
                  "server to the recipient, each acknowledged.")
    fan = _fan_out(cf, port)
    if fan:
        cause, burst = fan
        sub = Section("s7-fanout", "The online list, fanned out")
        sub.blocks.append(para(
            f"After frame {cause['frame.number']} ({_cause_text(cf, cause, nicks)}), the server "
            f"sends “{cf.safe(_first_line(burst[0]))}” to "
            f"{plural(len(burst), 'client')} in frames "
            f"{frames_text([d['frame.number'] for d in burst])}: one segment per connection, "
            "because TCP connections are point to point."))
        sub.blocks.append(list_excerpt(cf, burst, "The update in the packet list"))
        s.subsections.append(sub)
    s.subsections.append(_teardown(cf, port, nicks, chat.aborted, found))
    return s


def _relay(cf: CaptureFacts, a_stream: int | None, t_stream: int | None, port: int,
           target: str, text: str) -> tuple[dict, dict | None, dict, dict | None] | None:
    if a_stream is None or t_stream is None:
        return None
    msg = next((d for d in cf.packets if d.get("tcp.stream") == a_stream and d.get("tcp.len")
                and d.get("tcp.dstport") == port and _first_line(d).startswith(target)
                and text in _first_line(d)), None)
    if msg is None:
        return None
    after = cf.packets[cf.packets.index(msg) + 1:]
    fwd = next((d for d in after if d.get("tcp.stream") == t_stream and d.get("tcp.len")
                and d.get("tcp.srcport") == port and text in _first_line(d)), None)
    if fwd is None:
        return None
    end = msg.get("tcp.nxtseq")
    # The first segment back that covers the message (Linux may delay the ACK and let it
    # ride on the server's next reply, so it can acknowledge later bytes too).
    ack = next((d for d in after if d.get("tcp.stream") == a_stream and d.get("tcp.srcport") == port
                and end is not None and int(d.get("tcp.ack", 0) or 0) >= end), None)
    fend = fwd.get("tcp.nxtseq")
    fack = next((d for d in cf.packets[cf.packets.index(fwd) + 1:]
                 if d.get("tcp.stream") == t_stream and d.get("tcp.dstport") == port
                 and fend is not None and int(d.get("tcp.ack", 0) or 0) >= fend), None)
    return msg, ack, fwd, fack


def _fan_out(cf: CaptureFacts, port: int) -> tuple[dict, list[dict]] | None:
    """The first time the server sends one online-list line to several clients in a row."""
    sends = [d for d in cf.packets if d.get("tcp.srcport") == port and d.get("tcp.len")
             and "ONLINE_USERS" in _first_line(d).upper().replace(" ", "_")]
    for i, d in enumerate(sends):
        burst = [e for e in sends[i:] if _first_line(e) == _first_line(d)
                 and e["frame.time_relative"] - d["frame.time_relative"] < 0.5]
        if len({e["tcp.stream"] for e in burst}) >= 2:
            idx = cf.packets.index(d)
            cause = next((e for e in reversed(cf.packets[:idx])
                          if e.get("tcp.flags.reset") or e.get("tcp.flags.fin")
                          or (e.get("tcp.len") and e.get("tcp.dstport") == port)), d)
            return cause, burst
    return None


def _cause_text(cf: CaptureFacts, d: dict, nicks: dict[int, str]) -> str:
    who = cf.safe(nicks.get(d.get("tcp.stream", -1), cf.endpoint(d, "src")))
    if d.get("tcp.flags.reset"):
        return f"the RST that ends {who}'s connection"
    if d.get("tcp.flags.fin"):
        return f"the FIN of {who}'s connection"
    return f"{who}'s line “{cf.safe(_first_line(d))}”"


def _teardown(cf: CaptureFacts, port: int, nicks: dict[int, str], aborted: str | None,
              found: _Findings) -> Section:
    sub = Section("s7-teardown", "Closing: FIN for a clean exit, RST for a crash")
    fin_conv = next((c for c in cf.conversations if c.fin_a and c.fin_b and not (c.rst_a or c.rst_b)),
                    None)
    rst_conv = next((c for c in cf.conversations if c.rst_a or c.rst_b), None)
    for conv, kind in ((fin_conv, "fin"), (rst_conv, "rst")):
        if conv is None:
            continue
        pkts = [d for d in cf.packets if d.get("tcp.stream") == conv.stream]
        key = "tcp.flags.fin" if kind == "fin" else "tcp.flags.reset"
        first = next(i for i, d in enumerate(pkts) if d.get(key))
        shown = pkts[first:first + 4]
        who = cf.safe(nicks.get(conv.stream, conv.endpoint_a))
        if kind == "fin":
            fins = [d for d in pkts if d.get("tcp.flags.fin")]
            sub.blocks.append(para(
                f"{who}'s connection (stream {conv.stream}) ends cleanly: FIN from "
                + " and ".join(f"{cf.endpoint(d, 'src')} (frame {d['frame.number']})" for d in fins)
                + ", each acknowledged. Both sides said they have nothing more to send; the "
                "server then frees the user's state. Completeness "
                f"{conv.completeness}: {_decode(conv.completeness)}."))
            found.add("s7-teardown", f"A clean exit closes with FIN from both sides (stream "
                      f"{conv.stream}, frames {', '.join(str(d['frame.number']) for d in fins)}).")
        else:
            r = pkts[first]
            sub.blocks.append(para(
                f"{who}'s connection (stream {conv.stream}) ends with [{flags_text(int(r['tcp.flags']))}] "
                f"from {cf.endpoint(r, 'src')} in frame {r['frame.number']}"
                + (f" — scenario F: {cf.safe(aborted)}'s process dies" if aborted else "")
                + ". A socket closed with unread data or SO_LINGER 0 makes the kernel abort the "
                "connection with RST instead of FIN: no goodbye, nothing more is acknowledged. "
                "The server notices the reset, drops the user and tells the others. "
                f"Completeness {conv.completeness}: {_decode(conv.completeness)}."))
            found.add("s7-teardown", f"The abrupt disconnect is one RST (frame {r['frame.number']}, "
                      f"stream {conv.stream}); the server survives it and updates the online list.")
        sub.blocks.append(list_excerpt(cf, shown, f"Stream {conv.stream}, from its first "
                                       f"{'FIN' if kind == 'fin' else 'RST'}"))
    if fin_conv is None and rst_conv is None:
        sub.blocks.append(para("No connection in this capture ends with FIN or RST."))
    return sub


# ------------------------------------------------------------------------------ reports


def demo_report(run: RunFacts, captures: dict[str, CaptureFacts]) -> Report:
    """The course report's sections 1–8 from the demo's captures (keys as in RunFacts.captures)."""
    found = _Findings()
    get = captures.get
    experiment = get("inject") if run.live and get("inject") else get("seed")
    part1 = [
        _s1_input(run, get("stream"), found),
        _s2_encapsulation(get("frame351"), get("stream"), found),
        _s3_experiment(experiment, bool(run.live and get("inject")), found),
        _s4_honest(get("replay"), get("stream"), run.live, found),
    ]
    side = [(label, cf) for label, cf in (
        ("The report's experiment" + (" (live)" if experiment is get("inject") else
                                      " (synthesized)"), experiment),
        ("Replay over kernel TCP (live)", get("replay")),
        ("Synthesized stream", get("stream"))) if cf is not None]
    part1.append(_s5_comparison(side, found))
    part2 = [_s6_session(run, found), _s7_wire(get("chat"), run, found)]
    findings = Section("s8", "8. Findings")
    findings.blocks.append(para("What the captures prove, each with the section that shows it:"))
    findings.blocks.append(Items(tuple(found.items)))
    part2.append(findings)
    notices = [Notice(f"Skipped: {s}." + ("" if "sudo make demo" in s else
                                          " Run sudo make demo for the live sections."))
               for s in run.skipped]
    notices += [Notice(f"Problem: {f}", "problem") for f in run.failures]
    return Report("TCP/IP encapsulation, traffic analysis and a TCP chat",
                  "A report regenerated from live packets by tcplab demo" if run.live else
                  "A report regenerated by tcplab demo from the packets it built (live steps "
                  "skipped: run sudo make demo for them)",
                  _title_facts(run, captures), notices,
                  [Part("Part 1 — Encapsulation and traffic analysis", part1),
                   Part("Part 2 — The chat and its traffic", part2)])


def _title_facts(run: RunFacts, captures: dict[str, CaptureFacts]) -> list[tuple[str, str]]:
    facts = [("Command", run.command), ("Run at", run.started)]
    facts += run.environment
    facts.append(("Live steps", "yes (root): injection, replay and chat captured on lo"
                  if run.live else f"skipped — {run.live_reason}"))
    facts.append(("Captures", ", ".join(f"{cf.name} ({plural(len(cf.packets), 'packet')})"
                                        for cf in captures.values())))
    return facts


def capture_report(run: RunFacts, captures: list[CaptureFacts]) -> Report:
    """An analysis of any captures: per capture, what a reader of Wireshark would want to see."""
    sections = []
    for i, cf in enumerate(captures, 1):
        s = Section(f"s{i}", f"{i}. {cf.name}")
        data = _data(cf)
        s.blocks.append(para(
            f"{plural(len(cf.packets), 'packet')}, {plural(len(cf.conversations), 'TCP conversation')}, "
            f"{plural(len(data), 'data segment')}, {plural(len(_resets(cf)), 'RST')}, "
            f"{plural(len(_retrans(cf)), 'retransmission tag')}."))
        if cf.truncated:
            s.blocks.append(Notice(f"Only the first {len(cf.packets):,} packets are analyzed."))
        if cf.damage:
            s.blocks.append(Notice(f"The file is damaged: {cf.damage}", "problem"))
        chosen, which = head_and_tail(cf, 20, 5)
        s.blocks.append(list_excerpt(cf, chosen, f"Packet list, {which}"))
        if cf.conversations:
            s.blocks.append(_conv_table(cf, "TCP conversations"))
            c = cf.conversations[0]
            ids = [d["frame.number"] for d in cf.packets if d.get("tcp.stream") == c.stream][:30]
            s.blocks.append(Figure(f"c{i}-flow", cf.flow_svg(c.stream, ids, id_prefix=f"c{i}-"),
                                   f"Flow graph of stream {c.stream}, frames "
                                   f"{frames_text(ids, 4)}"))
        if cf.http.requests or cf.http.responses:
            rows = tuple((str(p.request.frame), f"{p.request.method} {cf.safe(p.request.uri)}",
                          str(p.response_frame), f"{p.code} {p.phrase}",
                          f"{p.elapsed * 1000:.3f}") for p in cf.http.pairs[:15])
            if rows:
                s.blocks.append(Table(("Request frame", "Request", "Response frame", "Status",
                                       "ms"), rows, "HTTP request/response pairs", mono=(0, 2, 4)))
        s.blocks.append(para("Explanations (tcplab analyze --explain):"))
        s.blocks.append(_notes_items(cf, limit=10))
        sample = data[0] if data else (cf.packets[0] if cf.packets else None)
        if sample is not None:
            sub = Section(f"s{i}-anatomy", f"Frame {sample['frame.number']} taken apart")
            sub.blocks.append(Code(cf.detail(sample), f"Detail of frame {sample['frame.number']}"))
            sub.blocks += anatomy_blocks(cf, sample, f"c{i}-frame", "its first data segment"
                                         if data else "its first packet")
            s.subsections.append(sub)
        sections.append(s)
    notices = [Notice(f"Problem: {f}", "problem") for f in run.failures]
    return Report("Capture analysis", "Generated by tcplab report from the captures below",
                  [("Command", run.command), ("Run at", run.started), *run.environment,
                   ("Captures", ", ".join(f"{cf.name} ({plural(len(cf.packets), 'packet')})"
                                          for cf in captures))],
                  notices, [Part("Captures", sections)])
