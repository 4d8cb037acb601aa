"""Read the course's CSV of application messages into :class:`Message` records.

This is the file-facing edge of the encapsulator: it owns every decision about what a
row *means* (column aliases, escapes, timestamps, control rows) and every error a user
can make in the file, each naming the file, the CSV line and the column. It streams:
one row at a time, so a million-row file needs no more memory than a ten-row one.

Real course CSVs vary, and all of these are accepted: columns in any order and any case;
``protocol`` for ``app_protocol``; optional ``src_ip,dst_ip,src_port,dst_port``; extra
columns (Wireshark exports) ignored; surrounding spaces trimmed; quoted cells with
commas, doubled quotes and real CRLF line breaks; literal ``\\r\\n`` escapes; UTF-8
with or without a BOM; timestamps as relative seconds, ISO 8601 or ``dd/mm/YYYY HH:MM[:SS]``
(turned into integer nanoseconds straight from the text, so ``…05.123`` is .123000000
exactly, never a float's .122999808); comma-, semicolon- or tab-separated files (the
separator is sniffed from the header line: European spreadsheets export ``;``).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal, NamedTuple

from tcplab.errors import InputError
from tcplab.packet.stack import ip_address

Unescape = Literal["auto", "always", "never"]

# Column name (lower-cased, spaces/dashes → underscores) → canonical name.
COLUMN_ALIASES = {
    "msg_id": "msg_id",
    "message_id": "msg_id",
    "id": "msg_id",
    "no": "msg_id",
    "app_protocol": "app_protocol",
    "protocol": "app_protocol",
    "application_protocol": "app_protocol",
    "src_app": "src_app",
    "source_app": "src_app",
    "dst_app": "dst_app",
    "destination_app": "dst_app",
    "dest_app": "dst_app",
    "message": "message",
    "payload": "message",
    "data": "message",
    "timestamp": "timestamp",
    "time": "timestamp",
    "src_ip": "src_ip",
    "dst_ip": "dst_ip",
    "src_port": "src_port",
    "dst_port": "dst_port",
}
REQUIRED_COLUMNS = ("src_app", "dst_app", "message")

#: Messages of a TCP "control" row, and the flags each stands for (see conversation.py).
CONTROL_MESSAGES = {"SYN", "SYN-ACK", "SYN/ACK", "SYN,ACK", "ACK", "FIN", "FIN-ACK", "FIN/ACK", "FIN,ACK", "RST", "RST-ACK", "RST/ACK"}

# Application protocols carried over UDP, with their well-known server port.
UDP_APPS = {"DNS": 53}

_HTTP_START = re.compile(rb"^(?:[A-Z]{3,10} \S+ HTTP/\d\.\d|HTTP/\d\.\d \d{3})")
_ESCAPES = re.compile(r"\\(r\\n|n|r|t|\\)")
_ESCAPE_MAP = {"r\\n": "\r\n", "n": "\n", "r": "\r", "t": "\t", "\\": "\\"}
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$")
_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?$")
# The seconds fraction inside an ISO 8601 time: taken out before datetime sees it
# (datetime keeps only microseconds, as a float via .timestamp()).
_ISO_FRACTION = re.compile(r"(?<=:\d\d)[.,](\d+)")
_NS_PER_S = 1_000_000_000

#: Separators a CSV may use, in the order they are tried, with the name errors use.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def is_http_start(payload: bytes) -> bool:
    """Does ``payload`` begin with an HTTP/1.x request line or status line?"""
    return _HTTP_START.match(payload) is not None


@dataclass(slots=True)
class Message:
    """One application message, as the CSV describes it."""

    msg_id: str
    app_protocol: str
    src_app: str
    dst_app: str
    payload: bytes
    #: Seconds: relative to the capture start, or since the Unix epoch when ``absolute_time``.
    timestamp: float | None
    absolute_time: bool = False
    src_ip: str | None = None
    dst_ip: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    #: CSV line where the row starts (1 = header line), for error messages.
    line: int = 0
    #: For TCP control rows: the control word (SYN, SYN-ACK, ACK, FIN, FIN-ACK, RST).
    control: str | None = None
    #: ``timestamp`` exactly, in integer nanoseconds parsed from the CSV text (None when
    #: the message was built in code with only ``timestamp``).
    timestamp_ns: int | None = None

    @property
    def is_udp(self) -> bool:
        return self.app_protocol in UDP_APPS

    @property
    def is_http_request(self) -> bool:
        return bool(_HTTP_START.match(self.payload)) and not self.payload.startswith(b"HTTP/")

    @property
    def is_http_response(self) -> bool:
        return self.payload.startswith(b"HTTP/") and bool(_HTTP_START.match(self.payload))


@dataclass(slots=True)
class ReadStats:
    """What reading saw: nothing is dropped without being counted here."""

    rows: int = 0
    messages: int = 0
    empty_skipped: int = 0
    bad_skipped: int = 0
    unescaped: int = 0
    #: Bytes of the file read so far (for a progress bar) and the file's size.
    bytes_read: int = 0
    file_size: int = 0
    #: The first few skipped rows, as "line N: reason", for the closing summary.
    skipped_examples: list[str] = field(default_factory=list)
    #: The field separator sniffed from the header line ("," ";" or "\t").
    delimiter: str = ","

    @property
    def delimiter_name(self) -> str:
        """``comma``, ``semicolon`` or ``tab``: how summaries and errors name the separator."""
        return DELIMITERS.get(self.delimiter, repr(self.delimiter))

    def note_skip(self, line: int, reason: str) -> None:
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(f"line {line}: {reason}")


class _Counting(io.RawIOBase):
    """A read-only file wrapper that counts bytes into ``stats.bytes_read`` for progress."""

    def __init__(self, raw: io.BufferedReader, stats: ReadStats) -> None:
        self._raw = raw
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)
        self._stats.bytes_read += n or 0
        return n  # type: ignore[return-value]

    def close(self) -> None:
        self._raw.close()
        super().close()


def _normalise_header(raw: list[str]) -> list[str]:
    return [re.sub(r"[\s\-]+", "_", h.strip().lstrip("\ufeff").lower()) for h in raw]


def _fraction_ns(digits: str | None) -> int:
    """Decimal digits after the point → nanoseconds, rounded half-even beyond the ninth."""
    if not digits:
        return 0
    if len(digits) <= 9:
        return int(digits.ljust(9, "0"))
    return int(Decimal("0." + digits).scaleb(9).to_integral_value())


def seconds_to_ns(text: str) -> int:
    """Seconds written in decimal (``0.266``, ``-1.5``, ``2e-3``) → integer nanoseconds, exactly.

    Raises ValueError for anything that is not a finite number.
    """
    # The common case, plain "12.266": two str methods and two int() calls, no regex.
    whole, dot, frac = text.partition(".")
    if whole.isdecimal() and (frac.isdecimal() and len(frac) <= 9 or not dot):
        return int(whole) * _NS_PER_S + (int(frac.ljust(9, "0")) if frac else 0)
    t = text.strip()
    m = _DECIMAL.match(t)
    if m and (m.group(2) or m.group(3)):
        sign, whole, frac = m.groups()
        ns = int(whole or "0") * _NS_PER_S + _fraction_ns(frac)
        return -ns if sign == "-" else ns
    try:
        value = Decimal(t)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number of seconds")
    return int(value.scaleb(9).to_integral_value())


def _whole_seconds(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # Exact: a float holds every whole second of the datetime range.
    return int(dt.timestamp())


def parse_timestamp_ns(text: str) -> tuple[int, bool]:
    """Parse a CSV timestamp → (nanoseconds, is_absolute), integer arithmetic from the text.

    Relative seconds (``0.266``) are not absolute; ISO 8601 and ``dd/mm/YYYY HH:MM[:SS[.f]]``
    are nanoseconds since the Unix epoch (UTC unless the text gives an offset). Raises
    ValueError naming the accepted forms.
    """
    t = text.strip()
    try:
        return seconds_to_ns(t), False
    except ValueError:
        pass
    m = _DMY.match(t)
    if m:
        d, mo, y, h, mi, s, frac = m.groups()
        try:
            dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"timestamp {text!r}: {exc}") from None
        return _whole_seconds(dt) * _NS_PER_S + _fraction_ns(frac), True
    frac_match = _ISO_FRACTION.search(t)
    bare = t if frac_match is None else t[: frac_match.start()] + t[frac_match.end():]
    try:
        dt = datetime.fromisoformat(bare.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"timestamp {text!r} is not relative seconds (0.266), ISO 8601 "
            "(2024-05-01T10:00:00) or dd/mm/YYYY HH:MM[:SS]"
        ) from None
    frac_ns = _fraction_ns(frac_match.group(1)) if frac_match else 0
    return _whole_seconds(dt) * _NS_PER_S + frac_ns, True


def parse_timestamp(text: str) -> tuple[float, bool]:
    """Parse a CSV timestamp → (seconds as a float, is_absolute); see :func:`parse_timestamp_ns`."""
    ns, absolute = parse_timestamp_ns(text)
    return ns / _NS_PER_S, absolute


def _looks_http(protocol: str, message: str) -> bool:
    return protocol.startswith("HTTP") or bool(_HTTP_START.match(message.encode("utf-8", "replace")[:64]))


def _should_unescape(mode: Unescape, protocol: str, text: str) -> bool:
    """Auto mode: only HTTP messages written with literal "\\n" escapes (common in generated course CSVs)."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    return "\\n" in text and _looks_http(protocol, text)


