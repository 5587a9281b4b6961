import io.dockyard.jenkins.BuildOutcome
import io.dockyard.jenkins.ExitStatus
import io.dockyard.jenkins.ManifestRequest
import io.dockyard.jenkins.RegistryAuth
import io.dockyard.jenkins.Shell

/*
 * dockyardManifest: the merge of a distributed build. The images that dockyardBuild calls on agents of each CPU
 * pushed by digest (`pushByDigest: true`, usually in the branches of a `parallel`) are assembled into one image
 * index under the tags (`dockyard manifest create`); returns the index's digest.
 * Its Python half is dockyardBuild's (integrations/jenkins/step.py), with a request of kind `manifest`.
 * The step is a singleton shared by every call in a build: all state lives in locals, never on `this`.
 * Arguments, defaults and examples: dockyardManifest.txt and docs/jenkins.md.
 */

def call(Map args = [:]) {
    ManifestRequest request
    try {
        request = ManifestRequest.from(args)
    } catch (IllegalArgumentException e) {
        error "dockyardManifest: ${e.message}"
    }
    // The result file and the registry credential go in a fresh directory outside the workspace, as dockyardBuild's.
    String tmp = pwd(tmp: true)
    String workDir = sh(script: "mkdir -p ${Shell.quote(tmp)} && mktemp -d ${Shell.quote(tmp + '/dockyard.XXXXXX')}",
                        returnStdout: true).trim()
    try {
        String requestFile = "${workDir}/request.json".toString()
        String resultFile = "${workDir}/result".toString()
        writeFile(file: requestFile, text: request.toJson())
        String command = request.helperCommand() + ' ' + Shell.join([requestFile, resultFile])
        int status
        if (request.credentialsId) {
            status = RegistryAuth.run(this, request.credentialsId, request.registry, command,
                                      "${workDir}/docker".toString())
        } else {
            status = sh(script: command, returnStatus: true)
        }
        BuildOutcome outcome = BuildOutcome.parse(fileExists(resultFile) ? readFile(resultFile) : '')
        if (status != 0) {
            error "dockyardManifest: dockyard manifest create of ${request.image} exited with ${status}: " +
                  "${ExitStatus.describe(status)}" +
                  (outcome.failure ? ": ${outcome.failure}" : ' (its message is in the log above)')
        }
        return [digest: outcome.digest, image: request.image, tags: request.references(), sources: request.sources]
    } finally {
        sh "rm -rf ${Shell.quote(workDir)}"
    }
}
