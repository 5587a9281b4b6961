package io.dockyard.jenkins

/** What dockyard's exit codes mean (README's table), for the step's error message. */
class ExitStatus implements Serializable {

    static String describe(int code) {
        switch (code) {
            case 2: return 'bad command-line options (check extraArgs)'
            case 3: return 'the Dockerfile is invalid'
            case 4: return 'a file the build reads is missing'
            case 5: return 'a build step failed'
            case 6: return 'a registry was unreachable or answered with an error'
            case 7: return 'a registry refused the credentials'
            case 8: return 'this agent lacks the privileges the build needs'
            case 9: return 'an output could not be written'
            case 10: return 'checks found problems at or above --fail-on'
            case 12: return 'the image has vulnerabilities at or above failOnVuln'
            case 13: return 'the vulnerability database is missing or unreadable (see vulnDb, vulnDbUrl)'
            case 127: return 'the dockyard command was not found (set `dockyard:` or install it on the agent)'
            default: return 'an internal error'
        }
    }
}
