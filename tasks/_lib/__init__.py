"""What the tasks share and are not tasks themselves: the context and options, the step table,
pure planners and parsers (cleanup, fan-out), kubectl and waiting helpers.

Private: embedders use the tasks in `eggo_nornir.tasks` and build their context with
`eggo_nornir.tasks.DeployContext`; these modules may change shape between releases.
"""
