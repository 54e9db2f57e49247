"""Fan-out: run one async step on many hosts at once, with caps, failure collection and safe Ctrl-C.

Why not a bare `TaskGroup`: a TaskGroup cancels every sibling on the first failure, which would cut
remote steps in half on healthy hosts. Here a failure (or the first Ctrl-C) only stops *starting*
new hosts; steps already running finish, and the caller learns exactly which hosts succeeded,
failed, or were never touched (`FanoutFailures`). A second Ctrl-C cancels the running steps (the
executors then kill their ssh clients). Connection caps live in the transport (`OpenSSH`), session
caps in each executor, so any fan-out shape respects sshd's MaxStartups/MaxSessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from roachctl.errors import HostFailures, InterruptedByUser, RoachctlError

T = TypeVar("T")


@dataclass
class FanoutFailures(HostFailures):
    """HostFailures plus the hosts that were never started (fail-fast stopped before them)."""

    not_started: list[str] = field(default_factory=list)

    def __hash__(self) -> int:
        return id(self)

    def render(self) -> str:
        text = super().render()
        if self.not_started:
            text += f"\n  not started: {', '.join(sorted(self.not_started))}"
        return text


class Interrupts:
    """Two-stage Ctrl-C for one operation: the first stops new work, the second cancels running work.

    Share one instance across the stages of an operation; `install()` routes SIGINT (and SIGTERM)
    to it. The first Ctrl-C only sets `requested`: fan-outs stop starting hosts and rolling steps
    and waits check it between steps. The second Ctrl-C, or a SIGTERM (a CI cancel, a service
    manager), cancels the steps in flight *and* the operation's own task, so nothing — a download, a
    readiness wait, `sql -e` — can ignore it; the executors kill their ssh clients on the way out.
    """

    def __init__(self) -> None:
        self.count = 0
        self.terminated = False
        self.stopping = asyncio.Event()
        self._running: set[asyncio.Task[Any]] = set()
        self._main: asyncio.Task[Any] | None = None

    def interrupt(self) -> None:
        """What SIGINT does (callable directly from tests)."""
        self.count += 1
        self.stopping.set()
        if self.count >= 2:
            self._cancel_all()

    def terminate(self) -> None:
        """What SIGTERM does: like a second Ctrl-C at once."""
        self.terminated = True
        self.count = max(self.count, 2)
        self.stopping.set()
        self._cancel_all()

    def _cancel_all(self) -> None:
        for task in list(self._running):
            task.cancel()
        if self._main is not None and not self._main.done():
            self._main.cancel()

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def cancelled(self) -> bool:
        """The operation was cancelled (second Ctrl-C or SIGTERM), not just asked to stop."""
        return self.count >= 2

    def track(self, task: asyncio.Task[Any]) -> None:
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    @contextlib.contextmanager
    def install(self, *, operation: bool = True) -> Iterator[None]:
        """Handle SIGINT and SIGTERM inside the block (main thread only; else a no-op).

        With `operation` (a whole command's controller, operation/session.py) the task that enters
        the block is the one a second Ctrl-C or a SIGTERM cancels. A lone fan-out's own controller
        cancels only its steps, and reports them as failures (InterruptedByUser).
        """
        loop = asyncio.get_running_loop()
        try:
            previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
            loop.add_signal_handler(signal.SIGTERM, self.terminate)
        except (ValueError, RuntimeError, NotImplementedError):
            yield  # not the main thread, or no signal support: Ctrl-C keeps its default behaviour
            return
        self._main = asyncio.current_task() if operation else None
        try:
            yield
        finally:
            self._main = None
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)


async def in_daemon_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking `fn` (a download, an extraction) off the event loop, so Ctrl-C and SIGTERM
    are still handled while it runs.

    Not `asyncio.to_thread`: `asyncio.run` waits for the default executor's threads at exit, so a
    cancelled operation would still wait for the whole download. A daemon thread is abandoned
    instead; everything it writes is atomic (temp file + rename), so nothing half-written stays.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the awaiting task, which re-raises it
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(deliver, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, result, None)

    threading.Thread(target=work, name=f"roachctl-{getattr(fn, '__name__', 'work')}", daemon=True).start()
    return await future


def _as_roachctl_error(exc: BaseException) -> RoachctlError:
    if isinstance(exc, RoachctlError):
        return exc
    if isinstance(exc, asyncio.CancelledError):
        return RoachctlError("cancelled (second Ctrl-C) while running")
    wrapped = RoachctlError(f"internal error: {type(exc).__name__}: {exc}")
    wrapped.__cause__ = exc
    return wrapped


@dataclass
class _Outcome:
    results: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, RoachctlError] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)


async def fanout(
    hosts: Iterable[str],
    step: Callable[[str], Awaitable[T]],
    *,
    continue_on_error: bool = False,
    limit: int | None = None,
    interrupts: Interrupts | None = None,
) -> dict[str, T]:
    """Run `step(host)` for every host concurrently; return {host: result} in the given host order.

    Args:
        continue_on_error: keep starting hosts after a failure (default: stop starting new ones;
            running ones always finish).
        limit: at most this many hosts in flight (None: all; connection caps still apply).
        interrupts: a shared two-stage Ctrl-C controller; without one, SIGINT is handled for the
            duration of this call.

    Raises:
        FanoutFailures: one or more hosts failed; carries which succeeded and which never started.
        InterruptedByUser: Ctrl-C; raised after running steps finished (or were cancelled).
    """
    ordered = list(dict.fromkeys(hosts))
    ctl = interrupts or Interrupts()
    installer: contextlib.AbstractContextManager[None] = (
        contextlib.nullcontext() if interrupts else ctl.install(operation=False)
    )
    outcome = _Outcome()
    gate = asyncio.Semaphore(limit or max(1, len(ordered)))
    failed = asyncio.Event()

    async def one(host: str) -> None:
        async with gate:
            if ctl.requested or (failed.is_set() and not continue_on_error):
                outcome.not_started.append(host)
                return
            task = asyncio.create_task(_call(step, host))
            ctl.track(task)
            try:
                outcome.results[host] = await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    task.cancel()  # the fan-out itself was cancelled from outside
                    raise
                outcome.failures[host] = _as_roachctl_error(asyncio.CancelledError())
                failed.set()
            except BaseException as exc:  # every host failure is collected, none lost
                outcome.failures[host] = _as_roachctl_error(exc)
                failed.set()

    with installer:
        await asyncio.gather(*(one(host) for host in ordered))
    return _finish(ordered, outcome, ctl)


async def _call(step: Callable[[str], Awaitable[T]], host: str) -> T:
    return await step(host)


def _finish(ordered: list[str], outcome: _Outcome, ctl: Interrupts) -> dict[str, Any]:
    succeeded = [h for h in ordered if h in outcome.results]
    if ctl.requested:
        parts = [f"{len(succeeded)} host(s) finished" + (f" ({', '.join(succeeded)})" if succeeded else "")]
        if outcome.failures:
            parts.append(f"failed: {', '.join(sorted(outcome.failures))}")
        if outcome.not_started:
            parts.append(f"not started: {', '.join(outcome.not_started)}")
        raise InterruptedByUser("interrupted; " + "; ".join(parts))
    if outcome.failures:
        raise FanoutFailures(
            failures=dict(outcome.failures),
            succeeded=succeeded,
            not_started=[h for h in ordered if h in outcome.not_started],
        )
    return {host: outcome.results[host] for host in ordered}


class SettledInterrupt(InterruptedByUser):
    """Ctrl-C during `fanout_settled`; carries what the hosts that did finish returned or raised."""

    def __init__(
        self, cause: InterruptedByUser, results: dict[str, Any], failures: dict[str, RoachctlError]
    ) -> None:
        super().__init__(cause.message, hint=cause.hint, where=cause.where)
        self.results = results
        self.failures = failures


async def fanout_settled(
    hosts: Iterable[str],
    step: Callable[[str], Awaitable[T]],
    *,
    limit: int | None = None,
    interrupts: Interrupts | None = None,
) -> tuple[dict[str, T], dict[str, RoachctlError]]:
    """Run `step` on every host; return (results, failures) by host, both in the given host order.

    For operations that report per host: a host's RoachctlError is its outcome, never a reason
    to lose the other hosts' results (`fanout` raises FanoutFailures and keeps only names).
    Ctrl-C raises SettledInterrupt (an InterruptedByUser) with the partial outcome; any other
    exception raises as in `fanout`.
    """
    ordered = list(dict.fromkeys(hosts))
    results: dict[str, T] = {}
    failures: dict[str, RoachctlError] = {}

    async def settled(host: str) -> None:
        try:
            results[host] = await step(host)
        except RoachctlError as exc:
            failures[host] = exc

    try:
        await fanout(ordered, settled, continue_on_error=True, limit=limit, interrupts=interrupts)
    except InterruptedByUser as exc:
        raise SettledInterrupt(exc, dict(results), dict(failures)) from exc
    return (
        {h: results[h] for h in ordered if h in results},
        {h: failures[h] for h in ordered if h in failures},
    )
