"""Sort a batch of sheet rows (trusted, to validate, not asked for) and turn the rows
to validate into canonical JSON: here, or in helper processes beside this one.

Most of a cold sync's CPU goes into digesting rows and ``rows.RowReader.bodies``, and
Python runs one thread at a time. On a machine with a spare core, once a reading has
had many rows to validate, its batches go to helper processes while the main process
fetches the sheet and the table and plans.

A helper is started as ``python -m listing_sync.pipeline.convert`` (it imports the row
reader, not the CLI), gets the tabs' shapes once, says it is ready, then answers
batches in the order they came. It runs the very code the main process would, so the
answers are the same. It is only ever a shortcut: if it cannot start, stops, or a pipe
breaks, its batches are converted in the main process. It ignores SIGINT and SIGTERM
and runs in its own session (a terminal's Ctrl-C does not reach it): the main process
handles the signal and closes the pipes, and a helper whose input ends exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import mapping
from ..rows import RowReader
from ..sheets import number_columns, values_of

if TYPE_CHECKING:
    from ..schema import ListingsTable

log = logging.getLogger(__name__)

# Batches handed to one helper and not yet answered: a few hundred milliseconds of its
# work, so it never waits for the main process (which converts batches itself when
# every helper has this many).
DEPTH = 8
# At most this many helpers: past three, the main process's own share of each row
# (ValidRow, the plan) is what limits a run.
MAX_HELPERS = 3
# A pipe that holds a few batches (~200 KB pickled each) lets a send return at once.
_PIPE_BYTES = 1 << 20
_READY = "ready"


@dataclass(frozen=True)
class TabShape:
    """What sorting and converting one tab's rows needs (sent to each helper once)."""

    header_map: mapping.HeaderMap
    table: ListingsTable
    omit: frozenset[str]
    # {property number: source_hash} of the listings the table holds on this tab,
    # active: a row with those very cells is trusted, not validated.
    known: Mapping[str, str]
    # Only these property numbers (a selective sync). None: every row.
    only: frozenset[str] | None


# Rows sorted together (and read column by column, rows.RowReader.bodies).
READ_BATCH = 1000


class Sorted(NamedTuple):
    """A batch of rows, sorted: each row's digest and key; which rows to validate
    (``todo``) and their canonical JSON (None: read that row carefully); which rows
    were not asked for (``dropped``)."""

    # Every row's (a list), or only those of ``todo`` (a dict by index: a helper's
    # answer for a whole response, whose other digests are never needed).
    digests: list[str] | dict[int, str]
    numbers: list[str | None]
    todo: list[int]
    dropped: list[int]
    bodies: list[bytes | None]


class Response(NamedTuple):
    """A whole Sheets response for a helper to parse and sort (sheets.RawChunk)."""

    tab: int  # index into the shapes
    body: bytes
    check: frozenset[int]  # columns where a number must be read as shown (RawChunk.check)


# A helper's answer for a response with a number where the sheet must be asked how it
# shows it (a date typed into the notes): only the main process can ask.
HANDED_BACK = "handed back"


class Part(NamedTuple):
    """One batch of a response a helper sorted: its row count (``size``), how it sorted, the
    cells of the rows to read carefully (by index), which the main process never parsed."""

    size: int
    sorted: Sorted
    careful: dict[int, list[Any]]


def sort_response(converter: Converter, response: Response) -> list[Part] | str:
    """Parse a response and sort it a batch at a time, keeping what the main process needs;
    HANDED_BACK if a cell must first be read as the sheet shows it."""
    rows = values_of(response.body)
    if response.check and number_columns(rows, response.check):
        return HANDED_BACK
    parts = []
    for at in range(0, len(rows), READ_BATCH):
        batch = rows[at : at + READ_BATCH]
        done = converter(batch)
        todo = done.todo
        careful = {todo[k]: batch[todo[k]] for k, body in enumerate(done.bodies) if body is None}
        digests = done.digests
        parts.append(
            Part(len(batch), done._replace(digests={i: digests[i] for i in todo}), careful)
        )
    return parts


