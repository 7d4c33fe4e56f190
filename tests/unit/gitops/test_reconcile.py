"""Every decision of the pure reconciler."""

from __future__ import annotations

import datetime as dt

import yaml

from eggo_nornir.operator import crd
from eggo_nornir.operator.reconcile import HISTORY_LIMIT, condition, desired_of, reconcile
from gitops.helpers import NOW, doc, finished, obj, running


def decide(o, jobs=(), configmaps=None, now=NOW):
    return reconcile(o, list(jobs), desired_of(o, configmaps or {}), now)


def applied_after(o, jobs=(), now=NOW):
    """Run the first decision's Job to success and return the object with the recorded status."""
    d = decide(o, jobs, now=now)
    assert d.job is not None
    done = finished(d.job, readyNodes="2/2", changed=12, seconds=61.5)
    after = dict(o, status=d.status)
    return reconcile(after, [done], desired_of(after, {}), now), d.job


def test_new_cluster_starts_a_deploy_job_and_asks_for_the_finalizer() -> None:
    d = decide(obj(finalizers=()))
    assert d.add_finalizer
    assert d.job is not None and d.job.action == "deploy" and d.job.base == ""
    assert d.status["phase"] == "Deploying"
    assert d.status["activeJob"] == d.job.name
    assert condition(d.status, "ConfigValid")["status"] == "True"
    assert condition(d.status, "Reconciling")["reason"] == "DeployStarted"
    assert condition(d.status, "Ready")["status"] == "False"
    assert [e.reason for e in d.events] == ["JobCreated"]


def test_the_job_name_is_deterministic() -> None:
    assert decide(obj()).job.name == decide(obj()).job.name
    assert decide(obj()).job.name.startswith("alpha-deploy-")
    assert decide(obj()).job.name != decide(obj(deploy=doc(workers=2))).job.name


def test_a_running_job_is_adopted_not_duplicated() -> None:
    first = decide(obj()).job
    d = decide(obj(), [running(first)])
    assert d.job is None
    assert d.status["activeJob"] == first.name
    assert d.status["phase"] == "Deploying"
    assert condition(d.status, "Reconciling")["status"] == "True"


def test_any_running_job_blocks_a_new_one_even_for_another_config() -> None:
    first = decide(obj()).job
    d = decide(obj(deploy=doc(workers=3), generation=2), [running(first)])
    assert d.job is None and d.status["activeJob"] == first.name


def test_a_succeeded_job_is_recorded_and_the_cluster_is_ready() -> None:
    d, plan = applied_after(obj(revision="abc123"))
    s = d.status
    assert d.job is None
    assert s["phase"] == "Ready"
    assert s["lastAppliedRevision"] == "abc123"
    assert s["readyNodes"] == "2/2"
    assert s["lastRun"]["job"] == plan.name and s["lastRun"]["result"] == "Succeeded"
    assert s["lastRun"]["changed"] == 12 and s["lastRun"]["seconds"] == 61.5
    assert s["history"][0]["job"] == plan.name
    assert yaml.safe_load(s["appliedConfig"])["cluster-id"] == "alpha"
    assert condition(s, "Ready")["status"] == "True"
    assert condition(s, "Reconciling")["status"] == "False"
    assert s["observedGeneration"] == 1
    assert "DeploySucceeded" in [e.reason for e in d.events]


def test_recording_twice_changes_nothing() -> None:
    d, plan = applied_after(obj())
    again = dict(obj(), status=d.status)
    d2 = decide(again, [finished(plan)])
    assert d2.job is None and d2.status["history"] == d.status["history"] and not d2.events


def test_same_config_at_a_new_commit_is_ready_at_that_commit_without_a_job() -> None:
    d, _ = applied_after(obj(revision="one"))
    d2 = decide(obj(revision="two", status=d.status))
    assert d2.job is None and d2.status["lastAppliedRevision"] == "two"


def test_an_added_worker_is_joined_not_redeployed() -> None:
    d, _ = applied_after(obj())
    d2 = decide(obj(deploy=doc(workers=2), generation=2, status=d.status))
    assert d2.job.action == "join"
    assert d2.job.nodes == ("10.237.1.21",)
    assert d2.job.join == (
        {"ip": "10.237.1.21", "roles": ["worker"], "name": "alpha-w1", "arch": "amd64", "port": 22},
    )
    assert d2.status["phase"] == "Joining"


def test_an_added_master_joins_as_master_and_etcd() -> None:
    d, _ = applied_after(obj())
    two = doc()
    two["masters"].append({"name": "alpha-m1", "ip": "10.237.1.11"})
    d2 = decide(obj(deploy=two, status=d.status))
    assert d2.job.action == "join" and d2.job.join[0]["roles"] == ["master"]


