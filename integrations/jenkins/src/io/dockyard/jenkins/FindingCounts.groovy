package io.dockyard.jenkins

/**
 * How many findings of each severity dockyard's text report holds, read from its last line ("2 warnings,
 * 1 info" or "no findings"). The step decides UNSTABLE from this plain-text line rather than from the JSON
 * reports: parsing JSON needs readJSON (the Pipeline Utility Steps plugin) or JsonSlurperClassic (a script
 * approval in sandboxed libraries), and the step should work on a bare Jenkins.
 */
class FindingCounts implements Serializable {

    Map<String, Integer> bySeverity = [error: 0, warning: 0, info: 0]

    static FindingCounts parse(String report) {
        FindingCounts counts = new FindingCounts()
        List<String> lines = []
        for (String line : report.split('\n')) {
            if (line.trim()) {
                lines.add(line.trim())
            }
        }
        if (lines.isEmpty() || lines[-1] == 'no findings') {
            return counts
        }
        for (String part : lines[-1].split(', ')) {
            String[] words = part.split(' ')
            String severity = words.length == 2 ? words[1].replaceAll('s$', '') : ''
            if (!counts.bySeverity.containsKey(severity) || !words[0].isInteger()) {
                throw new IllegalArgumentException("unexpected summary line in dockyard's text report: ${lines[-1]}")
            }
            counts.bySeverity[severity] = words[0].toInteger()
        }
        return counts
    }

    /** Findings at or above `level` (a dockyard --fail-on level); `none` is reached by nothing. */
    int atOrAbove(String level) {
        int index = BuildRequest.LINT_LEVELS.indexOf(level)
        int total = 0
        for (String severity : ['info', 'warning', 'error']) {
            if (level != 'none' && BuildRequest.LINT_LEVELS.indexOf(severity) >= index) {
                total += bySeverity[severity]
            }
        }
        return total
    }

    int total() {
        return bySeverity.error + bySeverity.warning + bySeverity.info
    }
}