def unescape_text(text: str) -> str:
    """Turn literal backslash escapes (``\\r\\n``, ``\\n``, ``\\t``, ``\\\\``) into the characters."""
    return _ESCAPES.sub(lambda m: _ESCAPE_MAP[m.group(1)], text)


def _find_bad_utf8(path: str) -> tuple[int, int, str]:
    """Locate the first byte that is not UTF-8 → (line, byte offset, hex of the bad bytes)."""
    line = 1
    offset = 0
    with open(path, "rb") as fh:
        tail = b""
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            data = tail + chunk
            try:
                data.decode("utf-8")
                tail = b""
            except UnicodeDecodeError as exc:
                if exc.reason == "unexpected end of data" and exc.end == len(data):
                    tail = data[exc.start :]
                    data = data[: exc.start]
                else:
                    base = offset - len(tail)
                    bad_at = base + exc.start
                    line += data.count(b"\n", 0, exc.start)
                    return line, bad_at, data[exc.start : exc.end].hex(" ")
            line += data.count(b"\n")
            offset += len(chunk)
    return line, offset, tail.hex(" ")


def read_messages(
    path: str | os.PathLike[str],
    *,
    unescape: Unescape = "auto",
    skip_bad: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[Message]:
    """Yield the messages of a course CSV, one row at a time.

    Empty messages are counted in ``stats.empty_skipped`` and never replaced by filler.
    A malformed row raises :class:`InputError` naming the file, line and column, unless
    ``skip_bad`` is set, in which case it is counted in ``stats.bad_skipped``.
    """
    path = os.fspath(path)
    stats = stats if stats is not None else ReadStats()
    name = os.path.basename(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed in finally below
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a CSV file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    stats.file_size = os.fstat(raw.fileno()).st_size
    # newline="" keeps CRLF inside quoted cells intact (the csv module's requirement).
    fh = io.TextIOWrapper(_Counting(raw, stats), encoding="utf-8-sig", newline="")
    try:
        yield from _read_rows(fh, path, name, unescape, skip_bad, stats)
    except UnicodeDecodeError:
        line, offset, bad = _find_bad_utf8(path)
        raise InputError(
            f"{name}: line {line}: byte offset {offset}: not UTF-8 (bytes {bad}); "
            "save the file as UTF-8 and try again"
        ) from None
    except csv.Error as exc:
        raise InputError(f"{name}: CSV syntax error: {exc}") from None
    finally:
        fh.close()


def _columns(header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, h in enumerate(header):
        canon = COLUMN_ALIASES.get(h)
        if canon is not None and canon not in columns:
            columns[canon] = i
    return columns


def sniff_delimiter(header_line: str) -> str:
    """The separator of a CSV, judged from its header line.

    The one under which the header names every required column wins (a message cell may
    hold any separator, the header line does not); failing that, the one that splits
    the header into the most fields; a one-column header means comma. Python's
    ``csv.Sniffer`` guesses from data rows and is thrown off by prose in messages.
    """
    best, best_fields = ",", 1
    for delimiter in DELIMITERS:
        fields = next(csv.reader([header_line], delimiter=delimiter), [])
        columns = _columns(_normalise_header(fields))
        if all(c in columns for c in REQUIRED_COLUMNS):
            return delimiter
        if len(fields) > best_fields:
            best, best_fields = delimiter, len(fields)
    return best


def _read_rows(
    fh: io.TextIOWrapper, path: str, name: str, unescape: Unescape, skip_bad: bool, stats: ReadStats
) -> Iterator[Message]:
    first = fh.readline()
    if not first.strip():
        raise InputError(f"{name}: the file is empty; expected a header line such as "
                         "msg_id,app_protocol,src_app,dst_app,message,timestamp")
    stats.delimiter = delimiter = sniff_delimiter(first)
    sep = stats.delimiter_name
    reader = csv.reader(itertools.chain((first,), fh), delimiter=delimiter)
    raw_header = next(reader)
    header = _normalise_header(raw_header)
    columns = _columns(header)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(h for h in header if h) or "(none)"
        raise InputError(
            f"{name}: missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; columns found: {found} (read as {sep}-separated)"
        )
    ncols = len(header)
    needed = max(columns.values()) + 1
    has_addresses = bool(columns.keys() & {"src_ip", "dst_ip", "src_port", "dst_port"})
    # Column positions resolved once, not looked up by name for every row.
    plan = _Plan(columns["src_app"], columns["dst_app"], columns["message"],
                 columns.get("app_protocol"), columns.get("timestamp"), columns.get("msg_id"),
                 columns if has_addresses else None)
    prev_end = reader.line_num
    counter = 0
    for row in reader:
        line = prev_end + 1
        prev_end = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        stats.rows += 1
        counter += 1
        try:
            if len(row) < needed:
                raise ValueError(f"has {len(row)} fields, the header has {ncols} ({sep}-separated)")
            msg = _row_to_message(row, line, counter, plan, unescape, stats)
        except ValueError as exc:
            if skip_bad:
                stats.bad_skipped += 1
                stats.note_skip(line, str(exc))
                continue
            raise InputError(f"{name}: line {line}: {exc} (use --skip-bad to skip such rows)") from None
        if msg is None:
            stats.empty_skipped += 1
            stats.note_skip(line, "empty message")
            continue
        stats.messages += 1
        yield msg


def _cell(row: list[str], idx: int | None) -> str:
    if idx is None or idx >= len(row):
        return ""
    return row[idx].strip()


def _port(row: list[str], idx: int | None, column: str) -> int | None:
    text = _cell(row, idx)
    if not text:
        return None
    try:
        value = int(float(text)) if "." in text else int(text)
    except ValueError:
        raise ValueError(f"column {column}: {text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"column {column}: port {value} is outside 0–65535")
    return value


def _ip(row: list[str], idx: int | None, column: str) -> str | None:
    text = _cell(row, idx)
    if not text:
        return None
    try:
        ip_address(text)
    except ValueError:
        raise ValueError(f"column {column}: {text!r} is not an IPv4 or IPv6 address") from None
    return text


class _Plan(NamedTuple):
    """Where each column sits in a row (None: the column is absent)."""

    src_app: int
    dst_app: int
    message: int
    app_protocol: int | None
    timestamp: int | None
    msg_id: int | None
    #: The whole column map when any of the optional address columns is present.
    addresses: dict[str, int] | None


def _row_to_message(
    row: list[str], line: int, counter: int, plan: _Plan, unescape: Unescape, stats: ReadStats,
) -> Message | None:
    """One CSV row → a Message (None for an empty message). ``row`` has every mapped column."""
    src_app = row[plan.src_app].strip()
    dst_app = row[plan.dst_app].strip()
    if not src_app:
        raise ValueError("column src_app is empty")
    if not dst_app:
        raise ValueError("column dst_app is empty")
    c = plan.app_protocol
    protocol = row[c].strip().upper() if c is not None else ""
    # Trim surrounding spaces but keep meaningful line breaks at the end of HTTP heads.
    text = row[plan.message].strip(" \t")
    if not text or text.isspace():
        return None
    timestamp_ns: int | None = None
    absolute = False
    c = plan.timestamp
    if c is not None:
        ts_text = row[c]
        if ts_text and not ts_text.isspace():
            try:
                timestamp_ns, absolute = parse_timestamp_ns(ts_text)
            except ValueError as exc:
                raise ValueError(f"column timestamp: {exc}") from None
    control = None
    if protocol == "TCP" and text.strip().upper() in CONTROL_MESSAGES:
        control = text.strip().upper().replace("/", "-").replace(",", "-")
    elif "\\" in text and _should_unescape(unescape, protocol, text):
        text = unescape_text(text)
        stats.unescaped += 1
    if not protocol:
        protocol = "HTTP" if _looks_http("", text) else "DATA"
    c = plan.msg_id
    msg_id = row[c].strip() if c is not None else ""
    msg = Message(
        msg_id or str(counter), protocol, src_app, dst_app,
        b"" if control else text.encode("utf-8"),
        None if timestamp_ns is None else timestamp_ns / _NS_PER_S, absolute,
        line=line, control=control, timestamp_ns=timestamp_ns,
    )
    if plan.addresses is not None:
        get = plan.addresses.get
        msg.src_ip = _ip(row, get("src_ip"), "src_ip")
        msg.dst_ip = _ip(row, get("dst_ip"), "dst_ip")
        msg.src_port = _port(row, get("src_port"), "src_port")
        msg.dst_port = _port(row, get("dst_port"), "dst_port")
    return msg
