"""`make demo` and what stands in for the world in it and in the tests: simulated hosts in
virtual time (:mod:`.simulation`) and real OSTree repositories and sysroots (:mod:`.testbed`).

Nothing in the product imports this package; it sits above the CLI, which the demo drives as
a user would.
"""
