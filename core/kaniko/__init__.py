"""`dockyard kaniko`: kaniko's executor command line, as written in existing pipelines, mapped onto dockyard.

flags.py reads the arguments the way kaniko's flag library (spf13/pflag) does; options.py maps them onto
BuildOptions and says, in one line each, what a flag without meaning here was taken as; context.py turns
`--context` (dir://, tar://, git://) into a directory; results.py writes kaniko's digest files; command.py runs it.
"""
