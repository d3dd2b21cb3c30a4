"""A room's links and QR code (decoded back with zxing-cpp), the public base URL, and the CLI:
`opmerge room create|show|close` (one-line errors, exit 2) and `opmerge dashboard --public-url`."""

import io
import json

import pytest
import zxingcpp
from PIL import Image

from opmerge_core.cli import main
from opmerge_core.cli.dashboard import server_env
from opmerge_core.store import rooms
from opmerge_core.store.rooms import RoomStore
from opmerge_dashboard import room_links


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPMERGE_HOME", str(tmp_path))
    monkeypatch.delenv(room_links.PUBLIC_URL_ENV, raising=False)
    return tmp_path


def decode(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L"))]


def test_qr_decodes_to_the_student_link():
    link = room_links.student_link("http://10.0.0.5:8501", "K7QM2X")
    assert link == "http://10.0.0.5:8501/?room=K7QM2X"
    png = room_links.qr_png(link)
    image = Image.open(io.BytesIO(png))
    assert image.size[0] == image.size[1] >= 500           # large: a module ≥ 16 px on the join screen
    assert decode(png) == [link]
    # scanned from afar the code is small: it still decodes at a quarter of the size
    small = io.BytesIO()
    image.convert("L").resize((image.size[0] // 4,) * 2).save(small, format="PNG")
    assert decode(small.getvalue()) == [link]


def test_links_and_base_url(monkeypatch):
    assert room_links.teacher_link("https://class.example.org/lab", "K7QM2X", "s3cr-t_") == \
        "https://class.example.org/lab/?room=K7QM2X&key=s3cr-t_"
    pages = ("phase", "operators")
    assert room_links.base_from_browser("http://10.0.0.5:8501/operators", pages) == "http://10.0.0.5:8501"
    assert room_links.base_from_browser("http://10.0.0.5:8501/", pages) == "http://10.0.0.5:8501"
    assert room_links.base_from_browser("https://h.org/lab/phase", pages) == "https://h.org/lab"
    assert room_links.base_from_browser(None, pages) is None
    for url, local in (("http://localhost:8501", True), ("http://127.0.0.1:8501", True),
                       ("http://[::1]:8501", True), ("http://10.0.0.5:8501", False),
                       ("https://class.example.org", False)):
        assert room_links.loopback(url) is local
    monkeypatch.setenv(room_links.PUBLIC_URL_ENV, "https://lab.example.org/")
    assert room_links.configured_base() == "https://lab.example.org"
    monkeypatch.setenv(room_links.PUBLIC_URL_ENV, "javascript:alert(1)")
    with pytest.raises(ValueError, match="public URL"):
        room_links.configured_base()


def test_create_and_show(home, capsys):
    assert main(["room", "create", "--public-url", "http://10.0.0.5:8501/", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    code, key = made["code"], made["teacher_link"].split("key=")[1]
    assert made["student_link"] == f"http://10.0.0.5:8501/?room={code}"
    assert made["teacher_link"] == f"http://10.0.0.5:8501/?room={code}&key={key}"
    assert key not in made["student_link"]
    with RoomStore() as store:                             # the server's store sees it
        room = store.teacher(code, key)
        store.move(room, key, "phase", 2)
        for choice in ("boot", "boot", "vanilla"):
            store.vote(room, rooms.new_session_token(), "phase", 2, choice, ("boot", "vanilla"))
        store.reveal(room, key)
    assert main(["room", "show", code.lower(), "--key", key, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["steps"] == [{"lesson": "phase", "step": 2, "revealed": True, "votes": 3,
                               "counts": {"boot": 2, "vanilla": 1}}]
    assert main(["room", "show", code, "--key", key]) == 0
    out = capsys.readouterr().out
    assert f"Room {code}" in out and "phase step 2: 3 votes (boot 2, vanilla 1) · revealed" in out
    assert main(["room", "close", code, "--key", key]) == 0
    assert "closed" in capsys.readouterr().out


def test_create_prints_both_links_and_warns_about_localhost(home, capsys):
    assert main(["room", "create"]) == 0
    out, err = capsys.readouterr()
    assert "Students:  http://localhost:8501/?room=" in out
    assert "Teacher:   http://localhost:8501/?room=" in out
    assert "only works on this computer" in err


@pytest.mark.parametrize("argv, message", [
    (["room", "show", "NOPE", "--key", "x"], "is not a room code"),
    (["room", "show", "ABCDEF", "--key", "x"], "no room ABCDEF"),
    (["room", "create", "--hours", "0"], "hours"),
    (["room", "create", "--hours", "1e9"], "hours"),
    (["room", "create", "--public-url", "ftp://host"], "public URL"),
    (["room", "create", "--public-url", "http://host:port"], "public URL"),
])
def test_bad_input_is_one_line_exit_2(home, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("opmerge room: error:") and message in err


def test_wrong_key_changes_nothing(home, capsys):
    with RoomStore() as store:
        room, key = store.create("phase")
    wrong = key[:-2] + ("xx" if not key.endswith("xx") else "yy")
    for verb in ("show", "close"):
        assert main(["room", verb, room.code, "--key", wrong]) == 2
        assert "wrong teacher key" in capsys.readouterr().err
    with RoomStore() as store:
        assert store.get(room.id) == room


def test_usage_errors_exit_2(home, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["room", "show", "ABCDEF"])                    # --key is required
    assert exc.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_dashboard_public_url(home, capsys):
    from opmerge_core.cli import build_parser
    args, _ = build_parser().parse_known_args(["dashboard", "--public-url", "https://lab.example.org/"])
    assert server_env(args, {})["OPMERGE_PUBLIC_URL"] == "https://lab.example.org"
    with pytest.raises(SystemExit) as exc:
        main(["dashboard", "--public-url", "not a url"])
    assert exc.value.code == 2 and "public URL" in capsys.readouterr().err


def test_votes_bar_keeps_the_choice_order_and_marks_the_answer():
    from opmerge_core.figures.room import CORRECT, LIVE, OTHER, votes_bar
    choices = (("boot", "BOOT"), ("vanilla", "Vanilla"), ("hybrid", "Hybrid"))
    bar = votes_bar(choices, {"vanilla": 3, "boot": 1}).data[0]
    assert list(bar.y) == ["BOOT", "Vanilla", "Hybrid"] and list(bar.x) == [1, 3, 0]
    assert list(bar.text) == ["1  (25%)", "3  (75%)", "0  (0%)"] and set(bar.marker.color) == {LIVE}
    revealed = votes_bar(choices, {"vanilla": 3, "boot": 1}, correct="boot").data[0]
    assert list(revealed.marker.color) == [CORRECT, OTHER, OTHER]
    assert list(votes_bar(choices, {}).data[0].text) == ["0", "0", "0"]     # no votes yet
