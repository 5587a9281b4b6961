"""The GitHub Action (action.yml at the repository root): `python -m dockyard_integrations.github` reads the
action's inputs from the environment, runs `dockyard build` (or, in merge mode, `dockyard manifest create`: see
merge.py) and turns its results into workflow commands, step outputs and a job summary. docs/github-action.md
documents the inputs and outputs."""
