"""The GitOps operator: `EggoCluster` objects in a meta-cluster, reconciled by eggo-nornir Jobs.

Why a package of its own: everything here except `loop` (the Kubernetes client) and
`gitsource` (git) is pure: the CRD and manifests are data, and `reconcile.reconcile` turns
an object, the applied config and the live Jobs into a decision. So every decision is a unit
test, and the client-side code only reads, applies and records. The `kubernetes` client is
an optional dependency (the `operator` extra); nothing in the base install imports it.
"""
