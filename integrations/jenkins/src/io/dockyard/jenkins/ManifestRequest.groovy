package io.dockyard.jenkins

import groovy.json.JsonOutput

/**
 * The arguments of the dockyardManifest step, checked and normalised, and the request they make for the step's
 * Python half (integrations/jenkins/step.py), which maps it onto `dockyard manifest create` through the CI
 * adapters' shared kernel (integrations/common/manifest.py). The checks are BuildRequest's, so both steps take an
 * image, tags, a credential, `dockyard` and the signing key (SigningCredentials) alike. Invalid arguments throw IllegalArgumentException.
 */
class ManifestRequest implements Serializable {

    static final List<String> ARGUMENTS = ['image', 'tags', 'sources', 'annotations', 'append', 'push',
                                           'credentialsId', 'registry', 'dockyard'] + SigningCredentials.ARGUMENTS
    private static final String DIGEST = 'sha256:[0-9a-f]{64}'

    String image
    List<String> tags
    List<String> sources
    Map<String, String> annotations
    boolean append
    boolean push
    String credentialsId
    String registry
    String dockyard
    SigningCredentials signing

    static ManifestRequest from(Map args) {
        for (Object key : args.keySet()) {
            if (!ARGUMENTS.contains(key)) {
                throw new IllegalArgumentException("unknown argument '${key}' (known: ${ARGUMENTS.join(', ')})")
            }
        }
        ManifestRequest request = new ManifestRequest()
        request.image = BuildRequest.text(args, 'image', null)
        if (!request.image) {
            throw new IllegalArgumentException("image is required (the repository the index goes to, such as " +
                                               "registry.example.com/team/app)")
        }
        if (!BuildRequest.validRepository(request.image)) {
            throw new IllegalArgumentException("image '${request.image}' is not a repository name: use lower-case " +
                                               "[REGISTRY/]PATH without a tag or digest, and put tags in `tags`")
        }
        request.tags = BuildRequest.tagList(args.containsKey('tags') ? args.tags : ['latest'])
        request.sources = sourceList(request.image, BuildRequest.stringList(args, 'sources'))
        request.annotations = BuildRequest.pairs(args, 'annotations')
        request.append = BuildRequest.flag(args, 'append', false)
        request.push = BuildRequest.flag(args, 'push', true)
        request.credentialsId = BuildRequest.text(args, 'credentialsId', null)
        request.registry = BuildRequest.text(args, 'registry', null) ?: BuildRequest.registryOf(request.image)
        if (request.registry != BuildRequest.DOCKER_HUB_KEY && !request.registry.matches(BuildRequest.HOST)) {
            throw new IllegalArgumentException("registry '${request.registry}' is not a host[:port]")
        }
        request.dockyard = BuildRequest.text(args, 'dockyard', 'dockyard')
        request.signing = SigningCredentials.from(args, request.push)
        return request
    }

    /** Each source as a reference: a bare digest (what dockyardBuild returns) is an image in `image`. */
    private static List<String> sourceList(String image, List<String> given) {
        if (given.isEmpty()) {
            throw new IllegalArgumentException("sources must name the images to assemble: the digests the " +
                                               "dockyardBuild calls returned, or references REPO@DIGEST")
        }
        List<String> sources = []
        for (String source : given) {
            sources.add(source.matches(DIGEST) ? "${image}@${source}".toString() : source)
        }
        return sources
    }

    List<String> references() {
        List<String> refs = []
        for (String tag : tags) {
            refs.add("${image}:${tag}".toString())
        }
        return refs
    }

    String toJson() {
        List<String> annotationItems = []
        for (Map.Entry<String, String> entry : annotations.entrySet()) {
            annotationItems.add("${entry.key}=${entry.value ?: ''}".toString())
        }
        Map<String, Object> request = [kind: 'manifest', image: image, references: references(), sources: sources,
                                       annotations: annotationItems, append: append, push: push,
                                       signing: signing.request()]
        return JsonOutput.toJson(request)
    }

    String helperCommand() {
        return BuildRequest.helperCommandFor(dockyard)
    }
}
