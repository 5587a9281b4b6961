import io.dockyard.jenkins.BuildOutcome
import io.dockyard.jenkins.BuildRequest
import io.dockyard.jenkins.ExitStatus
import io.dockyard.jenkins.Shell
import io.dockyard.jenkins.StepRun

/*
 * dockyardBuild: build (and push) an image with dockyard, record its Dockerfile findings, return the digest.
 * The step checks its arguments, then its Python half (integrations/jenkins/step.py, through the CI adapters'
 * kernel) runs `dockyard build`, prints the log and leaves a result file: the digest, the findings at the `lint`
 * level, and a failure as dockyard's failure event gave it.
 * The step is a singleton shared by every call in a build: all state lives in locals, never on `this`.
 * Arguments, defaults and examples: dockyardBuild.txt and docs/jenkins.md.
 */

def call(Map args = [:]) {
    BuildRequest request
    try {
        request = BuildRequest.from(args)
    } catch (IllegalArgumentException e) {
        error "dockyardBuild: ${e.message}"
    }
    // dockyard's result files and the registry credential go in a fresh work directory outside the workspace;
    // the Python half writes dockyard's reports (dockyard.sarif, findings.txt) and the result there (StepRun).
    return StepRun.inWorkDir(this) { String workDir ->
        int status = StepRun.helper(this, workDir, request.helperCommand(), request.toJson(), request.credentialsId,
                                    request.registry, request.signing)
        String resultFile = StepRun.resultFile(workDir)
        BuildOutcome outcome = BuildOutcome.parse(fileExists(resultFile) ? readFile(resultFile) : '')
        for (String line : outcome.attested) {
            echo "dockyardBuild: attested ${line}"
        }
        for (String line : outcome.signed) {
            echo "dockyardBuild: signed ${line}"
        }
        for (String line : outcome.scanned) {
            echo "dockyardBuild: scanned ${line}"
        }
        // Recorded before a failure is raised: the report then holds the failure at its Dockerfile line, and the
        // vulnerabilities that failed the gate.
        recordFindings(request, workDir)
        if (request.scan) {
            recordVulnerabilities(request, workDir)
        }
        if (status != 0) {
            error "dockyardBuild: dockyard build of ${request.image} exited with ${status}: " +
                  "${ExitStatus.describe(status)}" +
                  (outcome.failure ? ": ${outcome.failure}" : ' (its message is in the log above)')
        }
        int reached = outcome.findingsReaching
        if (reached > 0) {
            unstable "dockyardBuild: ${reached} Dockerfile finding(s) at or above '${request.lint}' in ${request.image}"
        }
        return [digest: outcome.digest, image: request.image, tags: request.references(),
                attestations: outcome.attested, signatures: outcome.signed, vulnerabilities: outcome.vulnerabilities]
    }
}

/*
 * Hands the SARIF report to Warnings NG when it is installed, else prints the findings.
 * A step no plugin provides raises NoSuchMethodError ("No such DSL method ..."), the usual way to detect one.
 */
private void recordFindings(BuildRequest request, String workDir) {
    String sarifFile = "${workDir}/dockyard.sarif".toString()
    if (!fileExists(sarifFile)) {
        // dockyard stopped before it could check anything (e.g. bad options): its message is in the log.
        return
    }
    // Warnings NG reads report patterns relative to the workspace: the report is copied in just for the call.
    // Its ID must be unique within the build: the work directory's random suffix, lower-cased as IDs are.
    String id = 'dockyard-' + workDir.substring(workDir.lastIndexOf('.') + 1).toLowerCase()
    String pattern = ".dockyard/${id}.sarif"
    writeFile(file: pattern, text: readFile(sarifFile))
    try {
        recordIssues(tools: [sarif(pattern: pattern, id: id, name: "dockyard ${request.image}")],
                     enabledForFailure: true)
    } catch (NoSuchMethodError e) {
        if (!String.valueOf(e.message).contains('No such DSL method')) {
            throw e
        }
        echo "dockyardBuild: Dockerfile findings (install the Warnings Next Generation plugin to record them):\n" +
             readFile("${workDir}/findings.txt".toString())
    } finally {
        sh "rm -f ${Shell.quote(pattern)} && rmdir .dockyard 2>/dev/null || true"
    }
}

/*
 * Hands the vulnerabilities (Warnings NG's native JSON, one issue per package and advisory on the Dockerfile line
 * that brought the package in) to Warnings NG as a report of their own, else prints their counts.
 */
private void recordVulnerabilities(BuildRequest request, String workDir) {
    String issuesFile = "${workDir}/vulnerabilities.json".toString()
    if (!fileExists(issuesFile)) {
        return  // the build stopped before the scan: its message is in the log
    }
    String id = 'dockyard-vulns-' + workDir.substring(workDir.lastIndexOf('.') + 1).toLowerCase()
    String pattern = ".dockyard/${id}.json"
    writeFile(file: pattern, text: readFile(issuesFile))
    try {
        recordIssues(tools: [issues(pattern: pattern, id: id, name: "dockyard vulnerabilities ${request.image}")],
                     enabledForFailure: true)
    } catch (NoSuchMethodError e) {
        if (!String.valueOf(e.message).contains('No such DSL method')) {
            throw e
        }
        echo "dockyardBuild: vulnerabilities in ${request.image} (install the Warnings Next Generation plugin to " +
             "record them) are in the log above"
    } finally {
        sh "rm -f ${Shell.quote(pattern)} && rmdir .dockyard 2>/dev/null || true"
    }
}
