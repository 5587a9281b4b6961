import io.dockyard.jenkins.BuildOutcome
import io.dockyard.jenkins.ExitStatus
import io.dockyard.jenkins.ManifestRequest
import io.dockyard.jenkins.StepRun

/*
 * dockyardManifest: the merge of a distributed build. The images that dockyardBuild calls on agents of each CPU
 * pushed by digest (`pushByDigest: true`, usually in the branches of a `parallel`) are assembled into one image
 * index under the tags (`dockyard manifest create`), signed with a key as dockyardBuild signs (`sign: true`);
 * returns the index's digest.
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
    // The result file and the registry credential go in a fresh work directory, as dockyardBuild's (StepRun).
    return StepRun.inWorkDir(this) { String workDir ->
        int status = StepRun.helper(this, workDir, request.helperCommand(), request.toJson(), request.credentialsId,
                                    request.registry, request.signing)
        String resultFile = StepRun.resultFile(workDir)
        BuildOutcome outcome = BuildOutcome.parse(fileExists(resultFile) ? readFile(resultFile) : '')
        if (status != 0) {
            error "dockyardManifest: dockyard manifest create of ${request.image} exited with ${status}: " +
                  "${ExitStatus.describe(status)}" +
                  (outcome.failure ? ": ${outcome.failure}" : ' (its message is in the log above)')
        }
        if (request.signing.sign) {
            // cosign's scheme: the signature of the index (and of the attestation manifests it lists) went up
            // before the tags moved; `dockyard manifest create` writes no metadata file to list them from.
            echo "dockyardManifest: signed ${outcome.digest} with the key in ${request.signing.keyCredentialsId}"
        }
        return [digest: outcome.digest, image: request.image, tags: request.references(), sources: request.sources,
                signed: request.signing.sign]
    }
}
