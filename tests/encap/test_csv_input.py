"""Every CSV variant the course produces, and every input error, named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcplab.encap.csv_input import ReadStats, parse_timestamp, read_messages
from tcplab.errors import InputError


def write(tmp_path: Path, text: str | bytes, name: str = "in.csv") -> Path:
    p = tmp_path / name
    if isinstance(text, str):
        p.write_text(text, encoding="utf-8", newline="")
    else:
        p.write_bytes(text)
    return p


def test_course_header_basic(tmp_path: Path) -> None:
    p = write(tmp_path, "msg_id,app_protocol,src_app,dst_app,message,timestamp\n"
                        "1,HTTP,client_browser,web_server,GET /blog HTTP/1.1,0.266\n")
    [m] = list(read_messages(p))
    assert (m.msg_id, m.app_protocol, m.src_app, m.dst_app) == ("1", "HTTP", "client_browser", "web_server")
    assert m.payload == b"GET /blog HTTP/1.1"
    assert m.timestamp == pytest.approx(0.266) and not m.absolute_time
    assert m.line == 2 and m.src_port is None


def test_any_order_alias_extra_columns_spaces_and_bom(tmp_path: Path) -> None:
    text = ("\ufeff Timestamp , Message ,dst_app, Protocol ,src_app,No.,Length,msg_id, src_port,dst_port\n"
            " 1.5 , hello there ,srv, chat ,cli,7,99, 3 , 40000 , 5000 \n")
    [m] = list(read_messages(write(tmp_path, text)))
    assert m.payload == b"hello there"
    assert (m.app_protocol, m.src_app, m.dst_app, m.msg_id) == ("CHAT", "cli", "srv", "3")
    assert (m.src_port, m.dst_port) == (40000, 5000)


def test_quoted_commas_doubled_quotes_and_real_crlf(tmp_path: Path) -> None:
    body = 'POST /cart HTTP/1.1\r\nHost: a\r\n\r\n{"q": "a, ""b"""}'
    quoted = '"' + body.replace('"', '""') + '"'
    p = write(tmp_path, "msg_id,app_protocol,src_app,dst_app,message,timestamp\r\n"
                        f"1,HTTP,c,s,{quoted},0\r\n2,HTTP,s,c,ok,1\r\n")
    m1, m2 = list(read_messages(p))
    assert m1.payload == body.encode()
    assert m2.line == 6  # the quoted cell spanned lines 2–5


def test_literal_escapes_auto_detected_for_http_only(tmp_path: Path) -> None:
    p = write(tmp_path, "msg_id,app_protocol,src_app,dst_app,message,timestamp\n"
                        "1,HTTP,c,s,GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n,0\n"
                        "2,CHAT,c,s,C:\\new folder,1\n")
    stats = ReadStats()
    m1, m2 = list(read_messages(p, stats=stats))
    assert m1.payload == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert m2.payload == b"C:\\new folder"
    assert stats.unescaped == 1
    never = list(read_messages(p, unescape="never"))
    assert never[0].payload == b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"
    always = list(read_messages(p, unescape="always"))
    assert always[1].payload == b"C:\new folder"


def test_empty_messages_counted_not_filled(tmp_path: Path) -> None:
    p = write(tmp_path, "msg_id,app_protocol,src_app,dst_app,message,timestamp\n"
                        "1,HTTP,c,s,,0\n2,HTTP,c,s,   ,0\n3,HTTP,c,s,x,0\n")
    stats = ReadStats()
    msgs = list(read_messages(p, stats=stats))
    assert [m.msg_id for m in msgs] == ["3"]
    assert (stats.rows, stats.messages, stats.empty_skipped) == (3, 1, 2)
    assert stats.skipped_examples[0] == "line 2: empty message"


def test_missing_column_names_it_and_lists_found(tmp_path: Path) -> None:
    p = write(tmp_path, "msg_id,app_protocol,src_app,message\n1,HTTP,c,x\n")
    with pytest.raises(InputError, match=r"in\.csv: missing required column dst_app; columns found: "
                                         r"msg_id, app_protocol, src_app, message"):
        list(read_messages(p))


def test_bad_port_names_line_and_column_and_skip_bad_counts(tmp_path: Path) -> None:
    p = write(tmp_path, "msg_id,app_protocol,src_app,dst_app,message,timestamp,src_port,dst_port\n"
                        "1,HTTP,c,s,x,0,12345,80\n2,HTTP,c,s,y,0,99999,80\n3,HTTP,c,s,z,0,abc,80\n")
    with pytest.raises(InputError, match=r"line 3: column src_port: port 99999 is outside"):
        list(read_messages(p))
    stats = ReadStats()
    msgs = list(read_messages(p, skip_bad=True, stats=stats))
    assert [m.msg_id for m in msgs] == ["1"]
    assert stats.bad_skipped == 2
    assert "line 4: column src_port: 'abc' is not a port number" in stats.skipped_examples


def test_bad_ip_and_bad_timestamp(tmp_path: Path) -> None:
    p = write(tmp_path, "src_app,dst_app,message,src_ip\nc,s,x,300.1.1.1\n")
    with pytest.raises(InputError, match=r"line 2: column src_ip: '300.1.1.1' is not an IPv4 or IPv6"):
        list(read_messages(p))
    p = write(tmp_path, "src_app,dst_app,message,timestamp\nc,s,x,yesterday\n")
    with pytest.raises(InputError, match=r"line 2: column timestamp: timestamp 'yesterday' is not"):
        list(read_messages(p))


def test_non_utf8_reports_line_and_byte_offset(tmp_path: Path) -> None:
    data = b"src_app,dst_app,message\nc,s,hello\nc,s,caf\xe9\n"
    p = write(tmp_path, data)
    with pytest.raises(InputError) as exc:
        list(read_messages(p))
    offset = data.index(b"\xe9")
    assert f"line 3: byte offset {offset}: not UTF-8 (bytes e9)" in str(exc.value)


def test_hebrew_and_emoji_survive(tmp_path: Path) -> None:
    p = write(tmp_path, "src_app,dst_app,message\nc,s,שלום 👋\n")
    [m] = list(read_messages(p))
    assert m.payload.decode() == "שלום 👋"


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_messages(tmp_path / "nope.csv"))
    with pytest.raises(InputError, match="the file is empty"):
        list(read_messages(write(tmp_path, "")))


def test_control_rows_are_understood(tmp_path: Path) -> None:
    p = write(tmp_path, "src_app,dst_app,app_protocol,message\nc,s,TCP,SYN\ns,c,TCP,syn/ack\nc,s,TCP,hello\n")
    a, b, c = list(read_messages(p))
    assert (a.control, a.payload) == ("SYN", b"")
    assert b.control == "SYN-ACK"
    assert c.control is None and c.payload == b"hello"


@pytest.mark.parametrize(
    ("text", "expected", "absolute"),
    [
        ("0.266", 0.266, False),
        ("2024-05-01T10:00:00", 1714557600.0, True),
        ("2024-05-01T10:00:00Z", 1714557600.0, True),
        ("01/05/2024 10:00", 1714557600.0, True),
        ("01/05/2024 10:00:30", 1714557630.0, True),
    ],
)
def test_timestamp_forms(text: str, expected: float, absolute: bool) -> None:
    value, is_abs = parse_timestamp(text)
    assert value == pytest.approx(expected) and is_abs == absolute
