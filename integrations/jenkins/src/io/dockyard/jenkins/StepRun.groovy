package io.dockyard.jenkins

/**
 * The scaffolding both steps (dockyardBuild, dockyardManifest) run their Python half (integrations/jenkins/step.py)
 * in. `steps` is the calling step's script, whose Pipeline steps (sh, pwd, writeFile, withCredentials, ...) it calls.
 */
class StepRun implements Serializable {

    /**
     * Calls `body` with a fresh work directory under the agent's temporary directory for this workspace, and
     * removes the directory afterwards, whatever happened. Outside the workspace, so dockyard's result files and the
     * registry credential never become part of the build context (usually the workspace), an archive or a stash.
     */
    static Object inWorkDir(Object steps, Closure body) {
        String tmp = steps.pwd(tmp: true)
        String workDir = steps.sh(script: "mkdir -p ${Shell.quote(tmp)} && " +
                                          "mktemp -d ${Shell.quote(tmp + '/dockyard.XXXXXX')}",
                                  returnStdout: true).trim()
        try {
            return body(workDir)
        } finally {
            steps.sh "rm -rf ${Shell.quote(workDir)}"
        }
    }

    /**
     * Runs the Python half on `requestJson` (written to WORKDIR/request.json; it leaves WORKDIR/result) with the
     * signing key bound when `signing` signs, and with a docker config holding only the registry credential when
     * there is one (RegistryAuth); returns the exit status.
     */
    static int helper(Object steps, String workDir, String helperCommand, String requestJson, String credentialsId,
                      String registry, SigningCredentials signing) {
        String requestFile = "${workDir}/request.json".toString()
        steps.writeFile(file: requestFile, text: requestJson)
        String command = helperCommand + ' ' + Shell.join([requestFile, resultFile(workDir)])
        return (int) signing.bind(steps) {
            if (credentialsId) {
                return RegistryAuth.run(steps, credentialsId, registry, command, "${workDir}/docker".toString())
            }
            return steps.sh(script: command, returnStatus: true)
        }
    }

    /** The result file the Python half leaves in `workDir`. */
    static String resultFile(String workDir) {
        return "${workDir}/result".toString()
    }
}