def test_a_removed_worker_is_deleted_by_name() -> None:
    d, _ = applied_after(obj(deploy=doc(workers=2)))
    d2 = decide(obj(deploy=doc(workers=1), generation=2, status=d.status))
    assert d2.job.action == "delete" and d2.job.nodes == ("alpha-w1",)
    assert [w["name"] for w in yaml.safe_load(d2.job.target)["workers"]] == ["alpha-w0"]
    assert d2.status["phase"] == "Deleting"


def test_add_and_remove_in_one_commit_deletes_first_then_joins() -> None:
    d, _ = applied_after(obj(deploy=doc(workers=1)))
    swapped = doc(workers=0)
    swapped["workers"] = [{"name": "alpha-w9", "ip": "10.237.1.29"}]
    d2 = decide(obj(deploy=swapped, status=d.status))
    assert d2.job.action == "delete"
    after_delete = reconcile(
        dict(obj(deploy=swapped), status=d2.status),
        [finished(d2.job)],
        desired_of(obj(deploy=swapped), {}),
        NOW,
    )
    assert after_delete.job.action == "join" and after_delete.job.nodes == ("10.237.1.29",)


def test_a_changed_setting_redeploys() -> None:
    d, _ = applied_after(obj())
    d2 = decide(obj(deploy=doc(**{"dns-domain": "example.local"}), status=d.status))
    assert d2.job.action == "deploy" and d2.job.base


def test_refused_delete_starts_no_job() -> None:
    two = doc()
    two["masters"].append({"name": "alpha-m1", "ip": "10.237.1.11"})
    d, _ = applied_after(obj(deploy=two))
    no_first = doc()
    no_first["masters"] = [{"name": "alpha-m1", "ip": "10.237.1.11"}]
    d2 = decide(obj(deploy=no_first, status=d.status))
    assert d2.job is None
    assert condition(d2.status, "Ready")["reason"] == "DeleteRefused"
    assert "apiserver-endpoint" in condition(d2.status, "Ready")["message"]


def test_invalid_config_sets_configvalid_false_with_problem_lines_and_starts_no_job() -> None:
    bad = doc()
    bad["masters"][0]["ip"] = "10.237.1.300"
    d = decide(obj(deploy=bad))
    assert d.job is None
    c = condition(d.status, "ConfigValid")
    assert c["status"] == "False" and c["reason"] == "ConfigInvalid"
    assert "masters[0].ip: " in c["message"] and "(got '10.237.1.300')" in c["message"]
    assert d.status["phase"] == "Invalid"
    assert [e.type for e in d.events] == ["Warning"] and "masters[0].ip" in d.events[0].message


def test_the_same_invalid_config_emits_its_event_once() -> None:
    bad = obj(deploy="cluster-id: alpha\nmasters: 3\n")
    d = decide(bad)
    d2 = decide(dict(bad, status=d.status))
    assert d.events and not d2.events


def test_the_fixing_commit_recovers() -> None:
    d, _ = applied_after(obj())
    broken = decide(obj(deploy="cluster-id: alpha\nmasters: [\n", generation=2, status=d.status))
    assert condition(broken.status, "ConfigValid")["status"] == "False" and broken.job is None
    fixed = decide(obj(deploy=doc(workers=2), generation=3, status=broken.status))
    assert condition(fixed.status, "ConfigValid")["status"] == "True"
    assert fixed.job.action == "join"


def test_yaml_syntax_error_names_its_line() -> None:
    d = decide(obj(deploy="cluster-id: alpha\nmasters: [\n"))
    assert condition(d.status, "ConfigValid")["message"].startswith("line ")


def test_credentials_in_the_deploy_yaml_are_refused() -> None:
    d = decide(obj(deploy=doc(password="hunter2")))
    c = condition(d.status, "ConfigValid")
    assert c["reason"] == "CredentialsInConfig" and "hunter2" not in c["message"]
    assert d.job is None


def test_cluster_id_must_be_the_object_name() -> None:
    d = decide(obj(name="alpha", deploy=doc(name="other")))
    assert (
        "cluster-id: must be the EggoCluster's name 'alpha' (got 'other')"
        in condition(d.status, "ConfigValid")["message"]
    )


def test_a_missing_bundle_tarball_is_left_to_the_job() -> None:
    d = decide(obj(deploy=doc(install={"package-source": {"type": "tar.gz", "srcpath": {"amd64": "p.tgz"}}})))
    assert d.job is not None, condition(d.status, "ConfigValid")


def test_configmap_reference() -> None:
    o = obj()
    o["spec"] = {"configMapRef": {"name": "alpha-cfg"}, "credentialsSecretRef": {"name": "s"}}
    assert decide(o, configmaps={"alpha-cfg": {"deploy.yaml": yaml.safe_dump(doc())}}).job is not None
    missing = decide(o)
    assert condition(missing.status, "ConfigValid")["reason"] == "ConfigMapNotFound" and missing.job is None


