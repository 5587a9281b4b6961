package io.dockyard.jenkins

import groovy.json.JsonOutput

/**
 * The arguments of the dockyardBuild step, checked and normalised, and the request they make for the step's
 * Python half (integrations/jenkins/step.py), which maps it onto `dockyard build` through the CI adapters'
 * shared kernel (integrations/common). Checking here, before anything runs, turns a typo in a Jenkinsfile into
 * one clear `error` instead of a dockyard usage message halfway through a build. Invalid arguments throw
 * IllegalArgumentException with a message the step prefixes with its name.
 */
class BuildRequest implements Serializable {

    static final List<String> ARGUMENTS = ['image', 'tags', 'context', 'dockerfile', 'buildArgs', 'buildContexts',
                                           'labels', 'push', 'target', 'cache', 'credentialsId', 'registry', 'lint',
                                           'extraArgs', 'dockyard', 'platforms', 'pushByDigest', 'sbom',
                                           'provenance', 'scan', 'failOnVuln', 'ignoreUnfixed', 'vulnIgnoreFile',
                                           'vulnDb', 'vulnDbUrl', 'cacheDir'] + SigningCredentials.ARGUMENTS
    static final List<String> PROVENANCE_MODES = ['min', 'max']
    // The kernel's lint levels (integrations/common/levels.py LINT_LEVELS, in its order; a test keeps them equal),
    // checked here too so a bad level fails before anything runs.
    static final List<String> LINT_LEVELS = ['info', 'warning', 'error', 'none']
    // The kernel's --fail-on-vuln levels (integrations/common/scan.py FAIL_ON_VULN_LEVELS; a test keeps them equal).
    static final List<String> FAIL_ON_VULN_LEVELS = ['critical', 'high', 'medium', 'low', 'none']
    static final List<String> SCAN_SETTINGS = ['failOnVuln', 'ignoreUnfixed', 'vulnIgnoreFile', 'vulnDb', 'vulnDbUrl']

