package io.dockyard.jenkins

/**
 * A step's `sign` / `signingKeyCredentialsId` / `signingPassphraseCredentialsId` arguments, checked (shared by
 * dockyardBuild and dockyardManifest, which sign what they push with cosign's scheme): the key is a Secret file
 * credential (PEM or cosign.key), its passphrase an optional Secret text credential. Invalid arguments throw
 * IllegalArgumentException.
 */
class SigningCredentials implements Serializable {

    static final List<String> ARGUMENTS = ['sign', 'signingKeyCredentialsId', 'signingPassphraseCredentialsId']
    // The variables withCredentials binds the key's file and its passphrase to, for the step's Python half
    // (integrations/jenkins/step.py), which hands them to dockyard as `--sign key=PATH,passphrase-env=VAR`.
    static final String KEY_VARIABLE = 'DOCKYARD_SIGNING_KEY'
    static final String PASSPHRASE_VARIABLE = 'DOCKYARD_SIGN_PASSPHRASE'

    boolean sign
    String keyCredentialsId
    String passphraseCredentialsId

    /** The signing arguments in `args`; `push` is whether the step pushes what it would sign. */
    static SigningCredentials from(Map args, boolean push) {
        SigningCredentials signing = new SigningCredentials()
        signing.sign = BuildRequest.flag(args, 'sign', false)
        signing.keyCredentialsId = BuildRequest.text(args, 'signingKeyCredentialsId', null)
        signing.passphraseCredentialsId = BuildRequest.text(args, 'signingPassphraseCredentialsId', null)
        if (signing.sign && !signing.keyCredentialsId) {
            throw new IllegalArgumentException("sign: true needs signingKeyCredentialsId, the id of a Secret file " +
                                               "credential holding the private key (PEM or cosign.key)")
        }
        if (!signing.sign && (signing.keyCredentialsId || signing.passphraseCredentialsId)) {
            throw new IllegalArgumentException("a signing credential is given and sign is not true: set sign: true " +
                                               "to sign the pushed image")
        }
        if (signing.sign && !push) {
            throw new IllegalArgumentException("sign: true signs the pushed image, and push is false")
        }
        return signing
    }

    /** The request's `signing` entry for the Python half: the variables to read, or null when not signing. */
    Map<String, String> request() {
        if (!sign) {
            return null
        }
        return [keyVariable: KEY_VARIABLE, passphraseVariable: passphraseCredentialsId ? PASSPHRASE_VARIABLE : null]
    }

    /**
     * Runs `body` with the key's Secret file (and its passphrase) bound, when signing: withCredentials masks the
     * passphrase in the log and removes the key's file when the body is over. `steps` is the calling step's script.
     */
    Object bind(Object steps, Closure body) {
        if (!sign) {
            return body()
        }
        List bindings = [steps.file(credentialsId: keyCredentialsId, variable: KEY_VARIABLE)]
        if (passphraseCredentialsId) {
            bindings.add(steps.string(credentialsId: passphraseCredentialsId, variable: PASSPHRASE_VARIABLE))
        }
        return steps.withCredentials(bindings) {
            return body()
        }
    }
}
