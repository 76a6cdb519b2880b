import json
import os

import pytest

from emergent_alignment import io


def test_writers_round_trip(tmp_path):
    io.write_text(tmp_path / "a" / "t.txt", "héllo\n")  # parent directories are created
    io.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    io.write_json(tmp_path / "c.json", {"k": "é", "n": [1, 2]})
    io.write_jsonl(tmp_path / "d.jsonl", [{"i": 0}, {"i": 1}])
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8")) == {"k": "é", "n": [1, 2]}
    assert [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()] == [{"i": 0}, {"i": 1}]
    assert sorted(os.listdir(tmp_path)) == ["a", "b.bin", "c.json", "d.jsonl"]  # no temporary file left


def test_a_failure_mid_write_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "s.jsonl"
    io.write_jsonl(path, [{"old": True}])

    def rows():
        yield {"new": 1}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.write_jsonl(path, rows())
    assert path.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["s.jsonl"]
    with pytest.raises(TypeError):
        io.write_json(path, {"x": object()})  # not serialisable: raised before the file is touched
    assert path.read_text() == '{"old": true}\n'


def test_save_figure_writes_a_png_atomically(tmp_path):
    plt = io.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    io.save_figure(fig, tmp_path / "f.png", dpi=50)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["f.png"]
    assert not plt.fignum_exists(fig.number)  # closed


def test_atomic_directory_replaces_or_keeps_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "ckpt"
    with io.atomic_directory(target) as d:
        (tmp_path / d / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with io.atomic_directory(target, overwrite=False) as d:
        (tmp_path / d / "a").write_text("2")
    assert (target / "a").read_text() == "1"  # kept: another writer finished first
    with pytest.raises(ValueError):
        with io.atomic_directory(target) as d:
            (tmp_path / d / "a").write_text("3")
            raise ValueError("interrupted")
    assert (target / "a").read_text() == "1"
    with io.atomic_directory(target) as d:
        (tmp_path / d / "b").write_text("4")
    assert os.listdir(target) == ["b"]
    assert os.listdir(tmp_path) == ["ckpt"]


def test_written_files_and_directories_get_plain_modes(tmp_path):
    """Not tempfile's private 0600 / 0700: what open() and mkdir would give under the umask."""
    old = os.umask(0o022)
    try:
        io.write_text(tmp_path / "a.txt", "x")
        assert (os.stat(tmp_path / "a.txt").st_mode & 0o777) == 0o644
        os.chmod(tmp_path / "a.txt", 0o600)
        io.write_text(tmp_path / "a.txt", "y")  # an existing file keeps its mode
        assert (os.stat(tmp_path / "a.txt").st_mode & 0o777) == 0o600
        with io.atomic_directory(tmp_path / "d") as d:
            io.write_text(os.path.join(d, "f"), "z")
        assert (os.stat(tmp_path / "d").st_mode & 0o777) == 0o755
    finally:
        os.umask(old)


def test_a_compressed_log_reads_back_alike(tmp_path):
    from emergent_alignment.io import compress, read_lines

    log = tmp_path / "log.jsonl"
    assert read_lines(log) is None
    log.write_text('{"a": 1}\n{"a": 2}\n')
    before = read_lines(log)
    assert compress(log) == str(log) + ".gz" and not log.exists()
    assert read_lines(log) == before == ['{"a": 1}', '{"a": 2}']
    first = (tmp_path / "log.jsonl.gz").read_bytes()
    log.write_text('{"a": 1}\n{"a": 2}\n')
    compress(log)
    assert (tmp_path / "log.jsonl.gz").read_bytes() == first  # no timestamp inside: the same log, the same bytes
