"""The profiler's reading of py-spy's folded stacks: pool children told from the consumer,
time charged to the library of the innermost frame."""

from __future__ import annotations

from tests.benchmarks.profile import library_of, parse_folded

ROOT = 'process 7:"python -m worker_runtime worker";_run_module_as_main (<frozen runpy>:198)'
CONSUMER = f"{ROOT};asynloop (celery/worker/loops.py:130);Redis.__init__ (redis/client.py:300)"
CHILD = (
    f"{ROOT};Worker.__call__ (billiard/pool.py:351);trace_task (celery/app/trace.py:453);"
    "run_job (worker_runtime/execution/attempt.py:80)"
)


def test_samples_split_into_consumer_and_pool_children_by_the_billiard_frame() -> None:
    profiles = parse_folded([f"{CONSUMER} 30", f"{CHILD} 10", f"{CONSUMER} 5", "garbage"])

    consumer = profiles["main process (consumer, its threads)"]
    children = profiles["pool children"]
    assert (consumer.samples, children.samples) == (35, 10)
    assert consumer.by_library == {"redis-py": 35}
    assert children.by_library == {"workerpool": 10}
    assert consumer.self_time["Redis.__init__ (redis/client.py)"] == 35
    assert children.inclusive["trace_task (celery/app/trace.py)"] == 10


def test_frames_outside_known_libraries_are_charged_to_the_standard_library_or_other() -> None:
    assert library_of("kombu/transport/redis.py") == "kombu"
    assert library_of("json/encoder.py") == "stdlib/other"
    assert library_of("<frozen abc>") == "stdlib/other"
