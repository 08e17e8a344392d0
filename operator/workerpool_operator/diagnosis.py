"""Why a component's pods do not become ready, read from their container statuses.

A Deployment only says "not ready" and, after ten minutes, ProgressDeadlineExceeded. The pods
say why at once: an image that cannot be pulled (ErrImagePull/ImagePullBackOff), a container
that keeps exiting (CrashLoopBackOff) with its last words in `lastState.terminated.message`
(the builders set `terminationMessagePolicy: FallbackToLogsOnError`, so a Python traceback's
last line lands there). Pure: takes pods as returned by the API server; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from workerpool_operator.names import Component
from workerpool_operator.status import Problem

#: Waiting reasons that need a human: the kubelet keeps retrying, but the same spec fails again.
WAITING_FAILURES: Final = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
# A status message stays readable in `kubectl get wp` and `kubectl describe`.
_MAX_DETAIL: Final = 300


def diagnose(component: Component, pods: Iterable[Mapping[str, Any]]) -> Problem | None:
    """The first failing container of the component's pods, as a Stalled problem."""
    for pod in sorted(pods, key=_name):
        for status in _container_statuses(pod):
            found = _failure(status)
            if found is not None:
                reason, detail = found
                message = (
                    f"{component}: container {status.get('name')} of pod {_name(pod)} {reason}"
                )
                return Problem(reason, f"{message}: {detail}" if detail else message)
    return None


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", "?"))


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _failure(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, detail) when the container is failing, else None."""
    state = status.get("state") or {}
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in WAITING_FAILURES:
        # The kubelet's waiting message says what it could not do (pull, find a Secret key);
        # for a crash loop the last exit says why the program stopped.
        detail = _last_exit(status.get("lastState") or {}) or str(waiting.get("message") or "")
        return str(waiting["reason"]), _short(detail)
    terminated = state.get("terminated") or {}
    if terminated and terminated.get("exitCode", 0) != 0:
        return str(terminated.get("reason") or "Error"), _short(_last_exit(state))
    return None


# Termination reasons that say more than the exit code: the kernel killed the container for
# its memory limit, which its own log (the last words otherwise) never mentions.
_TERMINATION_HINTS: Final = {
    "OOMKilled": "OOMKilled: over its memory limit",
}


def _last_exit(state: Mapping[str, Any]) -> str:
    terminated = state.get("terminated") or {}
    if not terminated:
        return ""
    code = f"exit code {terminated.get('exitCode')}"
    hint = _TERMINATION_HINTS.get(str(terminated.get("reason")))
    if hint:
        code = f"{code} ({hint})"
    words = _last_line(str(terminated.get("message") or ""))
    return f"{code}: {words}" if words else code


def _last_line(text: str) -> str:
    """A traceback or a one-line CLI error both end with the line that names the error."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _short(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."
