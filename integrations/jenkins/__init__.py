"""The Jenkins shared library (vars/dockyardBuild.groovy, src/, resources/ here): the step checks its arguments in
Groovy, then runs `python -m dockyard_integrations.jenkins REQUEST.json RESULT` (step.py), which runs
`dockyard build` through the kernel (integrations/common), prints its log and leaves a result file the step
reads. docs/jenkins.md documents the step."""
