"""The GitLab CI/CD components (templates/build.yml and templates/merge.yml at the repository root):
`python -m dockyard_integrations.gitlab` reads the build component's inputs from the job's variables, logs in to
the project's registry, runs `dockyard build` and leaves the dotenv, code quality and annotations reports the
template publishes; `... gitlab merge` (merge.py) assembles the images a `parallel: matrix` of build jobs pushed by
digest into one index. docs/gitlab.md documents them."""
