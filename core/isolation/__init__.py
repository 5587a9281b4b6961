"""Isolation backends: how a RUN step's command is executed inside a root filesystem.

The executor only knows the `Runner` protocol; backends decide how isolation is achieved: `NamespaceRunner`
(namespaces + pivot_root, for root with CAP_SYS_ADMIN, also inside a user namespace) and proot.py's
`ProotRunner` (ptrace, no privilege). detect.py says which one an environment allows.
"""

from .namespaces import NamespaceRunner
from .runner import RunResult, Runner, RunSpec, SandboxMount

__all__ = ["NamespaceRunner", "RunResult", "Runner", "RunSpec", "SandboxMount"]