class Converter:
    """Sort and convert batches of one tab's rows (in this process or a helper)."""

    def __init__(self, shape: TabShape) -> None:
        self.reader = RowReader(shape.header_map, shape.table, omit=shape.omit)
        self.digest = mapping.source_hasher(mapping.header_signature(shape.header_map))
        self.known = shape.known
        self.only = shape.only

    def __call__(self, rows: list[list[Any]]) -> Sorted:
        digests = list(map(self.digest, rows))
        numbers = self.reader.numbers(rows)
        known, only = self.known, self.only
        dropped: list[int] = []
        if only is None:
            todo = [i for i, n in enumerate(numbers) if n is None or known.get(n) != digests[i]]
        else:
            todo = [
                i
                for i, n in enumerate(numbers)
                if n is None or (n in only and known.get(n) != digests[i])
            ]
            # Rows not asked for: counted, not returned.
            dropped = [i for i, n in enumerate(numbers) if n is not None and n not in only]
        if not todo:
            return Sorted(digests, numbers, todo, dropped, [])
        every = len(todo) == len(rows)
        bodies = self.reader.bodies(
            rows if every else [rows[i] for i in todo],
            numbers if every else [numbers[i] for i in todo],
        )
        return Sorted(digests, numbers, todo, dropped, bodies)


