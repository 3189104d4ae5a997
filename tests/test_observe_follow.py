"""`ciliary observe --follow FILE`: the flows appended to a file, as they come, across a
rotation, until stopped (`ciliary.workflows.observe.observe(..., stop=...)`), and the CLI
end to end in a subprocess stopped by SIGINT/SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ciliary.cli import app
from ciliary.flows.codec import BadLine
from ciliary.workflows.connections import run_connections_cli
from ciliary.workflows.observe import (
    ObserveRun,
    observe,
    parse_observe_args,
    run_observe_cli,
)

JSON = dict[str, Any]
SAMPLES = Path(__file__).parent / "data" / "flows" / "hand-written-samples.jsonl"
LINES: list[JSON] = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
DROPPED = [line for line in LINES if line["flow"]["verdict"] == "DROPPED"]
OTHERS = [line for line in LINES if line["flow"]["verdict"] != "DROPPED"]
assert len(DROPPED) >= 8 and len(OTHERS) >= 8
POLL = 0.02


def text(line: JSON) -> str:
    return json.dumps(line, separators=(",", ":")) + "\n"


def uuid(line: JSON) -> str:
    return str(line["flow"]["uuid"])


class Follower:
    """Runs `observe --follow` on a thread; its output lines arrive on `lines`."""

    def __init__(self, path: Path, *args: str, output: str = "json") -> None:
        self.stop = threading.Event()
        self.idle = threading.Event()
        self.lines: queue.Queue[str] = queue.Queue()
        self.bad: list[BadLine] = []
        opts = parse_observe_args([str(path), "--follow", *args]).options
        self.run: ObserveRun = observe(
            [path],
            opts,
            output,
            stop=self.stop,
            on_idle=self.idle.set,
            on_bad=self.bad.append,
            poll_interval=POLL,
        )
        self.thread = threading.Thread(target=self._consume, daemon=True)
        self.thread.start()

    def _consume(self) -> None:
        for line in self.run:
            self.lines.put(line)

    def take(self, n: int, timeout: float = 5.0) -> list[str]:
        return [self.lines.get(timeout=timeout) for _ in range(n)]

    def uuids(self, n: int) -> list[str]:
        return [json.loads(line)["flow"]["uuid"] for line in self.take(n)]

    def caught_up(self) -> None:
        """Wait until the follower has read everything there is (then clear the flag)."""
        assert self.idle.wait(5), "the follower never caught up"
        self.idle.clear()

    def nothing_more(self, seconds: float = 0.3) -> None:
        time.sleep(seconds)
        assert self.lines.empty(), self.lines.get()

    def close(self) -> float:
        """Stop; the seconds it took the iteration to end."""
        started = time.monotonic()
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the follower did not stop"
        return time.monotonic() - started


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    return tmp_path / "flows.jsonl"


def test_follows_appends_across_a_rotation_and_stops(flow_file: Path) -> None:
    # The file holds 3 DROPPED flows among others; `--last 2` prints the last two of them.
    initial = [OTHERS[0], DROPPED[0], OTHERS[1], DROPPED[1], DROPPED[2], OTHERS[2]]
    flow_file.write_text("".join(map(text, initial)))
    follower = Follower(flow_file, "--verdict", "DROPPED", "--last", "2")
    assert follower.uuids(2) == [uuid(DROPPED[1]), uuid(DROPPED[2])]
    follower.caught_up()

    before = [OTHERS[3], DROPPED[3], OTHERS[4], DROPPED[4]]
    split = text(DROPPED[5])  # written in two parts, polls in between: held until complete
    after = [OTHERS[5], DROPPED[6], OTHERS[6], DROPPED[7]]

    def writer() -> None:
        with flow_file.open("a") as f:
            for line in before:
                f.write(text(line))
                f.flush()
                time.sleep(0.01)
            f.write(split[:100])
            f.flush()
            time.sleep(5 * POLL)
            f.write(split[100:])
            f.flush()
        # Rotate as the agent's flow log does: FILE -> FILE.1, then a new FILE.
        flow_file.rename(flow_file.with_name(flow_file.name + ".1"))
        time.sleep(3 * POLL)  # the follower finds no FILE for a while
        with flow_file.open("a") as f:
            for line in after:
                f.write(text(line))
                f.flush()
                time.sleep(0.01)

    t = threading.Thread(target=writer)
    t.start()
    got = follower.uuids(5)
    t.join()
    assert got == [uuid(DROPPED[i]) for i in (3, 4, 5, 6, 7)]
    follower.nothing_more()
    assert follower.close() < 1.0
    assert follower.bad == []
    c = follower.run.counts
    assert c.flows_read == len(initial) + len(before) + 1 + len(after)
    assert c.skipped_non_flow == 0 and c.bad_lines == 0
    assert c.matched == 3 + 5 and c.printed == 2 + 5


def test_a_partial_line_is_held_until_complete(flow_file: Path) -> None:
    flow_file.write_text(text(DROPPED[0]))
    follower = Follower(flow_file)
    assert follower.uuids(1) == [uuid(DROPPED[0])]
    line = text(DROPPED[1])
    with flow_file.open("a") as f:
        f.write(line[:40])
        f.flush()
        follower.caught_up()
        follower.caught_up()  # polled twice since: still nothing
        follower.nothing_more(0.1)
        f.write(line[40:])
        f.flush()
    assert follower.uuids(1) == [uuid(DROPPED[1])]
    follower.close()
    assert follower.bad == []


def test_a_file_truncated_in_place_is_read_again(flow_file: Path) -> None:
    flow_file.write_text(text(DROPPED[0]) + text(DROPPED[1]))
    follower = Follower(flow_file)
    assert follower.uuids(2) == [uuid(DROPPED[0]), uuid(DROPPED[1])]
    follower.caught_up()
    flow_file.write_text(text(DROPPED[2]))  # copytruncate-style rotation
    assert follower.uuids(1) == [uuid(DROPPED[2])]
    follower.close()


def test_the_last_line_of_a_rotated_file_is_not_lost(flow_file: Path) -> None:
    # The old file ends without a newline when it is renamed: that line is its last.
    flow_file.write_text(text(DROPPED[0]))
    follower = Follower(flow_file)
    assert follower.uuids(1) == [uuid(DROPPED[0])]
    follower.caught_up()
    with flow_file.open("a") as f:
        f.write(text(DROPPED[1]).rstrip("\n"))
    flow_file.rename(flow_file.with_name("flows.jsonl.1"))
    flow_file.write_text(text(DROPPED[2]))
    assert follower.uuids(2) == [uuid(DROPPED[1]), uuid(DROPPED[2])]
    follower.close()
    assert follower.run.counts.flows_read == 3


def test_compact_output_and_bad_lines_while_following(flow_file: Path) -> None:
    flow_file.write_text("")
    follower = Follower(flow_file, output="compact")
    follower.caught_up()
    with flow_file.open("a") as f:
        f.write("{not json\n" + text(DROPPED[0]))
    (line,) = follower.take(1)
    assert line == (
        "Mar 14 09:12:03.804: shop/reporting-29184720-7xk2d:39412 (ID:19345) <> "
        "payments/payments-api-84c6d5b7f9-tz6vh:8443 (ID:57002) "
        "policy-verdict:none INGRESS DENIED (TCP Flags: SYN)"
    )
    follower.close()
    assert [(b.line, b.reason.split(":")[0]) for b in follower.bad] == [(1, "invalid JSON")]
    assert follower.run.counts.bad_lines == 1


def test_stop_ends_a_follower_that_waits(flow_file: Path) -> None:
    flow_file.write_text("")
    stop = threading.Event()
    run = observe([flow_file], parse_observe_args(["--follow"]).options, stop=stop)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert list(run) == []
    # The default poll is 0.2 s: it ends within one poll of the stop.
    assert 0.25 < time.monotonic() - started < 0.8


def test_a_stop_predicate_works_too(flow_file: Path) -> None:
    flow_file.write_text(text(DROPPED[0]))
    calls: list[int] = []

    def stopped() -> bool:
        calls.append(1)
        return len(calls) > 3

    out = list(observe([flow_file], parse_observe_args(["-f"]).options, stop=stopped))
    assert len(out) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--first", "2"], "cannot set both --first and --follow"),
        (["-o", "table"], "table output format is not compatible with follow mode"),
        (["{other}"], "--follow follows one FILE, got 2"),
    ],
)
def test_refused_combinations(flow_file: Path, args: list[str], message: str) -> None:
    flow_file.write_text("")
    args = [a.replace("{other}", str(flow_file)) for a in args]
    out, err = _Buf(), _Buf()
    assert run_observe_cli([str(flow_file), "--follow", *args], out, err) == 1
    assert err.getvalue() == f"error: {message}\n"
    assert out.getvalue() == ""


def test_stdin_and_compressed_files_are_not_followed(tmp_path: Path) -> None:
    for path, message in (
        ("-", "stdin is read as it comes"),
        (str(tmp_path / "f.gz"), "compressed"),
    ):
        out, err = _Buf(), _Buf()
        assert run_observe_cli([path, "-f"], out, err) == 1
        assert message in err.getvalue()


def test_connections_refuses_follow(flow_file: Path) -> None:
    flow_file.write_text(text(DROPPED[0]))
    out, err = _Buf(), _Buf()
    assert run_connections_cli([str(flow_file), "--follow"], out, err) == 1
    assert "--follow is only for observe" in err.getvalue()


def test_help_mentions_follow() -> None:
    result = CliRunner().invoke(app, ["observe", "--help"])
    assert result.exit_code == 0
    assert "-f/--follow" in result.output


class _Buf:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> int:
        self.parts.append(s)
        return len(s)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.parts)


# ---- the CLI, end to end ---------------------------------------------------------------------


@pytest.fixture
def cli(flow_file: Path) -> Iterator[subprocess.Popen[str]]:
    flow_file.write_text(text(OTHERS[0]) + text(DROPPED[0]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ciliary.cli import main; main()",
            "observe",
            "-f",
            str(flow_file),
            "--verdict",
            "DROPPED",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_follows_until_a_signal_then_exits_0(
    cli: subprocess.Popen[str], flow_file: Path, sig: signal.Signals
) -> None:
    assert cli.stdout is not None
    assert json.loads(cli.stdout.readline())["flow"]["uuid"] == uuid(DROPPED[0])
    with flow_file.open("a") as f:
        f.write(text(OTHERS[1]) + text(DROPPED[1]))
    # Printed (and flushed) as it comes, though stdout is a pipe.
    assert json.loads(cli.stdout.readline())["flow"]["uuid"] == uuid(DROPPED[1])
    os.kill(cli.pid, sig)
    out, err = cli.communicate(timeout=5)
    assert cli.returncode == 0, err
    assert out == "" and err == ""
