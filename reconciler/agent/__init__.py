"""The host agent: reports what an OSTree host runs and applies what it is assigned.

Standard library only, Python 3.6 through 3.13, so it can be baked into the OS image and run
by the system Python of the fleet's own OS: `/usr/libexec/platform-python` (3.6) on CentOS 8
and RHEL 8, `python3` (3.9) on RHEL 9 and CentOS Stream 9. So no dataclasses, no
`from __future__ import annotations`, no builtin generics in annotations (`typing.List`),
no `subprocess.run(capture_output=...)`; `vermin --target=3.6-` checks it in `make test`,
and tests/test_agent_pythons.py runs the agent on every Python the machine has. Nothing here
may import pydantic or any other third-party package (tests/test_agent.py checks it).
"""

AGENT_VERSION = "0.1.0"
