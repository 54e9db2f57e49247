"""Fan-out: results per host, fail-fast vs continue, two-stage Ctrl-C (real SIGINT too)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from roachctl.errors import ExitCode, InterruptedByUser, RemoteCommandError, TransportError
from roachctl.exec.fanout import FanoutFailures, Interrupts, fanout

pytestmark = pytest.mark.timeout(30)
HOSTS = ["h1", "h2", "h3", "h4"]


def test_results_in_host_order_and_concurrent() -> None:
    async def step(host: str) -> str:
        await asyncio.sleep(0.2 if host == "h1" else 0.01)
        return host.upper()

    async def scenario() -> dict[str, str]:
        return await asyncio.wait_for(fanout(HOSTS, step), 1.0)

    result = asyncio.run(scenario())
    assert list(result.items()) == [("h1", "H1"), ("h2", "H2"), ("h3", "H3"), ("h4", "H4")]


def test_limit_bounds_concurrency() -> None:
    running, peak = 0, 0

    async def step(host: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    asyncio.run(fanout([f"h{i}" for i in range(20)], step, limit=3))
    assert peak == 3


def test_continue_on_error_collects_every_failure_and_successes() -> None:
    async def step(host: str) -> int:
        if host == "h2":
            raise TransportError("unreachable", where=host)
        if host == "h3":
            raise RemoteCommandError("boom", where=host)
        return 1

    with pytest.raises(FanoutFailures) as info:
        asyncio.run(fanout(HOSTS, step, continue_on_error=True))
    err = info.value
    assert set(err.failures) == {"h2", "h3"} and err.succeeded == ["h1", "h4"] and err.not_started == []
    assert err.exit_code == ExitCode.REMOTE_COMMAND
    assert "  h2: unreachable\n" in err.render() and "succeeded: h1, h4" in err.render()


def test_fail_fast_stops_starting_but_lets_running_steps_finish() -> None:
    finished: list[str] = []

    async def step(host: str) -> None:
        if host == "h1":
            raise TransportError("down", where=host)
        await asyncio.sleep(0.1)
        finished.append(host)

    with pytest.raises(FanoutFailures) as info:
        asyncio.run(fanout(HOSTS, step, limit=2))
    err = info.value
    assert list(err.failures) == ["h1"]
    assert err.succeeded == ["h2"] and finished == ["h2"], "the in-flight step was cut"
    assert err.not_started == ["h3", "h4"] and "not started: h3, h4" in err.render()


def test_unexpected_exception_is_wrapped_not_lost() -> None:
    async def step(host: str) -> None:
        raise KeyError("bug")

    with pytest.raises(FanoutFailures) as info:
        asyncio.run(fanout(["h1"], step))
    assert isinstance(info.value.failures["h1"].__cause__, KeyError)
    assert info.value.exit_code == ExitCode.INTERNAL


def test_first_interrupt_finishes_in_flight_and_starts_nothing_new() -> None:
    ctl_holder: list[Interrupts] = []
    finished: list[str] = []

    async def step(host: str) -> None:
        if host == "h1":
            ctl_holder[0].interrupt()
        await asyncio.sleep(0.1)
        finished.append(host)

    async def scenario() -> None:
        ctl_holder.append(Interrupts())
        await fanout(HOSTS, step, limit=2, interrupts=ctl_holder[0])

    with pytest.raises(InterruptedByUser) as info:
        asyncio.run(scenario())
    assert sorted(finished) == ["h1", "h2"]
    assert "not started: h3, h4" in info.value.message and info.value.exit_code == 130


def test_second_interrupt_cancels_running_steps() -> None:
    cancelled: list[str] = []

    async def step(host: str) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(host)
            raise

    async def scenario() -> None:
        ctl = Interrupts()

        async def press_twice() -> None:
            await asyncio.sleep(0.1)
            ctl.interrupt()
            await asyncio.sleep(0.1)
            ctl.interrupt()

        presser = asyncio.create_task(press_twice())
        try:
            await asyncio.wait_for(fanout(HOSTS, step, interrupts=ctl), 5)
        finally:
            await presser

    with pytest.raises(InterruptedByUser, match="failed: h1, h2, h3, h4"):
        asyncio.run(scenario())
    assert sorted(cancelled) == HOSTS


def test_real_sigint_is_routed_to_the_two_stage_handler() -> None:
    finished: list[str] = []

    async def step(host: str) -> None:
        if host == "h1":
            os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0.2)
        finished.append(host)

    with pytest.raises(InterruptedByUser):
        asyncio.run(fanout(HOSTS, step, limit=1))
    assert finished == ["h1"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "SIGINT handler not restored"


def test_outer_cancellation_propagates() -> None:
    async def step(host: str) -> None:
        await asyncio.sleep(10)

    async def scenario() -> None:
        await asyncio.wait_for(fanout(HOSTS, step), 0.2)

    with pytest.raises(TimeoutError):
        asyncio.run(scenario())


def test_duplicate_hosts_run_once() -> None:
    calls: list[str] = []

    async def step(host: str) -> None:
        calls.append(host)

    assert list(asyncio.run(fanout(["a", "b", "a"], step))) == ["a", "b"]
    assert calls == ["a", "b"]