    // The distribution spec's grammar for repository path components and tags.
    private static final String COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
    static final String HOST = '(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9-]+)*' +
                                       '|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?'
    private static final String TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}'
    // docker's platform syntax, OS/ARCH[/VARIANT]; the kernel checks the names (integrations/common/platforms.py).
    static final String PLATFORM = '[A-Za-z0-9_]+/[A-Za-z0-9_]+(?:/[A-Za-z0-9]+)?'
    // Docker Hub's credentials live under this key in a docker config, as `docker login` writes them.
    static final String DOCKER_HUB_KEY = 'https://index.docker.io/v1/'

    String image
    List<String> tags
    String context
    String dockerfile
    Map<String, String> buildArgs
    Map<String, String> buildContexts
    Map<String, String> labels
    boolean push
    String target
    Object cache
    String cacheDir
    String credentialsId
    String registry
    String lint
    List<String> extraArgs
    String dockyard
    List<String> platforms
    boolean pushByDigest
    String sbom
    String provenance
    SigningCredentials signing
    boolean scan
    String failOnVuln
    boolean ignoreUnfixed
    String vulnIgnoreFile
    String vulnDb
    String vulnDbUrl

    static BuildRequest from(Map args) {
        for (Object key : args.keySet()) {
            if (!ARGUMENTS.contains(key)) {
                throw new IllegalArgumentException("unknown argument '${key}' (known: ${ARGUMENTS.join(', ')})")
            }
        }
        BuildRequest request = new BuildRequest()
        request.image = text(args, 'image', null)
        if (!request.image) {
            throw new IllegalArgumentException("image is required (a repository such as registry.example.com/team/app)")
        }
        if (!validRepository(request.image)) {
            throw new IllegalArgumentException("image '${request.image}' is not a repository name: use lower-case " +
                                               "[REGISTRY/]PATH without a tag or digest, and put tags in `tags`")
        }
        request.pushByDigest = flag(args, 'pushByDigest', false)
        if (request.pushByDigest && args.containsKey('tags')) {
            throw new IllegalArgumentException("tags go on the index, not on an image pushed by digest: give them " +
                                               "to dockyardManifest, which assembles the digests")
        }
        // An image pushed by digest has no tags: the index the merge assembles gets them.
        request.tags = request.pushByDigest ? [] : tagList(args.containsKey('tags') ? args.tags : ['latest'])
        request.platforms = platformList(args.platforms)
        request.context = text(args, 'context', '.')
        request.dockerfile = text(args, 'dockerfile', null)
        request.buildArgs = pairs(args, 'buildArgs')
        request.buildContexts = pairs(args, 'buildContexts')
        for (Map.Entry<String, String> named : request.buildContexts.entrySet()) {
            if (!named.value) {
                throw new IllegalArgumentException("buildContexts '${named.key}' has no value: give a directory, " +
                                                   "docker-image://REF, oci-layout://PATH or a git or http(s) URL")
            }
        }
        request.labels = pairs(args, 'labels')
        request.push = flag(args, 'push', request.pushByDigest)
        if (request.pushByDigest && !request.push) {
            throw new IllegalArgumentException("pushByDigest pushes the image: leave push out or set it to true")
        }
        request.target = text(args, 'target', null)
        request.cache = cache(args.cache)
        request.cacheDir = text(args, 'cacheDir', null)
        request.credentialsId = text(args, 'credentialsId', null)
        request.registry = text(args, 'registry', null) ?: registryOf(request.image)
        if (request.registry != DOCKER_HUB_KEY && !request.registry.matches(HOST)) {
            throw new IllegalArgumentException("registry '${request.registry}' is not a host[:port]")
        }
        request.lint = text(args, 'lint', 'error')
        if (!LINT_LEVELS.contains(request.lint)) {
            throw new IllegalArgumentException("lint '${request.lint}' is not one of ${LINT_LEVELS.join(', ')}")
        }
        request.extraArgs = stringList(args, 'extraArgs')
        request.dockyard = text(args, 'dockyard', 'dockyard')
        request.sbom = attestation(args, 'sbom')
        request.provenance = attestation(args, 'provenance')
        if (request.provenance) {
            java.util.regex.Matcher mode = (request.provenance =~ /(?:^|,)\s*mode=([^,]*)/)
            if (mode.find() && !PROVENANCE_MODES.contains(mode.group(1).trim())) {
                throw new IllegalArgumentException("provenance mode '${mode.group(1).trim()}' is not min or max")
            }
        }
        request.signing = SigningCredentials.from(args, request.push)
        request.scan = flag(args, 'scan', false)
        for (String setting : SCAN_SETTINGS) {
            if (!request.scan && args.containsKey(setting)) {
                throw new IllegalArgumentException("${setting} is set and scan is not true: set scan: true to scan " +
                                                   "the built image (or leave ${setting} out)")
            }
        }
        request.failOnVuln = text(args, 'failOnVuln', null)
        if (request.failOnVuln && !FAIL_ON_VULN_LEVELS.contains(request.failOnVuln)) {
            throw new IllegalArgumentException("failOnVuln '${request.failOnVuln}' is not one of " +
                                               FAIL_ON_VULN_LEVELS.join(', '))
        }
        request.ignoreUnfixed = flag(args, 'ignoreUnfixed', false)
        request.vulnIgnoreFile = text(args, 'vulnIgnoreFile', null)
        request.vulnDb = text(args, 'vulnDb', null)
        request.vulnDbUrl = text(args, 'vulnDbUrl', null)
        return request
    }

    /** `sbom`/`provenance`: true, false, or buildx's attributes as a string ('mode=max', 'generator=IMAGE');
     *  null when not given (no attestation). */
    static String attestation(Map args, String name) {
        Object value = args[name]
        if (value == null) {
            return null
        }
        if (value instanceof Boolean) {
            return value.toString()
        }
        if (value instanceof CharSequence && value.toString().trim()) {
            return value.toString().trim()
        }
        throw new IllegalArgumentException("${name} must be true, false or attributes such as " +
                                           (name == 'sbom' ? "'generator=IMAGE'" : "'mode=max'") + " (got '${value}')")
    }

    /** The full references dockyard names the image with, image:tag for each tag. */
    List<String> references() {
        List<String> refs = []
        for (String tag : tags) {
            refs.add("${image}:${tag}".toString())
        }
        return refs
    }

    /**
     * The request for the step's Python half, as JSON: the references to tag, and the arguments as given (the
     * kernel makes the `dockyard build` arguments, and the cache's default reference for `cache: true`).
     */
    String toJson() {
        Map<String, Object> request = [image: image, references: references(), context: context,
                                       dockerfile: dockerfile, buildArgs: buildArgs, buildContexts: buildContexts,
                                       labels: labels, push: push, target: target, cache: cache,
                                       cacheDir: cacheDir, lint: lint,
                                       extraArgs: extraArgs, platforms: platforms, pushByDigest: pushByDigest,
                                       sbom: sbom, provenance: provenance,
                                       signing: signing.request(), scan: scan, failOnVuln: failOnVuln,
                                       ignoreUnfixed: ignoreUnfixed, vulnIgnoreFile: vulnIgnoreFile, vulnDb: vulnDb,
                                       vulnDbUrl: vulnDbUrl]
        return JsonOutput.toJson(request)
    }

    /**
     * The command that runs the step's Python half, from the one that runs dockyard (used as written): the
     * module beside dockyard's for `PYTHON -m dockyard`, else the `dockyard-jenkins` command beside `dockyard`.
     */
    String helperCommand() {
        return helperCommandFor(dockyard)
    }

    static String helperCommandFor(String dockyard) {
        String trimmed = dockyard.trim()
        if (trimmed ==~ /(?s).*\s-m\s+dockyard/) {
            return trimmed.substring(0, trimmed.lastIndexOf('dockyard')) + 'dockyard_integrations.jenkins'
        }
        return trimmed + '-jenkins'
    }

    /** The registry an image lives in, as docker decides: a first component with a dot or a port, or
     *  `localhost`, is a host; anything else is on Docker Hub. */
    static String registryOf(String image) {
        int slash = image.indexOf('/')
        if (slash > 0) {
            String first = image.substring(0, slash)
            if (first.contains('.') || first.contains(':') || first == 'localhost') {
                return first
            }
        }
        return DOCKER_HUB_KEY
    }

    static boolean validRepository(String image) {
        String path = image
        if (registryOf(image) != DOCKER_HUB_KEY) {
            path = image.substring(image.indexOf('/') + 1)
            if (!image.substring(0, image.indexOf('/')).matches(HOST)) {
                return false
            }
        }
        return path.matches("${COMPONENT}(?:/${COMPONENT})*")
    }

    /** `cache: true` uses the kernel's default reference (integrations/common/cache.py: IMAGE:buildcache),
     *  a string is the cache's reference, false or absent means no registry cache. */
    private static Object cache(Object cache) {
        if (cache == null || cache == false) {
            return false
        }
        if (cache == true) {
            return true
        }
        if (cache instanceof CharSequence && cache.toString() && !cache.toString().contains(',')) {
            return cache.toString()
        }
        throw new IllegalArgumentException("cache must be true, false or an image reference such as " +
                                           "registry.example.com/team/app:buildcache (got '${cache}')")
    }

    /** `platforms`: a platform, a comma list, or a list of them (as `--platform a,b`); [] for the default. */
    static List<String> platformList(Object value) {
        List<String> items = []
        if (value == null) {
            return items
        }
        if (value instanceof CharSequence) {
            items.add(value.toString())
        } else if (value instanceof List) {
            for (Object item : value) {
                items.add(String.valueOf(item))
            }
        } else {
            throw new IllegalArgumentException("platforms must be a platform or a list of platforms (got '${value}')")
        }
        List<String> platforms = []
        for (String item : items) {
            for (String part : item.split(',')) {
                String platform = part.trim()
                if (!platform) {
                    continue
                }
                if (!platform.matches(PLATFORM)) {
                    throw new IllegalArgumentException("platform '${platform}' is not OS/ARCH[/VARIANT], e.g. " +
                                                       "linux/amd64, linux/arm64, linux/arm/v7")
                }
                platforms.add(platform)
            }
        }
        return platforms
    }

    static List<String> tagList(Object value) {
        List<String> tags = []
        if (value instanceof CharSequence) {
            tags.add(value.toString())
        } else if (value instanceof List) {
            for (Object tag : value) {
                tags.add(String.valueOf(tag))
            }
        } else {
            throw new IllegalArgumentException("tags must be a tag or a list of tags (got '${value}')")
        }
        if (tags.isEmpty()) {
            throw new IllegalArgumentException("tags must name at least one tag")
        }
        for (String tag : tags) {
            if (!tag.matches(TAG)) {
                throw new IllegalArgumentException("tag '${tag}' is not a valid tag (letters, digits, _ . -, " +
                                                   "at most 128, not starting with . or -)")
            }
        }
        return tags
    }

    static Map<String, String> pairs(Map args, String name) {
        Object value = args[name]
        Map<String, String> result = [:]
        if (value == null) {
            return result
        }
        if (!(value instanceof Map)) {
            throw new IllegalArgumentException("${name} must be a map of NAME: value (got '${value}')")
        }
        for (Map.Entry entry : ((Map) value).entrySet()) {
            String key = String.valueOf(entry.key)
            if (!key || key.contains('=')) {
                throw new IllegalArgumentException("${name} has an invalid name '${key}' (empty or with '=')")
            }
            result[key] = entry.value == null ? null : String.valueOf(entry.value)
        }
        return result
    }

    static List<String> stringList(Map args, String name) {
        Object value = args[name]
        List<String> result = []
        if (value == null) {
            return result
        }
        if (!(value instanceof List)) {
            throw new IllegalArgumentException("${name} must be a list of strings, one per argument (got '${value}')")
        }
        for (Object word : value) {
            result.add(String.valueOf(word))
        }
        return result
    }

    static String text(Map args, String name, String fallback) {
        Object value = args[name]
        if (value == null) {
            return fallback
        }
        if (!(value instanceof CharSequence)) {
            throw new IllegalArgumentException("${name} must be a string (got '${value}')")
        }
        return value.toString()
    }

    static boolean flag(Map args, String name, boolean fallback) {
        Object value = args[name]
        if (value == null) {
            return fallback
        }
        if (!(value instanceof Boolean)) {
            throw new IllegalArgumentException("${name} must be true or false (got '${value}')")
        }
        return (Boolean) value
    }
}
