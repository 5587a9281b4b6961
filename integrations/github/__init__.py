"""The GitHub Action (action.yml at the repository root): `python -m dockyard_integrations.github` reads the
action's inputs from the environment, runs `dockyard build` and turns its results into workflow commands, step
outputs and a job summary. docs/github-action.md documents the inputs and outputs."""
