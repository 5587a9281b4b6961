/*
 * A stand-in for Jenkins Pipeline, enough to run a shared library's global step with Debian's groovy:
 *
 *     groovy pipeline.groovy LIBRARY_DIR SCENARIOS.json RESULTS.json
 *
 * Jenkins itself cannot run here (no Maven or update-center access, and a controller is far too slow for a
 * test), so the steps a library calls are closures in the script's binding. They behave as Jenkins documents:
 * `sh` runs the REAL script with bash, traced with -xe unless it starts with a shebang (as durable-task does),
 * in the workspace, with the pipeline's environment; `withCredentials` sets the variables and masks their
 * values in the log; `error` throws; `unstable` records; a step no plugin provides throws NoSuchMethodError
 * ("No such DSL method ..."), as CpsScript does. Each scenario in SCENARIOS.json is one call of the step:
 *
 *     {"name": ..., "step": "dockyardBuild", "args": {...}, "workspace": DIR, "env": {...},
 *      "credentials": {"ID": {"username": ..., "password": ...} | {"file": CONTENT} | {"secret": TEXT}},
 *      "warningsNg": true|false}
 *
 * A scenario may instead hold a `script`: a piece of Jenkinsfile (scripted) run with the same steps, plus the
 * library's global steps (every vars/NAME.groovy, callable as NAME(...)) and `parallel`, which runs the branches
 * one after another (Jenkins runs them at once, each on its agent; one after another, they cannot share this
 * stand-in's log and environment by accident). Its value is the scenario's return value.
 *
 * RESULTS.json maps each name to what happened: the step's return value or error, `unstable` messages,
 * recordIssues calls (with the report's content at the time of the call), the log as Jenkins would show it
 * (masked) and as the scripts printed it (raw), and the shell scripts run.
 */
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

class AbortException extends RuntimeException {  // hudson.AbortException: what `error` and a failed `sh` throw
    AbortException(String message) { super(message) }
}

class Pipeline {
    final File workspace
    final Map<String, String> env
    final Map<String, Map> credentials
    final boolean warningsNg
    final File library
    final StringBuilder rawLog = new StringBuilder()
    final StringBuilder log = new StringBuilder()
    final List<String> secrets = []
    final List<String> unstable = []
    final List<Map> recorded = []
    final List<String> scripts = []
    int scriptCount = 0

    Pipeline(Map scenario, File library) {
        this.workspace = new File((String) scenario.workspace)
        this.env = new LinkedHashMap<String, String>(System.getenv())
        this.env.putAll((Map) (scenario.env ?: [:]))
        this.env.WORKSPACE = workspace.path
        this.credentials = (Map) (scenario.credentials ?: [:])
        this.warningsNg = scenario.warningsNg as boolean
        this.library = library
    }

    void print(String text) {
        rawLog.append(text)
        String shown = text
        for (String secret : secrets) {
            shown = shown.replace(secret, '****')
        }
        log.append(shown)
    }

    File resolve(Object path) {
        File file = new File(String.valueOf(path))
        return file.absolute ? file : new File(workspace, file.path)
    }

    Object sh(Object arg) {
        Map options = arg instanceof Map ? (Map) arg : [script: arg]
        String script = String.valueOf(options.script)
        scripts.add(script)
        File dir = new File(workspace.path + '@tmp', "durable-${++scriptCount}")
        dir.mkdirs()
        File file = new File(dir, 'script.sh')
        file.text = script
        file.setExecutable(true)
        List<String> command = script.startsWith('#!') ? [file.path] : ['bash', '-xe', file.path]
        ProcessBuilder builder = new ProcessBuilder(command).directory(workspace)
        builder.environment().clear()
        builder.environment().putAll(env)
        if (!options.returnStdout) {
            builder.redirectErrorStream(true)
        }
        Process process = builder.start()
        StringBuilder stdout = new StringBuilder()
        StringBuilder stderr = new StringBuilder()
        process.consumeProcessOutput(stdout, stderr)
        int status = process.waitFor()
        process.waitForProcessOutput()
        dir.deleteDir()
        if (options.returnStdout) {
            print(stderr.toString())
        } else {
            print(stdout.toString() + stderr.toString())
        }
        if (options.returnStatus) {
            return status
        }
        if (status != 0) {
            throw new AbortException("script returned exit code ${status}")
        }
        return options.returnStdout ? stdout.toString() : null
    }

    Object withCredentials(List bindings, Closure body) {
        Map<String, String> saved = [:]
        List<String> added = []
        List<File> files = []
        for (Map binding : bindings) {
            Map credential = credentials[binding.credentialsId]
            if (credential == null) {
                throw new AbortException("Could not find credentials entry with ID '${binding.credentialsId}'")
            }
            if (binding.kind == 'file') {
                // Secret file: a file of the credential's content in a temporary directory, deleted afterwards;
                // its path in the variable (Jenkins masks nothing of a file's content).
                if (credential.file == null) {
                    throw new AbortException("Credentials '${binding.credentialsId}' is of type 'Username with " +
                                             "password' where 'Secret file' was expected")
                }
                File dir = new File(workspace.path + '@tmp', "secretFiles-${UUID.randomUUID()}")
                dir.mkdirs()
                File file = new File(dir, (String) (credential.fileName ?: 'secret.key'))
                file.text = credential.file
                files.add(dir)
                saved[binding.variable] = env[binding.variable]
                env[binding.variable] = file.path
            } else if (binding.kind == 'string') {
                if (credential.secret == null) {
                    throw new AbortException("Credentials '${binding.credentialsId}' is not a 'Secret text'")
                }
                saved[binding.variable] = env[binding.variable]
                env[binding.variable] = credential.secret
                added.add(credential.secret)
            } else {
                saved[binding.usernameVariable] = env[binding.usernameVariable]
                saved[binding.passwordVariable] = env[binding.passwordVariable]
                env[binding.usernameVariable] = credential.username
                env[binding.passwordVariable] = credential.password
                added.addAll([credential.password, credential.username])
            }
        }
        secrets.addAll(added)
        try {
            return body()
        } finally {
            secrets.removeAll(added)
            restore(saved)
            for (File dir : files) {
                dir.deleteDir()
            }
        }
    }

