"""The reconciler, pure: an `EggoCluster`, its desired config and its live Jobs in; a decision out.

Why pure: every rule (one Job per cluster, adopt instead of duplicate, join/delete for
membership-only changes, retry after a pause, the finalizer's cleanup, no Job for a bad
config) is a function of data the loop reads from the API, so each is a unit test and the
loop only carries decisions out. The decision is idempotent: the same inputs give the same
Job name and the same status, so applying it twice (an operator restarted mid-way) does no
harm.

The order of the rules:
1. record finished Jobs the status does not know yet (their result, applied config, revision);
2. a Job still running: adopt it, wait;
3. being deleted: cleanup Job (once something was deployed), then drop the state, then the finalizer;
4. no finalizer yet: add it before anything is deployed;
5. a config that fails validation: ConfigValid=False with its problems, an Event, no Job;
6. the desired config equals the applied one: Ready;
7. otherwise the next run (delete, join or deploy), after the retry pause if the same run failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from eggo_nornir.errors import EggoError
from eggo_nornir.operator import crd
from eggo_nornir.operator.desired import Desired, canonical, canonical_text, check_document, diff
from eggo_nornir.operator.jobs import JobPlan, JobView, kubeconfig_secret, state_secret

HISTORY_LIMIT = 10
DEFAULT_RETRY_SECONDS = 300
_PHASE_OF_ACTION = {"deploy": "Deploying", "join": "Joining", "delete": "Deleting", "cleanup": "CleaningUp"}
_MAX_MESSAGE = 2000


@dataclass(frozen=True)
class Event:
    type: str  # "Normal" or "Warning"
    reason: str
    message: str


@dataclass
class Decision:
    """What the loop does for one object: patch status, maybe a Job, maybe the finalizer."""

    status: dict[str, Any]
    job: JobPlan | None = None
    events: list[Event] = field(default_factory=list)
    add_finalizer: bool = False
    remove_finalizer: bool = False
    delete_secrets: tuple[str, ...] = ()
    requeue_after: float | None = None


def _ts(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(text: str) -> dt.datetime | None:
    """An API timestamp: `...Z` from JSON, `...+00:00` from the client's serialized datetimes."""
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, TypeError, ValueError):
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)


def set_condition(
    status: dict[str, Any],
    ctype: str,
    value: bool | None,
    reason: str,
    message: str,
    gen: int,
    now: dt.datetime,
) -> None:
    """Set one condition; its lastTransitionTime moves only when its status flips."""
    text = "Unknown" if value is None else ("True" if value else "False")
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != ctype]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)
    since = old["lastTransitionTime"] if old and old.get("status") == text else _ts(now)
    conditions.append(
        {
            "type": ctype,
            "status": text,
            "reason": reason,
            "message": message[:_MAX_MESSAGE],
            "lastTransitionTime": since,
            "observedGeneration": gen,
        }
    )
    order = {t: i for i, t in enumerate(crd.CONDITION_TYPES)}
    status["conditions"] = sorted(conditions, key=lambda c: order.get(c["type"], 99))


