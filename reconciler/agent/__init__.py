"""The host agent: reports what an OSTree host runs and applies what it is assigned.

Standard library only, Python 3.9 syntax, so it can be baked into the OS image and run by the
system Python of RHEL 9 / CentOS Stream 9. Nothing here may import pydantic or any other
third-party package (tests/test_agent_imports.py checks it).
"""

AGENT_VERSION = "0.1.0"
