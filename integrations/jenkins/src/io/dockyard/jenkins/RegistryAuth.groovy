package io.dockyard.jenkins

/**
 * Runs a command with a docker config holding only one registry credential, and removes the config as soon as
 * the command is over, whatever happened. Only the config writer (a library resource) sees the credential's
 * variables: dockyard reads the file through DOCKER_CONFIG, so a build's RUN steps never see the password.
 * Shared by the library's steps (dockyardBuild, dockyardManifest); `steps` is the calling step's script, whose
 * Pipeline steps (sh, withCredentials, withEnv, libraryResource) it calls.
 */
class RegistryAuth implements Serializable {

    static int run(Object steps, String credentialsId, String registry, String command, String authDir) {
        int status
        steps.sh "mkdir -m 700 ${Shell.quote(authDir)}"
        try {
            steps.withCredentials([steps.usernamePassword(credentialsId: credentialsId,
                                                          usernameVariable: 'DOCKYARD_REGISTRY_USER',
                                                          passwordVariable: 'DOCKYARD_REGISTRY_PASSWORD')]) {
                steps.withEnv(["DOCKYARD_AUTH_DIR=${authDir}", "DOCKYARD_REGISTRY=${registry}"]) {
                    steps.sh steps.libraryResource('io/dockyard/jenkins/write-docker-config.sh')
                }
            }
            steps.withEnv(["DOCKER_CONFIG=${authDir}"]) {
                status = steps.sh(script: command, returnStatus: true)
            }
        } finally {
            steps.sh "rm -rf ${Shell.quote(authDir)}"
        }
        return status
    }
}
