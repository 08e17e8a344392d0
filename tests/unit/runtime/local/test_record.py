"""The stack record `up` leaves in `.workerpool/`: private, read back as written, a broken one
named in one line, and filling only what the environment leaves unset."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from worker_runtime.cli import common
from worker_runtime.cli.common import use_local_stack
from worker_runtime.local import record

STACK = record.StackRecord(
    broker_url="redis://127.0.0.1:6390/0",
    result_backend="redis://127.0.0.1:6390/0",
    flower_user="admin",
    flower_password="s3cret",
    flower_url="http://127.0.0.1:5555",
    state_dir="/project/.workerpool/state",
    redis_port=6390,
    redis_pid=4242,
)


@pytest.fixture(autouse=True)
def _forget_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # use_local_stack remembers the record it used (for its error hint): not past this test.
    monkeypatch.setattr(common, "_stack_record", None)


def test_the_record_is_readable_by_its_owner_only_and_reads_back_as_written(
    tmp_path: Path,
) -> None:
    path = record.save(tmp_path, STACK)
    assert path == tmp_path / ".workerpool" / "stack.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert record.load(tmp_path) == STACK
    assert record.load(tmp_path / "elsewhere") is None
    assert record.load(tmp_path).stopped().redis_pid is None  # type: ignore[union-attr]


def test_a_broken_record_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = record.record_path(tmp_path)
    path.parent.mkdir()
    path.write_text('{"broker_url": ')
    with pytest.raises(record.StackRecordError, match=str(path)) as broken:
        record.load(tmp_path)
    assert "\n" not in str(broken.value)
    with pytest.raises(click.ClickException, match=str(path)):
        use_local_stack({}, tmp_path)


def test_commands_take_the_record_only_for_what_the_environment_leaves_unset(
    tmp_path: Path,
) -> None:
    record.save(tmp_path, STACK)
    empty: dict[str, str] = {"FLOWER_BASIC_AUTH": "me:mine"}
    use_local_stack(empty, tmp_path)
    assert empty == {
        "CELERY_BROKER_URL": STACK.broker_url,
        "CELERY_RESULT_BACKEND": STACK.result_backend,
        "FLOWER_BASIC_AUTH": "me:mine",
        "WORKERPOOL_STATE_DIR": STACK.state_dir,
    }
    given = {"CELERY_BROKER_URL": "redis://elsewhere:6379/0"}
    use_local_stack(given, tmp_path)
    assert given == {"CELERY_BROKER_URL": "redis://elsewhere:6379/0"}
