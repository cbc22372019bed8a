"""One way to write a time for a machine: ``realtime.timestamps.isoformat``."""

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from realtime import timestamps
from realtime.timestamps import isoformat

ROOT = Path(__file__).resolve().parent.parent
# The one place allowed to format a time itself, and a table printed for people (not parsed by programs).
OWN_FORMATTERS = {Path("realtime/timestamps.py"), Path("realtime/management/commands/agent_key.py")}


def test_utc_with_a_z_to_the_microsecond():
    assert isoformat(datetime(2026, 5, 1, 14, 0, tzinfo=UTC)) == "2026-05-01T14:00:00.000000Z"
    assert isoformat(datetime(2026, 5, 1, 14, 0, 0, 1234, tzinfo=UTC)) == "2026-05-01T14:00:00.001234Z"
    paris = timezone(timedelta(hours=2))
    assert isoformat(datetime(2026, 5, 1, 16, 0, tzinfo=paris)) == "2026-05-01T14:00:00.000000Z"


def test_epoch_seconds_and_none():
    assert isoformat(0) == "1970-01-01T00:00:00.000000Z"
    assert isoformat(1_777_644_000) == "2026-05-01T14:00:00.000000Z"
    assert isoformat(None) is None


def test_comparing_the_text_compares_the_times():
    base = datetime(2026, 5, 1, 14, 0, tzinfo=UTC)
    moments = [base + timedelta(microseconds=n) for n in (0, 1, 999_999, 1_000_000)] + [base.replace(year=999)]
    assert sorted(moments) == sorted(moments, key=isoformat)
    assert len({len(isoformat(m)) for m in moments}) == 1


def test_now_is_parseable_and_current():
    before = datetime.now(UTC)
    parsed = datetime.fromisoformat(timestamps.now())
    assert before <= parsed <= datetime.now(UTC)


def test_no_other_module_formats_a_time_for_output():
    offenders = []
    for package in ("realtime", "mcp_sidecar"):
        for path in (ROOT / package).rglob("*.py"):
            where = path.relative_to(ROOT)
            if where in OWN_FORMATTERS or "migrations" in where.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\.isoformat\(|\.strftime\(|\+00:00", line):
                    offenders.append(f"{where}:{number}: {line.strip()}")
    assert not offenders, "format times with realtime.timestamps.isoformat:\n" + "\n".join(offenders)