def condition(status: Mapping[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def _seconds(start: str, end: str) -> float | None:
    a, b = _parse_ts(start), _parse_ts(end)
    return (b - a).total_seconds() if a and b else None


def _run_record(job: JobView) -> dict[str, Any]:
    s = job.summary
    record: dict[str, Any] = {
        "job": job.name,
        "action": job.action,
        "nodes": list(job.nodes),
        "digest": job.digest,
        "attempt": job.attempt,
        "revision": job.revision,
        "result": "Succeeded" if job.state == "succeeded" else "Failed",
        "startTime": job.start,
        "completionTime": job.end,
    }
    seconds = s.get("seconds", _seconds(job.start, job.end))
    if seconds is not None:
        record["seconds"] = seconds
    for key in ("exitCode", "changed", "failedHosts", "problems", "message", "hosts"):
        if key in s:
            record[key] = s[key]
    if job.state == "failed" and "message" not in record:
        record["message"] = "the Job failed without a summary (see its pod's log)"
    return record


def _record_finished(status: dict[str, Any], jobs: Sequence[JobView], events: list[Event]) -> JobView | None:
    """Fold finished, unrecorded Jobs into status (oldest first); returns the newest recorded."""
    known = {r.get("job") for r in status.get("history") or []}
    last: JobView | None = None
    for job in sorted((j for j in jobs if j.finished and j.name not in known), key=lambda j: (j.end, j.name)):
        record = _run_record(job)
        status["lastRun"] = record
        brief = {k: v for k, v in record.items() if k != "hosts"}
        status["history"] = [brief, *(status.get("history") or [])][:HISTORY_LIMIT]
        if job.state == "succeeded":
            status["appliedConfig"] = job.target
            if job.revision:
                status["lastAppliedRevision"] = job.revision
            if "readyNodes" in job.summary:
                status["readyNodes"] = job.summary["readyNodes"]
            events.append(Event("Normal", f"{job.action.capitalize()}Succeeded", _run_line(record)))
        else:
            events.append(Event("Warning", f"{job.action.capitalize()}Failed", _run_line(record)))
        last = job
    return last


def _run_line(record: Mapping[str, Any]) -> str:
    parts = [f"{record['action']} {record['result'].lower()} (Job {record['job']})"]
    if record.get("seconds") is not None:
        parts.append(f"in {record['seconds']:.0f}s")
    if record.get("changed") is not None:
        parts.append(f"{record['changed']} changed")
    if record.get("failedHosts"):
        parts.append("failed hosts: " + ", ".join(record["failedHosts"]))
    if record.get("message"):
        parts.append(str(record["message"]))
    return "; ".join(parts)


def _applied(status: Mapping[str, Any]) -> dict[str, Any] | None:
    text = status.get("appliedConfig")
    if not text:
        return None
    doc = yaml.safe_load(text)
    return doc if isinstance(doc, dict) else None


def reconcile(
    obj: Mapping[str, Any],
    jobs: Sequence[JobView],
    desired: Desired,
    now: dt.datetime,
) -> Decision:
    """The decision for `obj` given its live Jobs and its checked desired config."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    name, gen = meta["name"], int(meta.get("generation") or 0)
    revision = (meta.get("annotations") or {}).get(crd.ANNOTATION_REVISION, "")
    status: dict[str, Any] = {k: v for k, v in (obj.get("status") or {}).items()}
    events: list[Event] = []
    decision = Decision(status, events=events)
    status["desiredRevision"] = revision
    status.pop("activeJob", None)

    _record_finished(status, jobs, events)
    active = [j for j in jobs if not j.finished]
    if active:
        job = active[0]
        status["activeJob"] = job.name
        status["phase"] = _PHASE_OF_ACTION.get(job.action, "Deploying")
        set_condition(
            status, "Reconciling", True, f"{job.action.capitalize()}Running", f"Job {job.name}", gen, now
        )
        return decision

    applied = _applied(status)
    deleting = bool(meta.get("deletionTimestamp"))
    finalizers = meta.get("finalizers") or []
    if deleting:
        return _finalize(decision, obj, applied, revision, now)
    if crd.FINALIZER not in finalizers:
        decision.add_finalizer = True

    if desired.problems or desired.config is None:
        text = "\n".join(str(p) for p in desired.problems)
        old = condition(status, "ConfigValid")
        if not old or old.get("status") != "False" or old.get("message") != text[:_MAX_MESSAGE]:
            events.append(Event("Warning", desired.reason or "ConfigInvalid", text))
        set_condition(status, "ConfigValid", False, desired.reason or "ConfigInvalid", text, gen, now)
        set_condition(status, "Ready", False, "ConfigInvalid", "the desired config is not valid", gen, now)
        set_condition(status, "Reconciling", False, "ConfigInvalid", "no Job for an invalid config", gen, now)
        status["phase"] = "Invalid"
        status["observedGeneration"] = gen
        return decision
    set_condition(status, "ConfigValid", True, "Valid", "", gen, now)
    status["observedGeneration"] = gen

    change = diff(applied, desired.canonical)
    if change.kind == "none":
        status["phase"] = "Ready"
        if revision:
            status["lastAppliedRevision"] = revision
        set_condition(status, "Ready", True, "Applied", f"revision {revision or '-'} is applied", gen, now)
        set_condition(status, "Reconciling", False, "Applied", "", gen, now)
        return decision
    if spec.get("suspend"):
        set_condition(status, "Reconciling", False, "Suspended", "spec.suspend is true", gen, now)
        return decision

    base = canonical_text(applied) if applied else ""
    if change.kind == "delete":
        try:
            target = _after_delete(applied or {}, change.nodes)
        except EggoError as exc:
            return _refused(decision, str(exc), gen, now)
    else:
        target = desired.text
    plan = JobPlan(name, change.kind, base, target, revision, nodes=change.nodes, join=change.join)
    return _start(decision, plan, spec, now, gen)


def _after_delete(applied: Mapping[str, Any], names: Sequence[str]) -> str:
    """The canonical config once `names` are deleted (refused like the CLI's `delete`)."""
    from eggo_nornir.config.membership import delete_nodes

    checked = check_document(canonical_text(applied), str(applied.get("cluster-id", "")))
    if checked.config is None:
        raise EggoError("; ".join(str(p) for p in checked.problems))
    remaining, _ = delete_nodes(checked.config, list(names))
    return canonical_text(canonical(remaining))


def _refused(decision: Decision, message: str, gen: int, now: dt.datetime) -> Decision:
    status = decision.status
    old = condition(status, "Ready")
    if not old or old.get("message") != message:
        decision.events.append(Event("Warning", "DeleteRefused", message))
    set_condition(status, "Ready", False, "DeleteRefused", message, gen, now)
    set_condition(status, "Reconciling", False, "DeleteRefused", "no Job: the delete is refused", gen, now)
    status["phase"] = "Failed"
    return decision


def _start(
    decision: Decision, plan: JobPlan, spec: Mapping[str, Any], now: dt.datetime, gen: int
) -> Decision:
    """Start `plan` (as the next attempt, after the retry pause if the same run failed last)."""
    status = decision.status
    last = status.get("lastRun") or {}
    if last.get("digest") == plan.digest and last.get("result") == "Failed":
        retry = float(spec.get("retryIntervalSeconds") or DEFAULT_RETRY_SECONDS)
        ended = _parse_ts(last.get("completionTime", "")) or now
        wait = (ended - now).total_seconds() + retry
        if wait > 0:
            status["phase"] = "Failed"
            set_condition(status, "Ready", False, "RunFailed", _run_line(last), gen, now)
            set_condition(
                status, "Reconciling", False, "RetryPending", f"next attempt in {wait:.0f}s", gen, now
            )
            decision.requeue_after = wait
            return decision
    # the same run done before (a retry, or a change made and undone since): the next attempt,
    # so the name never meets a finished Job the history already holds
    done = [int(r.get("attempt") or 1) for r in status.get("history") or [] if r.get("digest") == plan.digest]
    if done:
        plan = JobPlan(**{**plan.__dict__, "attempt": max(done) + 1})
    decision.job = plan
    status["activeJob"] = plan.name
    status["phase"] = _PHASE_OF_ACTION[plan.action]
    what = f"{plan.action} {', '.join(plan.nodes)}".strip()
    set_condition(
        status,
        "Reconciling",
        True,
        f"{plan.action.capitalize()}Started",
        f"Job {plan.name}: {what}",
        gen,
        now,
    )
    if condition(status, "Ready") is None or (plan.action == "deploy" and not plan.base):
        set_condition(status, "Ready", False, "Deploying", "not deployed yet", gen, now)
    decision.events.append(
        Event("Normal", "JobCreated", f"Job {plan.name}: {what} (revision {plan.revision or '-'})")
    )
    return decision


def _finalize(
    decision: Decision,
    obj: Mapping[str, Any],
    applied: Mapping[str, Any] | None,
    revision: str,
    now: dt.datetime,
) -> Decision:
    """Deletion: clean the machines (if anything was deployed), then drop the state and the finalizer."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    name, gen = meta["name"], int(meta.get("generation") or 0)
    status = decision.status
    if crd.FINALIZER not in (meta.get("finalizers") or []):
        return decision
    last = status.get("lastRun") or {}
    cleaned = last.get("action") == "cleanup" and last.get("result") == "Succeeded"
    if applied is None or cleaned:
        decision.remove_finalizer = True
        decision.delete_secrets = (state_secret(name), kubeconfig_secret(name))
        decision.events.append(Event("Normal", "Finalized", "machines cleaned; state Secrets removed"))
        return decision
    base = canonical_text(applied)
    plan = JobPlan(name, "cleanup", base, "", revision)
    return _start(decision, plan, spec, now, gen)


def desired_of(obj: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]]) -> Desired:
    """The checked desired config of `obj` (the ConfigMaps it may reference given as data)."""
    from eggo_nornir.operator.desired import spec_document

    text, early = spec_document(obj.get("spec") or {}, configmaps)
    if early.problems:
        return early
    return check_document(text, obj["metadata"]["name"])
