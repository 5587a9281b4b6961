package io.dockyard.jenkins

/**
 * What the step's Python half (integrations/jenkins/step.py) leaves in its result file: dockyard's exit code,
 * the digest, how many findings reach the `lint` level, and for a failed build its failure event's fields.
 * The file is KEY=VALUE lines with `\\` and `\n` escaped, read with string methods alone: parsing JSON would
 * need readJSON (the Pipeline Utility Steps plugin) or JsonSlurperClassic (a script approval in sandboxed
 * libraries), and the step should work on a bare Jenkins.
 */
class BuildOutcome implements Serializable {

    Map<String, String> values = [:]

    static BuildOutcome parse(String text) {
        BuildOutcome outcome = new BuildOutcome()
        for (String line : text.split('\n')) {
            int equals = line.indexOf('=')
            if (equals > 0) {
                outcome.values[line.substring(0, equals)] = unescape(line.substring(equals + 1))
            }
        }
        return outcome
    }

    private static String unescape(String value) {
        StringBuilder out = new StringBuilder()
        int i = 0
        while (i < value.length()) {
            char c = value.charAt(i)
            if (c == '\\' as char && i + 1 < value.length()) {
                char next = value.charAt(i + 1)
                out.append(next == 'n' as char ? '\n' : String.valueOf(next))
                i += 2
            } else {
                out.append(c)
                i += 1
            }
        }
        return out.toString()
    }

    String getDigest() {
        return values.digest
    }

    /** What was attested, a line per attestation manifest (none without attestations). */
    List<String> getAttested() {
        return lines(values.attested)
    }

    /** What the scan found, a line per platform (none without scan). */
    List<String> getScanned() {
        return lines(values.scanned)
    }

    /** The vulnerabilities by severity over every platform (null without scan). */
    String getVulnerabilities() {
        return values.vulnerabilities
    }

    /** What was signed, a line per signature (none without signing). */
    List<String> getSigned() {
        return lines(values.signed)
    }

    private static List<String> lines(String text) {
        List<String> found = []
        for (String line : (text ?: '').split('\n')) {
            if (line) {
                found.add(line)
            }
        }
        return found
    }

    int getFindingsReaching() {
        return (values.findings_reaching ?: '0').toInteger()
    }

    /** The failure in one line (`FILE:LINE: message`), or null when the build did not fail with an event. */
    String getFailure() {
        return values.headline ? "${values.error}: ${values.headline}".toString() : null
    }
}
