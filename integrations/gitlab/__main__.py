import sys

from . import job, merge

# `python -m dockyard_integrations.gitlab` runs the build component's job; `... merge` the merge component's.
sys.exit(merge.main() if sys.argv[1:] == ["merge"] else job.main())
