"""Redis key names the recording jobs of both systems write to, and the runner reads.

Its own module so `plain_celery.py` needs nothing from `worker_runtime` (the baseline must not
share our code) while both sides record into the same places.
"""

from typing import Final

#: "<probe> <epoch>" per critical job start (priority scenario).
CRITICAL_STARTS: Final = "bench:critical-started"
#: Seconds between due time and start, one per scheduled job (dispatch lag scenario).
DUE_LAGS: Final = "bench:due-lag"
