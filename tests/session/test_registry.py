"""SessionRegistry bookkeeping under concurrent starts and ends."""

from __future__ import annotations

import threading

from alphaswarm.paper.registry import SessionRegistry


def test_version_bumps_from_many_threads_all_count():
    reg = SessionRegistry(name="concurrent")
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def bump_many() -> None:
        start.wait()
        try:
            for _ in range(500):
                reg.ended(None)  # what every session end does; a start bumps the same way
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=bump_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert reg.version == 8 * 500
    assert reg.param["version"].constant  # still read-only from outside
