"""DataProcessingWorker: processes one user's data with the given options."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker_runtime import Logger, Worker


class DataProcessingWorker(Worker):
    queue = "default"
    max_retries = 3

    @classmethod
    def perform(cls, user_id: int, processing_options: dict[str, Any]) -> dict[str, Any]:
        Logger.info(message=f"Starting data processing for user {user_id}", user_id=user_id)
        processed = {
            "user_id": user_id,
            "status": "completed",
            "processed_at": datetime.now(UTC).isoformat(),
            "options": processing_options,
        }
        Logger.info(message=f"Data processing completed for user {user_id}", user_id=user_id)
        return processed