    Object withEnv(List overrides, Closure body) {
        Map<String, String> saved = [:]
        for (Object entry : overrides) {
            String text = String.valueOf(entry)
            String name = text.substring(0, text.indexOf('='))
            saved[name] = env[name]
            env[name] = text.substring(text.indexOf('=') + 1)
        }
        try {
            return body()
        } finally {
            restore(saved)
        }
    }

    void restore(Map<String, String> saved) {
        saved.each { name, value -> value == null ? env.remove(name) : env.put(name, value) }
    }

    Map sarif(Map options) {
        if (!warningsNg) {
            throw new NoSuchMethodError("No such DSL method 'sarif' found among steps [echo, error, sh, ...]")
        }
        return [tool: 'sarif'] + options
    }

    // Warnings NG's native JSON format (the `issues` tool).
    Map issues(Map options) {
        if (!warningsNg) {
            throw new NoSuchMethodError("No such DSL method 'issues' found among steps [echo, error, sh, ...]")
        }
        return [tool: 'issues'] + options
    }

    void recordIssues(Map options) {
        if (!warningsNg) {
            throw new NoSuchMethodError("No such DSL method 'recordIssues' found among steps [echo, error, sh, ...]")
        }
        List tools = []
        for (Map tool : (List<Map>) options.tools) {
            File report = resolve(tool.pattern)
            tools.add(tool + [content: report.exists() ? report.text : null])
        }
        recorded.add(options + [tools: tools])
    }

    Binding binding() {
        Binding binding = new Binding()
        binding.parallel = { Map branches ->
            Map results = [:]
            branches.each { name, branch ->
                if (name != 'failFast') {
                    results[name] = ((Closure) branch).call()
                }
            }
            return results
        }
        binding.sh = { arg -> sh(arg) }
        binding.echo = { message -> print("${message}\n") }
        binding.error = { message -> throw new AbortException(String.valueOf(message)) }
        binding.unstable = { message -> unstable.add(String.valueOf(message)); print("WARNING: ${message}\n") }
        binding.pwd = { Map options = [:] -> options.tmp ? workspace.path + '@tmp' : workspace.path }
        binding.readFile = { arg -> resolve(arg instanceof Map ? arg.file : arg).text }
        binding.writeFile = { Map options ->
            File file = resolve(options.file)
            file.parentFile.mkdirs()  // as FilePath.write does
            file.text = options.text
        }
        binding.fileExists = { path -> resolve(path).exists() }
        binding.libraryResource = { path -> new File(library, "resources/${path}").text }
        binding.usernamePassword = { Map options -> options }
        binding.file = { Map options -> options + [kind: 'file'] }
        binding.string = { Map options -> options + [kind: 'string'] }
        binding.withCredentials = { List bindings, Closure body -> withCredentials(bindings, body) }
        binding.withEnv = { List overrides, Closure body -> withEnv(overrides, body) }
        binding.sarif = { Map options -> sarif(options) }
        binding.issues = { Map options -> issues(options) }
        binding.recordIssues = { Map options -> recordIssues(options) }
        return binding
    }
}

File library = new File(args[0])
List scenarios = (List) new JsonSlurper().parse(new File(args[1]))
GroovyClassLoader loader = new GroovyClassLoader(this.class.classLoader)
loader.addClasspath(new File(library, 'src').path)

Object callStep(GroovyClassLoader loader, File library, Pipeline pipeline, String name, Map stepArgs) {
    Class stepClass = loader.parseClass(new File(library, "vars/${name}.groovy"))
    Script step = (Script) stepClass.newInstance()
    step.binding = pipeline.binding()
    return step.invokeMethod('call', [stepArgs] as Object[])
}

Object runScript(GroovyClassLoader loader, File library, Pipeline pipeline, String script) {
    Binding binding = pipeline.binding()
    new File(library, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.each { File file ->
        String name = file.name - '.groovy'
        binding.setVariable(name, { Map stepArgs -> callStep(loader, library, pipeline, name, stepArgs) })
    }
    return new GroovyShell(loader, binding).evaluate(script)
}

Map results = [:]
for (Map scenario : scenarios) {
    Pipeline pipeline = new Pipeline(scenario, library)
    Map outcome = [:]
    try {
        if (scenario.script) {
            outcome.returned = runScript(loader, library, pipeline, (String) scenario.script)
        } else {
            outcome.returned = callStep(loader, library, pipeline, (String) scenario.step, (Map) scenario.args)
        }
    } catch (AbortException e) {
        outcome.error = e.message
    } catch (Throwable e) {  // a bug in the library or here: report it in full
        StringWriter trace = new StringWriter()
        e.printStackTrace(new PrintWriter(trace))
        outcome.exception = trace.toString()
    }
    outcome += [unstable: pipeline.unstable, recorded: pipeline.recorded, log: pipeline.log.toString(),
                rawLog: pipeline.rawLog.toString(), scripts: pipeline.scripts]
    results[scenario.name] = outcome
}
new File(args[2]).text = JsonOutput.prettyPrint(JsonOutput.toJson(results))
