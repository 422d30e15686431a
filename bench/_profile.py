"""Where a profiled server's time goes: py-spy attached for the measured span, then summarised.

`Profiler` attaches ``py-spy record`` (the ``bench`` extra) to a running peer
process once its warm-up is over, samples it without pausing it
(``--nonblocking``), and writes py-spy's raw collapsed stacks when stopped.
`summarise` reads them back and says, in percentages of all samples, which
part of Platypus each sample was in (the first rule that matches, walking a
stack from its root), and within each part which functions were on top.

::

    python bench/_profile.py FILE.txt            # the summary of a profile
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (label, substrings of a frame): a stack goes to the first rule that any of its frames
# matches, in this order: the most specific part first (the processor runs inside the
# consumer, the log's fetch is called by it, and so on).
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("the sink's tally (bench instrument, in every peer)", ("bench/_tally.py",)),
    ("delivery ledger (kafka): SQLite lookups and writes", ("kafka/ledger.py",)),
    ("ingress: parse, validate, append", ("platypus/ingress.py",)),
    ("processor: flows, mapping, delivery", ("runtime/processor.py",)),
    ("embedded log: SQLite reads and writes", ("embedded/log.py",)),
    (
        "consumer: fetch loop, key order, settlements",
        ("runtime/consumer.py", "runtime/ordering.py", "embedded/runtime.py"),
    ),
    ("kafka worker: faust stream and acks", ("runtime/kafka/",)),
    ("faust / aiokafka internals", ("faust/", "mode/", "aiokafka/")),
    ("HTTP server: uvicorn, h11, starlette", ("uvicorn/", "h11/", "starlette/", "httptools")),
    ("http client: httpx, httpcore", ("httpx/", "httpcore/")),
    ("logging: structlog", ("structlog/",)),
    ("asyncio event loop", ("asyncio/",)),
]
# Leaves that mean a thread was waiting, not working (py-spy's --nonblocking mode
# cannot always tell): counted apart so that the other shares are of real work.
IDLE_LEAVES = {("select", "selectors.py"), ("_worker", "thread.py"), ("wait", "threading.py")}
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def _frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f]


def _idle(frame: str) -> bool:
    found = _FRAME.match(frame)
    if not found:
        return False
    func = found["func"].rpartition(".")[2]
    return (func, Path(found["file"]).name) in IDLE_LEAVES


def _leaf(frame: str) -> str:
    found = _FRAME.match(frame)
    if not found:
        return frame
    parts = Path(found["file"]).parts
    return f"{found['func']} ({'/'.join(parts[-2:])})"


def summarise(path: Path, top: int = 6) -> str:
    """The share of samples per rule, and each rule's busiest leaf functions."""
    parts: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = {}
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        total += count
        if frames[0].startswith("thread") or frames[0].startswith("process"):
            threads[frames[0]] += count
        label = "other"
        if _idle(frames[-1]):
            label = "waiting (select, idle worker threads)"
        for name, needles in RULES if label == "other" else ():
            if any(any(n in f for n in needles) for f in frames):
                label = name
                break
        parts[label] += count
        leaves.setdefault(label, Counter())[_leaf(frames[-1])] += count
    if not total:
        return f"{path}: no samples"
    lines = [f"{path.name}: {total} samples"]
    if len(threads) > 1:
        lines.append(
            "  threads: "
            + ", ".join(f"{name} {n / total:.0%}" for name, n in threads.most_common(4))
        )
    for label, n in parts.most_common():
        lines.append(f"  {n / total:6.1%}  {label}")
        for leaf, m in leaves[label].most_common(top):
            lines.append(f"            {m / total:6.1%}  {leaf}")
    return "\n".join(lines)


class Profiler:
    """``py-spy record`` attached to ``pid`` until `stop`."""

    def __init__(self, pid: int, output: Path, rate: int = 200) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        output.parent.mkdir(parents=True, exist_ok=True)
        self.output = output
        self._log = output.with_suffix(".log").open("wb")
        self._process = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        """Stop sampling; py-spy writes its file on SIGINT."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summarise(Path(name)))