def test_a_failed_run_waits_for_the_retry_interval_then_tries_attempt_two() -> None:
    o = obj(retryIntervalSeconds=60)
    first = decide(o).job
    bad = finished(first, ok=False, end="2026-12-05T09:59:30Z", failedHosts=["alpha-w0"])
    failed = reconcile(dict(o, status={}), [bad], desired_of(o, {}), NOW)
    assert failed.job is None and failed.requeue_after == 30
    assert failed.status["phase"] == "Failed"
    assert condition(failed.status, "Ready")["reason"] == "RunFailed"
    assert "failed hosts: alpha-w0" in condition(failed.status, "Ready")["message"]
    later = reconcile(dict(o, status=failed.status), [], desired_of(o, {}), NOW + dt.timedelta(seconds=31))
    assert later.job.attempt == 2 and later.job.name.endswith("-2") and later.job.digest == first.digest


def test_a_new_config_after_a_failure_does_not_wait() -> None:
    o = obj()
    first = decide(o).job
    failed = reconcile(
        dict(o, status={}), [finished(first, ok=False, end="2026-12-05T09:59:59Z")], desired_of(o, {}), NOW
    )
    o2 = obj(deploy=doc(workers=2), generation=2, status=failed.status)
    assert decide(o2).job.attempt == 1


def test_a_run_repeated_later_gets_a_fresh_name() -> None:
    d, _ = applied_after(obj())
    join = decide(obj(deploy=doc(workers=2), status=d.status)).job
    joined = reconcile(
        obj(deploy=doc(workers=2), status=d.status),
        [finished(join)],
        desired_of(obj(deploy=doc(workers=2)), {}),
        NOW,
    )
    delete = decide(obj(status=joined.status)).job
    deleted = reconcile(obj(status=joined.status), [finished(delete)], desired_of(obj(), {}), NOW)
    rejoin = decide(obj(deploy=doc(workers=2), status=deleted.status)).job
    assert rejoin.digest == join.digest and rejoin.name != join.name


def test_history_is_bounded() -> None:
    o = obj()
    status: dict = {}
    for i in range(HISTORY_LIMIT + 3):
        plan = decide(obj(deploy=doc(workers=i % 3 + 1), status=status)).job
        status = reconcile(obj(status=status), [finished(plan)], desired_of(o, {}), NOW).status
    assert len(status["history"]) == HISTORY_LIMIT
    assert all("hosts" not in r for r in status["history"])


def test_deletion_runs_cleanup_then_drops_state_and_finalizer() -> None:
    d, _ = applied_after(obj())
    gone = decide(obj(deleting=True, status=d.status))
    assert gone.job.action == "cleanup" and gone.status["phase"] == "CleaningUp"
    assert not gone.remove_finalizer
    done = decide(obj(deleting=True, status=gone.status), [finished(gone.job)])
    assert done.remove_finalizer and done.job is None
    assert done.delete_secrets == ("alpha-state", "alpha-kubeconfig")


def test_deletion_waits_for_a_running_job() -> None:
    first = decide(obj()).job
    d = decide(obj(deleting=True), [running(first)])
    assert d.job is None and not d.remove_finalizer


def test_deletion_of_a_never_deployed_cluster_just_drops_the_finalizer() -> None:
    d = decide(obj(deploy="nonsense: [", deleting=True))
    assert d.remove_finalizer and d.job is None


def test_deletion_without_our_finalizer_does_nothing() -> None:
    d = decide(obj(deleting=True, finalizers=()))
    assert d.job is None and not d.remove_finalizer


def test_suspend_starts_nothing() -> None:
    d = decide(obj(suspend=True))
    assert d.job is None and condition(d.status, "Reconciling")["reason"] == "Suspended"


def test_the_finalizer_is_not_requested_twice() -> None:
    assert not decide(obj(finalizers=(crd.FINALIZER,))).add_finalizer


def test_condition_transition_time_moves_only_on_flips() -> None:
    d = decide(obj())
    t0 = condition(d.status, "ConfigValid")["lastTransitionTime"]
    later = decide(dict(obj(), status=d.status), now=NOW + dt.timedelta(minutes=5))
    assert condition(later.status, "ConfigValid")["lastTransitionTime"] == t0


def test_retry_pause_reads_the_clients_timestamp_format() -> None:
    o = obj(retryIntervalSeconds=60)
    first = decide(o).job
    bad = finished(first, ok=False, end="2026-12-05T09:59:30+00:00")
    failed = reconcile(dict(o, status={}), [bad], desired_of(o, {}), NOW)
    assert failed.requeue_after == 30