def cores(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """Return how many cores this process may use: its CPU affinity, within the CPU
    quota of its cgroup (``cpu_max``: a container limited to one CPU still sees the
    host's cores)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    try:
        with open(cpu_max, encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 CPU limit
    return count


def _grow(connection: Connection) -> None:
    with contextlib.suppress(AttributeError, OSError):  # Linux only; a limit may refuse
        import fcntl

        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


class Helper:
    """One helper process, its pipes, and a thread that takes its answers as they come."""

    def __init__(self, shapes: Sequence[TabShape] | None = None) -> None:
        from_child, child_out = Pipe(duplex=False)
        child_in, to_child = Pipe(duplex=False)
        _grow(to_child)
        _grow(child_out)
        fds = (child_in.fileno(), child_out.fileno())
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, *map(str, fds)],
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            from_child.close()
            to_child.close()
            raise
        finally:
            child_in.close()
            child_out.close()
        self._outbox = to_child
        self._answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Per message sent and not yet answered, its batches (a response: several).
        self._expected: deque[int] = deque()
        self.ready = False
        self.broken = False
        threading.Thread(
            target=self._take, args=(from_child,), name="listing-sync-convert", daemon=True
        ).start()
        if shapes is not None:
            self.begin(shapes)

    def begin(self, shapes: Sequence[TabShape]) -> None:
        """Send the tabs' shapes, its first message: the helper then says it is ready."""
        self.send(list(shapes))

    @property
    def waiting(self) -> int:
        """Return the batches sent and not yet answered."""
        return sum(self._expected)

    def expect(self, batches: int = 1) -> None:
        """Count a message about to be sent, of ``batches`` batches, as waiting."""
        self._expected.append(batches)

    def _take(self, inbox: Connection) -> None:
        try:
            while True:
                self._answers.put(inbox.recv())
        except (OSError, EOFError, ValueError) as exc:
            self._answers.put(exc)
        finally:
            inbox.close()

    def usable(self) -> bool:
        """Whether the helper is up (it says so once its readers are built) and well."""
        if not self.ready and not self.broken and not self._answers.empty():
            self.ready = self._answers.get() == _READY
            self.broken = not self.ready
        return self.ready and not self.broken

    def send(self, message: object) -> bool:
        """Send a message; False (and the helper is broken) if it cannot be sent."""
        if not self.broken:
            try:
                self._outbox.send(message)
                return True
            except (OSError, ValueError) as exc:
                self._break(exc)
        return False

    def answered(self) -> bool:
        """Whether the answer to the oldest batch sent is here (or never will be)."""
        return self.broken or not self._answers.empty()

    def receive(self) -> Any:
        """Return the answer to the oldest message sent (a batch's Sorted, a response's
        list of Part); None if the helper failed."""
        self._expected.popleft()
        if self.broken:
            return None
        answer = self._answers.get()
        if isinstance(answer, BaseException):
            self._break(answer)
            return None
        return answer

    def _break(self, exc: BaseException) -> None:
        self.broken = True
        log.debug("row conversion helper stopped (%s); converting here", type(exc).__name__)

    def close(self) -> None:
        """Close its input (the helper exits when it ends) and reap the process."""
        self.broken = True
        self._outbox.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def helper_count() -> int:
    """Return how many helpers a reading may start: one per spare core, at most three."""
    return min(cores() - 1, MAX_HELPERS)


class Early:
    """Helper processes started before the tabs' shapes are known (the table's read says
    the sheet is large), so they are up when the sheet's responses come; ``Helpers``
    takes them over, and ``close`` ends those it did not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._helpers: list[Helper] = []
        self._closed = False

    def start(self, count: int) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                while len(self._helpers) < count:
                    self._helpers.append(Helper())
            except OSError as exc:
                log.debug("no row conversion helper (%s); converting here", exc)

    def take(self) -> list[Helper]:
        with self._lock:
            helpers, self._helpers = self._helpers, []
            return helpers

    def close(self) -> None:
        with self._lock:
            self._closed = True
            helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.close()


class Helpers:
    """The helper processes of one reading, started once it has had ``after`` rows to
    validate (a small sheet, or a re-sync where little changed, never starts one), or
    for a response it hands on unparsed; ``early`` ones are used first."""

    def __init__(
        self,
        shapes: Sequence[TabShape],
        *,
        after: int,
        count: int | None = None,
        early: Early | None = None,
    ) -> None:
        self.shapes = shapes
        self.after = after
        self.count = helper_count() if count is None else count
        self.started: list[Helper] | None = None
        self.validated = 0  # rows validated here so far
        self.early = early.take() if early is not None else []

    def take(self, *, now: bool = False, batches: int = 1) -> Helper | None:
        """Return a helper with room for ``batches`` batches; None: convert them here.

        ``now``: start the helpers if they are not yet, whatever was validated so far
        (for a whole response, which this process has not even parsed). A response of
        more batches than DEPTH goes to a helper with nothing waiting only.
        """
        if (self.validated <= self.after and not now) or self.count < 1:
            return None  # parsed rows, few to validate: cheaper here than through a pipe
        if self.started is None:
            self.started = []
            try:
                for _ in range(self.count):
                    if self.early:
                        helper = self.early.pop()
                        helper.begin(self.shapes)
                    else:
                        helper = Helper(self.shapes)
                    self.started.append(helper)
            except OSError as exc:
                log.debug("no row conversion helper (%s); converting here", exc)
        room = max(DEPTH, batches)
        free = [h for h in self.started if h.waiting + batches <= room and h.usable()]
        if not free:
            return None
        helper = min(free, key=lambda h: h.waiting)
        helper.expect(batches)
        return helper

    def close(self) -> None:
        for helper in [*(self.started or ()), *self.early]:
            helper.close()


def _serve(inbox: Connection, outbox: Connection) -> None:
    """A helper's life: build the converters, then answer batches in order until EOF."""
    shapes: list[TabShape] = inbox.recv()
    converters = [Converter(shape) for shape in shapes]
    tasks: queue.SimpleQueue[Response | tuple[int, list[list[Any]]] | None] = queue.SimpleQueue()

    def take() -> None:
        # Always read what the main process sends, so its sends never wait on ours.
        try:
            while True:
                tasks.put(inbox.recv())
        except (OSError, EOFError):
            tasks.put(None)

    threading.Thread(target=take, daemon=True).start()
    outbox.send(_READY)
    while (task := tasks.get()) is not None:
        if isinstance(task, Response):
            outbox.send(sort_response(converters[task.tab], task))
        else:
            index, rows = task
            outbox.send(converters[index](rows))


def main(inbox: int, outbox: int) -> None:
    """Run a helper on the pipes ``inbox`` and ``outbox`` (file descriptors)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError, EOFError):  # the main process went away: all done
        _serve(Connection(inbox, writable=False), Connection(outbox, readable=False))


if __name__ == "__main__":
    # Through the module's own name: what is pickled names its classes that way.
    from listing_sync.pipeline.convert import main as serve

    serve(int(sys.argv[1]), int(sys.argv[2]))
