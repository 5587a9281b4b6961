"""The Jenkins shared library (vars/dockyardBuild.groovy, vars/dockyardManifest.groovy, src/, resources/ here): a
step checks its arguments in Groovy, then runs `python -m dockyard_integrations.jenkins REQUEST.json RESULT`
(step.py), which runs `dockyard build` (or, for dockyardManifest, `dockyard manifest create`) through the kernel
(integrations/common), prints its log and leaves a result file the step reads. docs/jenkins.md documents both."""
