"""The GitLab CI/CD component (templates/build.yml at the repository root): `python -m dockyard_integrations.gitlab`
reads the component's inputs from the job's variables, logs in to the project's registry, runs `dockyard build`
and leaves the dotenv, code quality and annotations reports the template publishes. docs/gitlab.md documents it."""
